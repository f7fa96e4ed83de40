"""Input records handed over by the consumer a fetched partition at a time, taken by the ingest in batches."""

from __future__ import annotations

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple

__all__ = ["InputBatches", "InputRecord", "acked_runs"]


class InputRecord(NamedTuple):
    """One input record, shaped like the parts of a Faust event the ingest reads."""

    message: Any
    """Where it is: `topic`, `partition`, `offset` (aiokafka's `ConsumerRecord`, or `Position`)."""
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> InputRecord:
        """The record `topic[partition]@offset` (one read straight from the broker)."""
        return cls(Position(topic, partition, offset), key, value)


class Position(NamedTuple):
    """Where an input record is."""

    topic: str
    partition: int
    offset: int


class InputBatches:
    """The hand-off between the consumer's fetch loop (`faust_internals.input_in_batches`) and the ingest.

    The fetch loop puts each fetch's input records here, a list per
    partition, tagged with the consumer generation they were fetched in; the
    ingest takes them in batches of up to `max_records`. While `max_pending`
    records wait, the fetch loop waits too (the consumer fetches no more), so
    memory stays bounded when the ingest is the slower side. Records of an
    earlier generation are dropped when taken: a rebalance came after they
    were fetched, and their partitions are read again from the committed
    offsets.
    """

    def __init__(self, topics: Iterable[str], max_pending: int, generation: Callable[[], int]) -> None:
        self.topics = frozenset(topics)
        """The topics whose records are handed off here."""
        self.max_pending = max_pending
        self.generation = generation
        """The consumer's current generation (`app.consumer_generation_id`)."""
        self._chunks: deque[tuple[int, Sequence[Any]]] = deque()
        self._pending = 0
        self._ready = asyncio.Event()
        self._room = asyncio.Event()
        self._room.set()

    @property
    def pending(self) -> int:
        """Records waiting to be taken."""
        return self._pending

    async def put(self, fetched: Mapping[Any, Sequence[Any]], generation: int, suspended: Any) -> None:
        """Queue one fetch's records; first wait for room, unless `suspended` (a rebalance) is set meanwhile."""
        while self._pending >= self.max_pending and not suspended.is_set():
            room = asyncio.ensure_future(self._room.wait())
            stop = asyncio.ensure_future(suspended.wait())
            try:
                await asyncio.wait({room, stop}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                room.cancel()
                stop.cancel()
        for records in fetched.values():
            if records:
                self._chunks.append((generation, records))
                self._pending += len(records)
        if self._pending:
            self._ready.set()
        if self._pending >= self.max_pending:
            self._room.clear()

    def clear(self) -> None:
        """Drop everything queued (partitions are revoked: they are read again from the committed offsets)."""
        self._chunks.clear()
        self._pending = 0
        self._ready.clear()
        self._room.set()

    async def take(self, max_records: int, within: float) -> list[InputRecord]:
        """The next batch: waits for a first record, then up to `within` seconds for `max_records`."""
        batch: list[InputRecord] = []
        deadline: float | None = None
        while len(batch) < max_records:
            if not self._chunks:
                if deadline is None:
                    await self._ready.wait()
                else:
                    remaining = deadline - time.monotonic()
                    if remaining <= 0:
                        break
                    try:
                        await asyncio.wait_for(self._ready.wait(), remaining)
                    except TimeoutError:
                        break
                continue
            self._take_into(batch, max_records)
            if batch and deadline is None:
                deadline = time.monotonic() + within
        return batch

    def _take_into(self, batch: list[InputRecord], max_records: int) -> None:
        current = self.generation()
        while self._chunks and len(batch) < max_records:
            generation, records = self._chunks.popleft()
            room = max_records - len(batch)
            if len(records) > room:
                self._chunks.appendleft((generation, records[room:]))
                records = records[:room]
            self._pending -= len(records)
            if generation == current:
                batch += [InputRecord(record, record.key, record.value) for record in records]
        if not self._chunks:
            self._ready.clear()
        if self._pending < self.max_pending:
            self._room.set()


def acked_runs(
    records: Iterable[InputRecord], holes: Mapping[tuple[str, int], list[tuple[int, int]]] | None = None
) -> dict[tuple[str, int], list[range]]:
    """Per input partition, the offsets of `records` and of `holes`, as ascending runs of consecutive offsets.

    `holes` are `(start, end)` ranges read from the broker in the batch's place
    (`Sorted.missing`): all of a hole is acked, offsets that hold no record
    included (transaction markers, compacted records), else Faust commits the
    partition only up to the first of them, for good.
    """
    offsets: dict[tuple[str, int], set[int]] = {}
    for record in records:
        message = record.message
        offsets.setdefault((message.topic, message.partition), set()).add(message.offset)
    for key, ranges in (holes or {}).items():
        found = offsets.setdefault(key, set())
        for start, end in ranges:
            found.update(range(start, end))
    runs: dict[tuple[str, int], list[range]] = {}
    for key, unsorted in offsets.items():
        found_sorted = sorted(unsorted)
        found_runs = runs[key] = []
        start = previous = found_sorted[0]
        for offset in found_sorted[1:]:
            if offset != previous + 1:
                found_runs.append(range(start, previous + 1))
                start = offset
            previous = offset
        found_runs.append(range(start, previous + 1))
    return runs
