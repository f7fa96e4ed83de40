"""Ingest without a broker: idle only when every record up to the end offset is queued; events from the future."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import orjson
import pytest
from faust.types import TP
from jsonschema import Draft7Validator
from prometheus_client import CollectorRegistry

from streams.engine.events import InvalidEvent, Reason
from streams.service.dead_letter import dead_letter
from streams.service.ingest import Rebalances, Rekeyer, _idle_sources, wall_clock_ms
from streams.service.metrics import Metrics
from streams.settings import Clock, Settings

TOPIC = "mentions"
SOURCE = f"{TOPIC}:0"
EVENT = b'{"id":"e%d","type":"mention","actor_id":"a","target_id":"b","ts":1600000000000}'


def fresh_rekeyer(idle_timeout_ms: int = 1) -> Rekeyer:
    return Rekeyer(Settings(idle_timeout_ms=idle_timeout_ms, partitions=2), Metrics(CollectorRegistry()))


def record(offset: int) -> Any:
    """What `split` reads of a Faust event."""
    message = SimpleNamespace(topic=TOPIC, partition=0, offset=offset)
    return SimpleNamespace(message=message, value=EVENT % offset, key=None)


class FakeConsumer:
    """The consumer calls `_idle_sources` makes: assignment, end offsets from the broker, committed offsets."""

    def __init__(self, end_offset: int, committed: int | None, fetched: int) -> None:
        self.end_offset = end_offset
        self._committed_offset = {TP(TOPIC, 0): committed}
        self.fetched = fetched  # what a fetch-position test would have used: ignored on purpose

    def assignment(self) -> set[TP]:
        return {TP(TOPIC, 0), TP("other-topic", 0)}

    async def highwaters(self, *tps: TP) -> dict[TP, int]:
        return dict.fromkeys(tps, self.end_offset)

    async def position(self, tp: TP) -> int:
        return self.fetched


def idle(rekeyer: Rekeyer, consumer: FakeConsumer) -> dict[str, bool]:
    """`_idle_sources` once `idle_timeout` (1 ms unless the test says otherwise) may have passed."""
    rekeyer.quiet(SOURCE)  # a partition without records: its quiet clock starts when first asked
    time.sleep(0.005)
    app: Any = SimpleNamespace(consumer=consumer)
    return asyncio.run(_idle_sources(app, {TOPIC}, rekeyer))


def queue_batch(rekeyer: Rekeyer, offsets: range) -> None:
    """What the ingest agent does with a batch: split it, then mark it sent."""
    by_partition, touched, *_ = rekeyer.split([record(o) for o in offsets], [])
    assert sum(len(u) for u in by_partition.values()) == 2 * len(offsets)
    rekeyer.mark_sent(rekeyer.batch_markers(touched))


def test_records_fetched_but_not_yet_queued_keep_the_partition_active() -> None:
    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 10))
    # The consumer has fetched all 20 records (its position is at the end) but only 10 are re-keyed.
    assert idle(rekeyer, FakeConsumer(end_offset=20, committed=5, fetched=20)) == {SOURCE: False}
    queue_batch(rekeyer, range(10, 20))
    assert idle(rekeyer, FakeConsumer(end_offset=20, committed=5, fetched=20)) == {SOURCE: True}


def test_a_split_batch_not_yet_sent_does_not_count() -> None:
    rekeyer = fresh_rekeyer()
    rekeyer.split([record(o) for o in range(0, 20)], [])  # sending interrupted: no mark_sent
    assert idle(rekeyer, FakeConsumer(end_offset=20, committed=None, fetched=20)) == {SOURCE: False}


def test_a_partition_read_elsewhere_is_caught_up_by_its_committed_offset() -> None:
    rekeyer = fresh_rekeyer()
    assert idle(rekeyer, FakeConsumer(end_offset=7, committed=7, fetched=7)) == {SOURCE: True}
    assert idle(rekeyer, FakeConsumer(end_offset=8, committed=7, fetched=8)) == {SOURCE: False}


def test_a_partition_is_idle_only_after_idle_timeout_without_records() -> None:
    rekeyer = fresh_rekeyer(idle_timeout_ms=200)
    queue_batch(rekeyer, range(0, 3))
    consumer = FakeConsumer(end_offset=3, committed=None, fetched=3)
    assert idle(rekeyer, consumer) == {SOURCE: False}
    time.sleep(0.25)
    assert idle(rekeyer, consumer) == {SOURCE: True}


def test_a_partition_back_from_a_rebalance_waits_idle_timeout_again() -> None:
    # Records may reach it while another worker reads it: quiet since before the revocation proves nothing.
    rekeyer = fresh_rekeyer(idle_timeout_ms=200)
    queue_batch(rekeyer, range(0, 3))
    time.sleep(0.25)
    assert rekeyer.quiet(SOURCE)
    rekeyer.retract_idle()
    rekeyer.rebalancing = False  # assigned again
    consumer = FakeConsumer(end_offset=3, committed=3, fetched=3)
    assert idle(rekeyer, consumer) == {SOURCE: False}
    time.sleep(0.25)
    assert idle(rekeyer, consumer) == {SOURCE: True}


def test_an_erasures_partition_is_idle_as_soon_as_it_is_caught_up() -> None:
    rekeyer = fresh_rekeyer(idle_timeout_ms=60_000)
    erasures = rekeyer.settings.topic_erasures
    consumer = FakeConsumer(end_offset=3, committed=3, fetched=3)
    consumer.assignment = lambda: {TP(TOPIC, 0), TP(erasures, 0)}  # type: ignore[method-assign]
    consumer._committed_offset[TP(erasures, 0)] = 3
    app: Any = SimpleNamespace(consumer=consumer)
    found = asyncio.run(_idle_sources(app, {TOPIC, erasures}, rekeyer))
    assert found == {SOURCE: False, f"{erasures}:0": True}, "an input partition waits for idle_timeout"
    consumer._committed_offset[TP(erasures, 0)] = 2  # a request not read yet
    assert asyncio.run(_idle_sources(app, {TOPIC, erasures}, rekeyer))[f"{erasures}:0"] is False


def test_end_offsets_unavailable_means_not_idle() -> None:
    class Unreachable(FakeConsumer):
        async def highwaters(self, *tps: TP) -> dict[TP, int]:
            raise ConnectionError("broker away")

    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 3))
    assert idle(rekeyer, Unreachable(end_offset=3, committed=3, fetched=3)) == {SOURCE: False}


def test_a_revocation_takes_back_reported_idleness_until_the_next_assignment() -> None:
    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 3))
    consumer = FakeConsumer(end_offset=3, committed=None, fetched=3)
    assert rekeyer.heartbeat(idle(rekeyer, consumer)) == {SOURCE: (1_600_000_000_000, True)}
    assert rekeyer.retract_idle() == {SOURCE: (1_600_000_000_000, False)}
    assert idle(rekeyer, consumer) == {SOURCE: False}  # rebalancing: nobody is idle
    assert rekeyer.retract_idle() == {}  # nothing reported idle since
    rekeyer.rebalancing = False
    assert idle(rekeyer, FakeConsumer(end_offset=3, committed=3, fetched=3)) == {SOURCE: True}


def test_heartbeats_use_the_last_judgement_only_while_nothing_was_read_since() -> None:
    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 3))
    rekeyer.judge_idle(idle(rekeyer, FakeConsumer(end_offset=3, committed=None, fetched=3)), time.monotonic())
    assert rekeyer.idle_now([SOURCE, "other:0"]) == {SOURCE: True, "other:0": False}
    queue_batch(rekeyer, range(3, 5))  # read after the judgement: active until judged again
    assert rekeyer.idle_now([SOURCE]) == {SOURCE: False}
    rekeyer.judge_idle(idle(rekeyer, FakeConsumer(end_offset=5, committed=None, fetched=5)), time.monotonic())
    assert rekeyer.idle_now([SOURCE]) == {SOURCE: True}
    rekeyer.retract_idle()
    assert rekeyer.idle_now([SOURCE]) == {SOURCE: False}


def test_nothing_is_idle_on_end_offsets_asked_for_more_than_two_heartbeats_ago() -> None:
    # A broker outage's aftermath (2026-12-03): the end offsets came back 5.5 s after they were asked for, without
    # the records produced meanwhile; claimed idle on them, two partitions had their records passed by the watermark.
    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 3))
    max_age_s = rekeyer.settings.idle_judgement_max_age_ms() / 1000
    judged = idle(rekeyer, FakeConsumer(end_offset=3, committed=None, fetched=3))
    rekeyer.judge_idle(judged, time.monotonic() - max_age_s - 0.5)
    assert rekeyer.idle_now([SOURCE]) == {SOURCE: False}
    rekeyer.judge_idle(judged, time.monotonic() - max_age_s + 0.5)
    assert rekeyer.idle_now([SOURCE]) == {SOURCE: True}


def test_a_heartbeat_overtaken_by_a_revocation_takes_its_idleness_back_again() -> None:
    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 3))
    rekeyer.judge_idle(idle(rekeyer, FakeConsumer(end_offset=3, committed=None, fetched=3)), time.monotonic())
    before = rekeyer.revocations
    markers = rekeyer.heartbeat(rekeyer.idle_now([SOURCE, "other:0"]))
    assert rekeyer.overtaken(markers, before) == {}  # no revocation meanwhile: nothing to take back
    rekeyer.retract_idle()  # while the heartbeat is on its way to the owner partitions
    assert rekeyer.overtaken(markers, before) == {SOURCE: (1_600_000_000_000, False)}


def test_a_revocation_forgets_what_was_read_until_it_is_read_again() -> None:
    rekeyer = fresh_rekeyer()
    queue_batch(rekeyer, range(0, 3))  # under exactly_once, sent in a transaction the revocation aborts
    rekeyer.retract_idle()
    rekeyer.rebalancing = False  # assigned again: the consumer re-reads from the committed offset 1
    assert rekeyer.heartbeat({SOURCE: False}) == {SOURCE: (None, False)}  # no progress claimed
    assert idle(rekeyer, FakeConsumer(end_offset=3, committed=1, fetched=3)) == {SOURCE: False}
    queue_batch(rekeyer, range(1, 3))
    assert rekeyer.heartbeat({SOURCE: False}) == {SOURCE: (1_600_000_000_000, False)}
    assert idle(rekeyer, FakeConsumer(end_offset=3, committed=1, fetched=3)) == {SOURCE: True}


# --- events from the future (SPEC v1.1 §1, hybrid clock only) ---------------------------------

NOW = 1_764_000_000_000
HOUR_MS = 3_600_000
DEAD_LETTER = Draft7Validator(
    json.loads((Path(__file__).resolve().parents[2] / "schemas" / "dead-letter.v1.json").read_text())
)


def record_at(offset: int, ts: int) -> Any:
    """What `split` reads of a Faust event stamped `ts`."""
    value = orjson.dumps({"id": f"f{offset}", "type": "reply", "actor_id": "a", "target_id": "b", "ts": ts})
    return SimpleNamespace(
        message=SimpleNamespace(topic=TOPIC, partition=0, offset=offset), value=value, key=None
    )


def clocked_rekeyer(
    clock: Clock, wall_clock: Callable[[], int], registry: CollectorRegistry | None = None
) -> Rekeyer:
    metrics = Metrics(registry or CollectorRegistry())
    return Rekeyer(Settings(clock=clock, partitions=2), metrics, wall_clock=wall_clock)


def split_and_send(rekeyer: Rekeyer, batch: list[Any]) -> tuple[list[int], list[tuple[int, InvalidEvent]]]:
    """Split a batch and mark it sent: offsets with row updates, and (offset, error) of each dead letter."""
    dead: list[Any] = []
    by_partition, touched, *_ = rekeyer.split(batch, dead)
    rekeyer.mark_sent(rekeyer.batch_markers(touched))
    forwarded = sorted({update[7] for updates in by_partition.values() for update in updates})
    return forwarded, [(event.message.offset, error) for event, error in dead]


def test_an_event_more_than_max_future_ahead_is_a_dead_letter_and_moves_no_marker() -> None:
    registry = CollectorRegistry()
    rekeyer = clocked_rekeyer("hybrid", lambda: NOW, registry)
    batch = [record_at(0, NOW - 5), record_at(1, NOW + HOUR_MS + 1), record_at(2, NOW + 1_000)]
    forwarded, dead = split_and_send(rekeyer, batch)
    assert forwarded == [0, 2]
    assert [(offset, error.reason, error.field) for offset, error in dead] == [(1, Reason.TS_IN_FUTURE, "ts")]
    assert rekeyer.heartbeat({SOURCE: False}) == {SOURCE: (NOW + 1_000, False)}
    consumed = "relationships_events_consumed_total"
    assert registry.get_sample_value(consumed, {"topic": TOPIC, "type": "invalid"}) == 1
    assert registry.get_sample_value(consumed, {"topic": TOPIC, "type": "reply"}) == 2

    # A batch of nothing but one from the future: the partition's marker keeps its max event time.
    forwarded, dead = split_and_send(rekeyer, [record_at(3, NOW + 365 * 24 * HOUR_MS)])
    assert (forwarded, [error.reason for _, error in dead]) == ([], [Reason.TS_IN_FUTURE])
    assert rekeyer.batch_markers([SOURCE]) == {SOURCE: (NOW + 1_000, False)}
    assert rekeyer.heartbeat({SOURCE: False}) == {SOURCE: (NOW + 1_000, False)}


def test_the_dead_letter_of_an_event_from_the_future_follows_the_schema() -> None:
    raw_event = record_at(7, NOW + HOUR_MS + 1)
    _, [(offset, error)] = split_and_send(clocked_rekeyer("hybrid", lambda: NOW), [raw_event])
    letter = dead_letter(error, TOPIC, 0, offset, b"a", raw_event.value, NOW)
    envelope = orjson.loads(letter.value)
    assert not [e.message for e in DEAD_LETTER.iter_errors(envelope)]
    assert (envelope["reason"], envelope["field"], envelope["source"]["offset"]) == ("ts_in_future", "ts", 7)
    assert dict(letter.headers)["streams.error.reason"] == b"ts_in_future"
    assert str(HOUR_MS + 1) in envelope["detail"]


def test_an_event_exactly_max_future_ahead_is_accepted() -> None:
    rekeyer = clocked_rekeyer("hybrid", lambda: NOW)
    forwarded, dead = split_and_send(rekeyer, [record_at(0, NOW + HOUR_MS)])
    assert (forwarded, dead) == ([0], [])
    assert rekeyer.heartbeat({SOURCE: False}) == {SOURCE: (NOW + HOUR_MS, False)}


def test_the_wall_clock_is_read_when_the_batch_is_read() -> None:
    now = [NOW]
    rekeyer = clocked_rekeyer("hybrid", lambda: now[0])
    _, dead = split_and_send(rekeyer, [record_at(0, NOW + HOUR_MS + 1)])
    assert [error.reason for _, error in dead] == [Reason.TS_IN_FUTURE]
    now[0] += 1  # the same event read 1 ms later (a re-delivery) is within max_future
    assert split_and_send(rekeyer, [record_at(0, NOW + HOUR_MS + 1)]) == ([0], [])


def test_the_event_clock_reads_no_wall_clock_and_takes_any_valid_ts() -> None:
    def no_wall_clock() -> int:
        raise AssertionError("the event clock read the wall clock")

    rekeyer = clocked_rekeyer("event", no_wall_clock)
    far = NOW + 10 * 365 * 24 * HOUR_MS
    assert split_and_send(rekeyer, [record_at(0, far)]) == ([0], [])
    assert rekeyer.heartbeat({SOURCE: False}) == {SOURCE: (far, False)}


@pytest.mark.parametrize(("ahead_ms", "dead"), [(2 * HOUR_MS, True), (60_000, False), (-HOUR_MS, False)])
def test_by_default_the_hybrid_clock_checks_against_the_real_wall_clock(ahead_ms: int, dead: bool) -> None:
    rekeyer = Rekeyer(Settings(clock="hybrid", partitions=2), Metrics(CollectorRegistry()))
    assert rekeyer.wall_clock is wall_clock_ms
    assert abs(wall_clock_ms() - time.time() * 1000) < 60_000
    _, letters = split_and_send(rekeyer, [record_at(0, wall_clock_ms() + ahead_ms)])
    assert bool(letters) is dead


def test_a_batch_revoked_while_it_was_sent_is_sent_again_when_its_partition_comes_back() -> None:
    """The lost reply of 2026-11-30 (docs/guarantees.md §1): acked as already sent, never sent."""
    from streams.service.input_gate import InputGate  # noqa: PLC0415

    rekeyer = fresh_rekeyer()
    seeked: dict[tuple[str, int], int] = {(TOPIC, 0): 0}
    gate = InputGate(seeked, rekeyer.next_offset)
    revocations = rekeyer.revocations
    batch = gate.sort([record(o) for o in range(0, 10)])
    assert [e.message.offset for e in batch.send] == list(range(10))
    touched = rekeyer.split(batch.send, []).sources
    gate.revoked()  # a rebalance while the batch's updates were being sent (and then aborted)
    rekeyer.retract_idle()
    assert not rekeyer.mark_sent(rekeyer.batch_markers(touched), revocations)
    seeked[(TOPIC, 0)] = 0  # the partition comes back, seeked to its committed offset
    again = gate.sort([record(o) for o in range(0, 10)])
    assert [e.message.offset for e in again.send] == list(range(10))
    assert again.ack_only == []


class FaustRebalances:
    """What `faust_rebalances` reads, set by the test: a rebalance begins, its revocation comes, it ends."""

    def __init__(self) -> None:
        self.now = Rebalances(0, False)

    def __call__(self) -> Rebalances:
        return self.now

    def begin(self) -> None:
        self.now = Rebalances(self.now.begun + 1, True)

    def end(self) -> None:
        self.now = Rebalances(self.now.begun, False)


# When the batch is taken and when it is marked sent, along a rebalance: begun, revoked (`retract_idle`),
# ended; whether its acks stand. The ingest acks only what `mark_sent` accepts.
REBALANCE_MOMENTS = [
    # CI's loss of 2026-12-03: acked after Faust dropped the acks, before the abort.
    ("before", "begun", False),
    # Taken between the beginning and the revocation: its sends are aborted too.
    ("begun", "begun", False),
    ("before", "revoked", False),
    ("begun", "revoked", False),
    # After the revocation: the next generation's, sent once the partition is seeked.
    ("revoked", "revoked", True),
    ("revoked", "ended", True),
    ("ended", "ended", True),
    ("before", "before", True),
]


@pytest.mark.parametrize(("taken", "marked", "stands"), REBALANCE_MOMENTS)
def test_a_batch_is_acked_only_if_no_rebalance_began_between_it_and_its_revocation(
    taken: str, marked: str, stands: bool
) -> None:
    rebalances = FaustRebalances()
    rekeyer = Rekeyer(Settings(partitions=2), Metrics(CollectorRegistry()), rebalances=rebalances)
    steps = {
        "begun": rebalances.begin,
        "revoked": rekeyer.retract_idle,
        "ended": rebalances.end,
    }
    order = ["before", "begun", "revoked", "ended"]
    for step in order[1 : order.index(taken) + 1]:
        steps[step]()
    revocations, taken_in = rekeyer.revocations, rebalances().begun
    touched = rekeyer.split([record(o) for o in range(0, 10)], []).sources
    for step in order[order.index(taken) + 1 : order.index(marked) + 1]:
        steps[step]()
    assert rekeyer.acks_stand(revocations, taken_in) is stands
    assert rekeyer.mark_sent(rekeyer.batch_markers(touched), revocations, taken_in) is stands
    assert rekeyer.next_offset == ({SOURCE: 10} if stands else {})


def test_a_batch_sent_without_a_revocation_is_recorded() -> None:
    rekeyer = fresh_rekeyer()
    revocations = rekeyer.revocations
    touched = rekeyer.split([record(o) for o in range(0, 10)], []).sources
    assert rekeyer.mark_sent(rekeyer.batch_markers(touched), revocations)
    assert rekeyer.next_offset == {SOURCE: 10}
