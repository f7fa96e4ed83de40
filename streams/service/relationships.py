"""Relationship agent: owner partitions' engines over the RocksDB rows table, alerts out, ticks in."""

from __future__ import annotations

import asyncio
import logging
import time
from typing import Any

import faust
from faust.types import TP, EventT, TableT

from streams.engine.alerts import Alert
from streams.engine.engine import NO_WATERMARK
from streams.engine.row_codec import row_codec
from streams.service.agent_errors import CrashingSupervisor, stops_the_worker_on_error
from streams.service.changelog_restore import ChangelogBatches
from streams.service.delivery import Checkpointing, Delivery
from streams.service.faust_internals import open_databases, partition_databases
from streams.service.input_gate import seeked_offsets
from streams.service.metrics import ROCKSDB_MEMORY_COMPONENTS, Metrics
from streams.service.owner_fetches import UnhandledFetches
from streams.service.owner_partition import OwnerPartition
from streams.service.partition_reader import Fetched, read_range
from streams.service.partition_store import checkpoint_records, open_partition
from streams.service.poison_records import PoisonRecords
from streams.service.records import OwnerRecord, decode_owner_record, source_name
from streams.service.rocksdb_memory import memory_use
from streams.service.row_store import (
    MemoryTable,
    PartitionDatabase,
    RowTable,
    StoredRows,
    cache_capacity,
)
from streams.service.stale_events import StaleEvents
from streams.service.topology import Topology
from streams.service.transactions import TransactionGone
from streams.settings import Settings

__all__ = ["OwnerPartitions", "partition_table", "register_relationships"]

log = logging.getLogger(__name__)
RowKey = tuple[str, str]


def partition_table(table: TableT[Any, Any], partition: int) -> RowTable:
    """One partition of a raw table: its RocksDB database, looked up at each use (a store without them:
    the whole store)."""
    store: Any = table.data
    db_for_partition = partition_databases(store)
    return PartitionDatabase(db_for_partition, partition) if db_for_partition else MemoryTable(store)


def _now_ms() -> int:
    return int(time.time() * 1000)


