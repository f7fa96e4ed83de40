"""Erasures an owner partition keeps: they reach its checkpoint, survive a restart, and apply exactly once."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry

from streams.engine.events import Reason
from streams.engine.row import Row
from streams.service.erasure_log import ErasureLog
from streams.service.ingest import Rekeyer
from streams.service.metrics import Metrics
from streams.service.owner_partition import OwnerPartition
from streams.service.records import OwnerRecord, decode_owner_record, encode_owner_record
from streams.settings import Settings

SOURCE = "in:0"
ERASURES = "relationships.erasures:0"
T0 = 1_600_000_000_000
DAY = 86_400_000
SETTINGS = Settings(allowed_lateness_ms=0, clock="event", min_touches=1, require_mutual=False)


def talk(ts: int, event_id: str, input_offset: int, actor: str = "ann", target: str = "bob") -> OwnerRecord:
    """One interaction's two row updates and the marker that covers them."""
    updates = [
        [ts, event_id, actor, target, 0, 0, 0, input_offset],
        [ts, event_id, target, actor, 1, 0, 0, input_offset],
    ]
    return OwnerRecord([SOURCE], updates, {SOURCE: (ts, False)})


def erase(user: str, ts: int, input_offset: int = 0) -> OwnerRecord:
    """An owner record carrying one erasure, as the ingest stage writes it."""
    return decode_owner_record(encode_owner_record([ERASURES], [], {}, [[user, ts, 0, input_offset]]))


def heartbeat(max_ts: int, idle: bool = False) -> OwnerRecord:
    return OwnerRecord([], [], {SOURCE: (max_ts, idle)})


def feed(part: OwnerPartition[str], records: list[OwnerRecord], first_offset: int) -> list[dict[str, Any]]:
    alerts: list[dict[str, Any]] = []
    for offset, record in enumerate(records, first_offset):
        alerts += part.handle(record, f"r{offset}", offset=offset, now_ms=0, record_ms=0)
    return alerts


def restart(part: OwnerPartition[str], rows: dict[tuple[str, str], Row]) -> OwnerPartition[str]:
    """What a worker loads after `part`'s last checkpoint: its rows, resume record and erasure log."""
    saved = part.checkpoint()
    for key, row in saved.rows:
        if row is None:
            rows.pop(key, None)
        else:
            rows[key] = Row.from_bytes(row.to_bytes())
    log = None if saved.erasures is None else ErasureLog.from_bytes(saved.erasures.to_bytes())
    return OwnerPartition(0, SETTINGS, rows, [SOURCE], saved.resume, log)


def test_an_erasure_waits_for_the_watermark_then_deletes_the_rows_naming_the_user() -> None:
    part: OwnerPartition[str] = OwnerPartition(0, SETTINGS, {}, [SOURCE])
    feed(part, [talk(T0, "e1", 0), talk(T0 + DAY, "e2", 1, "cat", "dan"), erase("bob", T0 + 2 * DAY)], 0)
    assert ("ann", "bob") in part.engine.rows
    feed(part, [talk(T0 + 3 * DAY, "e3", 2, "cat", "dan")], 3)
    assert set(part.engine.rows) == {("cat", "dan"), ("dan", "cat")}
    saved = part.checkpoint()
    assert {key for key, row in saved.rows if row is None} == {("ann", "bob"), ("bob", "ann")}
    assert saved.erasures == ErasureLog([], {"bob": T0 + 2 * DAY})
    assert part.checkpoint().erasures is None, "written once, until it changes"


def test_a_restart_keeps_waiting_erasures_and_drops_late_events_of_applied_ones() -> None:
    rows: dict[tuple[str, str], Row] = {}
    part: OwnerPartition[str] = OwnerPartition(0, SETTINGS, rows, [SOURCE])
    feed(part, [talk(T0, "e1", 0), erase("bob", T0 + 2 * DAY), erase("cat", T0 + 9 * DAY, 1)], 0)
    feed(part, [talk(T0 + 3 * DAY, "e2", 1, "cat", "dan")], 3)
    restarted = restart(part, rows)
    assert restarted.engine.erased == {"bob": T0 + 2 * DAY}
    assert restarted.engine.pending_erasures == [(T0 + 9 * DAY, "cat")]
    late = talk(T0 + DAY, "late", 2, "ann", "bob")  # from before bob's erasure, arriving after it
    feed(restarted, [late], 4)
    assert ("ann", "bob") not in restarted.engine.rows
    assert restarted.engine.stats.erased_events == 1
    feed(restarted, [talk(T0 + 10 * DAY, "e3", 3, "eve", "fay")], 5)
    assert not [key for key in restarted.engine.rows if "cat" in key]


