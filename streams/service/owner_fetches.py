"""Owner-stream records the consumer fetched that the relationship agent has not handled: a gap holding one lost them."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

__all__ = ["UnhandledFetches"]


class UnhandledFetches:
    """Offsets of the owner stream that aiokafka handed to Faust and the relationship agent has not handled yet.

    Faust can drop a fetched record before it reaches the agent (a stream
    skips records while the flow is stopped or of another consumer
    generation; `getmany` skips partitions that are not active at that
    moment) and counts on a later seek to the committed offset to deliver it
    again, but the committed offset may be past it by then. Under
    exactly_once the offsets an owner partition sees have gaps anyway
    (transaction markers, aborted records), so a gap alone does not tell a
    loss: a gap holding an offset recorded here was fetched and then lost on
    the way, and is read from the broker (`OwnerPartition.missing_before`).
    Fed from the consumer's fetch loop (`faust_internals.input_in_batches`);
    emptied at each revocation, with the owner partitions' state.
    """

    def __init__(self, topic: str) -> None:
        self.topic = topic
        """The owner-keyed topic whose fetches are tracked."""
        self._unhandled: dict[int, set[int]] = {}

    def fetched(self, records: Mapping[Any, Sequence[Any]]) -> None:
        """One fetch's records, by topic partition (aiokafka's `ConsumerRecord`s: only `offset` is read)."""
        for tp, found in records.items():
            if tp.topic == self.topic and found:
                self._unhandled.setdefault(tp.partition, set()).update(record.offset for record in found)

    def handled(self, partition: int, offset: int) -> None:
        """The agent handled the record at `offset` (delivered, or read from the broker)."""
        unhandled = self._unhandled.get(partition)
        if unhandled:
            unhandled.discard(offset)

    def read(self, partition: int, start: int, end: int) -> None:
        """Offsets `start..end-1` were read from the broker and their records handled."""
        self._keep(partition, lambda o: not start <= o < end)

    def between(self, partition: int, start: int, end: int) -> bool:
        """A record with `start <= offset < end` was fetched and not handled.

        >>> from types import SimpleNamespace
        >>> from aiokafka.structs import TopicPartition
        >>> fetches = UnhandledFetches("owners")
        >>> fetches.fetched({TopicPartition("owners", 0): [SimpleNamespace(offset=11), SimpleNamespace(offset=12)]})
        >>> fetches.handled(0, 11)
        >>> fetches.between(0, 11, 12), fetches.between(0, 11, 13)
        (False, True)
        """
        return any(start <= offset < end for offset in self._unhandled.get(partition, ()))

    def forget_below(self, partition: int, offset: int) -> None:
        """Offsets below `offset` were handled already: a record there delivered again changes nothing."""
        self._keep(partition, lambda o: o >= offset)

    def clear(self) -> None:
        """A revocation: every owner partition starts again from its checkpoint."""
        self._unhandled.clear()

    def _keep(self, partition: int, kept: Callable[[int], bool]) -> None:
        unhandled = self._unhandled.get(partition)
        if unhandled:
            self._unhandled[partition] = {o for o in unhandled if kept(o)}

    def __len__(self) -> int:
        return sum(len(offsets) for offsets in self._unhandled.values())
