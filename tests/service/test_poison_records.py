"""Poison records: failures counted across restarts and pinned on one record or row update; on the broker, a record
whose processing always raises stops the worker `max_record_failures` times, then is a dead letter and skipped."""

from __future__ import annotations

import asyncio
import base64
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from jsonschema import Draft7Validator
from kafka import KafkaAdminClient, TopicPartition
from prometheus_client import CollectorRegistry

import streams.service.ingest
import streams.service.poison_records
from streams.cli.produce import route
from streams.engine.engine import RelationshipEngine
from streams.engine.events import IN, OUT, Reason, RowUpdate
from streams.kafka_admin import bootstrap_servers
from streams.service.dead_letter import DeadLetter, dead_letter
from streams.service.ingest import Rekeyer
from streams.service.metrics import Metrics
from streams.service.partition_reader import Fetched, read_range
from streams.service.poison_records import (
    Failure,
    FailureLog,
    PoisonRecords,
    Site,
    first_failing,
    rejection,
    update_in_flight,
)
from streams.service.records import OwnerRecord, input_position
from streams.settings import Settings
from tests.service.conftest import BROKER, TopicSet, Worker, produce_lines
from tests.service.test_faults import (
    FAST,
    alive,
    assert_like_the_replay,
    collegemsg_lines,
    metric,
    read_to_end,
    replay_alerts,
    serving,
    wait_until,
)

MAX_FAILURES = 2
EVENTS = 8_000
PARTS = {"ingest": ["record"], "relationships": ["in", "out"]}
"""What of the poison event fails: all of it (decoding), or each of its two row updates (applying)."""


# --- without a broker: counting, isolation, skipping --------------------------------------

SETTINGS = Settings(partitions=2, max_record_failures=3)
TOPIC = SETTINGS.topic_mentions
EVENT = b'{"id":"e%d","type":"mention","actor_id":"a%d","target_id":"b","ts":1600000000000}'
DEAD_LETTER = Draft7Validator(
    orjson.loads((Path(__file__).resolve().parents[2] / "schemas" / "dead-letter.v1.json").read_bytes())
)


class MemoryLog:
    """The failures topic, in memory: what survives a worker's restart."""

    def __init__(self) -> None:
        self.records: list[Failure] = []
        self.letters: list[tuple[int, DeadLetter]] = []
        """Dead letters written, each with the number of failure records written before it."""

    def read(self) -> dict[Site, Failure]:
        return {failure.site: failure for failure in self.records}

    def write(self, failure: Failure, letter: DeadLetter | None = None) -> None:
        if letter is not None:
            self.letters.append((len(self.records), letter))
        self.records.append(Failure.from_bytes(failure.to_bytes()))


def event(offset: int, partition: int = 0) -> Any:
    """What `split` reads of a Faust event."""
    message = SimpleNamespace(topic=TOPIC, partition=partition, offset=offset)
    return SimpleNamespace(message=message, value=EVENT % (offset, offset), key=None)


def failing_decode(monkeypatch: pytest.MonkeyPatch, event_id: str) -> None:
    """The ingest stage's decoding raises on `event_id`."""
    original = streams.service.ingest.decode_event

    def decode_event(raw: bytes, max_bytes: int) -> Any:
        interaction = original(raw, max_bytes)
        if interaction.id == event_id:
            raise KeyError(event_id)
        return interaction

    monkeypatch.setattr(streams.service.ingest, "decode_event", decode_event)


def a_worker_run(store: MemoryLog, events: list[Any]) -> tuple[PoisonRecords, Rekeyer, list[Any], Any]:
    """One worker's ingest stage over one batch: what it rejected, and the exception it stopped on (or the split)."""
    poison = PoisonRecords(SETTINGS, "ingest", store=store)
    rekeyer = Rekeyer(SETTINGS, Metrics(CollectorRegistry()))
    asyncio.run(poison.refresh())
    rekeyer.poisoned = poison.records
    dead: list[Any] = []
    try:
        return poison, rekeyer, dead, poison.split(rekeyer.split, events, dead)
    except Exception as exc:
        asyncio.run(poison.agent_failed(exc))
        return poison, rekeyer, dead, exc


