"""Golden test on SNAP CollegeMsg: replay against a slow, self-contained reference of the contract, clean and dirty."""

from __future__ import annotations

import heapq
import random
from collections import Counter, defaultdict, deque
from typing import Any

import orjson
import pytest

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.alerts import Alert
from streams.replay import REPLAY_DEFAULTS, ReplaySummary
from streams.settings import Settings
from tests.engine.reference import Reference
from tests.engine.support import DAY, assert_same_alerts, assert_same_alerts_per_row, run_replay

EVENTS = 59_835
DORMANT = 2_416
REVIVED = 464

# --- fixtures ----------------------------------------------------------------------


@pytest.fixture(scope="module")
def events() -> list[dict[str, Any]]:
    return list(collegemsg_events(COLLEGEMSG))


@pytest.fixture(scope="module")
def config() -> Settings:
    return Settings(**REPLAY_DEFAULTS)


@pytest.fixture(scope="module")
def replayed(events: list[dict[str, Any]], config: Settings) -> tuple[list[Alert], ReplaySummary]:
    return run_replay((orjson.dumps(e) for e in events), config)


# --- tests -----------------------------------------------------------------------


def test_replay_settings_are_the_spec_defaults(config: Settings) -> None:
    assert (config.allowed_lateness_ms, config.clock) == (0, "event")
    assert (config.min_touches, config.require_mutual, config.gap_window) == (5, True, 8)
    assert (config.k, config.min_silence_ms, config.max_silence_ms) == (3.0, 14 * DAY, 90 * DAY)
    assert (config.touch_merge_ms, config.half_life_ms, config.dedup_window_ms) == (
        6 * 3_600_000,
        30 * DAY,
        DAY,
    )


def test_collegemsg_exact_counts(
    events: list[dict[str, Any]], replayed: tuple[list[Alert], ReplaySummary]
) -> None:
    alerts, summary = replayed
    assert len(events) == EVENTS
    assert (summary.read, summary.applied) == (EVENTS, EVENTS)
    assert (summary.duplicates, summary.self_interactions, summary.late) == (0, 0, 0)
    assert sum(summary.invalid.values()) == 0
    assert Counter(a["kind"] for a in alerts) == {"dormant": DORMANT, "revived": REVIVED}
    assert summary.alerts == {"dormant": DORMANT, "revived": REVIVED}


def test_collegemsg_alerts_equal_the_reference(
    events: list[dict[str, Any]], config: Settings, replayed: tuple[list[Alert], ReplaySummary]
) -> None:
    reference = Reference(config).run(events)
    assert Counter(a["kind"] for a in reference) == {"dormant": DORMANT, "revived": REVIVED}
    assert_same_alerts(replayed[0], reference)


def test_collegemsg_alerts_equal_the_reference_with_small_settings(
    events: list[dict[str, Any]],
) -> None:
    # more, shorter episodes: 2 touches, mutual or not, thresholds of 1 to 10 days
    for mutual in (True, False):
        small = Settings(
            **REPLAY_DEFAULTS,
            min_touches=2,
            require_mutual=mutual,
            touch_merge_ms=3_600_000,
            gap_window=3,
            k=2.0,
            min_silence_ms=DAY,
            max_silence_ms=10 * DAY,
            half_life_ms=7 * DAY,
        )
        alerts, _ = run_replay((orjson.dumps(e) for e in events), small)
        kinds = Counter(a["kind"] for a in alerts)
        assert kinds["dormant"] > 2 * DORMANT
        assert kinds["revived"] > 2 * REVIVED
        assert_same_alerts(alerts, Reference(small).run(events))


def test_collegemsg_alerts_are_consistent(replayed: tuple[list[Alert], ReplaySummary]) -> None:
    alerts, _ = replayed
    for alert in alerts:
        assert alert["dormant_since"] == alert["last_interaction_at"] + alert["threshold_ms"]
        assert 14 * DAY <= alert["threshold_ms"] <= 90 * DAY
        assert alert["touches"] >= 5
        assert alert["counts"]["out"] != {"mention": 0, "reply": 0, "like": 0}
        assert alert["counts"]["in"] != {"mention": 0, "reply": 0, "like": 0}
        assert alert["detected_at"] >= alert["dormant_since"]
    # per row, kinds alternate dormant, revived, dormant, ...
    kinds: defaultdict[tuple[str, str], list[str]] = defaultdict(list)
    for alert in alerts:
        kinds[(alert["owner_id"], alert["contact_id"])].append(alert["kind"])
    for sequence in kinds.values():
        assert sequence[::2] == ["dormant"] * len(sequence[::2])
        assert sequence[1::2] == ["revived"] * len(sequence[1::2])


