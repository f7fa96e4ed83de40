"""Checkpoint `Resume` records: today's binary version and every one written before it decode, any one round-trips."""

from __future__ import annotations

from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.engine import NO_WATERMARK, RowCounts
from streams.engine.row import Row
from streams.service.owner_partition import RESUME_FORMAT_VERSION, OwnerPartition, Resume
from streams.service.records import OwnerRecord, decode_owner_record, encode_owner_record
from streams.settings import Settings

SOURCE = "in:0"
T0 = 1_600_000_000_000

# Written by the checkpoint before version 1 (commit 88b1f9b: `orjson.dumps(resume.to_json())`), byte for byte.
RESUME_VERSION_0 = (
    b'{"q":1234,"w":1704665174023,"c":true,"r":{"interactions:0":563068,"interactions:1":0},"f":1200}'
)
FIRST_RESUME_VERSION_0 = b'{"q":-1,"w":-9223372036854775808,"c":false,"r":{},"f":null}'
# The first as version 1 writes it: a change of layout must come with a new version byte.
RESUME_VERSION_1 = (
    b"\x01\x03\xd2\x04\x00\x00\x00\x00\x00\x00\x07P\xf6\xe5\x8c\x01\x00\x00\xb0\x04\x00\x00\x00\x00\x00\x00"
    b"\x02\x00\x00\x00|\x97\x08\x00\x00\x00\x00\x00\x0e\x00interactions:0\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x0e\x00interactions:1"
)
# Version 2 adds the row counts (a flag, then rows, established, dormant): this one with 930,782 rows.
RESUME_VERSION_2 = (
    b"\x02\x07\xd2\x04\x00\x00\x00\x00\x00\x00\x07P\xf6\xe5\x8c\x01\x00\x00\xb0\x04\x00\x00\x00\x00\x00\x00"
    b"\x02\x00\x00\x00|\x97\x08\x00\x00\x00\x00\x00\x0e\x00interactions:0\x00\x00\x00\x00\x00\x00\x00\x00"
    b"\x0e\x00interactions:1\xde3\x0e\x00\x00\x00\x00\x00\x11\x10\x00\x00\x00\x00\x00\x00\xb7\x04\x00\x00\x00\x00"
    b"\x00\x00"
)


@pytest.mark.parametrize(
    "data", [RESUME_VERSION_0, RESUME_VERSION_1, RESUME_VERSION_2], ids=["version 0 (JSON)", "1", "2"]
)
def test_every_format_version_decodes_field_by_field(data: bytes) -> None:
    resume = Resume.from_bytes(data)
    assert resume.last_offset == 1234
    assert resume.watermark == 1704665174023
    assert resume.closed is True
    assert list(resume.received.items()) == [("interactions:0", 563068), ("interactions:1", 0)]
    assert resume.replay_from == 1200
    if data is RESUME_VERSION_2:
        assert resume.counts == RowCounts(rows=930_782, established=4_113, dormant=1_207)
        assert resume.to_bytes() == RESUME_VERSION_2
    else:  # no counts: a restart scans the rows; rewritten as version 2 without them
        assert resume.counts is None
        assert resume.to_bytes() == b"\x02" + RESUME_VERSION_1[1:]


def test_a_resume_of_nothing_handled_yet_decodes_from_json() -> None:
    resume = Resume.from_bytes(FIRST_RESUME_VERSION_0)
    assert resume == Resume(-1, NO_WATERMARK, False, {}, None)
    assert resume.closed is False
    assert Resume.from_bytes(resume.to_bytes()) == resume


