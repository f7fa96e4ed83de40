"""The compiled core (core/, `streams_core`) against the reference: alerts, summaries, rows, decoding."""

from __future__ import annotations

import itertools
import json
import random
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any
from unittest import mock

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from streams_core import decode_fast_path

import streams.replay
from streams.__main__ import main
from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.events import INTERACTION_TYPES, InvalidEvent, decode_event
from streams.engine.row import Row
from streams.engine_compiled import CompiledReplayRun, core_settings, reference_decoder, replay_compiled
from streams.generate.mentions import MentionConfig, mention_lines
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings
from tests.engine.support import DAY, HOUR, MINUTE, T0, make_settings

USERS = [f"u{i}" for i in range(6)] + ["ü", "\U0001f600", "a" * 128]
ROW_TTLS = [0, 0, 3 * DAY, 12 * DAY, 40 * DAY]
DIFFERENTIAL = settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
DECODER = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
RowKey = tuple[str, str]

# --- driving both engines ------------------------------------------------------------


class RecordingEngine(RelationshipEngine):
    """The reference engine, remembered so a test can read its rows after a replay."""

    made: list[RecordingEngine] = []

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        RecordingEngine.made.append(self)


@contextmanager
def recording() -> Iterator[list[RecordingEngine]]:
    """Patch the replay's engine class; yields the list of engines made meanwhile."""
    RecordingEngine.made = []
    with mock.patch.object(streams.replay, "RelationshipEngine", RecordingEngine):
        yield RecordingEngine.made


class Outcome:
    """Everything a replay produced that must be identical between the engines."""

    def __init__(
        self,
        alerts: list[Alert],
        summary: ReplaySummary,
        rows: dict[RowKey, Row],
        deadlines: dict[RowKey, int],
        expiries: dict[RowKey, int],
        counters: dict[str, int],
    ) -> None:
        self.alerts = alerts
        self.summary = {
            k: v for k, v in summary.as_dict().items() if k not in {"seconds", "events_per_second"}
        }
        self.rows = rows
        self.deadlines = deadlines
        self.expiries = expiries
        self.counters = counters


def reference_outcome(lines: list[bytes], config: Settings) -> Outcome:
    """The Python engine through `streams.replay.replay`."""
    summary = ReplaySummary()
    with recording() as engines:
        alerts = list(replay(lines, config, summary))
    (engine,) = engines
    counters = {
        "redelivered": engine.stats.redelivered,
        "established_rows": engine.established_rows,
        "dormant_rows": engine.dormant_rows,
        "watermark": engine.watermark,
    }
    expiries = dict(engine.expiries._live)
    return Outcome(alerts, summary, dict(engine.rows), dict(engine.timers._live), expiries, counters)


def compiled_outcome(lines: list[bytes], config: Settings, batch_lines: int = 8192) -> Outcome:
    """The compiled core through `replay_compiled`, `batch_lines` lines per call."""
    summary = ReplaySummary()
    run = CompiledReplayRun(config)
    alerts = list(replay_compiled(lines, config, summary, batch_lines=batch_lines, run=run))
    counts = run.counts()
    counters = {
        name: counts[name] for name in ("redelivered", "established_rows", "dormant_rows", "watermark")
    }
    return Outcome(alerts, summary, run.rows(), run.deadlines(), run.expiries(), counters)


def assert_identical(actual: Outcome, expected: Outcome) -> None:
    """Same alerts in the same order (floats exact), summary counts, rows, deadlines, expiries and counters."""
    assert len(actual.alerts) == len(expected.alerts)
    for got, want in zip(actual.alerts, expected.alerts, strict=True):
        assert list(got) == list(want)  # same keys in the same order
        assert got == want
        assert got["strength"].hex() == want["strength"].hex()
        assert orjson.dumps(got) == orjson.dumps(want)
    assert actual.summary == expected.summary
    assert actual.rows.keys() == expected.rows.keys()
    for key, row in expected.rows.items():
        assert actual.rows[key] == row, key  # Row equality: identical serialised bytes
        assert actual.rows[key].strength.hex() == row.strength.hex()
    assert actual.deadlines == expected.deadlines
    assert actual.expiries == expected.expiries
    assert actual.counters == expected.counters


# --- random streams --------------------------------------------------------------------

