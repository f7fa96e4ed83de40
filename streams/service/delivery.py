"""How the service's records reach Kafka: one interface, with at_least_once and exactly_once behind it."""

from __future__ import annotations

import asyncio
import contextlib
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import faust
import orjson
import rocksdict

from streams.engine.alerts import Alert
from streams.engine.digests import Digest
from streams.service.cloudevents import alert_headers, digest_headers, event_source
from streams.service.dead_letter import DeadLetter
from streams.service.faust_internals import (
    changelog_sent_callback,
    on_transaction_committed,
    partition_databases,
)
from streams.service.metrics import Metrics
from streams.service.records import (
    NOTHING,
    Marker,
    Split,
    encode_owner_record,
    source_partition,
    source_topic,
)
from streams.service.topology import Topology
from streams.service.transactions import CommittedWrites, TransactionGone, Transactions
from streams.settings import Settings

__all__ = [
    "AtLeastOnce",
    "Checkpointing",
    "Delivery",
    "ExactlyOnce",
    "RowRecords",
    "SourceMarkers",
    "delivery_for",
    "source_records",
    "write_batch",
    "write_local_rows",
]

RowRecords = list[tuple[bytes, bytes | None]]
"""Keys of the rows table and their values (None: delete the key)."""
SourceMarkers = Callable[[dict[str, Marker], str], dict[str, Marker]]
"""The markers one input partition's records carry, given a batch's (`Rekeyer.source_markers`)."""


def write_local_rows(store: Any, partition: int, records: RowRecords) -> None:
    """Put (value None: delete) keys in one partition of a raw table's store, in one RocksDB write batch."""
    db_for_partition = partition_databases(store)
    if db_for_partition is None:  # Faust's in-memory store
        for key, value in records:
            if value is None:
                store.pop(key, None)
            else:
                store[key] = value
        return
    write_batch(db_for_partition(partition), records)


def write_batch(db: rocksdict.Rdict, records: RowRecords) -> None:
    """Put (value None: delete) keys in one RocksDB database (raw mode), in one write batch."""
    batch = rocksdict.WriteBatch(raw_mode=True)
    for key, value in records:
        if value is None:
            batch.delete(key)
        else:
            batch.put(key, value)
    db.write(batch)


def source_records(split: Split, source: str, markers: dict[str, Marker], partitions: int) -> list[bytes]:
    """exactly_once: one input partition's owner-stream records, one per owner partition, in partition order.

    Each carries that source's updates and erasures for the partition (named
    with source index 0) and `markers`; records with neither updates nor
    erasures name no source.
    """
    index = split.sources.index(source) if source in split.sources else -1
    erasures = [[*e[:2], 0, e[3]] for e in split.erasures if e[2] == index]
    found = []
    for partition in range(partitions):
        updates = [[*u[:6], 0, u[7]] for u in split.by_partition.get(partition, []) if u[6] == index]
        feedback = [[*f[:5], 0, f[6]] for f in split.feedback.get(partition, []) if f[5] == index]
        named = [source] if updates or erasures or feedback else []
        found.append(encode_owner_record(named, updates, markers, erasures, feedback))
    return found


class Checkpointing(ABC):
    """One owner partition's checkpoint being written: its alerts first, then its rows."""

    @abstractmethod
    async def flush_alerts(self) -> None:
        """Make the alerts published so far part of the checkpoint (they precede its rows)."""

    @abstractmethod
    async def write_rows(self, records: RowRecords, stopped: Callable[[], bool]) -> None:
        """Write keys of the rows table: local RocksDB and the changelog; stop between batches once `stopped()`."""


