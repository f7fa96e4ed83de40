"""The Faust application object, configured from the one settings object."""

from __future__ import annotations

import ssl

import faust
from faust.auth import SASLCredentials, SSLCredentials

from streams.settings import Settings

__all__ = ["create_app"]


def _credentials(settings: Settings) -> SASLCredentials | SSLCredentials | None:
    protocol = settings.broker_security_protocol.upper()
    if protocol == "PLAINTEXT":
        return None
    context = None
    if protocol in {"SSL", "SASL_SSL"}:
        context = ssl.create_default_context(
            cafile=str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
        )
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
    return faust.App(
        settings.app_id,
        broker=settings.broker,
        broker_credentials=_credentials(settings),
        store="rocksdb://",
        datadir=str(settings.data_dir),
        topic_partitions=settings.partitions,
        topic_replication_factor=1,
        processing_guarantee=settings.processing_guarantee,
        consumer_auto_offset_reset="earliest",
        # The relationship agent acks a record only once its held updates are applied;
        # a rebalance must not wait for that (the records are simply re-delivered).
        stream_wait_empty=False,
        broker_commit_interval=1.0,
        broker_session_timeout=settings.session_timeout_ms / 1000,
        broker_heartbeat_interval=max(settings.session_timeout_ms / 3000, 1.0),
        table_standby_replicas=0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        web_in_thread=False,
        producer_linger_ms=5,
        producer_max_batch_size=1_000_000,
        broker_max_poll_records=2000,
        stream_buffer_maxsize=8192,
        autodiscover=False,
    )
