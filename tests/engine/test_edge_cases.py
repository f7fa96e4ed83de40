"""Edge cases of the engine, the watermark tracker and decode_event that `make mutation` found untested."""

from __future__ import annotations

import pytest

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.events import Interaction, InvalidEvent, Reason, decode_event, row_updates
from streams.engine.row import Row
from streams.engine.timers import DeadlineIndex
from streams.engine.watermark import WatermarkTracker
from tests.engine.support import (
    DAY,
    HOUR,
    MINUTE,
    SMALL,
    T0,
    EngineFactory,
    ReplayFactory,
    assert_same_alerts,
    drive,
    interaction,
    line,
    make_settings,
)

# a mentions b, b replies 12 h later: gap 12 h, threshold 36 h, deadline T0 + 48 h.
E1 = interaction("e1", "mention", "a", "b", T0)
E2 = interaction("e2", "reply", "b", "a", T0 + 12 * HOUR)
DEADLINE = T0 + 48 * HOUR
ROWS = {("a", "b"), ("b", "a")}


def offer_all(engine: RelationshipEngine, events: list[Interaction], first_position: int = 1) -> list[Alert]:
    """Offer both halves of each event (input positions from `first_position`), no watermark move."""
    alerts: list[Alert] = []
    for position, item in enumerate(events, start=first_position):
        for update in row_updates(item, pos=position):
            alerts.extend(engine.offer(update))
    return alerts


def kinds(alerts: list[Alert]) -> set[tuple[str, str, str]]:
    """(kind, owner, contact) of each alert."""
    return {(a["kind"], a["owner_id"], a["contact_id"]) for a in alerts}


def reloaded(engine: RelationshipEngine) -> RelationshipEngine:
    """A new engine on the same settings over copies of the rows as stored bytes (a restart)."""
    rows = {key: Row.from_bytes(row.to_bytes()) for key, row in engine.rows.items()}
    return RelationshipEngine(make_settings(**SMALL), rows=rows)


# --- watermark tracker (SPEC §4) -----------------------------------------------------


def test_a_partition_first_seen_in_a_marker_joins_the_minimum() -> None:
    marks = WatermarkTracker(["a:0"], lateness_ms=10, hybrid=False, claim_ms=1_000)
    marks.observe("a:0", 500, idle=False, at_ms=0)
    marks.observe("b:0", 300, idle=False, at_ms=0)  # not known up front
    assert marks.watermark(now_ms=0, at_ms=0) == (290, False)


def test_a_partition_first_seen_idle_leaves_the_minimum_until_its_claim_lapses() -> None:
    marks = WatermarkTracker(["a:0"], lateness_ms=10, hybrid=False, claim_ms=1_000)
    marks.observe("a:0", 500, idle=False, at_ms=5_000)
    marks.observe("b:0", 300, idle=True, at_ms=5_000)  # not known up front, already idle
    assert marks.watermark(now_ms=0, at_ms=5_000) == (490, False)
    assert marks.watermark(now_ms=0, at_ms=6_000) == (490, False)
    assert marks.watermark(now_ms=0, at_ms=6_001) == (290, False)


def test_a_partition_progress_never_goes_back() -> None:
    marks = WatermarkTracker(["a:0", "b:0"], lateness_ms=10, hybrid=False, claim_ms=1_000)
    marks.observe("a:0", 500, idle=False, at_ms=0)
    marks.observe("b:0", 900, idle=False, at_ms=0)
    marks.observe("a:0", 300, idle=False, at_ms=0)  # an older marker arriving late
    assert marks.watermark(now_ms=0, at_ms=0) == (490, False)
    marks.observe("a:0", None, idle=True, at_ms=0)
    marks.observe("b:0", None, idle=True, at_ms=0)
    assert marks.watermark(now_ms=0, at_ms=0) == (900, True)


def test_a_known_partition_that_sent_nothing_holds_the_watermark() -> None:
    marks = WatermarkTracker(["a:0", "b:0"], lateness_ms=10, hybrid=False, claim_ms=1_000)
    assert marks.watermark(now_ms=0, at_ms=0) == (None, False)
    marks.observe("a:0", 500, idle=False, at_ms=0)
    assert marks.watermark(now_ms=0, at_ms=0) == (None, False)
    assert marks.watermark(now_ms=0, at_ms=10_000) == (None, False)


def test_all_idle_counts_a_partition_that_sent_nothing_and_jumps_to_the_largest_ts() -> None:
    marks = WatermarkTracker(["a:0", "b:0"], lateness_ms=10, hybrid=False, claim_ms=1_000)
    marks.observe("a:0", 500, idle=True, at_ms=0)
    marks.observe("b:0", None, idle=True, at_ms=0)
    assert marks.watermark(now_ms=0, at_ms=0) == (500, True)


