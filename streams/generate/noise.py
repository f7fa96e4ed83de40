"""One-off interactions outside any tie: likes and mentions of strangers, by active users."""

from __future__ import annotations

import random

from streams.generate.clock import in_waking_hours
from streams.generate.config import GeneratorConfig
from streams.generate.population import Population
from streams.generate.sessions import RawEvent

__all__ = ["noise_events"]

_TYPE_WEIGHTS = (0.2, 0.1, 0.7)


def noise_events(
    rng: random.Random,
    config: GeneratorConfig,
    population: Population,
    tie_pairs: set[frozenset[int]],
    source: int,
) -> list[RawEvent]:
    """Actors drawn by activity, targets uniformly (so a pair rarely repeats); tie pairs are left alone."""
    count = round(config.noise_per_user_day * config.users * config.days)
    span = config.end_ms - config.start_ms
    actors = population.pick_many(rng, count)
    events: list[RawEvent] = []
    for actor in actors:
        target = rng.randrange(config.users)
        if target == actor or frozenset((actor, target)) in tie_pairs:
            continue
        ts = in_waking_hours(rng, config.start_ms + rng.randrange(span), population.offset_ms[actor])
        if ts < config.end_ms:
            kind = rng.choices(range(3), _TYPE_WEIGHTS)[0]
            events.append(RawEvent(ts, source, len(events), actor, target, kind))
    return events
