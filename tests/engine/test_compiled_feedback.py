"""Feedback in the compiled core (core/, docs/semantics.md §11) against the Python engine: alerts, rows, state."""

from __future__ import annotations

import itertools
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from streams.__main__ import main
from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.erasures import Erasure
from streams.engine.feedback import Action, Feedback, HeldFeedback, RowFeedback
from streams.engine_compiled import CompiledReplayRun, replay_compiled
from streams.replay import ReplaySummary, replay
from streams.settings import Settings
from tests.engine.support import DAY, HOUR, SMALL, T0, line, make_settings
from tests.engine.test_compiled_core import USERS as LINE_USERS
from tests.engine.test_compiled_core import Outcome, assert_identical, recording, shuffled_within
from tests.engine.test_compiled_core import dirty_streams as dirty_line_streams
from tests.engine.test_compiled_erasure import SHIFTS, stream_points, talk

DIFFERENTIAL = settings(max_examples=120, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RowKey = tuple[str, str]
Control = Feedback | Erasure
# Where each feedback record (or erasure) is given: before the first line (as `--feedback`), or just
# before line N (the service's case: some already reached, applied at once as of the watermark).
Schedule = list[tuple[int, Control]]


class FeedbackOutcome(Outcome):
    """`Outcome` plus what feedback left: each row's feedback state and the snoozes still to end."""

    def __init__(
        self, outcome: Outcome, feedback: dict[RowKey, RowFeedback], snoozes: dict[RowKey, int]
    ) -> None:
        super().__init__(
            [], ReplaySummary(), outcome.rows, outcome.deadlines, outcome.expiries, outcome.counters
        )
        self.alerts, self.summary = outcome.alerts, outcome.summary
        self.feedback = feedback
        self.snoozes = snoozes


def held(item: Feedback) -> HeldFeedback:
    """`item` as the Python engine takes it (what `streams.replay.replay` does with `--feedback`)."""
    return HeldFeedback(item.ts, item.owner, item.contact, item.action, item.until or 0)


def split(schedule: Schedule) -> tuple[list[Erasure], list[Feedback], Schedule]:
    """The erasures and feedback given before the first line, and what is given along the way."""
    upfront = [item for n, item in schedule if n == 0]
    return (
        [item for item in upfront if isinstance(item, Erasure)],
        [item for item in upfront if isinstance(item, Feedback)],
        [(n, item) for n, item in schedule if n > 0],
    )


def interleaved(
    lines: list[bytes], along: Schedule, give: Any, erase: Any, alerts: list[Alert]
) -> Iterator[bytes]:
    """`lines`, giving each item of `along` just before its line; the alerts it releases go to `alerts`."""
    for number, raw in enumerate([*lines, None]):
        for _, item in (entry for entry in along if entry[0] == number):
            if isinstance(item, Erasure):
                assert erase(item.user, item.ts) == []
            else:
                alerts += give(item)
        if raw is not None:
            yield raw


def python_outcome(lines: list[bytes], config: Settings, schedule: Schedule) -> FeedbackOutcome:
    """The Python engine through `streams.replay.replay`, fed the schedule up front and along the way."""
    erasures, feedback, along = split(schedule)
    summary = ReplaySummary()
    alerts: list[Alert] = []
    with recording() as engines:

        def give(item: Feedback) -> list[Alert]:
            return engines[0].give_feedback(held(item))  # made before the replay reads its first line

        def erase(user: str, ts: int) -> list[Alert]:
            return engines[0].erase(user, ts)

        source = interleaved(lines, along, give, erase, alerts)
        for alert in replay(source, config, summary, erasures=erasures, feedback=feedback):
            alerts.append(alert)
    (engine,) = engines
    snoozes = dict(engine.snooze_ends._live)
    # the invariant the compiled core relies on: a row's live snooze end is its `snoozed_until`
    assert snoozes == {k: e.snoozed_until for k, e in engine.feedback.items() if e.snoozed_until is not None}
    outcome = Outcome(
        alerts,
        summary,
        dict(engine.rows),
        dict(engine.timers._live),
        dict(engine.expiries._live),
        counters_of(engine),
    )
    return FeedbackOutcome(outcome, dict(engine.feedback), snoozes)


def counters_of(engine: RelationshipEngine) -> dict[str, int]:
    """What `compiled_outcome` reads from the core's summary, from the Python engine."""
    return {
        "redelivered": engine.stats.redelivered,
        "established_rows": engine.established_rows,
        "dormant_rows": engine.dormant_rows,
        "watermark": engine.watermark,
        "rows_erased": engine.stats.rows_erased,
        "feedback_applied": engine.stats.feedback,
        "withheld": engine.stats.withheld,
        "live_deadlines": len(engine.timers),
    }


def compiled_outcome(
    lines: list[bytes], config: Settings, schedule: Schedule, batch_lines: int
) -> FeedbackOutcome:
    """The compiled core through `replay_compiled`, `batch_lines` lines per call, fed as `python_outcome`."""
    erasures, feedback, along = split(schedule)
    summary = ReplaySummary()
    run = CompiledReplayRun(config)
    alerts: list[Alert] = []
    source = interleaved(lines, along, run.give_feedback, run.erase, alerts)
    for alert in replay_compiled(
        source, config, summary, batch_lines, run, erasures=erasures, feedback=feedback
    ):
        alerts.append(alert)
    counts = run.counts()
    counters = {name: counts[name] for name in counters_of(RelationshipEngine(config))}
    outcome = Outcome(alerts, summary, run.rows(), run.deadlines(), run.expiries(), counters)
    state = run.feedback()
    snoozes = {key: entry.snoozed_until for key, entry in state.items() if entry.snoozed_until is not None}
    return FeedbackOutcome(outcome, state, snoozes)


def check(
    lines: list[bytes], overrides: dict[str, Any], schedule: Schedule, batch_lines: int
) -> FeedbackOutcome:
    """The compiled outcome, after checking it is the Python engine's; returns the Python one."""
    config = make_settings(**overrides)
    expected = python_outcome(lines, config, schedule)
    actual = compiled_outcome(lines, config, schedule, batch_lines)
    assert_identical(actual, expected)
    assert actual.feedback == expected.feedback
    assert actual.snoozes == expected.snoozes
    return expected


# --- what the feedback looks like ------------------------------------------------------------------


@st.composite
def schedules(draw: st.DrawFn, lines: list[bytes], whole: bool) -> Schedule:
    """Up to 8 feedback records (and now and then an erasure) near the stream's times, on its rows,
    some given again; before the first line (`whole`: all of them) or just before any line."""
    times, users = stream_points(lines)
    if not times:
        return []
    pairs = list(zip(users[::2], users[1::2], strict=True))
    schedule: Schedule = []
    for _ in range(draw(st.integers(0, 8))):
        at = 0 if whole else draw(st.integers(0, len(lines)))
        roll = draw(st.integers(0, 11))
        if roll == 0 and schedule:  # the same record again
            schedule.append((draw(st.integers(at, len(lines))), draw(st.sampled_from(schedule))[1]))
            continue
        if roll >= 9:  # silenced from a row's last event before a silence of 10+ days, lifted days later
            owner, contact = draw(st.sampled_from(pairs))
            mine = sorted(t for t, pair in zip(times, pairs, strict=True) if {*pair} == {owner, contact})
            quiet = [
                t
                for t, after in zip(mine, [*mine[1:], None], strict=True)
                if after is None or after > t + 10 * DAY
            ]
            start, later = draw(st.sampled_from(quiet)), draw(st.sampled_from([3, 5, 9, 12])) * DAY
            if draw(st.booleans()):
                schedule.append((at, Feedback(owner, contact, Action.SNOOZE, start + later, start)))
            else:
                schedule.append((at, Feedback(owner, contact, Action.MUTE, None, start)))
                schedule.append((at, Feedback(owner, contact, Action.UNMUTE, None, start + later)))
            continue
        ts = draw(st.sampled_from(times)) + draw(st.sampled_from(SHIFTS))
        if roll == 1:
            schedule.append((at, Erasure(draw(st.sampled_from(users)), ts)))
            continue
        if roll == 2:  # rows that may not exist
            owner, contact = draw(st.sampled_from(LINE_USERS)), draw(st.sampled_from(users))
        else:  # the rows of the stream, either way
            owner, contact = draw(st.sampled_from(pairs))
            if draw(st.booleans()):
                owner, contact = contact, owner
        action = draw(st.sampled_from([Action.MUTE, Action.UNMUTE, Action.UNMUTE, *[Action.SNOOZE] * 3]))
        until = None
        if action is Action.SNOOZE:  # days on, past the end, near a time of the stream, or at/before its ts
            ahead = [ts + days * DAY for days in (2, 5, 9, 20, 400)]
            until = draw(st.sampled_from([*ahead, *times, ts, ts - HOUR])) + draw(st.sampled_from(SHIFTS))
        schedule.append((at, Feedback(owner, contact, action, until, ts)))
    return sorted(schedule, key=lambda item: item[0])


@st.composite
def fading_friends(draw: st.DrawFn) -> tuple[list[bytes], list[tuple[int, Feedback]]]:
    """Friends talking in bursts of days with long silences (dormant alerts), and feedback on each
    silence: a snooze, a mute lifted days later, or a mute; `(line number, feedback)` pairs."""
    pairs = draw(
        st.lists(st.sampled_from(list(itertools.combinations(LINE_USERS[:5], 2))), min_size=1, max_size=3)
    )
    lines: list[bytes] = []
    feedback: list[tuple[int, Feedback]] = []
    for ann, bob in pairs:
        for start in draw(st.lists(st.integers(0, 150), min_size=1, max_size=3, unique=True)):
            days = list(range(start, start + draw(st.integers(2, 4))))
            lines += talk(ann, bob, days)
            owner, contact = (ann, bob) if draw(st.booleans()) else (bob, ann)
            quiet = T0 + days[-1] * DAY + draw(st.sampled_from([0, 1, HOUR]))
            later = quiet + draw(st.integers(2, 15)) * DAY
            at = draw(st.integers(0, 40))
            roll = draw(st.integers(0, 3))
            if roll == 0:
                feedback.append((at, Feedback(owner, contact, Action.SNOOZE, later, quiet)))
            elif roll == 1:
                feedback.append((at, Feedback(owner, contact, Action.MUTE, None, quiet)))
                feedback.append((at, Feedback(owner, contact, Action.UNMUTE, None, later)))
            elif roll == 2:
                feedback.append((at, Feedback(owner, contact, Action.MUTE, None, quiet)))
    lines.append(line("end", "like", "x", "y", T0 + 200 * DAY))
    return lines, feedback


# --- the properties ----------------------------------------------------------------------------------


@DIFFERENTIAL
@given(
    data=st.data(), stream=dirty_line_streams(), seed=st.integers(0, 2**32), span=st.sampled_from([0, 3, 20])
)
def test_dirty_lines_with_feedback_before_the_first_line_replay_identically(
    data: st.DataObject, stream: tuple[list[bytes], dict[str, Any]], seed: int, span: int
) -> None:
    lines, overrides = stream
    arrival = shuffled_within(lines, seed, span)
    schedule = data.draw(schedules(arrival, whole=True))
    check(arrival, overrides, schedule, data.draw(st.sampled_from([1, 3, 8192])))


@DIFFERENTIAL
@given(data=st.data(), stream=dirty_line_streams(), seed=st.integers(0, 2**32))
def test_feedback_given_between_lines_replays_identically(
    data: st.DataObject, stream: tuple[list[bytes], dict[str, Any]], seed: int
) -> None:
    """The service's case: feedback arrives along the way, some already reached (applied as of the watermark)."""
    lines, overrides = stream
    arrival = shuffled_within(lines, seed, 20)
    schedule = data.draw(schedules(arrival, whole=False))
    check(arrival, overrides, schedule, batch_lines=1)  # one line per call: feedback lands between lines


@DIFFERENTIAL
@given(
    stream=fading_friends(),
    seed=st.integers(0, 2**32),
    whole=st.booleans(),
    lateness=st.sampled_from([0, DAY]),
)
def test_feedback_on_fading_friends_replays_identically(
    stream: tuple[list[bytes], list[tuple[int, Feedback]]], seed: int, whole: bool, lateness: int
) -> None:
    """Released alerts: snoozes ending and mutes lifted while rows are dormant, in order, some late."""
    lines, feedback = stream
    arrival = shuffled_within(lines, seed, 6)
    schedule: Schedule = sorted(
        ((0 if whole else min(n, len(arrival)), f) for n, f in feedback), key=lambda x: x[0]
    )
    check(arrival, {**SMALL, "allowed_lateness_ms": lateness}, schedule, batch_lines=1)


def test_the_generated_feedback_reaches_the_interesting_cases() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=100, derandomize=True, database=None, deadline=None)
    @given(data=st.data(), stream=dirty_line_streams(), seed=st.integers(0, 2**32), whole=st.booleans())
    def collect(
        data: st.DataObject, stream: tuple[list[bytes], dict[str, Any]], seed: int, whole: bool
    ) -> None:
        lines, overrides = stream
        arrival = shuffled_within(lines, seed, 20)
        schedule = data.draw(schedules(arrival, whole=whole))
        outcome = check(arrival, overrides, schedule, batch_lines=1)
        without = check(arrival, overrides, [], batch_lines=1)
        lateness = make_settings(**overrides).allowed_lateness_ms
        marks = [max(stream_points(arrival[:n])[0], default=T0 - 10**15) - lateness for n, _ in schedule]
        seen.update(
            {
                "alerts withheld": outcome.summary["withheld"] > 0,
                "alerts changed": outcome.alerts != without.alerts,
                "snooze still running at the end": bool(outcome.snoozes),
                "feedback reached when given": any(
                    n > 0 and isinstance(item, Feedback) and item.ts <= mark
                    for (n, item), mark in zip(schedule, marks, strict=True)
                ),
                "feedback and an erasure": any(isinstance(item, Erasure) for _, item in schedule)
                and any(isinstance(item, Feedback) for _, item in schedule),
            }
        )

    @settings(max_examples=60, derandomize=True, database=None, deadline=None)
    @given(stream=fading_friends(), seed=st.integers(0, 2**32), whole=st.booleans())
    def collect_fading(
        stream: tuple[list[bytes], list[tuple[int, Feedback]]], seed: int, whole: bool
    ) -> None:
        lines, feedback = stream
        arrival = shuffled_within(lines, seed, 6)
        schedule: Schedule = sorted(((0 if whole else n, f) for n, f in feedback), key=lambda x: x[0])
        outcome = check(arrival, SMALL, schedule, batch_lines=1)
        released = [alert for alert in outcome.alerts if "released_at" in alert]
        seen.update(
            {
                "fading: alert released by a snooze end": any(
                    f.action is Action.SNOOZE and a["released_at"] == f.until
                    for a in released
                    for _, f in feedback
                    if (f.owner, f.contact) == (a["owner_id"], a["contact_id"])
                ),
                "fading: alert released by an unmute": any(
                    f.action is Action.UNMUTE and a["released_at"] == f.ts
                    for a in released
                    for _, f in feedback
                    if (f.owner, f.contact) == (a["owner_id"], a["contact_id"])
                ),
                "fading: revival withheld": outcome.summary["withheld"]
                > sum(a["kind"] == "dormant" for a in released),
            }
        )

    collect()
    collect_fading()
    # the dirty streams' rows seldom fade and stay silent: the fading friends release alerts
    assert seen["alerts withheld"] >= 2, seen
    assert seen["alerts changed"] >= 4, seen
    assert seen["snooze still running at the end"] >= 10, seen
    assert seen["feedback reached when given"] >= 10, seen
    assert seen["feedback and an erasure"] >= 10, seen
    assert seen["fading: alert released by a snooze end"] >= 6, seen
    assert seen["fading: alert released by an unmute"] >= 8, seen
    assert seen["fading: revival withheld"] >= 15, seen


