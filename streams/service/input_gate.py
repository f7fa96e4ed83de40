"""Input records go out contiguously from where the consumer was seeked: none fetched before the seek, no gaps."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

from streams.service.faust_internals import ack_offsets
from streams.service.records import source_name

__all__ = ["InputGate", "RefetchedEvent", "Sorted"]

Key = tuple[str, int]


class Sorted(NamedTuple):
    """A batch sorted by `InputGate.sort`."""

    send: list[Any]
    """Events to re-key and send, in order."""
    ack_only: list[Any]
    """Events below the partition's next offset: sent (or committed) already, acked without sending."""
    missing: dict[Key, list[tuple[int, int]]]
    """Per input partition, `(start, end)` ranges: offsets the consumer did not deliver, to read from the
    broker and send in their place (before the partition's next event in `send`)."""


class _Message(NamedTuple):
    topic: str
    partition: int
    offset: int


class RefetchedEvent(NamedTuple):
    """A record read straight from the broker, shaped like the parts of a Faust event the ingest reads."""

    message: _Message
    key: bytes | None
    value: bytes | None

    @classmethod
    def of(
        cls, topic: str, partition: int, offset: int, key: bytes | None, value: bytes | None
    ) -> RefetchedEvent:
        """The event for record `topic[partition]@offset`."""
        return cls(_Message(topic, partition, offset), key, value)


class InputGate:
    """Per input partition, the offset to send next, so updates go out contiguously from the committed offset.

    The owner partitions take an input partition's updates to arrive in
    offset order and recognise re-sent ones by offset, so a gap (records
    skipped, later ones sent, the skipped ones sent after) loses the skipped
    records. After a rebalance Faust seeks every partition to its committed
    offset only once recovery is done; records fetched before that, from the
    old position, can reach the agent first (faust-streaming 0.15.3 even
    resumes the flow when a recovery that a newer rebalance overtook
    completes), and under exactly_once the records before them were aborted.
    So until the seek nothing passes, then records pass from the seeked
    offset on: a record below the next offset is a repeat (acked only), one
    above it means the offsets between are read from the broker first (none
    may exist: transaction markers, compaction). That holds inside a batch
    too: Faust drops a record below its own read offset, which a seek or a
    rebalance can leave past records never delivered (seen: 14 records
    missing from the middle of a batch after workers left, exactly_once).

    `seeked` is filled by the consumer's seek (`streams.service.app`): the
    offset each assigned partition was seeked to after the last assignment.
    `queued` is the ingest's own record, by source name, of the offset after
    the last record queued since the last revocation (`Rekeyer.next_offset`).
    """

    def __init__(self, seeked: MutableMapping[Key, int], queued: Mapping[str, int]) -> None:
        self.seeked = seeked
        self.queued = queued

    def revoked(self) -> None:
        """Partitions are revoked: nothing passes until the next seek."""
        self.seeked.clear()

    def sort(self, events: Sequence[Any]) -> Sorted:
        """Events to send, to ack only, and offsets missing before them; events fetched before the seek are in none."""
        expected: dict[Key, int] = {}
        batch = Sorted([], [], {})
        for event in events:
            message = event.message
            key = (message.topic, message.partition)
            start = expected.get(key)
            if start is None:
                start = self.queued.get(source_name(*key), self.seeked.get(key))
                if start is None:
                    continue  # fetched before the seek: read again from the committed offset
            if message.offset < start:
                batch.ack_only.append(event)
                continue
            if message.offset > start:
                batch.missing.setdefault(key, []).append((start, message.offset))
            batch.send.append(event)
            expected[key] = message.offset + 1
        return batch


def ack_refetched(consumer: Any, topic: str, partition: int, offsets: range) -> None:
    """Mark offsets read straight from the broker as acked in Faust's consumer.

    Faust never delivered them, and it commits a partition only up to its
    first offset not acked: without this the partition's committed offset
    stays below them for good, and under exactly_once the partition is never
    judged idle (idleness needs every record below the end committed).
    """
    ack_offsets(consumer, topic, partition, offsets)


def seeked_offsets(app: Any) -> MutableMapping[Key, int]:
    """The app's record of where the consumer was last seeked to (`streams_seeked`, set up by `create_app`)."""
    found: MutableMapping[Key, int] = app.streams_seeked
    return found


def record_seeks(seeked: MutableMapping[Key, int], targets: Mapping[Any, int]) -> None:
    """Where each topic partition was seeked to (called from the consumer's thread)."""
    seeked.update({(tp.topic, tp.partition): offset for tp, offset in targets.items()})
