"""Erasures in the compiled core (core/, docs/semantics.md §9) against the Python engine: alerts, rows, counters."""

from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable, Iterable, Iterator
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
from streams.engine.events import InvalidEvent, decode_event
from streams.engine_compiled import CompiledReplayRun, replay_compiled
from streams.replay import ReplaySummary, replay
from streams.settings import Settings
from tests.engine.support import DAY, HOUR, SMALL, T0, line, make_settings
from tests.engine.test_compiled_core import USERS as LINE_USERS
from tests.engine.test_compiled_core import Outcome, assert_identical, recording, shuffled_within
from tests.engine.test_compiled_core import dirty_streams as dirty_line_streams
from tests.engine.test_erasure import erasure_lists
from tests.engine.test_properties import dirty_overrides, dirty_streams, lateness_values, to_lines

DIFFERENTIAL = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
SHIFTS = [0, 0, 1, -1, HOUR, -HOUR, -DAY, -3 * DAY, 5 * DAY, 400 * DAY]
# Where an erasure is given: before the first line (as `--erasures`), or just before line N (the service's case).
Schedule = list[tuple[int, Erasure]]
Erase = Callable[[str, int], list[Alert]]


# --- driving both engines with erasures --------------------------------------------------


def interleaved(lines: list[bytes], schedule: Schedule, erase: Erase) -> Iterator[bytes]:
    """`lines`, calling `erase(user, ts)` for each `(n, erasure)` of `schedule` just before line `n`.

    An erasure fires nothing, so `erase` must return no alerts.
    """
    for number, raw in enumerate([*lines, None]):
        for _, erasure in (item for item in schedule if item[0] == number):
            assert erase(erasure.user, erasure.ts) == []
        if raw is not None:
            yield raw


def split(schedule: Schedule) -> tuple[list[Erasure], Schedule]:
    """The erasures given before the first line (to the replay), and those given along the way."""
    return [e for n, e in schedule if n == 0], [(n, e) for n, e in schedule if n > 0]


def python_outcome(lines: list[bytes], config: Settings, schedule: Schedule) -> Outcome:
    """The Python engine through `streams.replay.replay`, its erasures given before line 1 or along the way."""
    upfront, along = split(schedule)
    summary = ReplaySummary()
    with recording() as engines:

        def erase(user: str, ts: int) -> list[Alert]:
            return engines[0].erase(user, ts)  # made before the replay reads its first line

        alerts = list(replay(interleaved(lines, along, erase), config, summary, erasures=upfront))
    (engine,) = engines
    return Outcome(
        alerts,
        summary,
        dict(engine.rows),
        dict(engine.timers._live),
        dict(engine.expiries._live),
        counters_of(engine),
    )


def counters_of(engine: RelationshipEngine) -> dict[str, int]:
    """What `compiled_outcome` reads from the core's summary, from the Python engine."""
    return {
        "redelivered": engine.stats.redelivered,
        "established_rows": engine.established_rows,
        "dormant_rows": engine.dormant_rows,
        "watermark": engine.watermark,
        "rows_erased": engine.stats.rows_erased,
        "erased_events": engine.stats.erased_events,
        "live_deadlines": len(engine.timers),
        "live_expiries": len(engine.expiries),
    }


def compiled_outcome(lines: list[bytes], config: Settings, schedule: Schedule, batch_lines: int) -> Outcome:
    """The compiled core through `replay_compiled`, `batch_lines` lines per call, erasures as `python_outcome`."""
    upfront, along = split(schedule)
    summary = ReplaySummary()
    run = CompiledReplayRun(config)
    source = interleaved(lines, along, run.erase)
    alerts = list(replay_compiled(source, config, summary, batch_lines, run, erasures=upfront))
    counts = run.counts()
    counters = {name: counts[name] for name in counters_of(RelationshipEngine(config))}
    return Outcome(alerts, summary, run.rows(), run.deadlines(), run.expiries(), counters)


# --- what the erasures look like -------------------------------------------------------------


def stream_points(lines: Iterable[bytes]) -> tuple[list[int], list[str]]:
    """The `ts` and users of the valid events among `lines`."""
    times, users = [], []
    for raw in lines:
        try:
            event = decode_event(raw.rstrip(b"\r\n"), Settings().max_record_bytes)
        except InvalidEvent:
            continue
        times.append(event.ts)
        users += [event.actor, event.target]
    return times, users


@st.composite
def schedules(draw: st.DrawFn, lines: list[bytes], whole: bool) -> Schedule:
    """Up to 4 erasures near the stream's times, some given again or earlier (nothing more to do),
    before the first line (`whole`: all of them) or just before any line (some applied at once)."""
    times, users = stream_points(lines)
    if not times:
        return []
    schedule: Schedule = []
    for _ in range(draw(st.integers(0, 4))):
        at = 0 if whole else draw(st.integers(0, len(lines)))
        roll = draw(st.integers(0, 7))
        if roll == 0 and schedule:  # the same erasure again, later
            schedule.append((draw(st.integers(at, len(lines))), draw(st.sampled_from(schedule))[1]))
            continue
        user = draw(st.sampled_from(users if roll > 1 else LINE_USERS))
        ts = draw(st.sampled_from(times)) + draw(st.sampled_from(SHIFTS))
        schedule.append((at, Erasure(user, ts)))
    return sorted(schedule, key=lambda item: item[0])


