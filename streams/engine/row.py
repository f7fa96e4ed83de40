"""One relationship row (owner, contact): counts, touches, gaps, strength, status; compact bytes."""

from __future__ import annotations

from typing import Any

import orjson

__all__ = ["Row"]


class Row:
    """Rolling state of one directed relationship row (SPEC §2).

    `counts` is flat: index `direction * 3 + type` (out mention, reply, like,
    then in mention, reply, like). `dormant_since` is the deadline that passed
    while the row is dormant, `None` while it is active. `recent` maps the ids
    applied to `[event time, input position]`: those within the de-duplication
    window, and at least the last 32.

    >>> row = Row.first(1_000)
    >>> Row.from_bytes(row.to_bytes()).last_at
    1000
    """

    __slots__ = (
        "cached_threshold",
        "counts",
        "dormant_since",
        "first_at",
        "gaps",
        "known_established",
        "last_at",
        "last_in_at",
        "last_out_at",
        "recent",
        "strength",
        "touch_at",
        "touches",
        "unwritten",
    )

    def __init__(
        self,
        counts: list[int],
        first_at: int,
        last_at: int,
        last_out_at: int | None,
        last_in_at: int | None,
        touch_at: int,
        touches: int,
        gaps: list[int],
        strength: float,
        dormant_since: int | None,
        recent: dict[str, list[int]],
    ) -> None:
        self.counts = counts
        """Interactions per direction and type, flat (see the class docstring)."""
        self.first_at = first_at
        """Earliest event time applied (ms)."""
        self.last_at = last_at
        """Latest event time applied (ms); the deadline counts from here."""
        self.last_out_at = last_out_at
        """Latest event time the owner acted (ms), or None."""
        self.last_in_at = last_in_at
        """Latest event time the contact acted (ms), or None."""
        self.touch_at = touch_at
        """Start of the current touch (ms)."""
        self.touches = touches
        """Touches so far."""
        self.gaps = gaps
        """Last `gap_window` differences between consecutive touch starts (ms)."""
        self.strength = strength
        """Decayed weighted count as of `last_at`."""
        self.dormant_since = dormant_since
        """Deadline that passed, while dormant; None while active."""
        self.recent = recent
        """Event ids applied recently -> `[event time, input position]`."""
        self.cached_threshold: int | None = None
        """Threshold derived from `gaps` (not serialised; reset when `gaps` change)."""
        self.known_established = False
        """The engine has seen this row established (not serialised; re-derived on load)."""
        self.unwritten = 0
        """Ids applied since the row was last persisted, none of which it forgets (not serialised)."""

    @classmethod
    def first(cls, ts: int) -> Row:
        """An empty row about to receive its first event at `ts`."""
        return cls([0, 0, 0, 0, 0, 0], ts, ts, None, None, ts, 0, [], 0.0, None, {})

    @property
    def dormant(self) -> bool:
        """True while the row is in a dormant episode."""
        return self.dormant_since is not None

    def to_bytes(self) -> bytes:
        """Compact JSON array; the inverse of `from_bytes`."""
        return orjson.dumps(
            [
                self.counts,
                self.first_at,
                self.last_at,
                self.last_out_at,
                self.last_in_at,
                self.touch_at,
                self.touches,
                self.gaps,
                self.strength,
                self.dormant_since,
                self.recent,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Row:
        """Decode what `to_bytes` wrote."""
        fields: list[Any] = orjson.loads(data)
        return cls(*fields)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({self.to_bytes().decode()})"