GARBAGE = [
    b"",
    b"   ",
    b"\t\x0b\x0c",
    b"not json",
    b"\xff\xfe",
    b"[1, 2]",
    b"{}",
    b'{"id": "g1"}',
    b'{"id":"g","type":"like","actor_id":"u1","target_id":"u2","ts":"1600000000000"}',
    b'{"id":"g","type":"poke","actor_id":"u1","target_id":"u2","ts":1600000000000}',
    b'{"id":"","type":"like","actor_id":"u1","target_id":"u2","ts":1600000000000}',
    b'{"id":"g","type":"like","actor_id":"u1","target_id":"u2","ts":4102444800000}',
    b'{"id":"g","type":"like","actor_id":"u1","target_id":"u2","ts":NaN}',
    b'\xef\xbb\xbf{"id":"g","type":"like","actor_id":"u1","target_id":"u2","ts":1600000000000}',
]


def spell(event: dict[str, Any], style: int) -> bytes:
    """One valid event in one of several JSON spellings (some take the fast path, some the reference)."""
    if style == 0:
        return orjson.dumps(event)
    if style == 1:
        return json.dumps(event, ensure_ascii=True, indent=1).encode().replace(b"\n", b" ")
    if style == 2:
        return orjson.dumps({**event, "ts": float(event["ts"])})
    if style == 3:
        return orjson.dumps({"note": [1, {"x": None}], **event, "extra": "é"})
    return json.dumps(event, separators=(", ", " : ")).encode() + b"\r"


@st.composite
def dirty_streams(draw: st.DrawFn) -> tuple[list[bytes], dict[str, Any]]:
    """Up to 80 lines: events on a few friend pairs, late arrivals, copies, self-interactions, garbage."""
    clusters = draw(st.lists(st.integers(0, 120), min_size=1, max_size=6))
    pairs = list(itertools.combinations(USERS, 2))
    friends = draw(st.lists(st.sampled_from(pairs), min_size=1, max_size=4))
    lines: list[bytes] = []
    sent: list[dict[str, Any]] = []
    for number in range(draw(st.integers(0, 80))):
        roll = draw(st.integers(0, 19))
        if roll == 0:
            lines.append(draw(st.sampled_from(GARBAGE)))
            continue
        if roll <= 2 and sent:  # a copy of an earlier event, within or beyond the dedup window
            lines.append(spell(draw(st.sampled_from(sent)), draw(st.integers(0, 4))))
            continue
        day = draw(st.sampled_from(clusters)) + draw(st.integers(0, 3))
        minute = draw(st.sampled_from([0, 0, 0, 1, 30, 59]))
        ts = T0 + day * DAY + draw(st.integers(0, 23)) * HOUR + minute * MINUTE
        if roll == 3:
            actor = target = draw(st.sampled_from(USERS))
        else:
            actor, target = draw(st.sampled_from(friends))
            if draw(st.booleans()):
                actor, target = target, actor
        event_id = f"e{number:02d}" if roll != 4 or not sent else draw(st.sampled_from(sent))["id"]
        event = {"id": event_id, "type": draw(st.sampled_from(INTERACTION_TYPES)), "actor_id": actor}
        event.update(target_id=target, ts=ts)
        sent.append(event)
        lines.append(spell(event, draw(st.sampled_from([0, 0, 0, 1, 2, 3, 4]))))
    overrides = draw(
        st.fixed_dictionaries(
            {
                "min_touches": st.integers(1, 3),
                "require_mutual": st.booleans(),
                "min_silence_ms": st.sampled_from([DAY, 2 * DAY, 3 * DAY]),
                "max_silence_ms": st.sampled_from([5 * DAY, 10 * DAY]),
                "touch_merge_ms": st.sampled_from([0, HOUR]),
                "k": st.sampled_from([1.5, 2.0, 3.0]),
                "gap_window": st.integers(1, 8),
                "half_life_ms": st.sampled_from([7 * DAY, 30 * DAY, 12_345_677]),
                "weight_reply": st.sampled_from([3.0, 0.1]),
                "dedup_window_ms": st.sampled_from([0, HOUR, DAY, 5 * DAY]),
                "allowed_lateness_ms": st.sampled_from([0, 1, HOUR, DAY, 3 * DAY, 20 * DAY]),
            }
        )
    )
    # Settings refuses a row_ttl within the de-duplication window
    ttls = [ttl for ttl in ROW_TTLS if ttl == 0 or ttl > overrides["dedup_window_ms"]]
    overrides["row_ttl_ms"] = draw(st.sampled_from(ttls))
    overrides["rule"] = draw(
        st.sampled_from(["v1", "adaptive"])
    )  # drawn last: the draws above stay as they were
    return lines, overrides