def test_a_failing_record_is_isolated_in_its_batch_counted_across_restarts_then_rejected(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    failing_decode(monkeypatch, "e7")
    store = MemoryLog()
    batch = [event(offset) for offset in range(5, 10)]
    for attempt in range(1, 4):
        _, _, _, outcome = a_worker_run(store, batch)
        assert isinstance(outcome, KeyError), f"attempt {attempt} did not stop"
        (failure,) = store.read().values()
        assert failure.site == Site(TOPIC, 0, 7, "record")
        assert (failure.failures, failure.error_type, failure.error_message) == (attempt, "KeyError", "'e7'")
    _, rekeyer, dead, (by_partition, *_) = a_worker_run(store, batch)
    assert [(e.message.offset, error.reason) for e, error in dead] == [(7, Reason.PROCESSING_ERROR)]
    sent = sorted(update[7] for updates in by_partition.values() for update in updates)
    assert sent == [5, 5, 6, 6, 8, 8, 9, 9]
    assert rekeyer.mark_sent(rekeyer.batch_markers([f"{TOPIC}:0"]))
    assert rekeyer.next_offset == {f"{TOPIC}:0": 10}, "the partition moves on past the poison record"
    assert len(store.records) == 3, "skipping writes nothing"


def test_a_batch_that_fails_only_as_a_whole_blames_no_record() -> None:
    store = MemoryLog()
    calls: list[int] = []

    def split(events: list[Any], dead: list[Any]) -> None:
        calls.append(len(events))
        if len(events) > 1:
            raise MemoryError("batch")

    poison = PoisonRecords(SETTINGS, "ingest", store=store)
    with pytest.raises(MemoryError) as raised:
        poison.split(split, [event(1), event(2)], [])
    assert calls == [2, 1, 1]
    asyncio.run(poison.agent_failed(raised.value))
    assert store.records == [], "no record to blame: nothing counted"


def test_first_failing_isolates_the_first_item_that_raises_alone() -> None:
    assert first_failing([3, 0, 1, 0], lambda n: 1 / n) == 0
    assert first_failing([], lambda n: 1 / n) is None


def engine_failing_on(event_id: str) -> RelationshipEngine:
    """An engine whose application of either row update of `event_id` raises."""

    class Failing(RelationshipEngine):
        def _remember(self, row: Any, applied_id: str, ts: int, pos: int) -> None:
            if applied_id == event_id:
                raise ValueError(f"row of {applied_id}")
            super()._remember(row, applied_id, ts, pos)

    return Failing(Settings(min_touches=1, require_mutual=False))


def updates(event_id: str, offset: int, source: str = f"{TOPIC}:1") -> list[RowUpdate]:
    """The two row updates of an event read at `source`@`offset`."""
    position = input_position(source, offset)
    return [
        RowUpdate(1_000 + offset, event_id, "ann", "bob", OUT, 0, 0, position),
        RowUpdate(1_000 + offset, event_id, "bob", "ann", IN, 0, 0, position),
    ]


def test_the_row_update_applied_when_the_engine_raised_is_found_though_it_came_earlier() -> None:
    engine = engine_failing_on("e2")
    for update in [*updates("e1", 1), *updates("e2", 2), *updates("e3", 3)]:
        engine.offer(update)
    with pytest.raises(ValueError, match="row of e2") as raised:
        engine.advance(10_000)  # held updates are applied now, not when they were offered
    poison = PoisonRecords(
        SETTINGS, "relationships", {TOPIC: 2, SETTINGS.topic_replies: 2}, store=MemoryLog()
    )
    assert update_in_flight(raised.value) == updates("e2", 2)[0]  # ("ann", "bob") sorts first
    assert poison.site_of(raised.value) == Site(TOPIC, 1, 2, "out")


def test_an_error_outside_any_row_update_is_no_records_fault() -> None:
    engine = RelationshipEngine(Settings(min_touches=1, require_mutual=False))
    for update in updates("e1", 1):
        engine.offer(update)
    engine.advance(2_000)
    with pytest.raises(KeyError) as raised:
        engine._fire(("nobody", "else"), 3_000)
    assert update_in_flight(raised.value) is None
    store = MemoryLog()
    asyncio.run(PoisonRecords(SETTINGS, "relationships", store=store).agent_failed(raised.value))
    assert store.records == []


def test_the_last_failure_of_a_row_update_writes_its_dead_letter_before_the_count(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Fetched(2, 0, b"a2", EVENT % (2, 2))
    monkeypatch.setattr(
        streams.service.poison_records, "read_range", lambda settings, t, p, start, end: [original]
    )
    store = MemoryLog()
    settings = SETTINGS.model_copy(update={"max_record_failures": 2})
    for attempt in (1, 2):  # a restart each time: the same update fails first
        engine = engine_failing_on("e2")
        for update in updates("e2", 2):
            engine.offer(update)
        with pytest.raises(ValueError, match="row of e2") as raised:
            engine.advance(10_000)
        asyncio.run(PoisonRecords(settings, "relationships", store=store).agent_failed(raised.value))
        assert len(store.letters) == attempt - 1, "a dead letter before the last failure"
    ((written_after, letter),) = store.letters
    assert written_after == 1, "the dead letter goes before the count that makes the update skipped"
    envelope = orjson.loads(letter.value)
    assert envelope["source"] == {"topic": TOPIC, "partition": 1, "offset": 2}
    assert base64.b64decode(envelope["value_b64"]) == original.value
    assert envelope["error"]["part"] == "out"
    assert envelope["error"]["failures"] == 2


def test_only_the_row_updates_that_failed_often_enough_are_skipped() -> None:
    store = MemoryLog()
    failing = Failure(Site(TOPIC, 1, 2, "in"), "relationships", 3, "ValueError", "row", 0)
    store.write(failing)
    store.write(failing._replace(site=Site(TOPIC, 1, 3, "out"), failures=2))  # not yet
    poison = PoisonRecords(SETTINGS, "relationships", store=store)
    asyncio.run(poison.refresh())
    raw = [[*u[:6], 0, u.pos & ((1 << 40) - 1)] for o in (1, 2, 3) for u in updates(f"e{o}", o)]
    record = OwnerRecord([f"{TOPIC}:1"], raw, {f"{TOPIC}:1": (1_003, False)})
    assert asyncio.run(poison.skip_updates(record)) == poison.without_poison(record)[0]
    kept, skipped = poison.without_poison(record)
    assert [(u[1], u[4]) for u in kept.updates] == [
        ("e1", OUT),
        ("e1", IN),
        ("e2", OUT),
        ("e3", OUT),
        ("e3", IN),
    ]
    assert [(u[1], u[4], f) for u, f in skipped] == [("e2", IN, failing)]
    assert kept.markers == record.markers
    other = OwnerRecord([f"{TOPIC}:0"], raw, {})  # the same offsets of another input partition
    assert poison.without_poison(other) == (other, [])


def test_the_failure_count_is_read_again_after_an_assignment() -> None:
    store = MemoryLog()
    poison = PoisonRecords(SETTINGS, "ingest", store=store)
    asyncio.run(poison.refresh())
    store.write(Failure(Site(TOPIC, 0, 4, "record"), "ingest", 3, "KeyError", "'e4'", 0))
    asyncio.run(poison.refresh())
    assert poison.records == {}, "read once per assignment"
    poison.reload_later()
    asyncio.run(poison.refresh())
    assert list(poison.records) == [(TOPIC, 0, 4)]


def test_a_failures_topic_that_cannot_be_read_keeps_what_was_known_and_is_read_again_later(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    store = MemoryLog()
    store.write(Failure(Site(TOPIC, 0, 4, "record"), "ingest", 3, "KeyError", "'e4'", 0))
    poison = PoisonRecords(SETTINGS, "ingest", store=store)
    asyncio.run(poison.refresh())
    poison.reload_later()
    reads: list[float] = []

    def broker_away() -> dict[Site, Failure]:
        reads.append(time.monotonic())
        raise ConnectionError("broker away")

    monkeypatch.setattr(store, "read", broker_away)
    asyncio.run(poison.refresh())
    asyncio.run(poison.refresh())
    assert len(reads) == 1, "retried at once"
    assert list(poison.records) == [(TOPIC, 0, 4)]
    monkeypatch.undo()
    monkeypatch.setattr(poison, "_retry_at", 0.0)
    store.write(Failure(Site(TOPIC, 0, 5, "record"), "ingest", 3, "KeyError", "'e5'", 0))
    asyncio.run(poison.refresh())
    assert sorted(poison.records) == [(TOPIC, 0, 4), (TOPIC, 0, 5)]


def test_the_dead_letter_of_a_poison_record_carries_the_error_and_follows_the_schema() -> None:
    failure = Failure(Site(TOPIC, 1, 2, "out"), "relationships", 3, "ValueError", "row of e2", 0)
    letter = dead_letter(rejection(failure), TOPIC, 1, 2, b"a2", EVENT % (2, 2), 1_700_000_000_000)
    envelope = orjson.loads(letter.value)
    assert not list(DEAD_LETTER.iter_errors(envelope))
    assert envelope["reason"] == "processing_error"
    assert envelope["source"] == {"topic": TOPIC, "partition": 1, "offset": 2}
    assert envelope["error"] == {
        "type": "ValueError",
        "message": "row of e2",
        "stage": "relationships",
        "part": "out",
        "failures": 3,
    }
    assert ("streams.error.reason", b"processing_error") in letter.headers


# --- on the broker ----------------------------------------------------------------------


def poison_event(lines: list[bytes]) -> int:
    """Index of the first event past the middle without which the replay's alerts differ."""
    want, _ = replay_alerts(lines, **FAST)
    for index in range(len(lines) // 2, len(lines)):
        without, _ = replay_alerts(lines[:index] + lines[index + 1 :], **FAST)
        if without.keys() != want.keys():
            return index
    raise AssertionError("no event changes the alerts")


def committed_offset(topic_set: TopicSet, topic: str, partition: int) -> int:
    """The consumer group's committed offset of one input partition (-1: none)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        offsets = admin.list_group_offsets({topic_set.app_id: None}).get(topic_set.app_id, {})
    finally:
        admin.close()
    meta = offsets.get(TopicPartition(topic, partition))
    return -1 if meta is None else int(meta.offset)


@pytest.mark.broker
@pytest.mark.parametrize("stage", ["ingest", "relationships"])
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_record_that_always_raises_stops_the_worker_max_times_then_is_a_dead_letter_and_skipped(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    tmp_path: Path,
    guarantee: str,
    stage: str,
) -> None:
    lines = collegemsg_lines(EVENTS)
    index = poison_event(lines)
    poison = orjson.loads(lines[index])
    want, _ = replay_alerts(lines[:index] + lines[index + 1 :], **FAST)
    topic_set = topic_factory(
        3,
        **FAST,
        processing_guarantee=guarantee,
        max_record_failures=MAX_FAILURES,
        shutdown_timeout_ms=5000,
    )
    module = ("tests.service.poison_worker", stage, poison["id"])
    data_dir = tmp_path / "state"
    produce_lines(topic_set, lines)

    # Restarted as a supervisor would, each time it stops: every part of the event fails MAX times.
    crashes = MAX_FAILURES * len(PARTS[stage])
    for attempt in range(1, crashes + 1):
        worker = worker_factory(topic_set, f"attempt{attempt}", data_dir, module)
        wait_until(lambda w=worker: not alive(w), 240, f"attempt {attempt} to stop on the poison event")
        assert worker.process is not None
        assert worker.process.returncode == 1, worker.trouble()
        assert "PoisonFault" in worker.log_text()
        assert f" of {MAX_FAILURES}" in worker.log_text(), "the failure was not counted"

    last = worker_factory(topic_set, "last", data_dir, module)
    wait_until(lambda: serving(last), 60, "the last worker's web port")
    assert_like_the_replay(topic_set, want, [last])
    assert alive(last), last.trouble()
    assert "PoisonFault" not in last.log_text()

    topic = route(lines[index], topic_set.settings)[0]
    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    letters = [
        orjson.loads(r.value) for r in read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"], isolation)
    ]
    assert letters, "no dead letter"
    assert {letter["reason"] for letter in letters} == {"processing_error"}
    assert sorted({letter["error"]["part"] for letter in letters}) == PARTS[stage]
    if topic_set.settings.exactly_once or stage == "relationships":
        assert len(letters) == len(PARTS[stage]), letters  # relationships: written by the last failure
    action = "decode" if stage == "ingest" else "apply"
    partitions = set()
    for letter in letters:
        source = letter["source"]
        assert source["topic"] == topic
        partitions.add((source["partition"], source["offset"]))
        assert letter["error"] == {
            "type": "PoisonFault",
            "message": f"cannot {action} {poison['id']}",
            "stage": stage,
            "part": letter["error"]["part"],
            "failures": MAX_FAILURES,
        }
    assert len(partitions) == 1, partitions
    ((partition, offset),) = partitions
    (original,) = read_range(topic_set.settings, topic, partition, offset, offset + 1)
    assert original.value == lines[index]
    assert all(base64.b64decode(letter["value_b64"]) == lines[index] for letter in letters)

    # The partition moved on: its committed offset is past the poison record.
    assert committed_offset(topic_set, topic, partition) > offset
    failures = FailureLog(topic_set.settings).read()
    assert {site: f.failures for site, f in failures.items()} == {
        Site(topic, partition, offset, part): MAX_FAILURES for part in PARTS[stage]
    }
    assert metric(last, "relationships_invalid_events_total", '{reason="processing_error"}') >= 1