def check(lines: list[bytes], overrides: dict[str, Any], schedule: Schedule, batch_lines: int) -> Outcome:
    """The compiled outcome, after checking it is the Python engine's; returns the Python one."""
    config = make_settings(**overrides)
    expected = python_outcome(lines, config, schedule)
    assert_identical(compiled_outcome(lines, config, schedule, batch_lines), expected)
    return expected


# --- the properties ----------------------------------------------------------------------


@DIFFERENTIAL
@given(
    data=st.data(), stream=dirty_line_streams(), seed=st.integers(0, 2**32), span=st.sampled_from([0, 3, 20])
)
def test_dirty_lines_with_erasures_before_the_first_line_replay_identically(
    data: st.DataObject, stream: tuple[list[bytes], dict[str, Any]], seed: int, span: int
) -> None:
    lines, overrides = stream
    arrival = shuffled_within(lines, seed, span)
    schedule = data.draw(schedules(arrival, whole=True))
    batch_lines = data.draw(st.sampled_from([1, 3, 8192]))
    check(arrival, overrides, schedule, batch_lines)


@DIFFERENTIAL
@given(data=st.data(), stream=dirty_line_streams(), seed=st.integers(0, 2**32))
def test_erasures_given_between_lines_replay_identically(
    data: st.DataObject, stream: tuple[list[bytes], dict[str, Any]], seed: int
) -> None:
    """The service's case: erasures arrive along the way, some already reached (applied at once)."""
    lines, overrides = stream
    arrival = shuffled_within(lines, seed, 20)
    schedule = data.draw(schedules(arrival, whole=False))
    check(arrival, overrides, schedule, batch_lines=1)  # one line per call: erasures land between lines


@DIFFERENTIAL
@given(data=st.data(), overrides=dirty_overrides, lateness=lateness_values)
def test_the_erasure_suite_streams_replay_identically(
    data: st.DataObject, overrides: dict[str, Any], lateness: int
) -> None:
    """test_erasure.py's streams and erasures (late events around the erasures), through both engines."""
    arrival = data.draw(dirty_streams(lateness))
    erasures = data.draw(erasure_lists(arrival))
    check(to_lines(arrival), {**overrides, "allowed_lateness_ms": lateness}, [(0, e) for e in erasures], 4)


def test_the_generated_erasures_reach_the_interesting_cases() -> None:
    seen: Counter[str] = Counter()

    @settings(max_examples=150, derandomize=True, database=None, deadline=None)
    @given(data=st.data(), stream=dirty_line_streams(), seed=st.integers(0, 2**32), whole=st.booleans())
    def collect(
        data: st.DataObject, stream: tuple[list[bytes], dict[str, Any]], seed: int, whole: bool
    ) -> None:
        lines, overrides = stream
        arrival = shuffled_within(lines, seed, 20)
        schedule = data.draw(schedules(arrival, whole=whole))
        outcome = check(arrival, overrides, schedule, batch_lines=1)
        without = check(arrival, overrides, [], batch_lines=1)
        erasures = [erasure for _, erasure in schedule]
        lateness = make_settings(**overrides).allowed_lateness_ms
        watermarks = [max(stream_points(arrival[:n])[0], default=T0 - 10**15) - lateness for n, _ in schedule]
        seen.update(
            {
                "rows erased": outcome.summary["rows_erased"] > 0,
                "late events dropped": outcome.summary["erased_events"] > 0,
                "alerts changed": outcome.alerts != without.alerts,
                "rows naming the user as contact erased": any(
                    key[1] == e.user and key not in outcome.rows for e in erasures for key in without.rows
                ),
                "erasure given again": len(set(erasures)) < len(erasures),
                "erasure reached when given": any(
                    n > 0 and e.ts <= mark for (n, e), mark in zip(schedule, watermarks, strict=True)
                ),
            }
        )

    collect()
    assert seen["rows erased"] >= 40, seen
    assert seen["late events dropped"] >= 20, seen
    assert seen["alerts changed"] >= 15, seen
    assert seen["rows naming the user as contact erased"] >= 15, seen
    assert seen["erasure given again"] >= 5, seen
    assert seen["erasure reached when given"] >= 20, seen


# --- hand-made cases ------------------------------------------------------------------------


def talk(ann: str, bob: str, days: list[int]) -> list[bytes]:
    """`ann` and `bob` both ways on each of `days`: one touch a day."""
    return [
        line(f"{ann}{bob}{day}{half}", kind, a, b, T0 + day * DAY + half)
        for day in days
        for half, (kind, a, b) in enumerate([("mention", ann, bob), ("reply", bob, ann)])
    ]