def test_the_release_before_version_1_cannot_read_it() -> None:
    """It decoded the marker with `orjson.loads`: a deployment cannot go back once version 1 is written."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(RESUME_VERSION_1)


@pytest.mark.parametrize("first", [0x00, 0x03, 0x5B, 0xFF])
def test_an_unknown_version_byte_is_a_value_error_naming_it(first: int) -> None:
    with pytest.raises(ValueError, match=f"unknown resume format version byte 0x{first:02x}"):
        Resume.from_bytes(bytes((first,)) + RESUME_VERSION_2[1:])


@pytest.mark.parametrize("data", [RESUME_VERSION_1, RESUME_VERSION_2], ids=["1", "2"])
def test_empty_truncated_or_overlong_bytes_are_value_errors(data: bytes) -> None:
    for end in range(len(data)):
        with pytest.raises(ValueError, match="resume bytes"):
            Resume.from_bytes(data[:end])
    with pytest.raises(ValueError, match="do not end where their fields do"):
        Resume.from_bytes(data + b"\x00")


int64 = st.integers(-(2**63), 2**63 - 1)
resumes = st.builds(
    Resume,
    last_offset=int64,
    watermark=int64,
    closed=st.booleans(),
    received=st.dictionaries(st.text(max_size=60), int64, max_size=50),
    replay_from=st.none() | int64,
    counts=st.none() | st.builds(RowCounts, *[st.integers(0, 2**64 - 1)] * 3),
)


@given(resumes)
def test_any_resume_round_trips_in_every_version(resume: Resume) -> None:
    data = resume.to_bytes()
    assert data[0] == RESUME_FORMAT_VERSION
    assert Resume.from_bytes(data) == resume
    written_before_version_1 = orjson.dumps(resume.to_json())  # version 0 had no counts
    for copy in (Resume.from_bytes(data), Resume.from_bytes(written_before_version_1)):
        assert copy._replace(counts=None) == resume._replace(counts=None)
        assert type(copy.closed) is bool
        assert list(copy.received.items()) == list(resume.received.items())


def test_a_partition_checkpointed_by_the_release_before_version_1_carries_on_as_if_never_stopped() -> None:
    """Rows, marker and owner records all in version 0 before the restart, version 1 after it."""
    day = 86_400_000
    settings = Settings(
        allowed_lateness_ms=0, clock="event", min_touches=3, min_silence_ms=day, max_silence_ms=7 * day
    )
    # ann and bob every 12 h for 5 days, then silent until day 12; cid and dan every 6 h throughout
    events = [(T0 + n * day // 2, "ann" if n % 2 else "bob", "bob" if n % 2 else "ann") for n in range(10)]
    events += [(T0 + n * day // 4 + 1, "cid", "dan") for n in range(64)]
    events += [(T0 + 12 * day + 2, "ann", "bob")]
    events.sort()
    updates: list[list[Any]] = []
    for n, (ts, actor, target) in enumerate(events):
        updates += [
            [ts, f"e{n}", actor, target, 0, n % 3, 0, n],
            [ts, f"e{n}", target, actor, 1, n % 3, 0, n],
        ]
    records = [
        OwnerRecord([SOURCE], updates[i : i + 6], {SOURCE: (updates[i : i + 6][-1][0], False)})
        for i in range(0, len(updates), 6)
    ]
    records.append(OwnerRecord([], [], {SOURCE: (events[-1][0], True)}))
    half = len(records) // 2
    version_0 = [orjson.dumps({"s": r.sources, "u": r.updates, "wm": r.markers}) for r in records[:half]]
    version_1 = [encode_owner_record(r.sources, r.updates, r.markers) for r in records[half:]]

    never_stopped: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    expected_alerts = []
    for offset, record in enumerate(records):
        expected_alerts += never_stopped.handle(record, f"r{offset}", offset=offset, now_ms=0, record_ms=0)
        if offset == half - 1:
            never_stopped.checkpoint()  # as `before` does: rows forget ids only once written

    before: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    alerts = []
    for offset, raw in enumerate(version_0):
        alerts += before.handle(decode_owner_record(raw), f"r{offset}", offset=offset, now_ms=0, record_ms=0)
    saved = before.checkpoint()
    stored_rows = {key: row.to_json_bytes() for key, row in saved.rows if row is not None}
    stored_resume = orjson.dumps(saved.resume.to_json())
    start = saved.resume.replay_from
    assert start is not None

    rows = {key: Row.from_bytes(value) for key, value in stored_rows.items()}
    after: OwnerPartition[str] = OwnerPartition(0, settings, rows, [SOURCE], Resume.from_bytes(stored_resume))
    for offset, raw in enumerate([*version_0, *version_1][start:], start=start):
        alerts += after.handle(decode_owner_record(raw), f"r{offset}", offset=offset, now_ms=0, record_ms=0)

    assert {alert["kind"] for alert in expected_alerts} == {"dormant", "revived"}
    assert alerts == expected_alerts
    assert after.engine.rows == never_stopped.engine.rows
    assert after.checkpoint().resume == never_stopped.checkpoint().resume