def shuffled_within(lines: list[bytes], seed: int, span: int) -> list[bytes]:
    """`lines` with each moved by up to `span` places (late arrivals beyond any lateness)."""
    rng = random.Random(seed)
    keyed = sorted(range(len(lines)), key=lambda i: i + rng.uniform(0, span))
    return [lines[i] for i in keyed]


@DIFFERENTIAL
@given(stream=dirty_streams(), seed=st.integers(0, 2**32), span=st.sampled_from([0, 3, 20]))
def test_random_dirty_streams_replay_identically(
    stream: tuple[list[bytes], dict[str, Any]], seed: int, span: int
) -> None:
    lines, overrides = stream
    config = make_settings(**overrides)
    arrival = shuffled_within(lines, seed, span)
    expected = reference_outcome(arrival, config)
    assert_identical(compiled_outcome(arrival, config), expected)


@DIFFERENTIAL
@given(stream=dirty_streams(), batch_lines=st.integers(1, 9))
def test_batch_splits_do_not_change_anything(
    stream: tuple[list[bytes], dict[str, Any]], batch_lines: int
) -> None:
    lines, overrides = stream
    config = make_settings(**overrides)
    expected = reference_outcome(lines, config)
    assert_identical(compiled_outcome(lines, config, batch_lines=batch_lines), expected)


def test_the_generator_reaches_the_interesting_cases() -> None:
    seen: dict[str, int] = dict.fromkeys(
        ["dormant", "revived", "duplicates", "late", "invalid", "self", "reset", "reclaimed", "jump"], 0
    )

    @settings(max_examples=200, derandomize=True, database=None, deadline=None)
    @given(stream=dirty_streams(), seed=st.integers(0, 2**32))
    def collect(stream: tuple[list[bytes], dict[str, Any]], seed: int) -> None:
        lines, overrides = stream
        outcome = compiled_outcome(shuffled_within(lines, seed, 20), make_settings(**overrides))
        summary = outcome.summary
        seen["dormant"] += summary["alerts"]["dormant"] > 0
        seen["revived"] += summary["alerts"]["revived"] > 0
        seen["duplicates"] += summary["duplicates"] > 0
        seen["late"] += summary["late"] > 0
        seen["invalid"] += summary["invalid_total"] > 0
        seen["self"] += summary["self_interactions"] > 0
        seen["reset"] += summary["rows_reset"] > 0
        seen["reclaimed"] += summary["rows_reclaimed"] > 0
        seen["jump"] += summary["watermark_max_jump_ms"] > 0

    collect()
    assert all(count >= 15 for count in seen.values()), str(seen)


# --- CollegeMsg ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def collegemsg_lines() -> list[bytes]:
    return [orjson.dumps(e) + b"\n" for e in collegemsg_events(COLLEGEMSG)]


def test_collegemsg_replays_identically(collegemsg_lines: list[bytes]) -> None:
    config = Settings(**REPLAY_DEFAULTS)
    expected = reference_outcome(collegemsg_lines, config)
    actual = compiled_outcome(collegemsg_lines, config)
    assert actual.summary["events_read"] == actual.summary["events_applied"] == 59_835
    assert actual.summary["alerts"] == {"dormant": 2_416, "revived": 464}
    assert_identical(actual, expected)


@pytest.mark.parametrize("k", [3.0, 4.0])
def test_collegemsg_under_the_adaptive_rule_replays_identically(
    collegemsg_lines: list[bytes], k: float
) -> None:
    config = Settings(**{**REPLAY_DEFAULTS, "rule": "adaptive", "k": k})
    expected = reference_outcome(collegemsg_lines, config)
    actual = compiled_outcome(collegemsg_lines, config)
    v1 = Settings(**{**REPLAY_DEFAULTS, "k": k})
    assert (
        0
        < actual.summary["alerts"]["dormant"]
        < compiled_outcome(collegemsg_lines, v1).summary["alerts"]["dormant"]
    )
    assert_identical(actual, expected)


