"""A tie's touches over time: settling, rhythm, daily cycle, reply bursts, fade and revival."""

from __future__ import annotations

import random
from typing import NamedTuple

from streams.generate.clock import in_waking_hours
from streams.generate.config import MINUTE_MS, GeneratorConfig
from streams.generate.population import Population
from streams.generate.ties import Tie
from streams.settings import HOUR_MS

__all__ = ["RawEvent", "Silence", "tie_events"]

MENTION, REPLY, LIKE = 0, 1, 2
_OPENERS_MUTUAL = (0.35, 0.35, 0.30)
_OPENERS_ONE_SIDED = (0.30, 0.10, 0.60)
_SLOWDOWN = 1.6
"""Gaps stretch by this factor in the last three rhythms before a fade."""


class RawEvent(NamedTuple):
    """An event before it gets its id: `source` and `seq` make the order total and deterministic."""

    ts: int
    source: int
    seq: int
    actor: int
    target: int
    type: int


class Silence(NamedTuple):
    """The planted silence as it happened: last event before it, first event after it (None: none)."""

    last_before: int
    first_after: int | None


def _session(
    rng: random.Random, config: GeneratorConfig, tie: Tie, ts: int, actor: int
) -> list[tuple[int, int, int, int]]:
    """One touch: an opener, then maybe a burst of 1-4 quick replies back and forth."""
    other = tie.b if actor == tie.a else tie.a
    weights = _OPENERS_MUTUAL if tie.reciprocal else _OPENERS_ONE_SIDED
    kind = rng.choices((MENTION, REPLY, LIKE), weights)[0]
    out = [(ts, actor, other, kind)]
    if not tie.reciprocal:
        if rng.random() < 0.3:
            out.append((ts + rng.randint(MINUTE_MS, 20 * MINUTE_MS), actor, other, LIKE))
        return out
    if kind != LIKE and rng.random() < config.burst:
        for i in range(rng.randint(1, 4)):
            ts += rng.randint(MINUTE_MS // 2, 12 * MINUTE_MS)
            out.append((ts, other, actor, REPLY) if i % 2 == 0 else (ts, actor, other, REPLY))
    return out


def tie_events(
    rng: random.Random, config: GeneratorConfig, population: Population, tie: Tie, source: int
) -> tuple[list[RawEvent], Silence | None]:
    """Every event of `tie` before the stream's end, and its planted silence if one happened."""
    events: list[RawEvent] = []
    shape = config.regularity
    t, touches, faded = tie.start_ms, 0, False
    last_before: int | None = None
    first_after: int | None = None
    while t < config.end_ms:
        if tie.fade_at is not None and not faded and t >= tie.fade_at:
            faded, last_before = True, events[-1].ts if events else None
            if tie.revive_at is None:
                break
            t = max(t, tie.revive_at)
        actor = tie.a if not tie.reciprocal or rng.random() < 0.5 else tie.b
        ts = in_waking_hours(rng, t, population.offset_ms[actor])
        if ts >= config.end_ms:
            break
        for ts_i, who, whom, kind in _session(rng, config, tie, ts, actor):
            events.append(RawEvent(ts_i, source, len(events), who, whom, kind))
        if faded and first_after is None:
            first_after = ts
        touches += 1
        gap = rng.gammavariate(shape, tie.rhythm_ms / shape) * min(1.0, 0.4 + 0.15 * touches)
        if tie.fade_at is not None and not faded and t > tie.fade_at - 3 * tie.rhythm_ms:
            gap *= _SLOWDOWN
        t = max(t + int(gap), ts + HOUR_MS)
    if tie.fade_at is not None and not faded and tie.fade_at < config.end_ms and events:
        last_before = events[-1].ts
    if last_before is None:
        return events, None
    return events, Silence(last_before, first_after)
