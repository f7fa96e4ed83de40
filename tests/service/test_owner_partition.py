"""One owner partition without a broker: acks leave in offset order, only for records whose updates are applied."""

from __future__ import annotations

from streams.engine.row import Row
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


def test_a_checkpoint_while_re_handling_what_the_loaded_one_covered_forgets_nothing() -> None:
    """Reloaded, then checkpointed before reaching the loaded checkpoint's last record, then reloaded again."""
    settings = Settings(allowed_lateness_ms=0, clock="event")
    first: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    first.handle(batch(T0, "e1", 0), "r0", offset=0, now_ms=0, record_ms=0)
    first.handle(batch(T0 + 1, "e2", 1), "r1", offset=1, now_ms=0, record_ms=0)  # e1 applied, e2 held
    first.handle(batch(T0 + 1, "e3", 2), "r2", offset=2, now_ms=0, record_ms=0)  # held
    saved = first.checkpoint()
    assert saved.acks == ["r0"]
    assert (saved.resume.last_offset, saved.resume.replay_from) == (2, 1)
    rows = dict(saved.rows)

    # The consumer re-delivers from offset 0 (its committed offset lags), then a checkpoint comes due.
    second: OwnerPartition[str] = OwnerPartition(0, settings, rows, [SOURCE], saved.resume)
    second.handle(batch(T0, "e1", 0), "r0", offset=0, now_ms=0, record_ms=0)  # acked before
    assert second.replaying()
    cut = second.checkpoint()
    assert cut.resume == saved.resume  # nothing it covered is forgotten
    assert (cut.rows, cut.acks) == ([], [])

    third: OwnerPartition[str] = OwnerPartition(0, settings, rows, [SOURCE], cut.resume)
    for offset, record in enumerate([batch(T0 + 1, "e2", 1), batch(T0 + 1, "e3", 2)], start=1):
        third.handle(record, f"r{offset}", offset=offset, now_ms=0, record_ms=0)
    assert not third.replaying()
    third.handle(heartbeat(T0 + 1, idle=True), "r3", offset=3, now_ms=0, record_ms=0)
    assert third.engine.rows[("ann", "bob")].counts[0] == 3  # e1 before; e2 and e3 now
    assert third.checkpoint().acks == ["r1", "r2", "r3"]


def test_under_exactly_once_a_gap_is_read_only_when_a_seek_may_have_skipped_records() -> None:
    settings = Settings(allowed_lateness_ms=0, clock="event")
    part: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    part.next_offset = 10  # as loaded from a checkpoint whose replay_from is 10
    assert part.missing_before(12, markers=True, seeked_to=0) == 10  # first record after loading
    part.handle(heartbeat(T0), "r10", offset=10, now_ms=0, record_ms=0)
    assert part.missing_before(13, markers=False, seeked_to=0) == 11  # at least once: every gap
    assert part.missing_before(13, markers=True, seeked_to=0) is None  # a transaction marker at 11..12
    assert part.missing_before(13, markers=True, seeked_to=13) == 11  # seeked past 11 and 12
    assert part.missing_before(13, markers=True, seeked_to=14) is None  # the seek lands later
    assert part.missing_before(13, markers=True, seeked_to=None) == 11  # where it was seeked is unknown
    assert part.missing_before(11, markers=True, seeked_to=None) is None  # no gap


def test_under_exactly_once_a_gap_holding_a_record_fetched_and_dropped_on_the_way_is_read() -> None:
    """A local run (2026-12-01) lost the updates of owner-stream records 11..105: the owner partition handled 10,
    then 106. 11..105 had been fetched, and Faust dropped them before the agent (docs/guarantees.md, section 1)."""
    settings = Settings(allowed_lateness_ms=0, clock="event")
    part: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    part.next_offset = 10
    part.handle(heartbeat(T0), "r10", offset=10, now_ms=0, record_ms=0)
    fetched = set(range(11, 106))

    def fetched_between(start: int, end: int) -> bool:
        return any(start <= offset < end for offset in fetched)

    assert part.missing_before(106, markers=True, seeked_to=7, fetched_between=fetched_between) == 11
    fetched.clear()  # read from the broker and handled, or never fetched: transaction markers
    assert part.missing_before(106, markers=True, seeked_to=7, fetched_between=fetched_between) is None


