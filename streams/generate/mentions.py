"""A heavy-tailed mention stream shaped like public Twitter data: Zipf-like users, most pairs seen once."""

from __future__ import annotations

import bisect
import itertools
import random
from dataclasses import dataclass

from streams.engine.events import INTERACTION_TYPES
from streams.settings import DAY_MS

__all__ = ["MentionConfig", "mention_lines"]

DEFAULT_START_MS = 1_704_067_200_000  # 2024-01-01T00:00:00Z


@dataclass(frozen=True, slots=True)
class MentionConfig:
    """Size, seed and shape of a mention stream; the defaults resemble issue 12's Twitter sample.

    That sample: 563,069 mention/reply/retweet events among ~300k users over 7 days,
    904,404 distinct rows (a row is one direction of a pair, so an event makes two).
    """

    events: int = 563_069
    """Number of events."""
    users: int = 300_000
    """Number of users."""
    days: int = 7
    """Length of the stream in days."""
    seed: int = 1
    """Seed of `random.Random`: the same config gives the same bytes."""
    start_ms: int = DEFAULT_START_MS
    """Event time of the stream's start (epoch ms)."""
    actor_exponent: float = 0.8
    """Zipf exponent of how often a user acts (rank r has weight r ** -exponent)."""
    target_exponent: float = 0.9
    """Zipf exponent of how often a user is mentioned (popularity), ranks shuffled independently of activity."""
    repeat: float = 0.2
    """Probability that an event goes to a contact the actor already mentioned (the rest pick a target by popularity)."""
    type_weights: tuple[float, float, float] = (0.45, 0.3, 0.25)
    """Weights of mention, reply and like (the sample's mention/reply/retweet mix, roughly)."""

    @property
    def end_ms(self) -> int:
        """Event time of the stream's end (exclusive)."""
        return self.start_ms + self.days * DAY_MS

    def validate(self) -> None:
        """Raise `ValueError` when a parameter is out of range."""
        if self.users < 2 or self.days < 1 or self.events < 1:
            raise ValueError("need at least 2 users, 1 day and 1 event")
        if not 0.0 <= self.repeat <= 1.0:
            raise ValueError("repeat must be a probability")
        if self.actor_exponent < 0 or self.target_exponent < 0:
            raise ValueError("the Zipf exponents must be >= 0")


def _zipf_cumulative(rng: random.Random, users: int, exponent: float) -> list[float]:
    """Cumulative Zipf weights over the users in a random order (who is busy is seeded, not user 0)."""
    order = list(range(users))
    rng.shuffle(order)
    weights = [0.0] * users
    for rank, user in enumerate(order, start=1):
        weights[user] = rank**-exponent
    return list(itertools.accumulate(weights))


def mention_lines(config: MentionConfig) -> list[bytes]:
    """The events of `config` as JSON lines in (ts, id) order; deterministic in `config`."""
    config.validate()
    rng = random.Random(config.seed)  # noqa: S311 - simulation, not security: it must be seeded
    users, count = config.users, config.events
    population = range(users)
    actors = rng.choices(population, cum_weights=_zipf_cumulative(rng, users, config.actor_exponent), k=count)
    popular = _zipf_cumulative(rng, users, config.target_exponent)
    total = popular[-1]
    span = config.end_ms - config.start_ms
    times = sorted(config.start_ms + int(rng.random() * span) for _ in range(count))
    types = rng.choices(range(len(INTERACTION_TYPES)), weights=config.type_weights, k=count)
    contacts: dict[int, list[int]] = {}
    width = len(str(users - 1))
    lines = []
    for number, (actor, ts, kind) in enumerate(zip(actors, times, types, strict=True)):
        known = contacts.get(actor)
        if known and rng.random() < config.repeat:
            target = rng.choice(known)
        else:
            target = bisect.bisect_right(popular, rng.random() * total)
            while target == actor or target >= users:
                target = bisect.bisect_right(popular, rng.random() * total)
            contacts.setdefault(actor, []).append(target)
        lines.append(
            f'{{"id":"t{config.seed}-{number:09d}","type":"{INTERACTION_TYPES[kind]}",'
            f'"actor_id":"u{actor:0{width}d}","target_id":"u{target:0{width}d}","ts":{ts}}}'.encode()
        )
    return lines