# --- hand-made cases -----------------------------------------------------------------------------------


def mute(ts: int, owner: str = "ann", contact: str = "bob") -> Feedback:
    return Feedback(owner, contact, Action.MUTE, None, ts)


def snooze(ts: int, until: int, owner: str = "ann", contact: str = "bob") -> Feedback:
    return Feedback(owner, contact, Action.SNOOZE, until, ts)


# ann and bob talk on days 0 and 1 (one touch a day, threshold 3 days): both rows fade at DEADLINE
DEADLINE = T0 + DAY + 1 + 3 * DAY
TICKS = [line(f"t{day}", "like", "x", "y", T0 + day * DAY) for day in (6, 9, 30)]


def test_snoozes_ending_at_one_time_release_in_owner_then_contact_order() -> None:
    lines = talk("ann", "bob", [0, 1]) + talk("ann", "cid", [0, 1]) + TICKS
    until = T0 + 8 * DAY
    schedule: Schedule = [
        (0, snooze(T0, until, "cid", "ann")),
        (0, snooze(T0, until, "ann", "cid")),
        (0, snooze(T0, until, "bob", "ann")),
        (0, snooze(T0, until, "ann", "bob")),
    ]
    outcome = check(lines, SMALL, schedule, batch_lines=2)
    released = [
        (a["owner_id"], a["contact_id"], a["released_at"]) for a in outcome.alerts if "released_at" in a
    ]
    assert released == [
        ("ann", "bob", until),
        ("ann", "cid", until),
        ("bob", "ann", until),
        ("cid", "ann", until),
    ]
    assert outcome.summary["withheld"] == 4


