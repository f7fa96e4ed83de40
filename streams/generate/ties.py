"""Ties: who interacts with whom, reciprocal or one-sided, at what rhythm, and when they fade and revive."""

from __future__ import annotations

import math
import random
from dataclasses import dataclass

from streams.generate.config import GeneratorConfig
from streams.generate.population import Population
from streams.settings import DAY_MS

__all__ = ["Tie", "plan_ties"]

_PREEXISTING = 0.4
"""Share of ties that already exist when the stream starts; the others form during it."""
_FORM_WINDOW = 0.85
"""New ties form within this leading share of the stream."""


@dataclass(frozen=True, slots=True)
class Tie:
    """A planned relationship between users `a` and `b` (indices); one-sided ties only ever go a -> b."""

    a: int
    b: int
    reciprocal: bool
    rhythm_ms: int
    """Mean gap between touches once settled."""
    start_ms: int
    fade_at: int | None
    """No touch starts in [fade_at, revive_at): the planted silence (None: the tie never fades)."""
    revive_at: int | None
    """When touches resume after the fade (None: they never do)."""


def _rhythm(rng: random.Random, config: GeneratorConfig, intensity: float) -> int:
    """Lognormal around the median, faster between active users (`intensity` > 1), clipped."""
    low, high = config.rhythm_bounds_ms
    drawn = rng.lognormvariate(math.log(config.rhythm_median_ms), config.rhythm_sigma)
    return int(min(max(drawn / intensity**config.intensity_exponent, low), high))


def _silence(rng: random.Random, config: GeneratorConfig, rhythm: int) -> int:
    low, high = config.silence_factor
    return int(max(3 * rhythm, 14 * DAY_MS) * rng.uniform(low, high)) + DAY_MS


def _plan_one(rng: random.Random, config: GeneratorConfig, a: int, b: int, intensity: float) -> Tie:
    rhythm = _rhythm(rng, config, intensity)
    span = config.end_ms - config.start_ms
    if rng.random() < _PREEXISTING:
        start = config.start_ms + int(rng.uniform(0, rhythm))
    else:
        start = config.start_ms + int(rng.uniform(0, _FORM_WINDOW * span))
    fade_at = revive_at = None
    settled = start + int(config.settled_touches * rhythm * 1.2)
    if settled < config.end_ms and rng.random() < config.fade:
        fade_at = int(rng.uniform(settled, config.end_ms))
        if rng.random() < config.revive:
            revive_at = fade_at + _silence(rng, config, rhythm)
    reciprocal = rng.random() < config.reciprocal
    return Tie(a, b, reciprocal, rhythm, start, fade_at, revive_at)


def plan_ties(rng: random.Random, config: GeneratorConfig, population: Population) -> list[Tie]:
    """About `users * ties_per_user / 2` ties between distinct pairs, endpoints drawn by activity."""
    wanted = round(config.users * config.ties_per_user / 2)
    activity = population.activity
    mean = sum(activity) / len(activity)
    pairs: set[frozenset[int]] = set()
    ties: list[Tie] = []
    for _ in range(wanted * 4):
        if len(ties) == wanted:
            break
        a, b = population.pick_many(rng, 2)
        pair = frozenset((a, b))
        if a == b or pair in pairs:
            continue
        pairs.add(pair)
        ties.append(_plan_one(rng, config, a, b, math.sqrt(activity[a] * activity[b]) / mean))
    return ties