class Delivery(ABC):
    """Every record the service writes, under one processing guarantee (`delivery_for` picks the class).

    The ingest stage sends row updates, markers and dead letters; the
    relationship stage publishes alerts and writes checkpoints (rows, erasures
    and the resume record). A `TransactionGone` escaping a method means the
    records' partition was revoked meanwhile: the next owner redoes the work.
    """

    transactional: bool
    """Records go in Kafka transactions (exactly_once): reads are read_committed and offsets may skip."""

    def __init__(self, app: faust.App, topology: Topology, settings: Settings, metrics: Metrics) -> None:
        self.app = app
        self.topology = topology
        self.settings = settings
        self.metrics = metrics
        self.transactions = Transactions(app, self.transactional, metrics.send_errors)
        self.owner_topic = topology.owner_updates.get_topic_name()

    # The ingest stage.

    @abstractmethod
    async def send_updates(
        self, split: Split, markers: dict[str, Marker], source_markers: SourceMarkers
    ) -> bool:
        """Updates, erasures and markers to every owner partition; False if their input partitions moved."""

    @abstractmethod
    async def send_dead_letter(self, topic: str, partition: int, letter: DeadLetter) -> None:
        """A dead letter of the input record at `topic[partition]`."""

    @abstractmethod
    async def retract_idleness(self, markers: dict[str, Marker]) -> None:
        """On revocation: tell every owner partition that the input partitions of `markers` are not idle."""

    # The relationship stage.

    @abstractmethod
    async def publish_alerts(self, partition: int, alerts: list[Alert]) -> None:
        """Alerts of owner partition `partition`, out now or with its next checkpoint."""

    @abstractmethod
    async def publish_digests(self, partition: int, digests: list[Digest]) -> None:
        """Daily digests of owner partition `partition`, out now or with its next checkpoint, as its alerts."""

    @abstractmethod
    def has_unsent_alerts(self, partition: int) -> bool:
        """Alerts (or digests) wait for the partition's next checkpoint."""

    def unapplied_writes(self, partition: int) -> list[dict[bytes, bytes | None]]:
        """Rows-table writes of `partition` checkpointed but not in local RocksDB yet (key -> value, None: deleted)."""
        return []

    @abstractmethod
    def checkpoint(self, partition: int) -> contextlib.AbstractAsyncContextManager[Checkpointing | None]:
        """Write one checkpoint of owner partition `partition` inside (None: it was revoked, write nothing)."""

    @abstractmethod
    def drop_all(self) -> None:
        """On revocation: forget what waits for a checkpoint."""

    async def abort_open(self) -> int:
        """On revocation: abort the open transactions; how many (none without transactions)."""
        return await self.transactions.abort_open()

    async def _send_alerts(self, alerts: list[Alert], tid: str | None) -> list[Awaitable[Any]]:
        """Alerts to the alert topic keyed by owner, in transaction `tid` if any; their delivery futures."""
        deliveries = await self._send_by_owner(self.topology.alerts, alerts, alert_headers, tid)
        for alert in alerts:
            self.metrics.alerts.labels(kind=alert["kind"]).inc()
        return deliveries

    async def _send_digests(self, digests: list[Digest], tid: str | None) -> list[Awaitable[Any]]:
        """Digests to the digest topic keyed by owner, in transaction `tid` if any; their delivery futures."""
        deliveries = await self._send_by_owner(self.topology.digests, digests, digest_headers, tid)
        self.metrics.digests.inc(len(digests))
        return deliveries

    async def _send_by_owner(
        self,
        topic: Any,
        values: list[dict[str, Any]],
        headers_of: Callable[[dict[str, Any], str], list[tuple[str, bytes]]],
        tid: str | None,
    ) -> list[Awaitable[Any]]:
        """JSON values (sorted keys) to `topic` keyed by their `owner_id`, with their CloudEvents headers."""
        source = event_source(self.settings.app_id)
        name = topic.get_topic_name()
        deliveries = []
        for value in values:
            key, data = value["owner_id"].encode(), orjson.dumps(value, option=orjson.OPT_SORT_KEYS)
            headers = headers_of(value, source)
            if tid is None:
                deliveries.append(await topic.send(key=key, value=data, headers=headers))
            else:
                deliveries.append(await self.transactions.send(tid, name, data, key=key, headers=headers))
        return deliveries

    def changelog_name(self) -> str:
        """The rows table's changelog topic."""
        table: Any = self.topology.rows
        name: str = table.changelog_topic.get_topic_name()
        return name