def test_feedback_at_a_deadline_applies_before_it_fires_and_an_erasure_before_both() -> None:
    lines = talk("ann", "bob", [0, 1]) + talk("cid", "dan", [0, 1]) + TICKS
    schedule: Schedule = [
        (0, mute(DEADLINE)),  # at the deadline: applied first, so ann's dormant alert is withheld
        (0, Erasure("dan", DEADLINE)),
        (0, mute(DEADLINE, "dan", "cid")),  # names a user erased just before it: dropped
    ]
    outcome = check(lines, SMALL, schedule, batch_lines=1)
    fired = [(a["owner_id"], a["contact_id"]) for a in outcome.alerts]
    assert fired == [("bob", "ann")]
    assert outcome.counters["feedback_applied"] == 1
    assert set(outcome.feedback) == {("ann", "bob")}


def test_feedback_reached_when_given_applies_as_of_the_watermark_and_releases_at_once() -> None:
    lines = talk("ann", "bob", [0, 1]) + TICKS
    # snoozed from the start past the deadline; lifted (a snooze until its own ts) once day 9 is read
    schedule: Schedule = [(0, snooze(T0, T0 + 20 * DAY)), (6, snooze(T0 + 5 * DAY, T0 + 5 * DAY))]
    outcome = check(lines, SMALL, schedule, batch_lines=1)
    released = [a for a in outcome.alerts if "released_at" in a]
    assert [(a["owner_id"], a["released_at"], a["detected_at"]) for a in released] == [
        ("ann", T0 + 9 * DAY, T0 + 9 * DAY)  # the watermark when the lift was given
    ]


