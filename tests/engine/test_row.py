"""Row bytes: every format version decodes (today's binary and the JSON rows written before it), any row round-trips."""

from __future__ import annotations

import math
import struct

import orjson
import pytest
from hypothesis import example, given
from hypothesis import strategies as st

from streams.engine.row import ROW_FORMAT_VERSION, Row
from streams.service.records import input_position

# Written by `Row.to_bytes` before version 1 (commit 88b1f9b), byte for byte: a JSON array.
BUSY_ROW_VERSION_0 = (
    b"[[3,1,0,0,2,7],1704067214252,1704665174023,1704665174023,1704656795235,1704656795235,5,"
    b"[23154823,46859668,22351538,0],9.757161813542876,1706084374023,"
    b'{"t1-000036231":[1704505961896,18446744073709551615],'
    b'"\xc3\xa9-\xc3\xbc \xe2\x98\x83":[1704510023126,16570143474384],"late":[1704067214252,0]}]'
)
ONE_EVENT_ROW_VERSION_0 = (
    b"[[0,0,0,0,0,1],1082040961000,1082040961000,null,1082040961000,1082040961000,1,[],1.0,null,"
    b'{"cm1":[1082040961000,1]}]'
)
# The same rows as version 1 writes them: a change of layout must come with a new version byte.
BUSY_ROW_VERSION_1 = (
    b"\x01\x173\x07P\xf6\xe5\x8c\x01\x00\x00\xb6\xe4\x95\xb6\xaa\x83#@\xff\xff\xff\xff\xff\xff\xff\xff"
    b"H\x03\x01\x02\x07\xb6\x91\xa1\xba\x04\xc8\xe6\xfe\x07\x00\xc8\xe6\xfe\x07\x80\x98\xba\xc9\n\x05"
    b"\x04\x8e\xc2\x8a\x16\xa8\x96\xd8,\xe4\xba\xa8\x15\x00\x0c\xbd\x89\xeb\x97\x01\t\xdc\xe0\xef\x03"
    b"\xdd\xf4\xdf\xe7\xbe\xbb\xf8\xff\xff\x03\x04\xd3\xe8\xa5\xa6\x03\x9f\x8b\xa0\x98\xc1\xc4\x07"
    b"t1-000036231\xc3\xa9-\xc3\xbc \xe2\x98\x83late"
)
ONE_EVENT_ROW_VERSION_1 = (
    b"\x01\x1a \xe8\xc7\xaa\xee\xfb\x00\x00\x00\x01\x00\x00\x00\x00\x00\x00\x00\t\x01\x00\x00\x00\x01\x01"
    b"\x00\x03\x00cm1"
)


def fields(row: Row) -> tuple[object, ...]:
    """Every serialised field, `strength` as its IEEE 754 bits."""
    return (
        row.counts,
        row.first_at,
        row.last_at,
        row.last_out_at,
        row.last_in_at,
        row.touch_at,
        row.touches,
        row.gaps,
        struct.pack("<d", row.strength),
        row.dormant_since,
        list(row.recent.items()),  # order included
    )


def assert_busy_row(row: Row) -> None:
    assert row.counts == [3, 1, 0, 0, 2, 7]
    assert (row.first_at, row.last_at) == (1704067214252, 1704665174023)
    assert (row.last_out_at, row.last_in_at) == (1704665174023, 1704656795235)
    assert (row.touch_at, row.touches) == (1704656795235, 5)
    assert row.gaps == [23154823, 46859668, 22351538, 0]
    assert row.strength == 9.757161813542876
    assert row.dormant_since == 1706084374023
    assert row.dormant
    assert list(row.recent.items()) == [
        ("t1-000036231", [1704505961896, 2**64 - 1]),
        ("é-ü ☃", [1704510023126, 16570143474384]),
        ("late", [1704067214252, 0]),
    ]


def assert_one_event_row(row: Row) -> None:
    assert row.counts == [0, 0, 0, 0, 0, 1]
    assert row.first_at == row.last_at == row.last_in_at == row.touch_at == 1082040961000
    assert row.last_out_at is None
    assert row.dormant_since is None
    assert not row.dormant
    assert (row.touches, row.gaps) == (1, [])
    assert row.strength == 1.0
    assert type(row.strength) is float
    assert row.recent == {"cm1": [1082040961000, 1]}


