"""What a data file holds: valid events, distinct users, first and last event time."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from streams.engine.events import InvalidEvent, decode_event
from streams.settings import DAY_MS

__all__ = ["MONTH_MS", "DataProfile", "profile_lines"]

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


def profile_lines(lines: Iterable[bytes]) -> DataProfile:
    """Scan the lines once; invalid ones are skipped (replay counts them)."""
    users: set[str] = set()
    events, first, last = 0, 2**63, -(2**63)
    for line in lines:
        if not line.strip():
            continue
        try:
            event = decode_event(line.rstrip(b"\r\n"))
        except InvalidEvent:
            continue
        events += 1
        users.add(event.actor)
        users.add(event.target)
        first, last = min(first, event.ts), max(last, event.ts)
    if not events:
        first = last = 0
    return DataProfile(events, len(users), first, last)
