"""Users with heavy-tailed (Pareto) activity, local time zones, and activity-weighted sampling."""

from __future__ import annotations

import itertools
import random
from dataclasses import dataclass

from streams.settings import HOUR_MS

__all__ = ["Population", "make_population"]

_ZONES_H = (-8, -5, 0, 1, 1, 2, 8)
"""UTC offsets users live in (hours); repeats weight a zone."""


@dataclass(frozen=True, slots=True)
class Population:
    """User ids, their activity weights and UTC offsets, and cumulative weights for sampling."""

    ids: tuple[str, ...]
    activity: tuple[float, ...]
    offset_ms: tuple[int, ...]
    cumulative: tuple[float, ...]

    def pick(self, rng: random.Random) -> int:
        """A user index drawn with probability proportional to activity."""
        return rng.choices(range(len(self.ids)), cum_weights=self.cumulative)[0]

    def pick_many(self, rng: random.Random, count: int) -> list[int]:
        """`count` user indices drawn (with replacement) proportionally to activity."""
        return rng.choices(range(len(self.ids)), cum_weights=self.cumulative, k=count)


def make_population(rng: random.Random, users: int, alpha: float) -> Population:
    """`users` users; activity ~ Pareto(alpha), capped at users / 10 to keep one user from owning the graph."""
    width = len(str(users - 1))
    cap = max(users / 10, 2.0)
    activity = tuple(min(rng.paretovariate(alpha), cap) for _ in range(users))
    offsets = tuple(rng.choice(_ZONES_H) * HOUR_MS for _ in range(users))
    return Population(
        ids=tuple(f"u{i:0{width}d}" for i in range(users)),
        activity=activity,
        offset_ms=offsets,
        cumulative=tuple(itertools.accumulate(activity)),
    )