@pytest.mark.parametrize("version", ["0 (JSON)", "1"])
def test_every_format_version_decodes_field_by_field(version: str) -> None:
    busy, one_event = (
        (BUSY_ROW_VERSION_0, ONE_EVENT_ROW_VERSION_0)
        if version == "0 (JSON)"
        else (BUSY_ROW_VERSION_1, ONE_EVENT_ROW_VERSION_1)
    )
    assert_busy_row(Row.from_bytes(busy))
    assert_one_event_row(Row.from_bytes(one_event))


def test_rows_read_from_json_are_written_as_version_1_and_back_to_the_same_json() -> None:
    for old, new in (
        (BUSY_ROW_VERSION_0, BUSY_ROW_VERSION_1),
        (ONE_EVENT_ROW_VERSION_0, ONE_EVENT_ROW_VERSION_1),
    ):
        row = Row.from_bytes(old)
        assert row.to_bytes() == new
        assert row.to_bytes()[0] == ROW_FORMAT_VERSION
        assert row.to_json_bytes() == old
        assert Row.from_bytes(new) == row


@pytest.mark.parametrize("gaps", range(100, 125))
def test_rows_round_trip_across_the_one_byte_varint_boundaries(gaps: int) -> None:
    """The varint section's length crosses 127/128 bytes; gaps cross 63/64 (zig-zag) and 2**7, 2**14."""
    row = Row.from_bytes(ONE_EVENT_ROW_VERSION_1)
    row.gaps = [63, 64, 2**7 - 1, 2**7, 2**14 - 1, 2**14, *([1] * (gaps - 6))]
    copy = Row.from_bytes(row.to_bytes())
    assert fields(copy) == fields(row)