def test_an_erasure_at_a_deadline_wins_the_tie_and_deadlines_before_it_fire() -> None:
    lines = (
        talk("ann", "bob", [0, 1])
        + talk("ann", "cid", [0, 1])
        + [line("end", "like", "x", "y", T0 + 20 * DAY)]
    )
    deadline = T0 + DAY + 1 + 3 * DAY  # the reply's `ts` plus 3 x the one-day gap
    schedule = [(0, Erasure("bob", deadline)), (0, Erasure("cid", deadline + 1))]
    outcome = check(lines, SMALL, schedule, batch_lines=2)
    fired = sorted((a["owner_id"], a["contact_id"]) for a in outcome.alerts)
    assert ("ann", "bob") not in fired  # its deadline is the erasure's ts: the erasure goes first
    assert fired == [("ann", "cid"), ("cid", "ann")]  # their deadline is one ms before cid's erasure
    assert outcome.summary["rows_erased"] == 4
    assert set(outcome.rows) == {("x", "y"), ("y", "x")}


def test_every_event_naming_the_user_after_the_erasure_is_dropped_once_per_event() -> None:
    erased_at = T0 + 2 * DAY
    lines = [
        *talk("ann", "bob", [0, 1, 3]),  # day 3's two events come after the erasure
        line("late", "like", "ann", "bob", erased_at - 1),
        line("new", "like", "bob", "ann", erased_at),
        line("other", "like", "ann", "cat", erased_at),
    ]
    outcome = check(lines, SMALL, [(0, Erasure("bob", erased_at)), (5, Erasure("bob", erased_at))], 1)
    assert outcome.summary["erased_events"] == 4  # one per event, not per half
    assert outcome.summary["rows_erased"] == 2
    assert set(outcome.rows) == {("ann", "cat"), ("cat", "ann")}
    assert outcome.summary["late"] == 1  # "other", late and applied


def test_an_erasure_given_exactly_at_the_watermark_applies_at_once() -> None:
    watermark = T0 + 3 * DAY + 1  # the last line's ts (lateness 0); its own updates at it are still held
    lines = [*talk("ann", "bob", [0, 1, 3]), line("late", "like", "ann", "bob", T0 + 2 * DAY)]
    outcome = check(lines, SMALL, [(6, Erasure("bob", watermark))], batch_lines=1)
    # day 3's mention was applied before it (its rows deleted); the held reply at its ts and
    # the late event after it are dropped
    assert outcome.summary["erased_events"] == 2
    assert outcome.summary["late"] == 0
    assert outcome.summary["rows_erased"] == 2
    assert outcome.rows == {}


def test_an_erasure_past_the_last_event_applies_at_the_end_and_fires_nothing() -> None:
    outcome = check(talk("ann", "bob", [0, 1]), SMALL, [(0, Erasure("ann", T0 + 365 * DAY))], batch_lines=3)
    assert outcome.alerts == []
    assert outcome.rows == {}
    assert outcome.counters["established_rows"] == 0
    assert outcome.summary["rows_erased"] == 2


# --- the command --------------------------------------------------------------------------


def test_cli_compiled_replay_with_erasures_writes_the_python_engines_bytes(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    events = list(collegemsg_events(COLLEGEMSG))[:40_000]
    busiest = Counter(e["actor_id"] for e in events).most_common(6)
    rng = random.Random(17)
    erasures = [
        {"user_id": user, "ts": rng.choice(events)["ts"] + rng.choice([0, 1, -HOUR])} for user, _ in busiest
    ]
    erasures.append(erasures[0])  # given twice: counted as given, applied once
    lines = shuffled_within([orjson.dumps(e) + b"\n" for e in events], 3, 40)  # late arrivals
    lines += lines[:3_000]  # the start delivered again at the end: copies, late, some from erased users
    events_path, erasures_path = tmp_path / "events.jsonl", tmp_path / "erasures.jsonl"
    events_path.write_bytes(b"".join(lines) + b"garbage\n")
    erasures_path.write_bytes(b"".join(orjson.dumps(e) + b"\n" for e in erasures))
    outputs = []
    for engine in ("python", "compiled"):
        assert main(["replay", "--engine", engine, "--erasures", str(erasures_path), str(events_path)]) == 0
        captured = capsysbinary.readouterr()
        summary = orjson.loads(captured.err)
        del summary["seconds"], summary["events_per_second"]
        outputs.append((captured.out, summary))
    assert outputs[0] == outputs[1]
    alerts, summary = outputs[1]
    assert alerts.count(b"\n") > 100
    assert summary["erasures"] == 7
    assert summary["rows_erased"] > 100
    assert summary["erased_events"] > 100
    assert summary["duplicates"] + summary["late"] > 1_000
    assert summary["invalid"] == {"not_json": 1}
    erased_at = {e["user_id"]: e["ts"] for e in erasures}
    for alert in map(orjson.loads, alerts.splitlines()):
        # a dormancy from before the erasure, or a row started afresh at or after it
        for user in {alert["owner_id"], alert["contact_id"]} & erased_at.keys():
            if alert["kind"] == "dormant":
                before = alert["dormant_since"] < erased_at[user]
                assert before or alert["last_interaction_at"] >= erased_at[user], alert
