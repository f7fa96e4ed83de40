"""Timer service: rows ordered by deadline, so due rows are found without scanning the table."""

from __future__ import annotations

import heapq
from typing import Protocol

__all__ = ["DeadlineIndex", "Deadlines"]

RowKey = tuple[str, str]


class Deadlines(Protocol):
    """What the engine needs of a deadline index: `DeadlineIndex` in memory, or one backed by a store."""

    def __len__(self) -> int:
        """Entries held in memory."""

    def set(self, key: RowKey, deadline: int) -> None:
        """Schedule `key` at `deadline`, replacing any earlier schedule."""

    def discard(self, key: RowKey) -> None:
        """Unschedule `key` if it is scheduled."""

    def get(self, key: RowKey) -> int | None:
        """The live deadline of `key`, if any."""

    def may_be_due(self, limit: int) -> bool:
        """Cheap pre-check: False means nothing is due at `limit`."""

    def pop_due(self, limit: int) -> list[tuple[int, RowKey]]:
        """Remove and return, in `(deadline, owner, contact)` order, every live entry `<= limit`."""


class DeadlineIndex:
    """A min-heap of `(deadline, owner, contact)` with lazy updates.

    Each key has one live deadline. A later deadline only updates the live
    value: the key's heap entry is re-queued at its live deadline when it
    surfaces. An earlier deadline pushes a new entry; the older one is skipped
    when it surfaces. So a row that keeps interacting costs no heap push.

    >>> index = DeadlineIndex()
    >>> index.set(("a", "b"), 50); index.set(("a", "b"), 70); index.set(("c", "d"), 60)
    >>> index.pop_due(65)
    [(60, ('c', 'd'))]
    >>> index.pop_due(70), len(index)
    ([(70, ('a', 'b'))], 0)
    """

    __slots__ = ("_heap", "_live", "_queued")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, str]] = []
        self._live: dict[RowKey, int] = {}
        self._queued: dict[RowKey, int] = {}

    def __len__(self) -> int:
        return len(self._live)

    def heap_size(self) -> int:
        """Entries in the heap, live and superseded."""
        return len(self._heap)

    def set(self, key: RowKey, deadline: int) -> None:
        """Schedule `key` at `deadline`, replacing any earlier schedule."""
        self._live[key] = deadline
        queued = self._queued.get(key)
        if queued is not None and queued <= deadline:
            return
        self._queued[key] = deadline
        heapq.heappush(self._heap, (deadline, key[0], key[1]))
        if len(self._heap) > 2 * len(self._queued) + 1024:
            self._compact()

    def discard(self, key: RowKey) -> None:
        """Unschedule `key` if it is scheduled."""
        self._live.pop(key, None)

    def get(self, key: RowKey) -> int | None:
        """The live deadline of `key`, if any."""
        return self._live.get(key)

    def may_be_due(self, limit: int) -> bool:
        """Cheap pre-check: False means nothing is due at `limit` (True may be a stale entry)."""
        heap = self._heap
        return bool(heap) and heap[0][0] <= limit

    def next_deadline(self) -> int | None:
        """The earliest live deadline, or None."""
        return min(self._live.values(), default=None) if self._live else None

    def pop_due(self, limit: int) -> list[tuple[int, RowKey]]:
        """Remove and return, in `(deadline, owner, contact)` order, every live entry `<= limit`."""
        heap, live, queued = self._heap, self._live, self._queued
        due: list[tuple[int, RowKey]] = []
        while heap and heap[0][0] <= limit:
            deadline, owner, contact = heapq.heappop(heap)
            key = (owner, contact)
            if queued.get(key) != deadline:
                continue  # superseded by an earlier push
            current = live.get(key)
            if current is None:
                del queued[key]
            elif current == deadline:
                del queued[key], live[key]
                due.append((deadline, key))
            else:
                queued[key] = current
                heapq.heappush(heap, (current, owner, contact))
        return due

    def live(self) -> dict[RowKey, int]:
        """Every key's live deadline (read only)."""
        return self._live

    def forget(self, keys: list[RowKey]) -> None:
        """Unschedule `keys` and drop their heap entries now (a store holds them: see `StoredDeadlines`)."""
        live = self._live
        for key in keys:
            live.pop(key, None)
        self._compact()

    def _compact(self) -> None:
        self._queued = dict(self._live)
        self._heap = [(d, o, c) for (o, c), d in self._live.items()]
        heapq.heapify(self._heap)