def test_dirty_collegemsg_with_lateness_replays_identically(collegemsg_lines: list[bytes]) -> None:
    rng = random.Random(12)
    lines: list[bytes] = []
    for number, raw in enumerate(collegemsg_lines):
        lines.append(raw)
        roll = rng.random()
        if roll < 0.02:
            lines.append(collegemsg_lines[max(0, number - rng.randrange(50))])  # a copy
        elif roll < 0.03:
            lines.append(rng.choice(GARBAGE) + b"\n")
        elif roll < 0.04:
            event = orjson.loads(raw)
            lines.append(orjson.dumps({**event, "id": f"s{number}", "target_id": event["actor_id"]}))
    late = shuffled_within(lines, 5, 40)
    config = Settings(**{**REPLAY_DEFAULTS, "allowed_lateness_ms": 2 * HOUR})
    expected = reference_outcome(late, config)
    actual = compiled_outcome(late, config, batch_lines=1000)
    assert actual.summary["late"] > 100
    assert actual.summary["duplicates"] > 500
    assert actual.summary["invalid_total"] > 300
    assert_identical(actual, expected)


def test_the_mention_profile_with_copies_and_late_arrivals_replays_identically() -> None:
    """Most pairs seen once (rows that remember one id), copies of them, ties on ts, late arrivals."""
    events = 20_000
    default = MentionConfig()
    users = round(default.users * events / default.events)
    lines = mention_lines(MentionConfig(events=events, users=users, seed=3))
    rng = random.Random(4)
    dirty: list[bytes] = []
    for number, raw in enumerate(lines):
        dirty.append(raw)
        if rng.random() < 0.03:
            dirty.append(lines[max(0, number - rng.randrange(300))])  # a copy, most on a one-event row
    config = Settings(**{**REPLAY_DEFAULTS, "allowed_lateness_ms": MINUTE})
    late = shuffled_within(dirty, 6, 60)
    expected = reference_outcome(late, config)
    actual = compiled_outcome(late, config, batch_lines=1000)
    assert actual.summary["duplicates"] > 300
    assert actual.summary["late"] > 300
    assert sum(len(row.recent) == 1 for row in actual.rows.values()) > len(actual.rows) / 2
    assert_identical(actual, expected)


@pytest.mark.parametrize("flags", [[], ["--row-ttl-ms", str(20 * DAY)]])
def test_cli_engines_write_the_same_bytes(
    collegemsg_lines: list[bytes],
    tmp_path: Path,
    capsysbinary: pytest.CaptureFixture[bytes],
    flags: list[str],
) -> None:
    path = tmp_path / "events.jsonl"
    path.write_bytes(b"".join(collegemsg_lines[:40_000]) + b"garbage\n")
    outputs = []
    for engine in ("python", "compiled"):
        assert main(["replay", "--engine", engine, *flags, str(path)]) == 0
        captured = capsysbinary.readouterr()
        summary = orjson.loads(captured.err)
        del summary["seconds"], summary["events_per_second"]
        outputs.append((captured.out, summary))
    assert outputs[0] == outputs[1]
    assert outputs[0][0].count(b"\n") > 100
    assert outputs[0][1]["invalid"] == {"not_json": 1}
    assert (outputs[0][1]["rows_reclaimed"] > 1_000) == bool(flags)


def test_cli_help_names_the_engines(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["replay", "--help"])
    text = " ".join(capsys.readouterr().out.split())
    assert "--engine {python,compiled}" in text
    assert "python (the reference engine, default)" in text


def test_core_refuses_a_feed_after_finish() -> None:
    run = CompiledReplayRun(Settings(**REPLAY_DEFAULTS))
    assert run.finish() == []
    with pytest.raises(RuntimeError, match="feed after finish"):
        run.feed([b"{}"])


# --- retention (row_ttl) and the watermark's largest jump ---------------------------------

TTL = 3 * DAY
RECLAIM = TTL + DAY  # reclaimed at last_at + row_ttl + the default de-duplication window (1 day)
SMALL = {"min_touches": 2, "require_mutual": True, "touch_merge_ms": HOUR, "row_ttl_ms": TTL}


