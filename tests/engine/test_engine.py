"""Hand-computed scenarios through RelationshipEngine and replay (SPEC §2-4), the row codec and timers."""

from __future__ import annotations

import math
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.events import Interaction, row_updates
from streams.engine.row import Row
from streams.engine.timers import DeadlineIndex
from tests.engine.support import (
    DAY,
    HOUR,
    MINUTE,
    SMALL,
    T0,
    EngineFactory,
    ReplayFactory,
    assert_same_alerts,
    by_row,
    canonical,
    drive,
    interaction,
    line,
    make_settings,
)


def counts(out: dict[str, int] | None = None, in_: dict[str, int] | None = None) -> dict[str, Any]:
    """The `counts` field of an alert; types not named are 0."""
    zero = {"mention": 0, "reply": 0, "like": 0}
    return {"out": {**zero, **(out or {})}, "in": {**zero, **(in_ or {})}}


def expected(kind: str, owner: str, contact: str, last: int, **fields: Any) -> dict[str, Any]:
    """A hand-computed alert without `detected_at`."""
    return {
        "alert_id": f"{kind}:{owner}:{contact}:{last}",
        "kind": kind,
        "owner_id": owner,
        "contact_id": contact,
        "last_interaction_at": last,
        "schema_version": 1,
        **fields,
    }


def assert_alerts(actual: list[Alert], wanted: list[dict[str, Any]]) -> None:
    """Alerts equal field by field (no `detected_at`), strength within rel 1e-9, in order."""
    assert [a["alert_id"] for a in actual] == [w["alert_id"] for w in wanted]
    for got, want in zip(actual, wanted, strict=True):
        fields = canonical(got)
        assert sorted(fields) == sorted(want)
        assert math.isclose(fields.pop("strength"), want["strength"], rel_tol=1e-9)
        assert fields == {k: v for k, v in want.items() if k != "strength"}


def run(engine: RelationshipEngine, events: list[Interaction], lateness_ms: int = 0) -> list[Alert]:
    """Drive one engine the way replay does."""
    return drive([engine], events, lateness_ms)


# e1/e2: a mentions b at T0, b replies 12 h later: 2 touches, mutual, gap 12 h,
# threshold 3 x 12 h = 36 h, deadline T0 + 48 h; strength 2 * 2^-0.5 + 3 at T0 + 12 h.
E1 = interaction("e1", "mention", "a", "b", T0)
E2 = interaction("e2", "reply", "b", "a", T0 + 12 * HOUR)
DEADLINE = T0 + 48 * HOUR
S2 = 3 + 2 * 2**-0.5
AB_COUNTS = counts(out={"mention": 1}, in_={"reply": 1})
BA_COUNTS = counts(out={"reply": 1}, in_={"mention": 1})
AB_EPISODE: dict[str, Any] = {
    "dormant_since": DEADLINE,
    "typical_gap_ms": 12 * HOUR,
    "threshold_ms": 36 * HOUR,
    "touches": 2,
    "strength": S2,
}


def first_episode(kind: str) -> list[dict[str, Any]]:
    """The (a, b) and (b, a) alerts of the e1/e2 relationship's first episode."""
    last = T0 + 12 * HOUR
    return [
        expected(kind, "a", "b", last, counts=AB_COUNTS, last_out_at=T0, last_in_at=last, **AB_EPISODE),
        expected(kind, "b", "a", last, counts=BA_COUNTS, last_out_at=last, last_in_at=T0, **AB_EPISODE),
    ]


# --- touches and gaps ------------------------------------------------------


