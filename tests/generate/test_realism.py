"""The stream looks social: heavy-tailed activity, both tie kinds, a daily cycle and reply bursts."""

from __future__ import annotations

from collections import Counter, defaultdict

from streams.engine.events import TYPE_INDEX
from streams.generate import GeneratedStream
from streams.settings import DAY_MS, HOUR_MS
from tests.generate.support import decoded


def test_activity_is_heavy_tailed(small: GeneratedStream) -> None:
    """The top 10 % of users by events acted produce more than 30 % of the events (measured: 41 %)."""
    per_actor = Counter(event.actor for event in decoded(small.lines))
    ranked = sorted(per_actor.values(), reverse=True)
    top = ranked[: max(len(ranked) // 10, 1)]
    assert sum(top) / len(small.lines) > 0.3


def test_reciprocal_and_one_sided_ties_exist(small: GeneratedStream) -> None:
    """Among pairs with at least 10 events, some go both ways and some only one way."""
    directions: dict[frozenset[str], set[str]] = defaultdict(set)
    counts: Counter[frozenset[str]] = Counter()
    for event in decoded(small.lines):
        pair = frozenset((event.actor, event.target))
        directions[pair].add(event.actor)
        counts[pair] += 1
    busy = [pair for pair, count in counts.items() if count >= 10]
    mutual = sum(1 for pair in busy if len(directions[pair]) == 2)
    one_sided = len(busy) - mutual
    assert mutual > 0.4 * len(busy)
    assert one_sided > 0.1 * len(busy)


def test_daily_cycle_in_local_time(small: GeneratedStream) -> None:
    """Local hours 02-05 hold well under their uniform share (4/24) of the events."""
    assert small.population is not None
    index = {user: i for i, user in enumerate(small.population.ids)}
    offsets = small.population.offset_ms
    night = 0
    events = decoded(small.lines)
    for event in events:
        hour = (event.ts + offsets[index[event.actor]]) % DAY_MS // HOUR_MS
        night += 2 <= hour <= 5
    assert night / len(events) < 0.5 * 4 / 24


def test_replies_come_in_bursts(small: GeneratedStream) -> None:
    """Many replies answer the same pair's opposite direction within 15 minutes."""
    last_seen: dict[tuple[str, str], int] = {}
    quick = replies = 0
    for event in decoded(small.lines):
        if event.type == TYPE_INDEX["reply"]:
            replies += 1
            previous = last_seen.get((event.target, event.actor))
            quick += previous is not None and event.ts - previous <= 15 * 60_000
        last_seen[(event.actor, event.target)] = event.ts
    assert quick > 0.3 * replies
