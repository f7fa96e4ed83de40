"""Per-owner daily digests (issue 15): the day's dormant relationships, once the watermark has passed the day."""

from __future__ import annotations

import datetime
from collections.abc import Iterable
from typing import Any, NamedTuple

import orjson

from streams.engine.alerts import Alert

__all__ = ["DAY_MS", "DIGEST_SCHEMA_VERSION", "Digest", "Digests", "digests_of"]

DAY_MS = 86_400_000
DIGEST_SCHEMA_VERSION = 1
_FORMAT_V1 = b"\x01"
Digest = dict[str, Any]


class Entry(NamedTuple):
    """One dormant alert waiting for its day's digest."""

    contact_id: str
    alert_id: str
    strength: float
    last_interaction_at: int
    dormant_since: int
    touches: int

    def rank(self) -> tuple[float, str, int]:
        """Strongest first; then by contact id, then by last interaction (an id can fade twice a day)."""
        return (-self.strength, self.contact_id, self.last_interaction_at)

    def as_json(self) -> dict[str, Any]:
        """The entry as the digest lists it."""
        return self._asdict()


def last_ms_of(day: int) -> int:
    """The last millisecond of event-time day `day` (days since the epoch, UTC)."""
    return (day + 1) * DAY_MS - 1


class Digests:
    """Dormant alerts buffered per (event-time day of `dormant_since`, owner) until the watermark reaches the
    day's last millisecond; then one digest per owner with dormant relationships that day (docs/semantics.md §10).

    Only the alerts and the watermark decide a digest, not when the watermark moved: every dormant alert of a
    day has fired once the watermark reaches the day's last millisecond (deadlines fire at `<=` it), so the
    replay and the service, whatever steps their watermarks take, emit the same digests.

    >>> digests = Digests(top=1)
    >>> digests.add({"kind": "dormant", "alert_id": "dormant:a:b:1", "owner_id": "a", "contact_id": "b",
    ...     "strength": 2.0, "last_interaction_at": 1, "dormant_since": DAY_MS + 5, "touches": 3})
    >>> digests.due(2 * DAY_MS - 2)
    []
    >>> [(d["owner_id"], d["day"], d["more"]) for d in digests.due(2 * DAY_MS - 1)]
    [('a', '1970-01-02', 0)]
    """

    def __init__(self, top: int) -> None:
        self.top = top
        """How many relationships a digest lists (the strongest); the rest are counted."""
        self._days: dict[int, dict[str, list[Entry]]] = {}
        self._erasures: dict[str, int] = {}

    def add(self, alert: Alert) -> None:
        """Take an alert in emission order (`revived` ones are not digested).

        A dormant alert feedback held back goes in the digest of the day it was released on (§11).
        """
        if alert["kind"] != "dormant":
            return
        owner, contact, since = alert["owner_id"], alert["contact_id"], alert["dormant_since"]
        day = (alert.get("released_at") or since) // DAY_MS
        if self._erased_for(owner, day) or self._erased_for(contact, day):
            return
        entry = Entry(
            contact,
            alert["alert_id"],
            alert["strength"],
            alert["last_interaction_at"],
            since,
            alert["touches"],
        )
        self._days.setdefault(day, {}).setdefault(owner, []).append(entry)

    def erase(self, user: str, ts: int) -> None:
        """An erasure of `user` as of `ts`: they leave every digest of a day ending at or after `ts`.

        Digests of earlier days are not touched: their alerts all fired before
        the erasure applied, and they may have gone out already.
        """
        earliest = self._erasures.get(user)
        self._erasures[user] = ts if earliest is None else min(earliest, ts)
        for day, owners in self._days.items():
            if last_ms_of(day) < ts:
                continue
            owners.pop(user, None)
            for owner in list(owners):
                kept = [entry for entry in owners[owner] if entry.contact_id != user]
                if kept:
                    owners[owner] = kept
                else:
                    del owners[owner]

    def _erased_for(self, user: str, day: int) -> bool:
        ts = self._erasures.get(user)
        return ts is not None and last_ms_of(day) >= ts

    def due(self, watermark: int) -> list[Digest]:
        """The digests of every day whose last millisecond the watermark has reached, by day then owner; forgotten."""
        ready = sorted(day for day in self._days if last_ms_of(day) <= watermark)
        out: list[Digest] = []
        for day in ready:
            owners = self._days.pop(day)
            out += [self._digest(owner, day, owners[owner]) for owner in sorted(owners)]
        self.forget_erasures_before(watermark)
        return out

    def to_bytes(self) -> bytes:
        """Version 1: the byte 0x01, then the JSON object `{"d": {day: {owner: [entry fields]}}, "e": erasures}`.

        >>> digests = Digests(top=5)
        >>> digests.erase("eve", 7)
        >>> Digests.from_bytes(digests.to_bytes(), top=5)._erasures
        {'eve': 7}
        """
        days = {
            str(day): {owner: [list(e) for e in entries] for owner, entries in owners.items()}
            for day, owners in self._days.items()
        }
        return _FORMAT_V1 + orjson.dumps({"d": days, "e": self._erasures})

    @classmethod
    def from_bytes(cls, data: bytes, top: int) -> Digests:
        """Inverse of `to_bytes`; `top` is the setting now in force."""
        if not data or data[:1] != _FORMAT_V1:
            raise ValueError(f"unknown digests format version byte {data[:1]!r}")
        obj = orjson.loads(memoryview(data)[1:])
        digests = cls(top)
        digests._days = {
            int(day): {owner: [Entry(*fields) for fields in entries] for owner, entries in owners.items()}
            for day, owners in obj["d"].items()
        }
        digests._erasures = dict(obj["e"])
        return digests

    def forget_erasures_before(self, watermark: int) -> None:
        """Erasures the watermark has passed: the engine drops their user's updates from then on, so no alert
        naming them can come any more, and the digests they touch were pruned when they came."""
        if self._erasures:  # due() calls this for every owner-stream record; erasures are rare
            self._erasures = {user: ts for user, ts in self._erasures.items() if ts > watermark}

    def pending(self) -> int:
        """Dormant alerts waiting for their day's digest."""
        return sum(len(entries) for owners in self._days.values() for entries in owners.values())

    def _digest(self, owner: str, day: int, entries: list[Entry]) -> Digest:
        ranked = sorted(entries, key=Entry.rank)
        return {
            "digest_id": f"digest:{owner}:{day}",
            "owner_id": owner,
            "day": datetime.datetime.fromtimestamp(day * DAY_MS / 1000, tz=datetime.UTC).date().isoformat(),
            "day_start": day * DAY_MS,
            "dormant": [entry.as_json() for entry in ranked[: self.top]],
            "more": max(len(ranked) - self.top, 0),
            "schema_version": DIGEST_SCHEMA_VERSION,
        }


def digests_of(
    alerts: Iterable[Alert], watermark: int, top: int, erasures: Iterable[tuple[str, int]] = ()
) -> list[Digest]:
    """Every digest due at `watermark` from a run's alerts (the replay: its final watermark), with `erasures`
    (user, ts) known from the start."""
    digests = Digests(top)
    for user, ts in erasures:
        digests.erase(user, ts)
    for alert in alerts:
        digests.add(alert)
    return digests.due(watermark)