def test_a_partition_without_a_checkpoint_expects_its_records_from_the_start() -> None:
    """Nothing is acked before a checkpoint, so a first record past the partition's start means the consumer skipped
    records (a CI run lost those of owner-stream records 10..99: the first one a new owner handled was 100)."""
    part: OwnerPartition[str] = OwnerPartition(
        0, Settings(allowed_lateness_ms=0, clock="event"), {}, [SOURCE]
    )
    assert part.missing_before(100, markers=True, seeked_to=0) == 0
    assert part.missing_before(100, markers=False) == 0
    assert part.missing_before(0, markers=True, seeked_to=0) is None


def test_a_checkpoint_cut_short_applies_nothing_twice() -> None:
    """Rows written by a checkpoint whose __resume__ marker was not (SIGKILL in its write loop) are ahead of
    the marker: every re-delivered update they already hold must be recognised, however many and old."""
    settings = Settings(allowed_lateness_ms=0, clock="event")
    # 40 replies between ann and bob, 2 h apart: more than 32 ids, spanning more than 24 h.
    updates = []
    for n in range(40):
        actor, target = ("ann", "bob") if n % 2 else ("bob", "ann")
        ts = T0 + n * 2 * 3_600_000
        updates += [[ts, f"e{n}", actor, target, 0, 1, 0, n], [ts, f"e{n}", target, actor, 1, 1, 0, n]]
    last = updates[-1][0]
    replies = OwnerRecord([SOURCE], updates, {SOURCE: (last, False)})
    all_idle = heartbeat(last, idle=True)

    before: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    before.handle(OwnerRecord([], [], {SOURCE: (None, False)}), "r0", offset=0, now_ms=0, record_ms=0)
    complete = before.checkpoint()  # rows and marker written
    before.handle(replies, "r1", offset=1, now_ms=0, record_ms=0)
    before.handle(all_idle, "r2", offset=2, now_ms=0, record_ms=0)
    cut_short = before.checkpoint()  # its rows written, then SIGKILL before its marker
    assert cut_short.acks == ["r1", "r2"]

    stored = {key: Row.from_bytes(row.to_bytes()) for key, row in cut_short.rows}
    after: OwnerPartition[str] = OwnerPartition(0, settings, stored, [SOURCE], complete.resume)
    after.handle(replies, "r1", offset=1, now_ms=0, record_ms=0)  # re-delivered from the committed offset
    after.handle(all_idle, "r2", offset=2, now_ms=0, record_ms=0)
    assert stored[("ann", "bob")].counts == [0, 20, 0, 0, 20, 0]


def test_a_reclaimed_row_goes_to_the_next_checkpoint_as_a_deletion() -> None:
    day = 86_400_000
    settings = Settings(allowed_lateness_ms=0, clock="event", row_ttl_ms=3 * day)
    part: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    part.handle(batch(T0, "e1", 0), "r0", offset=0, now_ms=0, record_ms=0)
    part.handle(heartbeat(T0, idle=True), "r1", offset=1, now_ms=0, record_ms=0)
    first = part.checkpoint()
    assert sorted(key for key, row in first.rows if row is not None) == [("ann", "bob"), ("bob", "ann")]
    part.handle(heartbeat(T0 + 4 * day), "r2", offset=2, now_ms=0, record_ms=0)
    second = part.checkpoint()
    assert sorted(second.rows) == [(("ann", "bob"), None), (("bob", "ann"), None)]
    assert second.acks == ["r2"]
    assert part.engine.rows == {}
