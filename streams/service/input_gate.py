"""Input records go out contiguously from where the consumer was seeked: none fetched before the seek, no gaps."""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from typing import Any, NamedTuple

from streams.service.records import source_name

__all__ = ["InputGate", "Sorted", "record_seeks", "seeked_offsets"]

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


def seeked_offsets(app: Any) -> MutableMapping[Key, int]:
    """The app's record of where the consumer was last seeked to (`streams_seeked`, set up by `create_app`)."""
    found: MutableMapping[Key, int] = app.streams_seeked
    return found


def record_seeks(seeked: MutableMapping[Key, int], targets: Mapping[Any, int]) -> None:
    """Where each topic partition was seeked to (called from the consumer's thread)."""
    seeked.update({(tp.topic, tp.partition): offset for tp, offset in targets.items()})