class AtLeastOnce(Delivery):
    """Plain sends; a checkpoint waits until the alerts before it are delivered, then writes rows."""

    transactional = False

    def __init__(self, app: faust.App, topology: Topology, settings: Settings, metrics: Metrics) -> None:
        super().__init__(app, topology, settings, metrics)
        self.alerts_in_flight: list[Awaitable[Any]] = []
        """Alerts queued but not known to be delivered: a checkpoint waits for them."""

    async def send_updates(
        self, split: Split, markers: dict[str, Marker], source_markers: SourceMarkers
    ) -> bool:
        """One record per owner partition, with every source's updates, the erasures and the markers."""
        for partition in range(self.settings.partitions):
            updates = split.by_partition.get(partition, [])
            feedback = split.feedback.get(partition)
            value = encode_owner_record(split.sources, updates, markers, split.erasures, feedback)
            await self.topology.owner_updates.send(partition=partition, value=value)
        return True

    async def send_dead_letter(self, topic: str, partition: int, letter: DeadLetter) -> None:
        """Sent on its own."""
        await self.topology.dead_letters.send(key=letter.key, value=letter.value, headers=letter.headers)

    async def retract_idleness(self, markers: dict[str, Marker]) -> None:
        """The markers as they are: what they claim was sent."""
        await self.send_updates(NOTHING, markers, lambda batch, _source: batch)

    async def publish_alerts(self, partition: int, alerts: list[Alert]) -> None:
        """Sent now; the next checkpoint waits for their delivery."""
        if alerts:
            self.alerts_in_flight += await self._send_alerts(alerts, None)

    async def publish_digests(self, partition: int, digests: list[Digest]) -> None:
        """Sent now; the next checkpoint waits for their delivery (it no longer holds them)."""
        if digests:
            self.alerts_in_flight += await self._send_digests(digests, None)

    def has_unsent_alerts(self, partition: int) -> bool:
        """Never: alerts go out at once."""
        return False

    @contextlib.asynccontextmanager
    async def checkpoint(self, partition: int) -> AsyncIterator[Checkpointing | None]:
        """Nothing to hold off: the checkpoint is written as it comes."""
        yield _PlainCheckpoint(self, partition)

    def drop_all(self) -> None:
        """Alerts in flight stay in flight: they were sent."""


class _PlainCheckpoint(Checkpointing):
    def __init__(self, delivery: AtLeastOnce, partition: int) -> None:
        self.delivery = delivery
        self.partition = partition

    async def flush_alerts(self) -> None:
        """Wait until every alert sent so far is delivered: a restart after the rows never re-emits them."""
        delivery = self.delivery
        if delivery.alerts_in_flight:
            deliveries, delivery.alerts_in_flight = delivery.alerts_in_flight, []
            await asyncio.gather(*deliveries)

    async def write_rows(self, records: RowRecords, stopped: Callable[[], bool]) -> None:
        """Local RocksDB first, then the changelog; its last delivery advances the persisted changelog offset.

        What `table[key] = value` does for each, in one RocksDB write batch and
        as few producer batches as the records fit (`Transactions.send_batches`):
        Faust's per-key path (a store put, a `Topic.send` and a persisted-offset
        callback per row) was half a worker's CPU on new rows. The changelog
        batches are flushed before any offset commit; the last one's delivery
        advances the local store's persisted changelog offset (to that batch's
        first offset: a restart re-reads the rest of it, which rewrites the same
        values).
        """
        delivery = self.delivery
        table: Any = delivery.topology.rows
        write_local_rows(table.data, self.partition, records)
        deliveries = await delivery.transactions.send_batches(
            None, delivery.changelog_name(), self.partition, records, stopped
        )
        if deliveries:
            on_sent = changelog_sent_callback(table)
            deliveries[-1].add_done_callback(
                lambda sent: on_sent(sent) if not sent.cancelled() and not sent.exception() else None
            )


