"""Shared helpers of the engine tests: event builders, replay-like drivers, alert comparison."""

from __future__ import annotations

import math
import zlib
from collections import defaultdict
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import orjson

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.events import INTERACTION_TYPES, Interaction, row_updates
from streams.engine.rules import Rules
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings

__all__ = [
    "DAY",
    "HOUR",
    "MINUTE",
    "SMALL",
    "T0",
    "EngineFactory",
    "ReplayFactory",
    "RulesFactory",
    "assert_same_alerts",
    "assert_same_alerts_per_row",
    "by_row",
    "canonical",
    "drive",
    "event",
    "interaction",
    "line",
    "make_settings",
    "run_replay",
]

MINUTE = 60_000
HOUR = 60 * MINUTE
DAY = 24 * HOUR
T0 = 1_600_000_000_000  # 2020-09-13T12:26:40Z

# Small settings so that hand computation stays readable: strength halves per day,
# touches merge within 1 h, established after 2 touches (mutual), threshold 3 x median
# gap clamped to [1 day, 10 days].
SMALL: dict[str, Any] = {
    "half_life_ms": DAY,
    "touch_merge_ms": HOUR,
    "min_touches": 2,
    "require_mutual": True,
    "k": 3.0,
    "min_silence_ms": DAY,
    "max_silence_ms": 10 * DAY,
}

STRENGTH_REL_TOL = 1e-9

RulesFactory = Callable[..., Rules]
EngineFactory = Callable[..., RelationshipEngine]
ReplayFactory = Callable[..., tuple[list[Alert], ReplaySummary]]


def make_settings(**overrides: Any) -> Settings:
    """Replay settings (SPEC §5 defaults, lateness 0, event clock) with `overrides`."""
    return Settings(**{**REPLAY_DEFAULTS, **overrides})


def event(event_id: str, kind: str, actor: str, target: str, ts: int, **extra: Any) -> dict[str, Any]:
    """One event as the JSON object of SPEC §1."""
    return {"id": event_id, "type": kind, "actor_id": actor, "target_id": target, "ts": ts, **extra}


def line(event_id: str, kind: str, actor: str, target: str, ts: int, **extra: Any) -> bytes:
    """One event as a JSON line."""
    return orjson.dumps(event(event_id, kind, actor, target, ts, **extra))


def interaction(event_id: str, kind: str, actor: str, target: str, ts: int) -> Interaction:
    """One decoded event."""
    return Interaction(event_id, INTERACTION_TYPES.index(kind), actor, target, ts)


def run_replay(lines: Iterable[bytes], settings: Settings) -> tuple[list[Alert], ReplaySummary]:
    """All alerts of a replay, in emission order, and its summary."""
    summary = ReplaySummary()
    alerts = list(replay(lines, settings, summary))
    return alerts, summary


def drive(
    engines: Sequence[RelationshipEngine],
    events: Iterable[Interaction],
    lateness_ms: int,
    first_position: int = 1,
) -> list[Alert]:
    """Feed events in arrival order the way replay does, routing row updates by owner.

    The n-th event read gets input position `first_position + n` (replay numbers
    lines from 1), so copies are duplicates, not re-deliveries. Each update goes to
    `engines[crc32(owner) % len(engines)]`; every engine advances through the same
    watermark sequence (max ts seen, self-interactions included, minus the lateness),
    each time it moves, and at the end all engines advance inclusively to the
    largest ts seen (the end of input), then `finish()`.
    """
    alerts: list[Alert] = []
    max_ts: int | None = None
    watermark: int | None = None
    count = len(engines)
    for position, item in enumerate(events, start=first_position):
        max_ts = item.ts if max_ts is None else max(max_ts, item.ts)
        if item.actor != item.target:
            for update in row_updates(item, pos=position):
                engine = engines[zlib.crc32(update.owner.encode()) % count]
                alerts.extend(engine.offer(update))
        if watermark is None or max_ts - lateness_ms > watermark:
            watermark = max_ts - lateness_ms
            for engine in engines:
                alerts.extend(engine.advance(watermark))
    for engine in engines:
        if max_ts is not None:
            alerts.extend(engine.advance(max_ts, inclusive=True))
        alerts.extend(engine.finish())
    return alerts


def canonical(alert: Alert) -> dict[str, Any]:
    """The deterministic part of an alert: every field but `detected_at`."""
    return {key: value for key, value in alert.items() if key != "detected_at"}


def by_row(alerts: Iterable[Alert], owner: str, contact: str) -> list[Alert]:
    """The alerts of one row, in emission order."""
    return [a for a in alerts if a["owner_id"] == owner and a["contact_id"] == contact]


def _keyed(alerts: Iterable[Alert], unique: bool) -> dict[str, dict[str, Any]]:
    keyed: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        fields = canonical(alert)
        previous = keyed.get(fields["alert_id"])
        if previous is not None:
            assert not unique, f"alert_id repeated: {fields['alert_id']}"
            _assert_alert_equal(fields, previous)
        keyed[fields["alert_id"]] = fields
    return keyed


def _assert_alert_equal(actual: dict[str, Any], expected: dict[str, Any]) -> None:
    left = {k: v for k, v in actual.items() if k != "strength"}
    right = {k: v for k, v in expected.items() if k != "strength"}
    assert left == right
    assert math.isclose(actual["strength"], expected["strength"], rel_tol=STRENGTH_REL_TOL), (
        actual["alert_id"],
        actual["strength"],
        expected["strength"],
    )


def assert_same_alerts(
    actual: Iterable[Alert],
    expected: Iterable[Alert],
    *,
    dedupe_actual: bool = False,
) -> None:
    """Same alert ids, and per id every field but `detected_at` equal (strength within 1e-9).

    Ids must be unique on each side, except repeats of identical alerts in
    `actual` when `dedupe_actual` (at-least-once / split delivery).
    """
    left = _keyed(actual, unique=not dedupe_actual)
    right = _keyed(expected, unique=True)
    assert sorted(left) == sorted(right)
    for alert_id, fields in left.items():
        _assert_alert_equal(fields, right[alert_id])


def assert_same_alerts_per_row(actual: Iterable[Alert], expected: Iterable[Alert]) -> None:
    """Per row, the same alerts in the same order, every field but `detected_at` equal (strength within 1e-9).

    Unlike `assert_same_alerts`, an alert id may repeat: a late event at exactly a
    dormant row's `last_at` revives it without moving `last_at`, so its next
    dormant alert has the id of the previous one.
    """
    rows: defaultdict[tuple[str, str], list[list[dict[str, Any]]]] = defaultdict(lambda: [[], []])
    for side, alerts in enumerate((actual, expected)):
        for alert in alerts:
            rows[(alert["owner_id"], alert["contact_id"])][side].append(canonical(alert))
    for key, (left, right) in sorted(rows.items()):
        assert [a["alert_id"] for a in left] == [a["alert_id"] for a in right], key
        for fields, wanted in zip(left, right, strict=True):
            _assert_alert_equal(fields, wanted)