class OwnerPartitions:
    """The owner partitions this worker serves, created on first use and dropped on any rebalance."""

    def __init__(
        self, app: faust.App, topology: Topology, settings: Settings, metrics: Metrics, delivery: Delivery
    ) -> None:
        self.app = app
        self.topology = topology
        self.settings = settings
        self.metrics = metrics
        self.delivery = delivery
        """Where alerts and checkpoints go, under the processing guarantee."""
        self.live: dict[int, OwnerPartition[EventT[Any]]] = {}
        self.checkpointed_at: dict[int, float] = {}
        self._lag_series: set[str] = set()
        self.seeked = seeked_offsets(app)
        """Where the consumer was last seeked to, per topic partition (cleared at revocations)."""
        self.owner_topic = topology.owner_updates.get_topic_name()
        """Name of the owner-keyed topic this agent reads."""
        self.fetches = UnhandledFetches(self.owner_topic)
        """Owner-stream records the consumer fetched and this agent has not handled yet."""
        app.streams_fetches = self.fetches  # type: ignore[attr-defined]  # fed by faust_internals.input_in_batches
        if settings.restore_in_batches:
            changelog = topology.rows.changelog_topic.get_topic_name()
            app.streams_changelogs = ChangelogBatches(  # type: ignore[attr-defined]  # read by the same patch
                frozenset({changelog}), metrics.changelog_restored
            )
        self.poison = PoisonRecords(settings, "relationships", topology.input_partitions, metrics=metrics)
        """Row updates that failed too often: skipped (streams/service/poison_records.py)."""
        self.codec = row_codec(settings.compiled_core)
        """Row bytes: the compiled core's codec (STREAMS_COMPILED_CORE) or the reference."""

    async def without_poison(self, raw: bytes) -> OwnerRecord:
        """The owner record `raw` without the row updates of poison records (streams/service/poison_records.py)."""
        return await self.poison.skip_updates(decode_owner_record(raw))

    def sources(self) -> list[str]:
        """Every input partition (`topic:partition`) the watermark waits for."""
        found: list[str] = []
        for topic in self.settings.source_topics():
            # the count read at start when the consumer's metadata does not know `topic` yet
            count = self.app.consumer.topic_partitions(topic) or self.topology.input_partitions[topic]
            found += [source_name(topic, p) for p in range(count)]
        return found

    def get(self, partition: int) -> OwnerPartition[EventT[Any]]:
        """The partition's state, loading its rows from the local store on first use."""
        part = self.live.get(partition)
        if part is None:
            part = self._load(partition)
            self.live[partition] = part
        return part

    def _load(self, partition: int) -> OwnerPartition[EventT[Any]]:
        self.metrics.recovering.inc()
        started = time.perf_counter()
        settings = self.settings
        part, counted = open_partition(
            partition,
            settings,
            partition_table(self.topology.rows, partition),
            self.codec,
            self.sources(),
            cache_capacity(settings.row_cache_mb, settings.partitions),
            lambda: self.delivery.unapplied_writes(partition),
        )
        rows = part.engine.rows
        self.checkpointed_at[partition] = time.monotonic()
        self.metrics.recovered_rows.inc(len(rows))
        self.metrics.recovering.dec()
        log.info(
            "owner partition %d ready: %d rows (%s), %d deadlines in memory, in %.2fs",
            partition,
            len(rows),
            "counts saved" if counted else "scanned",
            len(part.engine.timers),
            time.perf_counter() - started,
            extra={"owner_partition": partition},
        )
        return part

    async def read_skipped(self, partition: int, start: int, end: int) -> list[Fetched]:
        """Records `start..end-1` of an owner partition, which the consumer skipped, read from the broker."""
        dropped = self.fetches.between(partition, start, end)
        found = await asyncio.to_thread(read_range, self.settings, self.owner_topic, partition, start, end)
        self.metrics.refetched.inc(len(found))
        log.warning(
            "owner partition %d: the consumer skipped offsets %d..%d%s; read %d records from the broker",
            partition,
            start,
            end - 1,
            " (fetched, then dropped before the agent)" if dropped else "",
            len(found),
            extra={
                "topic": self.owner_topic,
                "partition": partition,
                "offset": start,
                "owner_partition": partition,
            },
        )
        return found

    def checkpoint_due(self, part: OwnerPartition[EventT[Any]], heartbeat: bool) -> bool:
        """Write changed rows every `checkpoint_interval_ms`, when many are pending, or on a heartbeat with work.

        A heartbeat checkpoints at once only when there are changed rows or
        held alerts (its watermark may have fired some): a backlog of bare
        heartbeats (under exactly_once one per input partition per tick) is
        acked with the next timed checkpoint rather than one transaction each,
        which fell behind the heartbeats' own rate on a loaded machine. Never
        while the partition re-handles what its loaded checkpoint covered
        (`OwnerPartition.replaying`).
        """
        if part.replaying():
            return False
        dirty = part.dirty()
        if dirty >= self.settings.checkpoint_max_rows:
            return True
        if heartbeat and (dirty or self.delivery.has_unsent_alerts(part.partition)):
            return True
        elapsed_ms = (time.monotonic() - self.checkpointed_at[part.partition]) * 1000
        return elapsed_ms >= self.settings.checkpoint_interval_ms

    async def publish(self, part: OwnerPartition[EventT[Any]], alerts: list[Alert]) -> None:
        """Alerts to the alert topic, then the digests now due (exactly_once: held for the next checkpoint's
        transaction)."""
        await self.delivery.publish_alerts(part.partition, alerts)
        await self.delivery.publish_digests(part.partition, part.due_digests())

    async def catch_up(self, part: OwnerPartition[EventT[Any]], offset: int) -> None:
        """Before the record at `offset`: handle the records the consumer skipped, read from the broker.

        Under exactly_once transaction markers leave offsets out of the owner
        stream: past the first record after loading (the consumer may have
        committed past the checkpoint's `replay_from`), a gap is read only when
        the consumer's seek lands in it or the consumer fetched a record in it
        that never arrived here (`OwnerPartition.missing_before`).
        """
        partition = part.partition
        seeked_to = self.seeked.get((self.owner_topic, partition))
        missing = part.missing_before(
            offset,
            self.delivery.transactional,
            seeked_to,
            lambda start, end: self.fetches.between(partition, start, end),
        )
        if missing is None:
            return
        for skipped in await self.read_skipped(partition, missing, offset):
            record = await self.without_poison(skipped.value or b"")
            await self.publish(part, part.handle(record, None, skipped.offset, _now_ms(), skipped.timestamp))
        self.fetches.read(partition, missing, offset)

    async def checkpoint(self, part: OwnerPartition[EventT[Any]], stream: faust.StreamT[bytes]) -> None:
        """Write changed rows to the table (and so its changelog), then ack the records they cover.

        Alerts go first: once a checkpoint is in the changelog, a restart never
        emits the alerts of the updates it covers again, so they must be on the
        alert topic before it (else a crash between the two loses them). Under
        exactly_once the alerts, rows and marker go in the transaction that
        commits this partition's offsets, with Faust's commit of it held off
        until they are all in: a crash aborts all or none of a checkpoint.
        """
        async with self.delivery.checkpoint(part.partition) as writing:
            if writing is None:
                return  # revoked: the transaction is gone, the next owner redoes this work
            try:
                await self._checkpoint(part, stream, writing)
            except TransactionGone:
                part.revoked = True

    async def _checkpoint(
        self, part: OwnerPartition[EventT[Any]], stream: faust.StreamT[bytes], writing: Checkpointing
    ) -> None:
        await writing.flush_alerts()
        if part.revoked:
            return
        done = part.checkpoint()
        records = checkpoint_records(done, self.codec)
        # a partition revoked during an await is its new owner's to write from then on
        await writing.write_rows(records, lambda: part.revoked)
        if part.revoked:
            return
        part.written(done)
        for event in done.acks:
            await stream.ack(event)
        if part.next_offset is not None:
            self.fetches.forget_below(part.partition, part.next_offset)
        self.checkpointed_at[part.partition] = time.monotonic()

    def _count_row_reads(self) -> None:
        for part in self.live.values():
            if isinstance(part.engine.rows, StoredRows):
                self.metrics.row_reads.inc(part.engine.rows.take_reads())
            for index in part.deadlines or ():
                self.metrics.deadline_reads.inc(index.take_reads())

    def drop_all(self) -> None:
        """Forget in-memory state: after a rebalance every partition restarts from its committed offset."""
        if self.live:
            log.info(
                "dropping in-memory state of owner partitions %s",
                sorted(self.live),
                extra={"owner_partitions": sorted(self.live)},
            )
        self._count_row_reads()
        for part in self.live.values():
            part.revoked = True
        self.live.clear()
        self.fetches.clear()
        self.delivery.drop_all()

    def observe(self) -> None:
        """Refresh gauges over the live partitions (counters the engines keep: no row scan)."""
        self._count_row_reads()
        rows = cached = dormant = established = held = timers = 0
        now = time.time()
        gauged: set[str] = set()
        for part in self.live.values():
            engine = part.engine
            rows += len(engine.rows)
            if isinstance(engine.rows, StoredRows):
                cached += engine.rows.cached()
            dormant += engine.dormant_rows
            established += engine.established_rows
            held += len(engine.held)
            timers += len(engine.timers)
            label = str(part.partition)
            gauged.add(label)
            if engine.watermark != NO_WATERMARK:
                self.metrics.watermark_lag.labels(partition=label).set(now - engine.watermark / 1000)
            if engine.max_ts != NO_WATERMARK:
                self.metrics.event_time_lag.labels(partition=label).set(now - engine.max_ts / 1000)
        for label in self._lag_series - gauged:  # partitions no longer served here
            self.metrics.watermark_lag.remove(label)
            self.metrics.event_time_lag.remove(label)
        self._lag_series = gauged
        self.metrics.rows.set(rows)
        self.metrics.rows_cached.set(cached)
        self.metrics.established_rows.labels(status="active").set(established - dormant)
        self.metrics.established_rows.labels(status="dormant").set(dormant)
        self.metrics.held.set(held)
        self.metrics.timers.set(timers)
        used = memory_use(open_databases(self.topology.rows.data), self.topology.rocksdb_memory)
        for component in ROCKSDB_MEMORY_COMPONENTS:
            self.metrics.rocksdb_memory.labels(component=component).set(getattr(used, component))