class ExactlyOnce(Delivery):
    """Each record goes in the Kafka transaction that commits the input offsets it comes from.

    The ingest stage's records join the transaction of their input partition;
    the relationship stage's alerts, rows and resume record join the
    transaction of their owner partition, with Faust's commit of it held off
    until a checkpoint is all in: a crash aborts all or none of it. Rows reach
    local RocksDB only once their transaction commits (`CommittedWrites`);
    local tables are rebuilt from the changelog at every start, so no persisted
    changelog offset is kept.
    """

    transactional = True

    def __init__(self, app: faust.App, topology: Topology, settings: Settings, metrics: Metrics) -> None:
        super().__init__(app, topology, settings, metrics)
        self.unsent_alerts: dict[int, list[Alert]] = {}
        """Alerts held until the checkpoint whose transaction carries them."""
        self.unsent_digests: dict[int, list[Digest]] = {}
        """Digests held the same way."""
        self.committed_writes = CommittedWrites(topology.rows)

    async def send_updates(
        self, split: Split, markers: dict[str, Marker], source_markers: SourceMarkers
    ) -> bool:
        """Per input partition: its updates, erasures and markers, in the transaction of its offsets."""
        transactions = self.transactions
        for source in markers.keys() | set(split.sources):
            tid = transactions.transactional_id(source_topic(source), source_partition(source))
            if tid is None or not transactions.is_open(tid):
                return False
            async with transactions.lock(tid):
                if not transactions.is_open(tid):
                    return False
                values = source_records(
                    split, source, source_markers(markers, source), self.settings.partitions
                )
                for partition, value in enumerate(values):
                    try:
                        await transactions.send(tid, self.owner_topic, value, partition=partition)
                    except TransactionGone:
                        return False
        return True

    async def send_dead_letter(self, topic: str, partition: int, letter: DeadLetter) -> None:
        """In the transaction of the input partition; revoked meanwhile, its next reader writes it."""
        transactions = self.transactions
        tid = transactions.transactional_id(topic, partition)
        async with transactions.lock(tid):
            if tid is not None and transactions.is_open(tid):
                with contextlib.suppress(TransactionGone):
                    await transactions.send(
                        tid,
                        self.topology.dead_letters.get_topic_name(),
                        letter.value,
                        key=letter.key,
                        headers=letter.headers,
                    )

    async def retract_idleness(self, markers: dict[str, Marker]) -> None:
        """Outside any transaction, claiming no progress: only that the partitions are not idle.

        The transactions of revoked partitions are gone by now (aborted, with
        the records their markers covered).
        """
        value = encode_owner_record([], [], dict.fromkeys(markers, (None, False)))
        for partition in range(self.settings.partitions):
            await self.transactions.send(None, self.owner_topic, value, partition=partition)

    async def publish_alerts(self, partition: int, alerts: list[Alert]) -> None:
        """Held for the checkpoint whose transaction carries them."""
        if alerts:
            self.unsent_alerts.setdefault(partition, []).extend(alerts)

    async def publish_digests(self, partition: int, digests: list[Digest]) -> None:
        """Held for the checkpoint whose transaction carries them."""
        if digests:
            self.unsent_digests.setdefault(partition, []).extend(digests)

    def has_unsent_alerts(self, partition: int) -> bool:
        """Alerts or digests wait for the partition's checkpoint."""
        return bool(self.unsent_alerts.get(partition) or self.unsent_digests.get(partition))

    def unapplied_writes(self, partition: int) -> list[dict[bytes, bytes | None]]:
        """Writes of open transactions: they reach local RocksDB when their transaction commits."""
        return self.committed_writes.writes_of(partition)

    @contextlib.asynccontextmanager
    async def checkpoint(self, partition: int) -> AsyncIterator[Checkpointing | None]:
        """Inside the partition's transaction, with Faust's commit of it held off; None if it is gone."""
        transactions = self.transactions
        tid = transactions.transactional_id(self.owner_topic, partition)
        async with transactions.lock(tid):
            if tid is None or not transactions.is_open(tid):
                yield None  # revoked: the transaction is gone, the next owner redoes this work
            else:
                yield _TransactionalCheckpoint(self, partition, tid)

    def drop_all(self) -> None:
        """Held alerts, digests and rows go with the aborted transactions."""
        self.unsent_alerts.clear()
        self.unsent_digests.clear()
        self.committed_writes.discard_all()


class _TransactionalCheckpoint(Checkpointing):
    def __init__(self, delivery: ExactlyOnce, partition: int, tid: str) -> None:
        self.delivery = delivery
        self.partition = partition
        self.tid = tid

    async def flush_alerts(self) -> None:
        """The partition's held alerts and digests join the transaction."""
        delivery = self.delivery
        await delivery._send_alerts(delivery.unsent_alerts.pop(self.partition, []), self.tid)
        await delivery._send_digests(delivery.unsent_digests.pop(self.partition, []), self.tid)

    async def write_rows(self, records: RowRecords, stopped: Callable[[], bool]) -> None:
        """In the transaction; to local RocksDB once it commits."""
        delivery = self.delivery
        committed_writes = delivery.committed_writes
        on_transaction_committed(delivery.app.producer, committed_writes.committed)
        if stopped():
            return
        # Held before the sends' awaits: a revocation meanwhile discards them with the
        # transaction (`drop_all`). Held after, they would outlive its abort and reach
        # RocksDB at the next commit of the same transactional id (the partition's).
        for key, value in records:
            committed_writes.add(self.tid, self.partition, key, value)
        await delivery.transactions.send_batches(
            self.tid, delivery.changelog_name(), self.partition, records, stopped
        )


def delivery_for(app: faust.App, topology: Topology, settings: Settings, metrics: Metrics) -> Delivery:
    """The delivery of `settings.processing_guarantee`."""
    kind = ExactlyOnce if settings.exactly_once else AtLeastOnce
    return kind(app, topology, settings, metrics)