def ev(event_id: str, kind: str, actor: str, target: str, ts: int) -> bytes:
    """One event as a JSON line."""
    return orjson.dumps({"id": event_id, "type": kind, "actor_id": actor, "target_id": target, "ts": ts})


def both(lines: list[bytes], **overrides: Any) -> Outcome:
    """The compiled outcome of `lines`, after checking it is the reference's (whole and line by line)."""
    config = make_settings(**overrides)
    expected = reference_outcome(lines, config)
    assert_identical(compiled_outcome(lines, config), expected)
    actual = compiled_outcome(lines, config, batch_lines=1)
    assert_identical(actual, expected)
    return actual


def test_a_row_not_established_resets_after_exactly_row_ttl_of_silence() -> None:
    outcome = both([ev("e1", "mention", "a", "b", T0), ev("e2", "reply", "a", "b", T0 + TTL)], **SMALL)
    row = outcome.rows["a", "b"]
    assert (row.first_at, row.last_at, row.touches, row.counts) == (T0 + TTL, T0 + TTL, 1, [0, 1, 0, 0, 0, 0])
    assert list(row.recent) == ["e1", "e2"]  # the old ids stay, for re-deliveries only
    assert outcome.summary["rows_reset"] == 2  # both halves of e2
    assert outcome.summary["rows_reclaimed"] == 0


def test_a_row_silent_one_ms_less_than_row_ttl_keeps_its_history() -> None:
    outcome = both([ev("e1", "mention", "a", "b", T0), ev("e2", "reply", "a", "b", T0 + TTL - 1)], **SMALL)
    row = outcome.rows["a", "b"]
    assert (row.first_at, row.touches, row.gaps, row.counts) == (T0, 2, [TTL - 1], [1, 1, 0, 0, 0, 0])
    assert outcome.summary["rows_reset"] == 0


def test_an_established_row_is_never_reset_nor_reclaimed() -> None:
    lines = [
        ev("e1", "mention", "a", "b", T0),
        ev("e2", "reply", "b", "a", T0 + 12 * HOUR),
        ev("e3", "like", "a", "b", T0 + 30 * DAY),
    ]
    outcome = both(lines, **SMALL, max_silence_ms=20 * DAY)
    assert outcome.counters["established_rows"] == 2
    assert [a["kind"] for a in outcome.alerts] == ["dormant", "dormant", "revived", "revived"]
    assert outcome.rows["a", "b"].touches == 3
    assert outcome.summary["rows_reset"] == outcome.summary["rows_reclaimed"] == 0
    assert outcome.expiries == {}


@pytest.mark.parametrize(("since_last", "reclaimed"), [(RECLAIM - 1, False), (RECLAIM, True)])
def test_a_row_is_reclaimed_when_the_watermark_reaches_last_at_plus_row_ttl_and_a_dedup_window(
    since_last: int, reclaimed: bool
) -> None:
    lines = [ev("e1", "mention", "a", "b", T0), ev("e2", "mention", "x", "y", T0 + since_last)]
    outcome = both(lines, **SMALL)
    assert (("a", "b") in outcome.rows, ("b", "a") in outcome.rows) == (not reclaimed, not reclaimed)
    assert outcome.summary["rows_reclaimed"] == (2 if reclaimed else 0)
    assert outcome.expiries[("x", "y")] == T0 + since_last + RECLAIM
    assert (("a", "b") in outcome.expiries) == (not reclaimed)


def test_a_row_reclaimed_then_seen_again_starts_from_nothing() -> None:
    lines = [
        ev("e1", "mention", "a", "b", T0),
        ev("e2", "mention", "x", "y", T0 + RECLAIM + HOUR),
        ev("e3", "reply", "a", "b", T0 + RECLAIM + 2 * HOUR),
        ev("e4", "mention", "x", "y", T0 + RECLAIM + 3 * HOUR),  # e3 is applied: the watermark passed it
        ev("e1", "mention", "a", "b", T0),  # a copy of e1, long after its row was reclaimed
    ]
    outcome = both(lines, **SMALL)
    row = outcome.rows["a", "b"]
    assert outcome.summary["rows_reclaimed"] == 2
    assert outcome.summary["rows_reset"] == 0  # a new row, not a reset one
    assert outcome.summary["late"] == 1
    assert outcome.summary["duplicates"] == 0
    assert (row.first_at, row.last_at, row.counts) == (T0, T0 + RECLAIM + 2 * HOUR, [1, 1, 0, 0, 0, 0])
    assert list(row.recent) == ["e3", "e1"]