def test_touch_merge_counts_from_the_touch_start(make_engine: EngineFactory) -> None:
    engine = make_engine(**{**SMALL, "min_touches": 5})
    offsets = [0, 50 * MINUTE, HOUR - 1, HOUR, HOUR + 59 * MINUTE, 150 * MINUTE]
    events = [interaction(f"e{i}", "like", "a", "b", T0 + o) for i, o in enumerate(offsets)]
    assert run(engine, events) == []
    ab, ba = engine.rows[("a", "b")], engine.rows[("b", "a")]
    # touches start at +0, +1 h (exactly touch_merge after +0) and +2.5 h
    assert (ab.touches, ab.gaps, ab.touch_at) == (3, [HOUR, 90 * MINUTE], T0 + 150 * MINUTE)
    assert (ba.touches, ba.gaps, ba.touch_at) == (3, [HOUR, 90 * MINUTE], T0 + 150 * MINUTE)
    assert ab.counts == [0, 0, 6, 0, 0, 0]
    assert ba.counts == [0, 0, 0, 0, 0, 6]
    assert (ab.first_at, ab.last_at, ab.last_out_at, ab.last_in_at) == (
        T0,
        T0 + 150 * MINUTE,
        T0 + 150 * MINUTE,
        None,
    )
    assert (ba.last_out_at, ba.last_in_at) == (None, T0 + 150 * MINUTE)


def test_touch_merge_zero_starts_a_touch_at_every_event(make_engine: EngineFactory) -> None:
    engine = make_engine(**{**SMALL, "touch_merge_ms": 0, "min_touches": 9})
    events = [interaction(i, "like", "a", "b", T0 + o) for i, o in [("x", 0), ("y", 0), ("z", 1)]]
    run(engine, events)
    row = engine.rows[("a", "b")]
    assert (row.touches, row.gaps) == (3, [0, 1])


def test_gap_history_keeps_the_last_gap_window(
    make_engine: EngineFactory, replay_lines: ReplayFactory
) -> None:
    overrides = {
        **SMALL,
        "gap_window": 3,
        "min_touches": 5,
        "require_mutual": False,
        "min_silence_ms": 0,
    }
    starts = [0, 2, 5, 9, 14]  # hours: gaps 2, 3, 4, 5 h; the window keeps 3, 4, 5 h
    events = [interaction(f"e{h}", "like", "a", "b", T0 + h * HOUR) for h in starts]
    engine = make_engine(**overrides)
    run(engine, events)
    assert engine.rows[("a", "b")].gaps == [3 * HOUR, 4 * HOUR, 5 * HOUR]
    assert engine.rows[("a", "b")].touches == 5

    lines = [line(e.id, "like", "a", "b", e.ts) for e in events]
    lines.append(line("tick", "like", "c", "d", T0 + 30 * HOUR))
    alerts, _ = replay_lines(lines, **overrides)
    # median 4 h (not 3.5 h, the median of all four gaps): threshold 12 h, deadline +26 h
    fields = {
        "dormant_since": T0 + 26 * HOUR,
        "typical_gap_ms": 4 * HOUR,
        "threshold_ms": 12 * HOUR,
        "touches": 5,
        "strength": sum(2 ** (-(14 - h) / 24) for h in starts),
    }
    last = T0 + 14 * HOUR
    assert_alerts(
        alerts,
        [
            expected(
                "dormant",
                "a",
                "b",
                last,
                counts=counts(out={"like": 5}),
                last_out_at=last,
                last_in_at=None,
                **fields,
            ),
            expected(
                "dormant",
                "b",
                "a",
                last,
                counts=counts(in_={"like": 5}),
                last_out_at=None,
                last_in_at=last,
                **fields,
            ),
        ],
    )


# --- established ----------------------------------------------------------------


def one_sided_lines() -> list[bytes]:
    """a mentions b daily for 3 days, b never answers; c likes d a month later."""
    lines = [line(f"m{d}", "mention", "a", "b", T0 + d * DAY) for d in range(3)]
    return [*lines, line("tick", "like", "c", "d", T0 + 30 * DAY)]


def test_one_sided_relationship_never_alerts_with_require_mutual(
    replay_lines: ReplayFactory,
) -> None:
    alerts, summary = replay_lines(one_sided_lines(), **SMALL)
    assert alerts == []
    assert summary.applied == 4