def test_the_compiled_core_refuses_an_unknown_action() -> None:
    run = CompiledReplayRun(make_settings(**SMALL))
    with pytest.raises(ValueError, match="unknown feedback action 7"):
        run._core.give_feedback("ann", "bob", 7, 0, T0)


# --- the command -------------------------------------------------------------------------------------


def test_cli_compiled_replay_with_feedback_writes_the_python_engines_bytes(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    events = list(collegemsg_events(COLLEGEMSG))
    outcome = python_outcome([orjson.dumps(e) + b"\n" for e in events], make_settings(), [])
    dormant = [a for a in outcome.alerts if a["kind"] == "dormant"][:300]
    assert len(dormant) == 300
    feedback = []
    for number, alert in enumerate(dormant):
        row = {
            "owner_id": alert["owner_id"],
            "contact_id": alert["contact_id"],
            "ts": alert["last_interaction_at"],
        }
        if number % 3 == 0:
            feedback.append({**row, "action": "mute"})
        elif number % 3 == 1:  # ends 20 days after the row fell dormant: released unless it came back
            feedback.append({**row, "action": "snooze", "until": alert["dormant_since"] + 20 * DAY})
        else:
            feedback += [
                {**row, "action": "mute"},
                {**row, "action": "unmute", "ts": alert["dormant_since"] + DAY},
            ]
    events_path, feedback_path = tmp_path / "events.jsonl", tmp_path / "feedback.jsonl"
    lines = shuffled_within([orjson.dumps(e) + b"\n" for e in events], 5, 40)  # late arrivals
    events_path.write_bytes(b"".join(lines))
    feedback_path.write_bytes(b"".join(orjson.dumps(f) + b"\n" for f in feedback))
    outputs = []
    for engine in ("python", "compiled"):
        assert main(["replay", "--engine", engine, "--feedback", str(feedback_path), str(events_path)]) == 0
        captured = capsysbinary.readouterr()
        summary = orjson.loads(captured.err)
        del summary["seconds"], summary["events_per_second"]
        outputs.append((captured.out, summary))
    assert outputs[0] == outputs[1]
    alerts, summary = outputs[1]
    assert summary["feedback"] == len(feedback)
    assert summary["withheld"] > 200
    assert alerts.count(b"released_at") > 50