def test_hybrid_clock_keeps_the_watermark_at_least_wall_clock_minus_lateness() -> None:
    marks = WatermarkTracker(["a:0"], lateness_ms=10, hybrid=True, claim_ms=1_000)
    assert marks.watermark(now_ms=1_000, at_ms=0) == (990, False)  # nothing seen yet
    marks.observe("a:0", 5_000, idle=False, at_ms=0)
    assert marks.watermark(now_ms=1_000, at_ms=0) == (4_990, False)  # event time ahead of the wall
    assert marks.watermark(now_ms=9_000, at_ms=0) == (8_990, False)  # wall clock ahead


# --- watermark and held updates in the engine (SPEC §4-5) ------------------------------


def test_moving_the_watermark_with_no_event_fires_due_rows(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    offer_all(engine, [E1, E2])
    assert engine.advance(E2.ts + 1) == []
    assert engine.advance(DEADLINE - 1) == []
    alerts = engine.advance(DEADLINE)
    assert kinds(alerts) == {("dormant", "a", "b"), ("dormant", "b", "a")}
    assert all(a["dormant_since"] == DEADLINE for a in alerts)


def test_one_held_half_is_applied_once_the_watermark_passes_it(make_engine: EngineFactory) -> None:
    # In the service the two halves of an event usually go to different owner partitions.
    engine = make_engine(**SMALL)
    out_half, _ = row_updates(E1, pos=1)
    assert engine.offer(out_half) == []
    assert engine.advance(E1.ts) == []
    assert ("a", "b") not in engine.rows
    engine.advance(E1.ts + 1)
    assert engine.rows[("a", "b")].counts == [1, 0, 0, 0, 0, 0]
    assert engine.stats.applied == 1


def test_a_closed_watermark_announced_again_without_closing_stays_closed(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    engine.advance(T0, inclusive=True)  # all idle at T0: updates at T0 are applied too
    out_half, _ = row_updates(E1, pos=1)
    engine.offer(out_half)  # at exactly the watermark, not late: held
    engine.advance(T0)  # the same watermark again: it never goes back, so it stays closed
    assert engine.rows[("a", "b")].counts == [1, 0, 0, 0, 0, 0]
    assert engine.stats.applied == 1


def test_late_input_fires_an_overdue_deadline_before_applying_the_event(make_engine: EngineFactory) -> None:
    # Another row moved the watermark 10 days on; then a and b's events arrive, all late.
    # Applied at once, they make the rows established with a deadline already passed:
    # e3, exactly at that deadline, must first fire it (SPEC §5), as in order.
    e3 = interaction("e3", "like", "a", "b", DEADLINE)
    in_order = drive([make_engine(**SMALL)], [E1, E2, e3], lateness_ms=0)
    engine = make_engine(**SMALL)
    engine.advance(T0 + 10 * DAY)
    late = offer_all(engine, [E1, E2, e3])
    assert [(a["kind"], a["owner_id"]) for a in late] == [
        ("dormant", "a"),
        ("revived", "a"),
        ("dormant", "b"),
        ("revived", "b"),
    ]
    assert_same_alerts(late, in_order)
    assert engine.stats.late == 3
    # after e3 the rows' next deadline (gaps 12 h, 36 h: threshold 72 h) is also behind the watermark
    again = engine.advance(T0 + 10 * DAY + 1)
    assert sorted((a["kind"], a["owner_id"], a["dormant_since"]) for a in again) == [
        ("dormant", "a", DEADLINE + 72 * HOUR),
        ("dormant", "b", DEADLINE + 72 * HOUR),
    ]


def test_an_overdue_deadline_noticed_through_a_late_duplicate_fires_once(make_engine: EngineFactory) -> None:
    # min_silence 1 h < the 24 h de-duplication window: a duplicate can carry a ts past the deadline.
    engine = make_engine(**{**SMALL, "min_silence_ms": HOUR})
    engine.advance(T0 + 10 * DAY)
    e2 = interaction("e2", "reply", "b", "a", T0 + HOUR)  # gap 1 h: threshold 3 h, deadline T0 + 4 h
    copy = interaction("e2", "reply", "b", "a", T0 + 5 * HOUR)  # same id, 4 h later: a duplicate
    alerts = offer_all(engine, [E1, e2, copy])
    alerts += engine.advance(T0 + 11 * DAY)
    alerts += engine.finish()
    assert sorted((a["kind"], a["owner_id"], a["dormant_since"]) for a in alerts) == [
        ("dormant", "a", T0 + 4 * HOUR),
        ("dormant", "b", T0 + 4 * HOUR),
    ]
    assert (engine.stats.applied, engine.stats.duplicates) == (2, 1)


# --- restarts from stored rows ---------------------------------------------------------


def test_active_rows_reloaded_after_a_restart_fire_at_their_deadline(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    offer_all(engine, [E1, E2])
    engine.advance(E2.ts, inclusive=True)
    restarted = reloaded(engine)
    assert (restarted.established_rows, restarted.dormant_rows) == (2, 0)
    assert restarted.advance(DEADLINE - 1) == []
    alerts = restarted.advance(DEADLINE)
    assert kinds(alerts) == {("dormant", "a", "b"), ("dormant", "b", "a")}
    assert (restarted.established_rows, restarted.dormant_rows) == (2, 2)


def test_dormant_rows_reloaded_after_a_restart_revive_and_leave_the_dormant_gauge(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(**SMALL)
    offer_all(engine, [E1, E2])
    engine.advance(DEADLINE)
    assert (engine.established_rows, engine.dormant_rows) == (2, 2)
    restarted = reloaded(engine)
    assert (restarted.established_rows, restarted.dormant_rows) == (2, 2)
    offer_all(restarted, [interaction("e3", "like", "a", "b", DEADLINE + DAY)], first_position=3)
    alerts = restarted.finish()
    assert kinds(alerts) == {("revived", "a", "b"), ("revived", "b", "a")}
    assert all(a["dormant_since"] == DEADLINE for a in alerts)
    assert (restarted.established_rows, restarted.dormant_rows) == (2, 0)
    assert restarted.stats.revived == 2


def test_rows_that_differ_are_not_equal() -> None:
    assert Row.first(T0) == Row.first(T0)
    assert Row.first(T0) != Row.first(T0 + 1)


def test_a_row_going_dormant_is_reported_under_its_own_key() -> None:
    changed: list[tuple[tuple[str, str], int | None]] = []
    engine = RelationshipEngine(
        make_settings(**SMALL), on_row_changed=lambda key, row: changed.append((key, row.dormant_since))
    )
    offer_all(engine, [E1, E2])
    engine.advance(E2.ts + 1)
    applied = len(changed)
    engine.advance(DEADLINE)
    assert sorted(changed[applied:]) == sorted((key, DEADLINE) for key in ROWS)


# --- counters: events, not halves (SPEC §8) ------------------------------------------


def test_applied_and_duplicate_counts_belong_to_the_engine_holding_the_actor_row(
    make_engine: EngineFactory,
) -> None:
    actor_side, target_side = make_engine(**SMALL), make_engine(**SMALL)
    for position in (1, 2):  # the event, then a copy read from another position
        out_half, in_half = row_updates(E1, pos=position)
        actor_side.offer(out_half)
        target_side.offer(in_half)
        actor_side.advance(E1.ts + 1)
        target_side.advance(E1.ts + 1)
    assert (actor_side.stats.applied, actor_side.stats.duplicates) == (1, 1)
    assert (target_side.stats.applied, target_side.stats.duplicates) == (0, 0)
    assert actor_side.rows[("a", "b")].counts == [1, 0, 0, 0, 0, 0]
    assert target_side.rows[("b", "a")].counts == [0, 0, 0, 1, 0, 0]


def test_a_redelivery_from_the_same_position_is_ignored_and_counted_per_update(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(**SMALL)
    offer_all(engine, [E1], first_position=7)
    engine.advance(E1.ts + 1)
    before = {key: row.to_bytes() for key, row in engine.rows.items()}
    offer_all(engine, [E1], first_position=7)  # read again after a crash: late, and a re-delivery
    assert (engine.stats.applied, engine.stats.duplicates, engine.stats.redelivered) == (1, 0, 2)
    assert {key: row.to_bytes() for key, row in engine.rows.items()} == before


@pytest.mark.parametrize(
    ("row_moved_on", "duplicates"),
    [(DAY - 1, 1), (DAY, 0)],
    ids=["row-1ms-inside-a-day", "row-exactly-a-day-past"],
)
def test_a_late_copy_is_a_duplicate_only_while_its_row_is_less_than_a_day_past_the_original(
    replay_lines: ReplayFactory, row_moved_on: int, duplicates: int
) -> None:
    lines = [
        line("x", "like", "a", "b", T0),
        line("y", "like", "a", "b", T0 + row_moved_on),
        line("tick", "like", "c", "d", T0 + row_moved_on + 1),  # moves the watermark past y
        line("x", "like", "a", "b", T0),  # the first event again, late, on a new line
    ]
    _, summary = replay_lines(lines)
    assert (summary.applied, summary.duplicates, summary.late) == (4 - duplicates, duplicates, 1 - duplicates)


def test_an_id_applied_twice_is_a_duplicate_near_either_time(replay_lines: ReplayFactory) -> None:
    # x is applied at T0 + 2 days, then again (late) at T0: two days apart, a new event.
    # A third x, one hour after the first, is a duplicate of it (SPEC §1: an id already
    # applied less than 24 h away), whatever was applied in between.
    lines = [
        line("x", "like", "a", "b", T0 + 2 * DAY),
        line("tick", "like", "c", "d", T0 + 5 * DAY),
        line("x", "like", "a", "b", T0),
        line("x", "like", "a", "b", T0 + 2 * DAY + HOUR),
    ]
    _, summary = replay_lines(lines)
    assert (summary.applied, summary.duplicates, summary.late) == (3, 1, 1)


# --- what a row remembers (SPEC §8) -------------------------------------------------


def test_a_row_remembers_every_id_inside_the_window_however_many(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    events = [interaction(f"x{i}", "like", "a", "b", T0 + i * 30 * MINUTE) for i in range(40)]
    offer_all(engine, events)
    engine.finish()
    assert set(engine.rows[("a", "b")].recent) == {e.id for e in events}
    offer_all(engine, events[:1], first_position=100)  # a copy of the oldest, within the window
    assert (engine.stats.applied, engine.stats.duplicates) == (40, 1)


def test_a_row_keeps_its_last_32_ids_beyond_the_window_and_no_more(make_engine: EngineFactory) -> None:
    # Ids 2 days apart (all outside the window of each other); x68 is used again, 2 days
    # after it was first applied: a new event, and from then on one of the row's newest ids.
    engine = make_engine(**SMALL)
    events = [interaction(f"x{i}", "like", "a", "b", T0 + 2 * i * DAY) for i in range(100)]
    events.append(interaction("x68", "like", "a", "b", T0 + 199 * DAY))
    events.append(interaction("x100", "like", "a", "b", T0 + 201 * DAY))
    for position, item in enumerate(events, start=1):
        offer_all(engine, [item], first_position=position)
        engine.advance(item.ts + 1)
    row = engine.rows[("a", "b")]
    assert engine.stats.applied == 102
    assert list(row.recent) == [f"x{i}" for i in range(70, 100)] + ["x68", "x100"]
    offer_all(engine, [events[70]], first_position=71)  # re-delivery of the oldest id it keeps
    assert (engine.stats.applied, engine.stats.redelivered) == (102, 2)


def test_protected_rows_keep_every_id_applied_since_they_were_last_written(
    make_engine: EngineFactory,
) -> None:
    engine = RelationshipEngine(make_settings(**SMALL), protect_unwritten=True)
    first = [interaction(f"x{i}", "like", "a", "b", T0 + 2 * i * DAY) for i in range(50)]
    offer_all(engine, first)
    engine.finish()
    row = engine.rows[("a", "b")]
    assert len(row.recent) == 50
    row.unwritten = 0  # the service wrote the row at a checkpoint
    later = [interaction(f"y{i}", "like", "a", "b", T0 + (100 + 2 * i) * DAY) for i in range(40)]
    offer_all(engine, later, first_position=51)
    engine.finish()
    assert list(row.recent) == [e.id for e in later]


def test_unprotected_rows_forget_ids_beyond_the_window_past_the_last_32(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    events = [interaction(f"x{i}", "like", "a", "b", T0 + 2 * i * DAY) for i in range(50)]
    offer_all(engine, events)
    engine.finish()
    assert list(engine.rows[("a", "b")].recent) == [e.id for e in events[-32:]]


# --- deadline index ------------------------------------------------------------------


def test_a_row_that_keeps_interacting_adds_nothing_to_the_deadline_heap() -> None:
    index = DeadlineIndex()
    for deadline in [100, 100, *range(101, 1_100)]:
        index.set(("a", "b"), deadline)
    assert index.heap_size() == 1
    assert index.pop_due(1_098) == []
    assert index.pop_due(1_099) == [(1_099, ("a", "b"))]
    assert index.heap_size() == 0


# --- dead-letter detail (schemas/dead-letter.v1.json: a string, maybe empty) ----------


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        (b'{"id": "' + b"x" * 100 + b'"}', Reason.TOO_LARGE),
        (b"\xff\xfe", Reason.NOT_UTF8),
        (b"{", Reason.NOT_JSON),
        (b"", Reason.NOT_JSON),
        (b"[]", Reason.NOT_OBJECT),
        (b"{}", Reason.MISSING_FIELD),
    ],
)
def test_every_rejection_carries_a_string_detail(raw: bytes, reason: Reason) -> None:
    with pytest.raises(InvalidEvent) as caught:
        decode_event(raw, max_bytes=64)
    assert caught.value.reason is reason
    assert isinstance(caught.value.detail, str)