def test_reclaimed_slots_are_reused_so_memory_stays_bounded() -> None:
    pairs = 2_000
    lines = [ev(f"e{n}", "like", f"u{n}", f"v{n}", T0 + n * HOUR) for n in range(pairs)]
    config = make_settings(**SMALL)
    run = CompiledReplayRun(config)
    list(replay_compiled(lines, config, run=run))
    counts = run.counts()
    # rows live ~row_ttl + a dedup window (96 h): about 2 x 97 rows at once
    assert counts["rows_reclaimed"] == 2 * pairs - counts["live_rows"]
    assert counts["live_rows"] == len(run.rows()) <= 2 * 100
    assert counts["row_slots"] <= 2 * 100 + 2
    assert both(lines, **SMALL).rows == run.rows()


def test_the_core_refuses_a_row_ttl_within_the_dedup_window() -> None:
    import streams_core  # noqa: PLC0415 - the raw module, below CompiledReplayRun's Settings check

    config = make_settings()
    with pytest.raises(ValueError, match="row_ttl_ms must be 0 or longer than dedup_window_ms"):
        streams_core.CompiledReplay((*core_settings(config)[:-2], DAY, False), reference_decoder(1024))
    with pytest.raises(ValueError, match="14 values"):
        streams_core.CompiledReplay(core_settings(config)[:-1], reference_decoder(1024))


def test_collegemsg_with_row_ttl_replays_identically(collegemsg_lines: list[bytes]) -> None:
    actual = both(collegemsg_lines, row_ttl_ms=20 * DAY)
    assert actual.summary["rows_reset"] > 50
    assert actual.summary["rows_reclaimed"] > 20_000


@pytest.mark.parametrize("batch_lines", [1, 8192])
def test_the_watermark_jump_is_the_largest_rise_of_the_max_ts(batch_lines: int) -> None:
    lines = [
        ev("e1", "like", "a", "b", T0),
        b"garbage",
        ev("e2", "like", "a", "b", T0 + HOUR),
        ev("e3", "like", "c", "c", T0 + 100 * DAY),  # the outlier, a self-interaction: it moves max ts too
        ev("e4", "like", "a", "b", T0 + 2 * HOUR),
        ev("e5", "like", "a", "b", T0 + 100 * DAY + HOUR),
        ev("e2", "like", "a", "b", T0 + HOUR),
    ]
    config = make_settings()
    expected = reference_outcome(lines, config)
    actual = compiled_outcome(lines, config, batch_lines=batch_lines)
    assert_identical(actual, expected)
    assert actual.summary["watermark_max_jump_ms"] == 100 * DAY - HOUR


@pytest.mark.parametrize(
    "lines",
    [[], [b"garbage"], [ev("e1", "like", "a", "b", T0)], [ev("e1", "like", "a", "b", T0)] * 2],
)
def test_the_watermark_jump_is_zero_without_a_rise(lines: list[bytes]) -> None:
    assert both(lines).summary["watermark_max_jump_ms"] == 0


# --- the decoder ------------------------------------------------------------------------

ID_CHARS = st.characters(exclude_categories=("Cs",))  # orjson cannot encode lone surrogates
ids = st.text(ID_CHARS, min_size=1, max_size=128) | st.sampled_from(["e1", "ann", "a" * 128, "é" * 128])
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(ID_CHARS, max_size=8)
json_scalars |= st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(ID_CHARS, max_size=4), inner, max_size=3)
    ),
    max_leaves=8,
)
FIELDS = ("id", "type", "actor_id", "target_id", "ts")
extras = st.dictionaries(
    st.text(ID_CHARS, max_size=6).filter(lambda k: k not in FIELDS), json_values, max_size=3
)
HOSTILE = (
    st.none()
    | st.booleans()
    | st.sampled_from(
        ["", "Like", "like ", "x" * 129, 946_684_799_999, 4_102_444_800_000, 1.6e12 + 0.5, -0.0]
    )
    | st.integers(-(2**70), 2**70)
    | st.floats(allow_nan=False)
    | st.text(ID_CHARS, max_size=4)
    | st.lists(st.integers(0, 9), max_size=2)
)