def test_one_sided_relationship_alerts_without_require_mutual(replay_lines: ReplayFactory) -> None:
    alerts, _ = replay_lines(one_sided_lines(), **{**SMALL, "require_mutual": False})
    last = T0 + 2 * DAY
    fields = {
        "dormant_since": T0 + 5 * DAY,  # gaps [1 d, 1 d]: threshold 3 d
        "typical_gap_ms": DAY,
        "threshold_ms": 3 * DAY,
        "touches": 3,
        "strength": 2 * (1 + 0.5 + 0.25),
    }
    assert_alerts(
        alerts,
        [
            expected(
                "dormant",
                "a",
                "b",
                last,
                counts=counts(out={"mention": 3}),
                last_out_at=last,
                last_in_at=None,
                **fields,
            ),
            expected(
                "dormant",
                "b",
                "a",
                last,
                counts=counts(in_={"mention": 3}),
                last_out_at=None,
                last_in_at=last,
                **fields,
            ),
        ],
    )


def test_not_established_before_min_touches(replay_lines: ReplayFactory) -> None:
    lines = [line("e1", "mention", "a", "b", T0), line("e2", "reply", "b", "a", T0 + 30 * MINUTE)]
    lines.append(line("tick", "like", "c", "d", T0 + 60 * DAY))
    alerts, _ = replay_lines(lines, **SMALL)
    assert alerts == []  # one touch only: 30 min < touch_merge


# --- deadlines and episodes ------------------------------------------------------


def test_event_exactly_at_the_deadline_fires_then_revives(
    make_engine: EngineFactory, replay_lines: ReplayFactory
) -> None:
    e3 = interaction("e3", "like", "a", "b", DEADLINE)
    engine = make_engine(**SMALL)
    alerts = run(engine, [E1, E2, e3])
    dormant, revived = first_episode("dormant"), first_episode("revived")
    assert_alerts(by_row(alerts, "a", "b"), [dormant[0], revived[0]])
    assert_alerts(by_row(alerts, "b", "a"), [dormant[1], revived[1]])
    assert len(alerts) == 4
    assert all(a["detected_at"] == DEADLINE for a in alerts)
    # after e3: touches 3, gaps [12 h, 36 h] -> median 24 h, threshold 72 h
    row = engine.rows[("a", "b")]
    assert (row.touches, row.gaps, row.last_at, row.dormant_since) == (
        3,
        [12 * HOUR, 36 * HOUR],
        DEADLINE,
        None,
    )
    assert row.counts == [1, 0, 1, 0, 1, 0]
    assert math.isclose(row.strength, S2 * 2**-1.5 + 1, rel_tol=1e-12)
    assert engine.timers.get(("a", "b")) == DEADLINE + 72 * HOUR
    assert (engine.stats.dormant, engine.stats.revived, engine.stats.applied) == (2, 2, 3)

    lines = [line(e.id, ("mention", "reply", "like")[e.type], e.actor, e.target, e.ts) for e in (E1, E2, e3)]
    replayed, summary = replay_lines(lines, **SMALL)
    assert_same_alerts(replayed, alerts)
    assert summary.alerts == {"dormant": 2, "revived": 2}