def test_an_erasure_delivered_again_after_a_restart_changes_nothing() -> None:
    rows: dict[tuple[str, str], Row] = {}
    part: OwnerPartition[str] = OwnerPartition(0, SETTINGS, rows, [SOURCE])
    feed(part, [talk(T0, "e1", 0), erase("bob", T0 + DAY), talk(T0 + 2 * DAY, "e2", 1, "ann", "cat")], 0)
    feed(part, [heartbeat(T0 + 3 * DAY)], 3)
    assert set(part.engine.rows) == {("ann", "cat"), ("cat", "ann")}
    restarted = restart(part, rows)
    feed(
        restarted, [erase("bob", T0 + DAY), talk(T0 + 4 * DAY, "e3", 2)], 4
    )  # the ingest stage sent it again
    feed(restarted, [heartbeat(T0 + 5 * DAY)], 6)
    assert set(restarted.engine.rows) == {("ann", "cat"), ("cat", "ann")}, "bob stays erased"
    assert restarted.engine.stats.rows_erased == 0
    assert restarted.engine.stats.erased_events == 1


@given(
    st.lists(st.tuples(st.integers(-(2**62), 2**62), st.text(min_size=1, max_size=20)), max_size=5),
    st.dictionaries(st.text(min_size=1, max_size=20), st.integers(-(2**62), 2**62), max_size=5),
)
def test_any_erasure_log_round_trips(waiting: list[tuple[int, str]], applied: dict[str, int]) -> None:
    log = ErasureLog(waiting, applied)
    assert ErasureLog.from_bytes(log.to_bytes()) == log


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "empty"),
        (b"\x02" + bytes(8), "unknown erasure log format version byte 0x02"),
        (ErasureLog([(5, "ann")], {}).to_bytes()[:-1], "do not end where their fields do"),
        (ErasureLog([(5, "ann")], {}).to_bytes()[:12], "truncated"),
        (ErasureLog([(5, "ann")], {}).to_bytes() + b"x", "do not end where their fields do"),
    ],
)
def test_bad_erasure_log_bytes_are_a_value_error(data: bytes, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        ErasureLog.from_bytes(data)


# --- the ingest stage -------------------------------------------------------------------


def record(topic: str, offset: int, value: bytes) -> Any:
    """What `Rekeyer.split` reads of a Faust event."""
    return SimpleNamespace(
        message=SimpleNamespace(topic=topic, partition=0, offset=offset), value=value, key=None
    )


def test_the_ingest_stage_fans_erasures_out_with_a_marker_and_dead_letters_bad_ones() -> None:
    settings = Settings(partitions=3, clock="event")
    rekeyer = Rekeyer(settings, Metrics(CollectorRegistry()))
    mention = orjson.dumps({"id": "e1", "type": "mention", "actor_id": "ann", "target_id": "bob", "ts": T0})
    erasures = settings.topic_erasures
    batch = [
        record(settings.topic_mentions, 4, mention),
        record(erasures, 7, orjson.dumps({"user_id": "bob", "ts": T0 + DAY})),
        record(erasures, 8, orjson.dumps({"user_id": "", "ts": T0})),
        record(erasures, 9, b"not json"),
    ]
    dead: list[Any] = []
    split = rekeyer.split(batch, dead)
    assert split.sources == [f"{settings.topic_mentions}:0", f"{erasures}:0"]
    assert split.erasures == [["bob", T0 + DAY, 1, 7]]
    assert [(e.message.offset, error.reason) for e, error in dead] == [
        (8, Reason.BAD_LENGTH),
        (9, Reason.NOT_JSON),
    ]
    # The erasures topic is a source like the inputs: its marker carries the erasures' largest ts.
    assert rekeyer.batch_markers(split.sources) == {
        f"{settings.topic_mentions}:0": (T0, False),
        f"{erasures}:0": (T0 + DAY, False),
    }
    assert rekeyer.mark_sent(rekeyer.batch_markers(split.sources))
    assert rekeyer.next_offset[f"{erasures}:0"] == 10, "the erasures topic is acked like any input"


def test_an_erasure_past_max_future_is_a_dead_letter_with_the_hybrid_clock() -> None:
    now = T0
    rekeyer = Rekeyer(
        Settings(clock="hybrid", max_future_ms=DAY), Metrics(CollectorRegistry()), wall_clock=lambda: now
    )
    topic = rekeyer.settings.topic_erasures
    dead: list[Any] = []
    split = rekeyer.split(
        [
            record(topic, 0, orjson.dumps({"user_id": "bob", "ts": now + DAY})),
            record(topic, 1, orjson.dumps({"user_id": "bob", "ts": now + DAY + 1})),
        ],
        dead,
    )
    assert split.erasures == [["bob", now + DAY, 0, 0]]
    assert [(e.message.offset, error.reason) for e, error in dead] == [(1, Reason.TS_IN_FUTURE)]
