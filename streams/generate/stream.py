"""Assemble the stream: ties and noise merged in (ts, id) order, ids assigned, ground truth collected."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from typing import Any

from streams.engine.events import INTERACTION_TYPES
from streams.generate.config import GeneratorConfig
from streams.generate.noise import noise_events
from streams.generate.population import Population, make_population
from streams.generate.sessions import RawEvent, tie_events
from streams.generate.ties import Tie, plan_ties

__all__ = ["GeneratedStream", "generate"]


@dataclass(slots=True)
class GeneratedStream:
    """The events (sorted, with ids) as JSON lines, the planted dormancies, and the plan behind them."""

    lines: list[bytes] = field(default_factory=list)
    truth: list[dict[str, Any]] = field(default_factory=list)
    ties: list[Tie] = field(default_factory=list)
    population: Population | None = None


def _truth(population: Population, tie: Tie, last_before: int, first_after: int | None) -> dict[str, Any]:
    return {
        "owner": population.ids[tie.a],
        "contact": population.ids[tie.b],
        "silent_from": last_before + 1,
        "silent_until": first_after,
        "reciprocal": tie.reciprocal,
        "rhythm_ms": tie.rhythm_ms,
    }


def _encode(seed: int, number: int, event: RawEvent, ids: tuple[str, ...]) -> bytes:
    """One event as a JSON line (ids are plain ASCII, so formatting is safe and faster than a dict dump)."""
    return (
        f'{{"id":"g{seed}-{number:010d}","type":"{INTERACTION_TYPES[event.type]}",'
        f'"actor_id":"{ids[event.actor]}","target_id":"{ids[event.target]}","ts":{event.ts}}}'
    ).encode()


def generate(config: GeneratorConfig) -> GeneratedStream:
    """The whole stream for `config`, deterministic in `config` (seeded `random.Random`)."""
    config.validate()
    rng = random.Random(config.seed)  # noqa: S311 - simulation, not security: it must be seeded
    population = make_population(rng, config.users, config.activity_alpha)
    ties = plan_ties(rng, config, population)
    raw: list[RawEvent] = []
    truth: list[dict[str, Any]] = []
    for source, tie in enumerate(ties):
        events, silence = tie_events(rng, config, population, tie, source)
        raw.extend(events)
        if silence is not None:
            truth.append(_truth(population, tie, silence.last_before, silence.first_after))
    pairs = {frozenset((tie.a, tie.b)) for tie in ties}
    raw.extend(noise_events(rng, config, population, pairs, len(ties)))
    raw.sort()
    ids = population.ids
    lines = [_encode(config.seed, number, event, ids) for number, event in enumerate(raw)]
    truth.sort(key=lambda row: (row["silent_from"], row["owner"], row["contact"]))
    return GeneratedStream(lines, truth, ties, population)