def test_event_one_ms_before_the_deadline_keeps_the_row_active(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    assert run(engine, [E1, E2, interaction("e3", "like", "a", "b", DEADLINE - 1)]) == []
    assert engine.timers.get(("a", "b")) is not None
    assert engine.rows[("a", "b")].dormant_since is None


def test_revived_alert_reports_the_episode_and_the_state_before_the_event(
    make_engine: EngineFactory,
) -> None:
    e3 = interaction("e3", "like", "a", "b", T0 + 5 * DAY)
    tick = interaction("tick", "like", "c", "d", T0 + 20 * DAY)
    engine = make_engine(**SMALL)
    alerts = run(engine, [E1, E2, e3, tick])
    # second episode: gaps [12 h, 108 h] -> median 60 h, threshold 180 h from T0 + 5 d
    second = {
        "dormant_since": T0 + 5 * DAY + 180 * HOUR,
        "typical_gap_ms": 60 * HOUR,
        "threshold_ms": 180 * HOUR,
        "touches": 3,
        "strength": S2 * 2**-4.5 + 1,
    }
    last = T0 + 5 * DAY
    ab_counts = counts(out={"mention": 1, "like": 1}, in_={"reply": 1})
    ba_counts = counts(out={"reply": 1}, in_={"mention": 1, "like": 1})
    ab_second = expected(
        "dormant",
        "a",
        "b",
        last,
        counts=ab_counts,
        last_out_at=last,
        last_in_at=T0 + 12 * HOUR,
        **second,
    )
    ba_second = expected(
        "dormant",
        "b",
        "a",
        last,
        counts=ba_counts,
        last_out_at=T0 + 12 * HOUR,
        last_in_at=last,
        **second,
    )
    dormant, revived = first_episode("dormant"), first_episode("revived")
    assert_alerts(by_row(alerts, "a", "b"), [dormant[0], revived[0], ab_second])
    assert_alerts(by_row(alerts, "b", "a"), [dormant[1], revived[1], ba_second])
    assert by_row(alerts, "c", "d") == by_row(alerts, "d", "c") == []
    detected = {a["alert_id"]: a["detected_at"] for a in alerts}
    assert detected[dormant[0]["alert_id"]] == T0 + 5 * DAY  # the watermark when e3 arrived
    assert detected[ab_second["alert_id"]] == T0 + 20 * DAY


def test_end_of_input_fires_up_to_the_largest_ts_only(replay_lines: ReplayFactory) -> None:
    base = [line("e1", "mention", "a", "b", T0), line("e2", "reply", "b", "a", T0 + 12 * HOUR)]
    before, _ = replay_lines([*base, line("t", "like", "c", "d", DEADLINE - 1)], **SMALL)
    assert before == []
    at, _ = replay_lines([*base, line("t", "like", "c", "d", DEADLINE)], **SMALL)
    assert_alerts(sorted(at, key=lambda a: a["owner_id"]), first_episode("dormant"))
    # both rows of the relationship fire, mirrored
    ab, ba = by_row(at, "a", "b")[0], by_row(at, "b", "a")[0]
    assert ab["counts"]["out"] == ba["counts"]["in"]
    assert ab["counts"]["in"] == ba["counts"]["out"]
    assert (ab["last_out_at"], ab["last_in_at"]) == (ba["last_in_at"], ba["last_out_at"])
    for name in ("last_interaction_at", "dormant_since", "typical_gap_ms", "threshold_ms", "touches"):
        assert ab[name] == ba[name]
    assert ab["strength"] == ba["strength"]


def test_end_of_input_applies_held_events_whatever_the_lateness(replay_lines: ReplayFactory) -> None:
    lines = [
        line("e1", "mention", "a", "b", T0),
        line("e2", "reply", "b", "a", T0 + 12 * HOUR),
        line("t", "like", "c", "d", DEADLINE),
    ]
    for lateness in (0, HOUR, 3 * DAY):
        alerts, summary = replay_lines(lines, **SMALL, allowed_lateness_ms=lateness)
        assert_alerts(sorted(alerts, key=lambda a: a["owner_id"]), first_episode("dormant"))
        assert summary.applied == 3


def test_self_interactions_move_the_replay_clock_but_touch_no_row(
    replay_lines: ReplayFactory,
) -> None:
    base = [line("e1", "mention", "a", "b", T0), line("e2", "reply", "b", "a", T0 + 12 * HOUR)]
    alerts, summary = replay_lines([*base, line("s", "like", "c", "c", DEADLINE)], **SMALL)
    assert_alerts(sorted(alerts, key=lambda a: a["owner_id"]), first_episode("dormant"))
    assert (summary.self_interactions, summary.applied, summary.read) == (1, 2, 3)
    assert not any("c" in (a["owner_id"], a["contact_id"]) for a in alerts)


def test_invalid_lines_do_not_move_the_replay_clock(replay_lines: ReplayFactory) -> None:
    base = [line("e1", "mention", "a", "b", T0), line("e2", "reply", "b", "a", T0 + 12 * HOUR)]
    garbage = [
        line("g1", "retweet", "c", "d", DEADLINE + DAY),
        b'{"id": "g2", "type": "like", "actor_id": "c", "target_id": "d", "ts": "2020"}',
        b"not json",
        b"   ",
    ]
    alerts, summary = replay_lines([*base, *garbage], **SMALL)
    assert alerts == []
    assert summary.read == 5
    assert summary.invalid == {"unknown_type": 1, "wrong_type": 1, "not_json": 1}


# --- late events ----------------------------------------------------------------


def test_late_event_older_than_last_at_updates_counts_and_strength_only(
    make_engine: EngineFactory,
) -> None:
    e3 = interaction("e3", "like", "a", "b", T0 + 20 * HOUR)
    tick = interaction("tick", "like", "x", "y", T0 + 21 * HOUR)  # applies e3
    late_in = interaction("e4", "mention", "b", "a", T0 + 15 * HOUR)
    late_out = interaction("e5", "like", "a", "b", T0 - HOUR)
    engine = make_engine(**SMALL)
    assert run(engine, [E1, E2, e3, tick, late_in, late_out]) == []
    assert (engine.stats.applied, engine.stats.late, engine.stats.duplicates) == (6, 2, 0)
    ab, ba = engine.rows[("a", "b")], engine.rows[("b", "a")]
    for row in (ab, ba):
        assert (row.touches, row.gaps, row.touch_at) == (3, [12 * HOUR, 8 * HOUR], T0 + 20 * HOUR)
        assert (row.first_at, row.last_at, row.dormant_since) == (T0 - HOUR, T0 + 20 * HOUR, None)
        direct = sum(w * 2 ** (-(20 - h) / 24) for w, h in [(2, 0), (3, 12), (1, 20), (2, 15), (1, -1)])
        assert math.isclose(row.strength, direct, rel_tol=1e-12)
    assert ab.counts == [1, 0, 2, 1, 1, 0]
    assert ba.counts == [1, 1, 0, 1, 0, 2]
    # last_in_at moves up to the late event's ts, last_out_at keeps the max
    assert (ab.last_out_at, ab.last_in_at) == (T0 + 20 * HOUR, T0 + 15 * HOUR)
    assert (ba.last_out_at, ba.last_in_at) == (T0 + 15 * HOUR, T0 + 20 * HOUR)
    # the deadline still counts from last_at: median(12 h, 8 h) = 10 h -> 30 h
    assert engine.timers.get(("a", "b")) == T0 + 50 * HOUR


def test_late_event_older_than_last_at_never_revives(make_engine: EngineFactory) -> None:
    tick = interaction("tick", "like", "x", "y", T0 + 3 * DAY)
    late = interaction("late", "like", "a", "b", T0 + 6 * HOUR)
    engine = make_engine(**SMALL)
    alerts = run(engine, [E1, E2, tick, late])
    assert_alerts(sorted(alerts, key=lambda a: a["owner_id"]), first_episode("dormant"))
    assert engine.stats.late == 1
    row = engine.rows[("a", "b")]
    assert (row.dormant_since, row.last_at, row.touches) == (DEADLINE, T0 + 12 * HOUR, 2)
    assert row.counts == [1, 0, 1, 0, 1, 0]
    assert engine.timers.get(("a", "b")) is None


def test_late_event_not_older_than_last_at_revives(make_engine: EngineFactory) -> None:
    tick = interaction("tick", "like", "x", "y", T0 + 3 * DAY)
    late = interaction("late", "like", "a", "b", T0 + DAY)  # last_at < ts < watermark
    engine = make_engine(**SMALL)
    alerts = run(engine, [E1, E2, tick, late])
    # revived at once; the new deadline (T0 + 1 d + 36 h) has already passed, so the
    # row fires again at the end of input (<= the largest ts seen)
    again = {**AB_EPISODE, "dormant_since": T0 + 60 * HOUR, "touches": 3}
    again["strength"] = S2 * 2**-0.5 + 1
    last = T0 + DAY
    ab_counts = counts(out={"mention": 1, "like": 1}, in_={"reply": 1})
    assert_alerts(
        by_row(alerts, "a", "b"),
        [
            first_episode("dormant")[0],
            first_episode("revived")[0],
            expected(
                "dormant",
                "a",
                "b",
                last,
                counts=ab_counts,
                last_out_at=last,
                last_in_at=T0 + 12 * HOUR,
                **again,
            ),
        ],
    )
    assert engine.stats.late == 1


# --- duplicates -----------------------------------------------------------------


def test_duplicates_inside_the_window_are_ignored_and_counted(
    make_engine: EngineFactory, replay_lines: ReplayFactory
) -> None:
    events = [
        interaction("x", "mention", "a", "b", T0),
        interaction("x", "mention", "a", "b", T0),  # exact copy
        interaction("x", "like", "a", "b", T0 + DAY - 1),  # same id, 1 ms inside the window
        interaction("x", "mention", "a", "b", T0 + DAY),  # 24 h apart: a new event
        interaction("x", "reply", "a", "b", T0 + DAY + 1),  # copy of the previous one
    ]
    engine = make_engine(**SMALL)
    run(engine, events)
    assert (engine.stats.applied, engine.stats.duplicates, engine.stats.late) == (2, 3, 0)
    ab, ba = engine.rows[("a", "b")], engine.rows[("b", "a")]
    assert ab.counts == [2, 0, 0, 0, 0, 0]
    assert ba.counts == [0, 0, 0, 2, 0, 0]
    assert (ab.touches, ab.gaps, ab.last_at) == (2, [DAY], T0 + DAY)
    assert math.isclose(ab.strength, 2 * 0.5 + 2, rel_tol=1e-12)

    names = ("mention", "reply", "like")
    lines = [line(e.id, names[e.type], e.actor, e.target, e.ts) for e in events]
    _, summary = replay_lines(lines, **SMALL)
    assert (summary.read, summary.applied, summary.duplicates) == (5, 2, 3)


def test_late_duplicate_never_revives(replay_lines: ReplayFactory) -> None:
    lines = [
        line("e1", "mention", "a", "b", T0),
        line("e2", "reply", "b", "a", T0 + 12 * HOUR),
        line("tick", "like", "x", "y", T0 + 3 * DAY),
    ]
    clean, _ = replay_lines(lines, **SMALL)
    alerts, summary = replay_lines([*lines, lines[1], lines[0]], **SMALL)
    assert_alerts(sorted(alerts, key=lambda a: a["owner_id"]), first_episode("dormant"))
    assert_same_alerts(alerts, clean)
    assert (summary.applied, summary.duplicates, summary.late) == (3, 2, 0)


@pytest.mark.parametrize(
    ("earlier_events", "expected"),
    [(3, (4, 1, 0)), (40, (42, 0, 1))],
    ids=["row-2h-past-the-original", "row-39h-past-the-original"],
)
def test_late_copy_is_a_duplicate_only_while_its_row_is_within_a_day_of_the_original(
    replay_lines: ReplayFactory, earlier_events: int, expected: tuple[int, int, int]
) -> None:
    # Project decision (docs/semantics.md §8): an update is a duplicate when its row
    # applied the same id with |ts - ts_then| < 24 h *and* the row's latest event is
    # less than 24 h past ts_then. Here the copy has the very same ts as the original
    # and arrives late (another row moved the watermark on). While its own row is
    # within a day of the original it is a duplicate; once the row has moved more
    # than a day past it, it is applied as a late event, whatever the number of ids
    # the row still remembers.
    lines = [line(f"x{i}", "like", "a", "b", T0 + i * HOUR) for i in range(earlier_events)]
    lines.append(line("tick", "like", "c", "d", T0 + (earlier_events + 30) * HOUR))
    lines.append(lines[0])  # the first event again, on a new line (not a re-delivery)
    _, summary = replay_lines(lines)
    assert (summary.applied, summary.duplicates, summary.late) == expected


def test_same_id_on_another_relationship_is_not_a_duplicate(replay_lines: ReplayFactory) -> None:
    lines = [line("x", "like", "a", "b", T0), line("x", "like", "c", "d", T0)]
    _, summary = replay_lines(lines, **SMALL)
    assert (summary.applied, summary.duplicates) == (2, 0)


# --- order: (ts, id) ---------------------------------------------------------------

# With a zero threshold a row goes dormant at its own last event, so a second event
# at the same ts sees the first one's dormant alert: the application order shows.
ZERO_THRESHOLD: dict[str, Any] = {
    **SMALL,
    "min_touches": 1,
    "require_mutual": False,
    "min_silence_ms": 0,
    "max_silence_ms": 0,
}


def test_events_with_equal_ts_apply_in_id_order(make_engine: EngineFactory) -> None:
    b_like = interaction("b", "like", "a", "b", T0)
    a_reply = interaction("a", "reply", "a", "b", T0)
    episode = {"dormant_since": T0, "typical_gap_ms": 0, "threshold_ms": 0, "touches": 1}
    reply = counts(out={"reply": 1})
    both = counts(out={"reply": 1, "like": 1})
    wanted = [
        expected(
            "dormant", "a", "b", T0, counts=reply, last_out_at=T0, last_in_at=None, strength=3.0, **episode
        ),
        expected(
            "revived", "a", "b", T0, counts=reply, last_out_at=T0, last_in_at=None, strength=3.0, **episode
        ),
        expected(
            "dormant", "a", "b", T0, counts=both, last_out_at=T0, last_in_at=None, strength=4.0, **episode
        ),
    ]
    for arrival in ([b_like, a_reply], [a_reply, b_like]):
        for lateness in (0, HOUR):
            alerts = run(make_engine(**ZERO_THRESHOLD), arrival, lateness)
            assert_alerts(by_row(alerts, "a", "b"), wanted)
            assert [a["counts"]["in"] for a in by_row(alerts, "b", "a")] == [
                reply["out"],
                reply["out"],
                both["out"],
            ]


def test_ts_orders_before_id(make_engine: EngineFactory) -> None:
    a_later = interaction("a", "reply", "a", "b", T0 + 1)
    b_first = interaction("b", "like", "a", "b", T0)
    alerts = run(make_engine(**ZERO_THRESHOLD), [a_later, b_first], lateness_ms=HOUR)
    first = by_row(alerts, "a", "b")[0]
    assert (first["kind"], first["last_interaction_at"]) == ("dormant", T0)
    assert first["counts"] == counts(out={"like": 1})


# --- callbacks ------------------------------------------------------------------


def test_callbacks_see_every_update_and_every_row_change() -> None:
    applied: list[int] = []
    changed: list[tuple[tuple[str, str], bytes]] = []
    engine = RelationshipEngine(
        make_settings(**SMALL),
        on_row_changed=lambda key, row: changed.append((key, row.to_bytes())),
        on_applied=applied.append,
    )
    e3 = interaction("e3", "like", "a", "b", DEADLINE)
    updates = [u for i, e in enumerate([E1, E2, e3, E2]) for u in row_updates(e, tag=i, pos=i + 1)]
    for update in updates[:6]:
        engine.offer(update)
    engine.advance(DEADLINE)  # applies e1, e2 (4 updates); fires both rows
    assert sorted(applied) == [0, 0, 1, 1]
    assert len(changed) == 4 + 2
    for update in updates[6:]:
        engine.offer(update)  # the copy of e2 is late: a duplicate, ignored at once
    assert sorted(applied) == [0, 0, 1, 1, 3, 3]
    assert len(changed) == 6
    engine.finish()
    assert sorted(applied) == [0, 0, 1, 1, 2, 2, 3, 3]
    assert len(changed) == 8
    assert changed[-1][1] == engine.rows[changed[-1][0]].to_bytes()


# --- Row codec ------------------------------------------------------------------

times = st.integers(min_value=946_684_800_000, max_value=4_102_444_799_999)
rows = st.builds(
    Row,
    counts=st.lists(st.integers(0, 2**40), min_size=6, max_size=6),
    first_at=times,
    last_at=times,
    last_out_at=st.none() | times,
    last_in_at=st.none() | times,
    touch_at=times,
    touches=st.integers(0, 2**31),
    gaps=st.lists(st.integers(0, 200 * 365 * DAY), max_size=16),
    strength=st.floats(min_value=0, max_value=1e12, allow_nan=False, allow_infinity=False),
    dormant_since=st.none() | times,
    recent=st.dictionaries(
        st.text(min_size=1, max_size=128),
        st.lists(st.integers(0, 2**62), min_size=2, max_size=2),
        max_size=40,
    ),
)


@given(rows)
def test_row_bytes_round_trip(row: Row) -> None:
    copy = Row.from_bytes(row.to_bytes())
    for name in Row.__slots__:
        value, restored = getattr(row, name), getattr(copy, name)
        assert restored == value, name
        assert type(restored) is type(value), name
    assert copy == row
    assert copy.to_bytes() == row.to_bytes()


def test_rows_of_a_replay_round_trip(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    run(engine, [E1, E2, interaction("e3", "like", "a", "b", T0 + 5 * DAY)])
    for key, row in engine.rows.items():
        copy = Row.from_bytes(row.to_bytes())
        assert copy == row
        assert copy is not row
        assert (copy.recent, copy.gaps, copy.strength) == (row.recent, row.gaps, row.strength), key


# --- DeadlineIndex ----------------------------------------------------------------


def test_deadline_index_orders_by_deadline_then_key() -> None:
    index = DeadlineIndex()
    index.set(("b", "a"), 10)
    index.set(("a", "c"), 10)
    index.set(("a", "b"), 30)
    index.set(("a", "b"), 5)  # replaces 30
    index.set(("z", "z"), 11)
    index.discard(("z", "z"))
    index.discard(("never", "set"))
    assert index.next_deadline() == 5
    assert index.get(("a", "b")) == 5
    assert index.pop_due(4) == []
    assert index.pop_due(10) == [(5, ("a", "b")), (10, ("a", "c")), (10, ("b", "a"))]
    assert len(index) == 0
    assert index.next_deadline() is None
    assert index.pop_due(10**15) == []


def test_deadline_index_compacts_superseded_entries() -> None:
    index = DeadlineIndex()
    for i in range(5000):
        index.set(("a", "b"), 10_000 - i)
        index.set((f"k{i % 3}", "x"), i)
    assert len(index) == 4
    assert index.heap_size() <= 2 * 4 + 1024 + 1
    assert index.pop_due(10**9) == [
        (4997, ("k2", "x")),
        (4998, ("k0", "x")),
        (4999, ("k1", "x")),
        (5001, ("a", "b")),
    ]


keys = st.tuples(st.sampled_from("abc"), st.sampled_from("xyz"))
deadlines = st.integers(0, 50)


class DeadlineIndexModel(RuleBasedStateMachine):
    """DeadlineIndex against a plain dict of live deadlines."""

    def __init__(self) -> None:
        super().__init__()
        self.index = DeadlineIndex()
        self.model: dict[tuple[str, str], int] = {}

    @rule(key=keys, deadline=deadlines)
    def set(self, key: tuple[str, str], deadline: int) -> None:
        self.index.set(key, deadline)
        self.model[key] = deadline

    @rule(key=keys)
    def discard(self, key: tuple[str, str]) -> None:
        self.index.discard(key)
        self.model.pop(key, None)

    @rule(limit=deadlines)
    def pop_due(self, limit: int) -> None:
        due = sorted((d, k) for k, d in self.model.items() if d <= limit)
        assert self.index.pop_due(limit) == due
        for _, key in due:
            del self.model[key]

    @precondition(lambda self: bool(self.model))
    @rule()
    def next_deadline(self) -> None:
        assert self.index.next_deadline() == min(self.model.values())

    @rule(key=keys)
    def get(self, key: tuple[str, str]) -> None:
        assert self.index.get(key) == self.model.get(key)

    @invariant()
    def same_size(self) -> None:
        assert len(self.index) == len(self.model)
        assert self.index.heap_size() >= len(self.model)


DeadlineIndexModel.TestCase.settings = settings(max_examples=200, stateful_step_count=40)
TestDeadlineIndexModel = DeadlineIndexModel.TestCase
