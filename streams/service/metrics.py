"""Every Prometheus metric of the service, in one place, on a registry the caller owns."""

from __future__ import annotations

from collections.abc import Iterable

from prometheus_client import (
    CollectorRegistry,
    Counter,
    Gauge,
    GCCollector,
    Histogram,
    Info,
    PlatformCollector,
    ProcessCollector,
)

from streams import __version__
from streams.engine.events import INTERACTION_TYPES, Reason

__all__ = ["Metrics"]

PREFIX = "relationships"
ROCKSDB_MEMORY_COMPONENTS = ("block_cache", "memtables", "table_readers")
"""The fields of `RocksDBMemoryUse`, the label values of `relationships_rocksdb_memory_bytes`."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    """The service's metrics; labels come from small fixed sets (never a user id).

    >>> from prometheus_client import CollectorRegistry
    >>> registry = CollectorRegistry()
    >>> metrics = Metrics(registry)
    >>> metrics.invalid.labels(reason="not_json").inc()
    >>> registry.get_sample_value("relationships_invalid_events_total", {"reason": "not_json"})
    1.0
    """

    def __init__(self, registry: CollectorRegistry) -> None:
        self.registry = registry
        r = registry
        # process_* (resident memory, CPU, open fds), python_info and python_gc_*, as on the default registry.
        ProcessCollector(registry=r)
        PlatformCollector(registry=r)
        GCCollector(registry=r)
        self.build_info = Info(f"{PREFIX}_build", "Version of the relationship service.", registry=r)
        self.build_info.info({"version": __version__})
        self.consumed = Counter(
            f"{PREFIX}_events_consumed_total",
            "Input records consumed, by input topic and event type (`erasure`: a request on the erasures topic; `invalid` when rejected: unreadable, `ts_in_future`, or a poison record skipped whole).",
            ["topic", "type"],
            registry=r,
        )
        self.invalid = Counter(
            f"{PREFIX}_invalid_events_total",
            "Input records rejected, by reason code.",
            ["reason"],
            registry=r,
        )
        self.dead_letters = Counter(
            f"{PREFIX}_dead_letters_total", "Records written to the dead-letter topic.", registry=r
        )
        self.self_interactions = Counter(
            f"{PREFIX}_self_interactions_total", "Events with actor == target, skipped.", registry=r
        )
        self.duplicates = Counter(
            f"{PREFIX}_duplicate_events_total", "Events ignored as duplicates (once per event).", registry=r
        )
        self.refetched = Counter(
            f"{PREFIX}_owner_records_refetched_total",
            "Owner-stream records the consumer skipped, read again straight from the broker.",
            registry=r,
        )
        self.late = Counter(
            f"{PREFIX}_late_events_total",
            "Events below the watermark on arrival, applied at once (once per event).",
            registry=r,
        )
        self.redelivered = Counter(
            f"{PREFIX}_redelivered_updates_total",
            "Row updates seen again from the same input position (after a crash or rebalance), ignored.",
            registry=r,
        )
        self.applied = Counter(
            f"{PREFIX}_events_applied_total",
            "Events applied to relationship rows (once per event).",
            registry=r,
        )
        self.rows_reset = Counter(
            f"{PREFIX}_rows_reset_total",
            "Rows not established that started afresh after `row_ttl` of silence (SPEC v1.1).",
            registry=r,
        )
        self.rows_reclaimed = Counter(
            f"{PREFIX}_rows_reclaimed_total",
            "Rows not established whose storage was reclaimed (`row_ttl`; a tombstone in the changelog).",
            registry=r,
        )
        self.rows_erased = Counter(
            f"{PREFIX}_rows_erased_total",
            "Rows deleted by erasure requests (a tombstone in the changelog; docs/semantics.md §9).",
            registry=r,
        )
        self.erased_events = Counter(
            f"{PREFIX}_erased_events_total",
            "Events dropped: they name an erased user, predate the erasure and arrived after it (once per event).",
            registry=r,
        )
        self.alerts = Counter(
            f"{PREFIX}_alerts_published_total", "Alerts published, by kind.", ["kind"], registry=r
        )
        self.feedback_applied = Counter(
            f"{PREFIX}_feedback_applied_total",
            "Mute, unmute and snooze requests applied to rows (docs/semantics.md §11).",
            registry=r,
        )
        self.alerts_withheld = Counter(
            f"{PREFIX}_alerts_withheld_total",
            "Alerts not published because feedback muted or snoozed their row (docs/semantics.md §11).",
            registry=r,
        )
        self.digests = Counter(
            f"{PREFIX}_digests_published_total", "Daily digests published (STREAMS_DIGESTS).", registry=r
        )
        self.rows = Gauge(f"{PREFIX}_rows", "Relationship rows held by this worker.", registry=r)
        self.rows_cached = Gauge(
            f"{PREFIX}_rows_cached",
            "Rows decoded in memory (STREAMS_ROW_CACHE_MB); the rest are on disk.",
            registry=r,
        )
        self.row_reads = Counter(
            f"{PREFIX}_row_reads_total",
            "Rows read back from RocksDB because they were not in memory.",
            registry=r,
        )
        self.rocksdb_memory = Gauge(
            f"{PREFIX}_rocksdb_memory_bytes",
            "RocksDB memory of the open owner partition databases, by component: `block_cache` (blocks, index and "
            "filter blocks, and with STREAMS_ROCKSDB_MEMORY_MB the memtables charged to it), `memtables`, "
            "`table_readers` (index and filter blocks outside the cache).",
            ["component"],
            registry=r,
        )
        self.established_rows = Gauge(
            f"{PREFIX}_established_rows",
            "Established rows held by this worker, by status (`active` + `dormant` = all established).",
            ["status"],
            registry=r,
        )
        self.timers = Gauge(
            f"{PREFIX}_timer_index_size",
            "Dormancy deadlines held in memory; the rest are in RocksDB, read back as they come due.",
            registry=r,
        )
        self.deadline_reads = Counter(
            f"{PREFIX}_deadline_reads_total",
            "Deadline entries (dormancy and reclaim) read back from RocksDB as they came due.",
            registry=r,
        )
        self.held = Gauge(
            f"{PREFIX}_held_updates", "Row updates held back until the watermark passes them.", registry=r
        )
        self.input_partitions_held = Gauge(
            f"{PREFIX}_input_partitions_held",
            "Input partitions not fetched for now: read more than STREAMS_INPUT_MAX_DRIFT_MS ahead of the slowest.",
            registry=r,
        )
        self.watermark_lag = Gauge(
            f"{PREFIX}_watermark_lag_seconds",
            "Wall clock minus the watermark, per owner partition.",
            ["partition"],
            registry=r,
        )
        self.event_time_lag = Gauge(
            f"{PREFIX}_event_time_lag_seconds",
            "Wall clock minus the newest event time seen, per owner partition.",
            ["partition"],
            registry=r,
        )
        self.processing = Histogram(
            f"{PREFIX}_processing_seconds",
            "Time to process one batch, by stage (`ingest`, `relationships`).",
            ["stage"],
            buckets=LATENCY_BUCKETS,
            registry=r,
        )
        self.consumer_lag = Gauge(
            f"{PREFIX}_consumer_lag_records",
            "End offset minus committed offset, per assigned input or owner partition.",
            ["topic", "partition"],
            registry=r,
        )
        self.stalled_partitions = Gauge(
            f"{PREFIX}_stalled_partitions",
            "Assigned partitions with records waiting whose committed offset has not moved for the stall window, by topic.",
            ["topic"],
            registry=r,
        )
        self.send_errors = Counter(
            f"{PREFIX}_producer_send_errors_total",
            "Records the producer failed to deliver (alerts, dead letters, owner updates, changelog).",
            registry=r,
        )
        self.rebalances = Counter(f"{PREFIX}_rebalances_total", "Partition rebalances seen.", registry=r)
        self.recovered_rows = Counter(
            f"{PREFIX}_recovered_rows_total",
            "Rows of the owner partitions opened after an assignment (counted by their checkpoint, or scanned).",
            registry=r,
        )
        self.changelog_restored = Counter(
            f"{PREFIX}_changelog_records_restored_total",
            "Changelog records written to the local rows table a fetch at a time (recovery and standby copies).",
            registry=r,
        )
        self.recovering = Gauge(
            f"{PREFIX}_recovering_partitions", "Owner partitions whose rows are being loaded.", registry=r
        )

    def initialise_label_sets(
        self,
        input_topics: Iterable[str],
        erasures_topic: str | None = None,
        feedback_topic: str | None = None,
    ) -> None:
        """Expose every label set known in advance at zero, so rates and dashboards have series from the start."""
        for topic in input_topics:
            for kind in (*INTERACTION_TYPES, "invalid"):
                self.consumed.labels(topic=topic, type=kind)
        if erasures_topic is not None:
            for kind in ("erasure", "invalid"):
                self.consumed.labels(topic=erasures_topic, type=kind)
        if feedback_topic is not None:
            for kind in ("feedback", "invalid"):
                self.consumed.labels(topic=feedback_topic, type=kind)
        for reason in Reason:
            self.invalid.labels(reason=reason.value)
        for kind in ("dormant", "revived"):
            self.alerts.labels(kind=kind)
        for status in ("active", "dormant"):
            self.established_rows.labels(status=status)
        for component in ROCKSDB_MEMORY_COMPONENTS:
            self.rocksdb_memory.labels(component=component)
        for stage in ("ingest", "relationships"):
            self.processing.labels(stage=stage)
