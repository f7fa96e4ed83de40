"""One owner partition without a broker: acks leave in offset order, only for records whose updates are applied."""

from __future__ import annotations

from streams.service.owner_partition import OwnerPartition
from streams.service.records import OwnerRecord
from streams.settings import Settings

SOURCE = "in:0"
T0 = 1_600_000_000_000


def batch(ts: int, event_id: str, input_offset: int) -> OwnerRecord:
    """One interaction's two row updates and the marker that covers them."""
    updates = [
        [ts, event_id, "ann", "bob", 0, 0, 0, input_offset],
        [ts, event_id, "bob", "ann", 1, 0, 0, input_offset],
    ]
    return OwnerRecord([SOURCE], updates, {SOURCE: (ts, False)})


def heartbeat(max_ts: int, idle: bool = False) -> OwnerRecord:
    return OwnerRecord([], [], {SOURCE: (max_ts, idle)})


def test_a_record_with_held_updates_holds_back_the_acks_of_later_records() -> None:
    part: OwnerPartition[str] = OwnerPartition(
        0, Settings(allowed_lateness_ms=0, clock="event"), {}, [SOURCE]
    )
    # held: the watermark is not past it
    part.handle(batch(T0, "e1", 0), "r0", offset=0, now_ms=0, record_ms=0)
    part.handle(heartbeat(T0), "r1", offset=1, now_ms=0, record_ms=0)
    part.handle(heartbeat(T0), "r2", offset=2, now_ms=0, record_ms=0)
    assert part.checkpoint().acks == []  # r1 and r2 are complete, but r0 is not
    assert part.unacked() == 3
    part.handle(batch(T0 + 1, "e2", 1), "r3", offset=3, now_ms=0, record_ms=0)  # moves the watermark past e1
    assert part.checkpoint().acks == ["r0", "r1", "r2"]
    part.handle(heartbeat(T0 + 1, idle=True), "r4", offset=4, now_ms=0, record_ms=0)  # all idle: e2 applied
    assert part.checkpoint().acks == ["r3", "r4"]
    assert part.unacked() == 0


def test_records_without_new_updates_are_acked_at_the_next_checkpoint() -> None:
    part: OwnerPartition[str] = OwnerPartition(
        0, Settings(allowed_lateness_ms=0, clock="event"), {}, [SOURCE]
    )
    part.handle(heartbeat(T0), "r0", offset=0, now_ms=0, record_ms=0)
    part.handle(heartbeat(T0), "r1", offset=1, now_ms=0, record_ms=0)
    assert part.checkpoint().acks == ["r0", "r1"]
    assert part.checkpoint().acks == []


def test_a_restart_resumes_from_the_oldest_record_not_acked_whatever_the_committed_offset() -> None:
    settings = Settings(allowed_lateness_ms=0, clock="event")
    before: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    before.handle(heartbeat(T0), "r0", offset=0, now_ms=0, record_ms=0)
    before.handle(batch(T0, "e1", 0), "r1", offset=1, now_ms=0, record_ms=0)  # held
    before.handle(heartbeat(T0), "r2", offset=2, now_ms=0, record_ms=0)
    saved = before.checkpoint()
    assert saved.acks == ["r0"]
    assert saved.resume.replay_from == 1

    after: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE], saved.resume)
    # The consumer starts at 3 (it committed past the held record): offsets 1 and 2 are missing.
    assert after.missing_before(3) == 1
    # read from the topic: nothing to ack
    after.handle(batch(T0, "e1", 0), None, offset=1, now_ms=0, record_ms=0)
    after.handle(heartbeat(T0), None, offset=2, now_ms=0, record_ms=0)
    assert after.missing_before(3) is None
    after.handle(heartbeat(T0, idle=True), "r3", offset=3, now_ms=0, record_ms=0)
    assert after.checkpoint().acks == ["r3"]
    assert after.engine.rows[("ann", "bob")].counts[0] == 1  # e1 applied once, after the restart


def test_records_delivered_again_are_acked_in_order_and_not_applied_twice() -> None:
    part: OwnerPartition[str] = OwnerPartition(
        0, Settings(allowed_lateness_ms=0, clock="event"), {}, [SOURCE]
    )
    part.handle(batch(T0, "e1", 0), "r0", offset=0, now_ms=0, record_ms=0)
    part.handle(heartbeat(T0, idle=True), "r1", offset=1, now_ms=0, record_ms=0)
    part.handle(batch(T0, "e1", 0), "r0-again", offset=0, now_ms=0, record_ms=0)
    assert part.handled_before == 1
    assert part.checkpoint().acks == ["r0", "r1", "r0-again"]
    assert part.engine.stats.applied == 1