def test_collegemsg_with_lateness_gives_the_same_alerts(
    events: list[dict[str, Any]], replayed: tuple[list[Alert], ReplaySummary]
) -> None:
    late_config = Settings(**{**REPLAY_DEFAULTS, "allowed_lateness_ms": 6 * 3_600_000})
    alerts, summary = run_replay((orjson.dumps(e) for e in events), late_config)
    assert_same_alerts(alerts, replayed[0])
    assert (summary.applied, summary.late) == (EVENTS, 0)


GARBAGE: list[tuple[bytes, str | None]] = [
    (b"", None),  # blank lines are not read
    (b"   ", None),
    (b"not json", "not_json"),
    (b"\xff\xfe", "not_utf8"),
    (b"[1, 2]", "not_object"),
    (b'{"id": "g1"}', "missing_field"),
    (b'{"id": "g2", "type": "like", "actor_id": "1", "target_id": "2", "ts": "1082040961000"}', "wrong_type"),
    (b'{"id": "g3", "type": "like", "actor_id": 1, "target_id": "2", "ts": 1082040961000}', "wrong_type"),
    (b'{"id": "", "type": "like", "actor_id": "1", "target_id": "2", "ts": 1082040961000}', "bad_length"),
    (b'{"id": "g4", "type": "poke", "actor_id": "1", "target_id": "2", "ts": 1082040961000}', "unknown_type"),
    (
        b'{"id": "g5", "type": "like", "actor_id": "1", "target_id": "2", "ts": 4102444800000}',
        "ts_out_of_range",
    ),
    (b'{"id": "g6", "type": "like", "actor_id": "1", "target_id": "2", "ts": 1082040961}', "ts_out_of_range"),
]


@pytest.mark.parametrize("lateness_ms", [0, 6 * 3_600_000])
def test_collegemsg_with_garbage_copies_late_events_and_self_interactions_equals_the_reference(
    events: list[dict[str, Any]], lateness_ms: int
) -> None:
    rng = random.Random(20040415)
    lines: list[bytes] = []
    valid: list[dict[str, Any]] = []  # the valid events among `lines`, in arrival order
    expected_invalid: Counter[str] = Counter()
    selfs = 0
    delayed: list[tuple[int, int, dict[str, Any]]] = []  # (arrives before event n, serial, event)
    recent: deque[dict[str, Any]] = deque()  # events of the last day of event time

    def send(e: dict[str, Any]) -> None:
        lines.append(orjson.dumps(e))
        valid.append(e)

    for index, e in enumerate(events):
        while delayed and delayed[0][0] <= index:
            send(heapq.heappop(delayed)[2])
        recent.append(e)
        while e["ts"] - recent[0]["ts"] >= DAY:
            recent.popleft()
        roll = rng.random()
        if roll < 0.01:  # arrives up to 3,000 events later: late, or out of order within the lateness
            heapq.heappush(delayed, (index + rng.randint(1, 3_000), index, e))
            continue
        send(e)
        if roll < 0.03:  # an exact copy of an event of the last day: a duplicate, unless it was delayed
            send(rng.choice(recent))
        elif roll < 0.035:  # an exact copy of any earlier event: late, applied again beyond the window
            send(events[rng.randrange(index + 1)])
        elif roll < 0.04:  # the id again, its ts moved back by about the de-duplication window
            copied = rng.choice(recent)
            send({**copied, "ts": copied["ts"] + rng.choice([-DAY - 1, -DAY, -DAY + 1, -3_600_000])})
        elif roll < 0.05:  # a self-interaction, now or (one in five) up to 1 h ahead: it moves the watermark
            ahead = rng.randrange(3_600_000) if roll < 0.042 else 0
            send({**e, "id": f"self{selfs}", "target_id": e["actor_id"], "ts": e["ts"] + ahead})
            selfs += 1
        elif roll < 0.06:
            raw, reason = rng.choice(GARBAGE)
            lines.append(raw)
            if reason is not None:
                expected_invalid[reason] += 1
    for _, _, e in sorted(delayed):
        send(e)
    assert selfs > 300
    assert len(expected_invalid) == 8

    config = Settings(**{**REPLAY_DEFAULTS, "allowed_lateness_ms": lateness_ms})
    expected = Reference(config).replay(valid)
    alerts, summary = run_replay(lines, config)
    assert_same_alerts_per_row(alerts, expected.alerts)
    assert summary.read == len(valid) + sum(expected_invalid.values())
    assert summary.invalid == expected_invalid
    assert summary.self_interactions == expected.self_interactions == selfs
    assert (summary.applied, summary.duplicates, summary.late) == (
        expected.applied,
        expected.duplicates,
        expected.late,
    )
    assert summary.alerts == Counter(a["kind"] for a in expected.alerts)
    # every kind of dirt is there, in numbers
    assert summary.applied + summary.duplicates == len(valid) - selfs
    assert summary.applied > EVENTS + 100  # copies beyond the window are applied again
    assert summary.duplicates > 1_000
    assert 500 < summary.late < 10_000
