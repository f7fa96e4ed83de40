"""The Faust application object, configured from the one settings object."""

from __future__ import annotations

import asyncio
import shutil

import faust
from faust.auth import SASLCredentials, SSLCredentials

from streams.broker_tls import TLS_PROTOCOLS, broker_ssl_context
from streams.service.changelog_ends import committed_ends
from streams.service.faust_internals import (
    commit_every_transaction,
    commit_only_open_transactions,
    coordinator_lookups_survive_a_lost_broker,
    high_waters_from_the_broker,
    idempotent_producers,
    input_in_batches,
    uncommitted_partitions_from_the_beginning,
)
from streams.service.input_gate import record_seeks, seeked_offsets
from streams.settings import Settings

__all__ = ["create_app"]


def _credentials(settings: Settings) -> SASLCredentials | SSLCredentials | None:
    protocol = settings.broker_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = broker_ssl_context(settings) if protocol in TLS_PROTOCOLS else None
    if protocol == "SSL":
        return SSLCredentials(context)
    return SASLCredentials(
        username=settings.broker_sasl_username,
        password=settings.broker_sasl_password,
        mechanism=settings.broker_sasl_mechanism or "PLAIN",
        ssl_context=context,
    )


def create_app(settings: Settings) -> faust.App:
    """A Faust app: RocksDB tables under `data_dir`, web port on `web_host`, acks held by the agents."""
    uncommitted_partitions_from_the_beginning(lambda app, targets: record_seeks(seeked_offsets(app), targets))
    idempotent_producers()
    input_in_batches()
    if settings.exactly_once:
        coordinator_lookups_survive_a_lost_broker()
        commit_every_transaction()
        commit_only_open_transactions()
        high_waters_from_the_broker(
            lambda changelogs: asyncio.to_thread(committed_ends, settings, changelogs)
        )
    app = faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=settings.replication_factor,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        # The relationship agent acks a record only once its held updates are applied;
        # a rebalance must not wait for that (the records are simply re-delivered).
        stream_wait_empty=False,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(settings.session_timeout_ms / 3000, 1.0),
        consumer_group_instance_id=settings.instance_id,
        table_standby_replicas=settings.standby_replicas,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=f"http://{settings.web_advertised_host or settings.web_host}:{settings.web_port}",
        web_in_thread=False,
        producer_acks=-1,  # all in-sync replicas (STREAMS_MIN_INSYNC_REPLICAS) hold a record before it counts as sent
        producer_linger_ms=5,
        producer_max_batch_size=1_000_000,
        broker_max_poll_records=2000,
        stream_buffer_maxsize=8192,
        autodiscover=False,
    )
    app.streams_seeked = {}  # type: ignore[attr-defined]  # where the consumer was last seeked (input_gate)
    if settings.exactly_once:
        # Under transactions faust 0.15.3 never records the committed changelog offset
        # (`persist_offset_on_commit` is keyed by changelog partition, `TableManager.on_commit`
        # looks it up by source partition), and local RocksDB keeps the writes of aborted
        # transactions (a SIGKILL). Recover from the committed changelog alone, as Kafka
        # Streams does after an unclean shutdown under exactly-once (docs/guarantees.md).
        shutil.rmtree(app.conf.tabledir, ignore_errors=True)
    return app
