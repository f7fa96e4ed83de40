"""Helpers of the generator tests: decoded events and per-pair timelines."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable

from streams.engine.events import Interaction, decode_event

__all__ = ["decoded", "pair_times"]


def decoded(lines: Iterable[bytes]) -> list[Interaction]:
    """Every line decoded and validated (raises on an invalid one)."""
    return [decode_event(line) for line in lines]


def pair_times(events: Iterable[Interaction]) -> dict[frozenset[str], list[int]]:
    """Event times of each unordered pair of users."""
    times: dict[frozenset[str], list[int]] = defaultdict(list)
    for event in events:
        times[frozenset((event.actor, event.target))].append(event.ts)
    return times
