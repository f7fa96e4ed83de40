"""Topics and tables of the service, named for what they carry."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import dataclass

import faust
from faust.types import TableT, TopicT

from streams.service.faust_internals import share_rocksdb_memory
from streams.service.rocksdb_memory import RocksDBMemory
from streams.settings import Settings

__all__ = [
    "ROWS_TABLE",
    "Topology",
    "declare_topology",
    "owner_updates_topic_name",
    "rows_changelog_topic_name",
]

log = logging.getLogger(__name__)

ROWS_TABLE = "rows"
"""Name of the relationship rows table."""
MB = 1024 * 1024


def owner_updates_topic_name(settings: Settings) -> str:
    """The internal, owner-keyed stream of row updates and watermark markers."""
    return f"{settings.app_id}-owner-updates"


def rows_changelog_topic_name(settings: Settings) -> str:
    """The rows table's changelog, as Faust names it: partitioned like the owner stream."""
    return f"{settings.app_id}-{ROWS_TABLE}-changelog"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every topic and table one worker uses."""

    interactions: TopicT
    """The three input topics (mentions, replies, likes) and the control topics (erasures, feedback), raw bytes."""
    owner_updates: TopicT
    """Row updates re-keyed by owner, with watermark markers and ticks."""
    alerts: TopicT
    """`dormant` / `revived` alerts keyed by owner."""
    dead_letters: TopicT
    """Rejected input records with their reason."""
    digests: TopicT
    """Per-owner daily digests keyed by owner (written only with `settings.digests`)."""
    rows: TableT[bytes, bytes]
    """Relationship rows: key `[owner, contact]` (JSON), value `Row.to_bytes()`."""
    input_partitions: Mapping[str, int]
    """Partitions of each topic the ingest stage reads (inputs, erasures, feedback), as the broker had them at start."""
    rocksdb_memory: RocksDBMemory | None
    """The cache every partition database of `rows` shares (`STREAMS_ROCKSDB_MEMORY_MB`); None: Faust's, per database."""


def declare_topology(
    app: faust.App, settings: Settings, input_partitions: Mapping[str, int] | None = None
) -> Topology:
    """Declare topics and tables on `app`, the owner-keyed ones with `settings.partitions`.

    A worker's `settings.partitions` and `input_partitions` come from the
    broker (`kafka_admin.follow_the_broker`); without `input_partitions` each
    input topic is taken to have `settings.partitions`.
    """
    topology = Topology(
        interactions=app.topic(*settings.source_topics(), key_serializer="raw", value_serializer="raw"),
        owner_updates=app.topic(
            owner_updates_topic_name(settings),
            partitions=settings.partitions,
            internal=True,
            replicas=settings.replication_factor,
            config=settings.replication_configs(),
            key_serializer="raw",
            value_serializer="raw",
        ),
        alerts=app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw"),
        dead_letters=app.topic(settings.topic_dead_letter, key_serializer="raw", value_serializer="raw"),
        digests=app.topic(settings.topic_digests, key_serializer="raw", value_serializer="raw"),
        rows=app.Table(
            ROWS_TABLE,
            partitions=settings.partitions,
            key_type=bytes,
            value_type=bytes,
            extra_topic_configs=settings.replication_configs(),
            options={"write_buffer_size": settings.rocksdb_write_buffer_mb * MB},  # Faust's RocksDBOptions
        ),
        input_partitions=dict(input_partitions)
        if input_partitions is not None
        else {
            **dict.fromkeys(settings.input_topics(), settings.partitions),
            **dict.fromkeys(settings.control_topics(), 1),
        },
        rocksdb_memory=RocksDBMemory(settings.rocksdb_memory_mb * MB) if settings.rocksdb_memory_mb else None,
    )
    if topology.rocksdb_memory is not None:
        share_rocksdb_memory(topology.rows.data, topology.rocksdb_memory.options)

    @app.task
    async def report_partition_counts() -> None:
        log.info(
            "partitions: %s and %s %d, input %s",
            owner_updates_topic_name(settings),
            rows_changelog_topic_name(settings),
            settings.partitions,
            ", ".join(f"{topic} {count}" for topic, count in topology.input_partitions.items()),
        )

    return topology
