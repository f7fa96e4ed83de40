"""Timer service: rows ordered by deadline, so due rows are found without scanning the table."""

from __future__ import annotations

import heapq

__all__ = ["DeadlineIndex"]

RowKey = tuple[str, str]


class DeadlineIndex:
    """A min-heap of `(deadline, owner, contact)` with lazy deletion.

    Each key has at most one live deadline; superseded heap entries are
    skipped when they surface and purged when they outnumber live ones.

    >>> index = DeadlineIndex()
    >>> index.set(("a", "b"), 50); index.set(("a", "b"), 70); index.set(("c", "d"), 60)
    >>> list(index.pop_due(65))
    [(60, ('c', 'd'))]
    >>> len(index)
    1
    """

    __slots__ = ("_deadline", "_heap")

    def __init__(self) -> None:
        self._heap: list[tuple[int, str, str]] = []
        self._deadline: dict[RowKey, int] = {}

    def __len__(self) -> int:
        return len(self._deadline)

    def heap_size(self) -> int:
        """Entries in the heap, live and superseded."""
        return len(self._heap)

    def set(self, key: RowKey, deadline: int) -> None:
        """Schedule `key` at `deadline`, replacing any earlier schedule."""
        if self._deadline.get(key) == deadline:
            return
        self._deadline[key] = deadline
        heapq.heappush(self._heap, (deadline, key[0], key[1]))
        if len(self._heap) > 2 * len(self._deadline) + 1024:
            self._compact()

    def discard(self, key: RowKey) -> None:
        """Unschedule `key` if it is scheduled."""
        self._deadline.pop(key, None)

    def get(self, key: RowKey) -> int | None:
        """The live deadline of `key`, if any."""
        return self._deadline.get(key)

    def next_deadline(self) -> int | None:
        """The earliest live deadline, or None."""
        heap, live = self._heap, self._deadline
        while heap:
            deadline, owner, contact = heap[0]
            if live.get((owner, contact)) == deadline:
                return deadline
            heapq.heappop(heap)
        return None

    def pop_due(self, limit: int) -> list[tuple[int, RowKey]]:
        """Remove and return, in `(deadline, owner, contact)` order, every live entry `<= limit`."""
        heap, live = self._heap, self._deadline
        due: list[tuple[int, RowKey]] = []
        while heap and heap[0][0] <= limit:
            deadline, owner, contact = heapq.heappop(heap)
            key = (owner, contact)
            if live.get(key) == deadline:
                del live[key]
                due.append((deadline, key))
        return due

    def _compact(self) -> None:
        self._heap = [(d, o, c) for (o, c), d in self._deadline.items()]
        heapq.heapify(self._heap)