def plain_numbers(value: Any) -> bool:
    """Every number in `value` is spelled without exponent and with at most 18 digits on each side."""
    if isinstance(value, dict):
        return all(plain_numbers(v) for v in value.values())
    if isinstance(value, list):
        return all(plain_numbers(v) for v in value)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return True
    spelled = orjson.dumps(value).decode().lstrip("-")
    return "e" not in spelled and all(0 < len(part) <= 18 for part in spelled.split("."))


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with any ids, an int (or integral float) ts and extra fields, keys in any order."""
    event: dict[str, Any] = draw(extras)
    ts = draw(st.integers(946_684_800_000, 4_102_444_799_999))
    event.update(
        id=draw(ids),
        type=draw(st.sampled_from(INTERACTION_TYPES)),
        actor_id=draw(ids),
        target_id=draw(ids),
        ts=float(ts) if draw(st.integers(0, 9)) == 0 else ts,
    )
    return dict(draw(st.permutations(list(event.items()))))


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with one to three fields dropped or replaced by hostile values."""
    event = draw(valid_events())
    for name in draw(st.lists(st.sampled_from(FIELDS), min_size=1, max_size=3, unique=True)):
        if draw(st.booleans()):
            del event[name]
        else:
            event[name] = draw(HOSTILE)
    return event


def reference_verdict(raw: bytes) -> tuple[str, int, str, str, int] | str:
    """decode_event's fields, or its reason code."""
    try:
        event = decode_event(raw)
    except InvalidEvent as exc:
        return exc.reason.value
    return event.id, event.type, event.actor, event.target, event.ts


def compiled_verdict(raw: bytes) -> tuple[str, int, str, str, int] | str:
    """What the core decided for one line, read back through a one-line replay."""
    run = CompiledReplayRun(Settings(**{**REPLAY_DEFAULTS, "min_touches": 1, "require_mutual": False}))
    run.feed([raw])
    run.finish()
    counts = run.counts()
    if counts["invalid"]:
        (reason,) = counts["invalid"]
        return str(reason)
    fast = decode_fast_path(raw)
    if counts["self_interactions"]:
        assert fast is None or fast[2] == fast[3]
        want = reference_verdict(raw)
        assert isinstance(want, tuple)
        return want
    ((owner, contact, fields),) = [(o, c, f) for (o, c), f in run.rows().items() if f.counts[:3] != [0, 0, 0]]
    (event_id,) = fields.recent
    kind = max(range(3), key=lambda i: fields.counts[i])
    return event_id, kind, owner, contact, fields.last_at


def assert_decoders_agree(raw: bytes) -> None:
    """The fast path accepts only what the reference accepts, with the same fields; the core's verdict is the reference's."""
    fast = decode_fast_path(raw)
    if fast is not None:
        assert fast == reference_verdict(raw), raw
    if raw.strip():  # blank lines are not read at all
        assert compiled_verdict(raw) == reference_verdict(raw.rstrip(b"\r\n")), raw


@DECODER
@given(valid_events(), st.integers(0, 4))
def test_valid_events_decode_identically(event: dict[str, Any], style: int) -> None:
    raw = spell(event, style)
    assert_decoders_agree(raw)
    extra = [v for k, v in event.items() if k not in FIELDS]
    clean = b"\\" not in raw and type(event["ts"]) is int and plain_numbers(extra)
    if style in {0, 3} and clean:  # compact UTF-8, no escapes, no exponents: the fast path must take it
        assert decode_fast_path(raw) is not None, raw


@DECODER
@given(mutated_events(), st.sampled_from(["orjson", "ascii"]))
def test_mutated_events_decode_identically(event: dict[str, Any], spelling: str) -> None:
    try:
        raw = orjson.dumps(event) if spelling == "orjson" else json.dumps(event).encode()
    except TypeError:  # orjson refuses integers beyond 64 bits
        raw = json.dumps(event).encode()
    assert_decoders_agree(raw)


