"""What a data file holds: valid events, distinct users, first and last event time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from streams.engine.events import Interaction, InvalidEvent, decode_event
from streams.settings import DAY_MS

__all__ = ["MONTH_MS", "DataProfile", "profile_events", "profile_lines", "valid_events"]

MONTH_MS = round(30.4375 * DAY_MS)
"""A month for rates: 365.25 / 12 days."""


@dataclass(frozen=True, slots=True)
class DataProfile:
    """Counts and time span of one input (valid events only)."""

    events: int
    users: int
    first_ts: int
    last_ts: int

    @property
    def months(self) -> float:
        """Span in months of `MONTH_MS` (at least one millisecond's worth)."""
        return max(self.last_ts - self.first_ts, 1) / MONTH_MS

    def as_dict(self) -> dict[str, float | int]:
        """JSON-ready form."""
        span_days = (self.last_ts - self.first_ts) / DAY_MS
        return {
            "events": self.events,
            "users": self.users,
            "first_ts": self.first_ts,
            "last_ts": self.last_ts,
            "span_days": round(span_days, 2),
        }


def valid_events(lines: Iterable[bytes]) -> Iterator[Interaction]:
    """The lines' valid events in file order; blank and invalid lines are skipped (replay counts them)."""
    for line in lines:
        if not line.strip():
            continue
        try:
            yield decode_event(line.rstrip(b"\r\n"))
        except InvalidEvent:
            continue


def profile_lines(lines: Iterable[bytes]) -> DataProfile:
    """Scan the lines once; invalid ones are skipped (replay counts them)."""
    return profile_events(valid_events(lines))


def profile_events(valid: Iterable[Interaction]) -> DataProfile:
    """Counts and span of already-decoded events."""
    users: set[str] = set()
    events, first, last = 0, 2**63, -(2**63)
    for event in valid:
        events += 1
        users.add(event.actor)
        users.add(event.target)
        first, last = min(first, event.ts), max(last, event.ts)
    if not events:
        first = last = 0
    return DataProfile(events, len(users), first, last)