def test_the_release_before_version_1_cannot_read_it() -> None:
    """It decoded rows with `orjson.loads`: a deployment cannot go back once version 1 is written."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(ONE_EVENT_ROW_VERSION_1)


@pytest.mark.parametrize("first", [0x00, 0x02, 0x7B, 0xFF])
def test_an_unknown_version_byte_is_a_value_error_naming_it(first: int) -> None:
    data = bytes((first,)) + ONE_EVENT_ROW_VERSION_1[1:]
    with pytest.raises(ValueError, match=f"unknown row format version byte 0x{first:02x}"):
        Row.from_bytes(data)


def test_empty_truncated_or_overlong_version_1_bytes_are_value_errors() -> None:
    for data in (BUSY_ROW_VERSION_1, ONE_EVENT_ROW_VERSION_1):
        for end in range(len(data)):
            with pytest.raises(ValueError, match="row bytes"):
                Row.from_bytes(data[:end])
        with pytest.raises(ValueError, match="do not end where their fields do"):
            Row.from_bytes(data + b"x")


def test_a_row_of_one_event_as_the_service_stores_it_takes_under_50_bytes() -> None:
    ts = 1704067233529
    row = Row([1, 0, 0, 0, 0, 0], ts, ts, ts, None, ts, 1, [], 2.0, None, {
        "1745871234567890123": [ts, input_position("interactions:5", 123_456_789)]
    })  # fmt: skip
    assert len(row.to_bytes()) < 50 < len(row.to_json_bytes())


TS = 1704067233529


OUT_OF_RANGE = pytest.mark.parametrize(
    ("row", "message"),
    [
        (Row([0, 0, 0, 0, 0, 0], TS, 2**63, None, None, TS, 0, [], 0.0, None, {}), "row field out of range"),
        (Row([-1, 0, 0, 0, 0, 0], TS, TS, None, None, TS, 0, [], 0.0, None, {}), "range"),
        (
            Row([0, 0, 0, 0, 0, 0], TS, TS, None, None, TS, 0, [], 0.0, None, {"e": [TS, -1]}),
            "input position -1",
        ),
        (Row([0, 0, 0, 0, 0], TS, TS, None, None, TS, 0, [], 0.0, None, {}), "expected 6"),
    ],
    ids=["last_at beyond int64", "negative count", "negative position", "five counts"],
)
"""Rows `to_bytes` refuses, with the message it gives."""


@OUT_OF_RANGE
def test_fields_out_of_the_format_range_are_value_errors(row: Row, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        row.to_bytes()


# --- property tests -------------------------------------------------------------------------------

int64 = st.integers(-(2**63), 2**63 - 1)
uint64 = st.integers(0, 2**64 - 1)
times = st.one_of(st.integers(946_684_800_000, 4_102_444_799_999), int64)
strengths = st.one_of(
    st.sampled_from([0.0, -0.0, 1.0, 2.0, 3.0, 2.0**53 - 1, 2.0**53, 5e-324, 2.2250738585072014e-308]),
    st.floats(allow_nan=False, allow_subnormal=True),
)


def row_strategy(counts: st.SearchStrategy[int], gaps: st.SearchStrategy[int]) -> st.SearchStrategy[Row]:
    """Random rows: None fields, `counts`/`touches`/`gaps` as given, positions up to 2**64-1, short and long recents."""
    recent = st.tuples(times, uint64).map(list)
    return st.builds(
        Row,
        counts=st.lists(st.one_of(st.integers(0, 200), counts), min_size=6, max_size=6),
        first_at=times,
        last_at=int64,
        last_out_at=st.none() | times,
        last_in_at=st.none() | times,
        touch_at=times,
        touches=st.one_of(st.integers(0, 100), counts),
        gaps=st.lists(st.one_of(st.integers(0, 2**40), gaps), max_size=300),
        strength=strengths,
        dormant_since=st.none() | times,
        recent=st.one_of(
            st.just({}),
            st.dictionaries(st.text(max_size=40), recent, max_size=3),
            st.dictionaries(st.text(max_size=40), recent, min_size=30, max_size=120),
        ),
    )


rows = row_strategy(counts=st.integers(0, 2**100), gaps=st.integers())
"""Any row: counts and gaps of any size."""
json_rows = row_strategy(counts=uint64, gaps=int64).filter(lambda row: math.isfinite(row.strength))
"""Rows JSON could hold before version 1 (orjson: integers within 64 bits, finite floats)."""


@given(rows)
def test_any_row_round_trips_exactly(row: Row) -> None:
    data = row.to_bytes()
    assert data[0] == ROW_FORMAT_VERSION
    copy = Row.from_bytes(data)
    assert fields(copy) == fields(row)
    for name in ("counts", "gaps", "recent", "strength"):
        assert type(getattr(copy, name)) is type(getattr(row, name)), name
    assert all(type(pair) is list for pair in copy.recent.values())
    assert copy == row
    assert copy.to_bytes() == data


@given(json_rows)
def test_any_row_written_as_json_before_version_1_reads_back_the_same(row: Row) -> None:
    copy = Row.from_bytes(row.to_json_bytes())
    assert fields(copy) == fields(row)
    assert copy == row


def nudged(ms: int) -> int:
    """A time 1 ms from `ms`, still within 64 bits (a row's times are; `to_bytes` rejects the rest)."""
    return ms + 1 if ms < 2**63 - 1 else ms - 1


@given(rows, st.integers(0, 10))
@example(Row.first(2**63 - 1), 2)  # found by CI: `last_at + 1` was past 64 bits
@example(Row([0] * 6, -(2**63), 0, None, None, 2**63 - 1, 0, [], 0.0, None, {}), 1)
@example(Row([0] * 6, -(2**63), 0, None, None, 2**63 - 1, 0, [], 0.0, None, {}), 5)
def test_rows_that_differ_in_any_field_compare_unequal(row: Row, which: int) -> None:
    other = Row.from_bytes(row.to_bytes())
    if which == 0:
        other.counts[3] += 1
    elif which == 1:
        other.first_at = nudged(row.first_at)
    elif which == 2:
        other.last_at = nudged(row.last_at)
    elif which == 3:
        other.last_out_at = None if row.last_out_at is not None else row.last_at
    elif which == 4:
        other.last_in_at = None if row.last_in_at is not None else row.last_at
    elif which == 5:
        other.touch_at = nudged(row.touch_at)
    elif which == 6:
        other.touches += 1
    elif which == 7:
        other.gaps.append(1)
    elif which == 8:
        other.strength = (
            math.copysign(0.0, -1.0) if row.strength == 0.0 and math.copysign(1, row.strength) > 0 else 0.0
        )
    elif which == 9:
        other.dormant_since = None if row.dormant_since is not None else row.last_at
    else:
        other.recent["an id no row has"] = [row.last_at, 0]
    assert other != row
    assert Row.from_bytes(other.to_bytes()) == other