@DECODER
@given(valid_events(), st.data())
def test_byte_mutations_decode_identically(event: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(orjson.dumps(event))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete", "digit"]))
        if action == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "insert":
            raw[at:at] = data.draw(
                st.sampled_from([b"\\", b'"', b",", b" ", b"\x00", b"e5", b".0", b"0", b"-"])
            )
        elif action == "digit":
            raw[at:at] = str(data.draw(st.integers(0, 9))).encode()
        elif len(raw) > 1:
            del raw[at]
    assert_decoders_agree(bytes(raw))


@DECODER
@given(st.binary(max_size=300))
@example(b'{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}')
def test_random_bytes_decode_identically(raw: bytes) -> None:
    assert_decoders_agree(raw)


BASE = b'{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000'


@pytest.mark.parametrize(
    "raw",
    [
        BASE + b"}",
        BASE + b"} \t\r\n",
        b" \t{ " + BASE[1:] + b" }",
        BASE + b',"x":[1,-2.5,true,false,null,{"y":"z"},[]]}',
        BASE + b',"id":"f"}',  # a repeated key: the last one counts
        BASE + b',"ts":1600000000001}',
        BASE + b',"x":"\\u00e9"}',
        BASE + b',"x":1e400}',
        BASE + b',"x":1e5}',
        BASE + b',"x":123456789012345678901234567890}',
        BASE + b',"x":01}',
        BASE + b',"x":NaN}',
        BASE + b',"x":-}',
        BASE + b',"x":[1,]}',
        BASE + b",}",
        BASE + b"}}",
        BASE + b"}\x0b",
        BASE + b"}\x00",
        b"\xef\xbb\xbf" + BASE + b"}",
        BASE.replace(b"1600000000000", b"1600000000000.0") + b"}",
        BASE.replace(b"1600000000000", b"1.6e12") + b"}",
        BASE.replace(b"1600000000000", b"01600000000000") + b"}",
        BASE.replace(b"1600000000000", b"-1600000000000") + b"}",
        BASE.replace(b"1600000000000", b"946684799999") + b"}",
        BASE.replace(b"1600000000000", b"4102444799999") + b"}",
        BASE.replace(b"1600000000000", b"9" * 25) + b"}",
        BASE.replace(b'"e"', b'"e\\"x"') + b"}",
        BASE.replace(b'"e"', b'"\\ud800"') + b"}",
        BASE.replace(b'"e"', b'"\xed\xa0\x80"') + b"}",
        BASE.replace(b'"e"', b'"\x01"') + b"}",
        BASE.replace(b'"e"', b'"' + "é".encode() * 128 + b'"') + b"}",
        BASE.replace(b'"e"', b'"' + "é".encode() * 129 + b'"') + b"}",
        BASE.replace(b'"e"', b'""') + b"}",
        BASE.replace(b'"like"', b'"Like"') + b"}",
        BASE.replace(b'"like"', b"null") + b"}",
        BASE.replace(b'"a"', b"1") + b"}",
        BASE.replace(b'"id"', b'"\\u0069d"') + b"}",
        b'{"id":"e","type":"like","actor_id":"a","target_id":"b"}',
        b'{"a":' * 40 + b"1" + b"}" * 40,
        b"[" * 1025 + b"]" * 1025,
        b"{}",
        b"",
        b"   ",
        b"null",
    ],
)
def test_hostile_lines_decode_identically(raw: bytes) -> None:
    assert_decoders_agree(raw)


def test_the_fast_path_takes_clean_records() -> None:
    raw = BASE + b',"x":[1,-2.5,true,false,null,{"y":"z"},[]]}'
    assert decode_fast_path(raw) == ("e", 2, "a", "b", 1_600_000_000_000)
    run = CompiledReplayRun(Settings(**REPLAY_DEFAULTS))
    run.feed([BASE + b"}\n", BASE + b',"id":"f"}\n', BASE + b"}}\n"])
    assert run.counts()["fast_decoded"] == 1
    assert run.counts()["read"] == 3
    assert run.counts()["invalid"] == {"not_json": 1}


def test_oversized_lines_are_too_large_in_both() -> None:
    config = Settings(**{**REPLAY_DEFAULTS, "max_record_bytes": 1024})
    raw = BASE + b',"pad":"' + b"x" * 1000 + b'"}'
    expected = reference_outcome([raw], config)
    actual = compiled_outcome([raw], config)
    assert actual.summary["invalid"] == {"too_large": 1}
    assert_identical(actual, expected)