def register_relationships(
    app: faust.App, topology: Topology, settings: Settings, metrics: Metrics, delivery: Delivery
) -> OwnerPartitions:
    """Register the relationship agent, the tick timer and the rebalance hooks."""
    partitions = OwnerPartitions(app, topology, settings, metrics, delivery)
    stale_events = StaleEvents(app)

    @app.agent(
        topology.owner_updates, name="relationships", concurrency=1, supervisor_strategy=CrashingSupervisor
    )
    @stops_the_worker_on_error(settings.shutdown_timeout_ms / 1000, on_error=partitions.poison.agent_failed)
    async def relationships(stream: faust.StreamT[bytes]) -> None:
        async for event in stream.noack().events():  # type: ignore[attr-defined]
            if stale_events.stale(event):
                continue  # fetched before a revocation: re-read from the committed offset, not acked
            started = time.perf_counter()
            partitions.fetches.handled(event.message.partition, event.message.offset)
            part = partitions.get(event.message.partition)
            stats = part.engine.stats
            before = stats.applied, stats.duplicates, stats.late, stats.redelivered + part.skipped
            resets, reclaims = stats.rows_reset, stats.rows_reclaimed
            erased_rows, erased_events = stats.rows_erased, stats.erased_events
            feedback, withheld = stats.feedback, stats.withheld
            offset = event.message.offset
            await partitions.catch_up(part, offset)
            record = await partitions.without_poison(event.value)
            alerts = part.handle(record, event, offset, _now_ms(), round(event.message.timestamp * 1000))
            await partitions.publish(part, alerts)
            metrics.applied.inc(stats.applied - before[0])
            metrics.duplicates.inc(stats.duplicates - before[1])
            metrics.late.inc(stats.late - before[2])
            metrics.redelivered.inc(stats.redelivered + part.skipped - before[3])
            metrics.rows_reset.inc(stats.rows_reset - resets)
            metrics.rows_reclaimed.inc(stats.rows_reclaimed - reclaims)
            metrics.rows_erased.inc(stats.rows_erased - erased_rows)
            metrics.erased_events.inc(stats.erased_events - erased_events)
            metrics.feedback_applied.inc(stats.feedback - feedback)
            metrics.alerts_withheld.inc(stats.withheld - withheld)
            if not part.revoked and partitions.checkpoint_due(part, heartbeat=not record.updates):
                await partitions.checkpoint(part, stream)
            metrics.processing.labels(stage="relationships").observe(time.perf_counter() - started)

    @app.timer(interval=5.0)
    async def observe() -> None:
        partitions.observe()

    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def on_revoked(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        metrics.rebalances.inc()
        stale_events.revoked()
        partitions.drop_all()
        partitions.poison.reload_later()
        aborted = await partitions.delivery.abort_open()
        if aborted:
            log.info(
                "aborted %d open transactions: their work is redone from the committed offsets",
                aborted,
                extra={"guarantee": settings.processing_guarantee},
            )

    return partitions
