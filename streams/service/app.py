"""The Faust application object, configured from the one settings object."""

from __future__ import annotations

import asyncio
import shutil
import ssl
from typing import Any

import faust
from faust.auth import SASLCredentials, SSLCredentials

from streams.service.changelog_ends import committed_ends
from streams.service.input_gate import record_seeks, seeked_offsets
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


def _commit_every_transaction() -> None:
    """faust-streaming 0.15.3, exactly_once: each commit ends every open transaction, not only those with new offsets.

    Faust keeps one transaction per (partition group, partition number) and
    ends it only when offsets of a source partition with that number move.
    Records sent to an owner partition become readable (read_committed) only
    then, and the relationship agent acks only when it reads records: once the
    input stops, an owner partition can wait forever for its last markers.
    """
    from faust.transport.consumer import Consumer  # noqa: PLC0415

    if getattr(Consumer._commit_tps, "_ends_every_transaction", False):
        return
    commit_tps = Consumer._commit_tps

    async def ending_every_transaction(self: Any, tps: Any, start_new_transaction: bool) -> bool:
        if not self.in_transaction:
            return bool(await commit_tps(self, tps, start_new_transaction))
        # Which transactions Faust commits is what `_on_committed` hears during its commit:
        # asking `_filter_committable_offsets` beforehand would consume the acks it reads.
        producer = self.transactions.producer
        ended: set[str] = set()
        producer.streams_committing = ended
        try:
            committed = await commit_tps(self, tps, start_new_transaction)
        finally:
            producer.streams_committing = None
        for transactional_id, transaction in list(producer._transaction_producers.items()):
            if transactional_id not in ended and transaction._txn_manager.is_in_transaction():
                async with producer._trn_locks[transactional_id]:
                    await transaction.commit_transaction()
                    _on_committed(producer, transactional_id)
                    if start_new_transaction:
                        await transaction.begin_transaction()
        return bool(committed)

    ending_every_transaction._ends_every_transaction = True  # type: ignore[attr-defined]
    Consumer._commit_tps = ending_every_transaction  # type: ignore[method-assign]


def _on_committed(producer: Any, transactional_id: str) -> None:
    """Tell the service a transaction committed (`Transactions.on_committed`)."""
    committing = getattr(producer, "streams_committing", None)
    if committing is not None:
        committing.add(transactional_id)
    listener = getattr(producer, "streams_on_committed", None)
    if listener is not None:
        listener(transactional_id)


def _report_commits() -> None:
    """faust-streaming 0.15.3, exactly_once: let the service know which transactions Faust commits."""
    from faust.transport.drivers.aiokafka import Producer  # noqa: PLC0415

    if getattr(Producer.commit_transactions, "_reports", False):
        return
    commit_transactions = Producer.commit_transactions

    async def reporting(
        self: Any, tid_to_offset_map: Any, group_id: str, start_new_transaction: bool = True
    ) -> None:
        await commit_transactions(
            self, tid_to_offset_map, group_id, start_new_transaction=start_new_transaction
        )
        for transactional_id in tid_to_offset_map:
            _on_committed(self, transactional_id)

    reporting._reports = True  # type: ignore[attr-defined]
    Producer.commit_transactions = reporting  # type: ignore[method-assign]


def _is_changelog(tp: Any) -> bool:
    """A table's changelog partition (Faust names them `<app>-<table>-changelog`)."""
    return str(tp.topic).endswith("-changelog")


def _high_waters_from_the_broker(settings: Settings) -> None:
    """faust-streaming 0.15.3, exactly_once: table recovery reads the changelog up to a stale high water.

    In a transaction Faust takes high waters from the consumer's cached last
    stable offsets, which are -1 for a partition not fetched yet: after a
    rebalance, recovery then skips the changelog (or stops on a
    `ConsistencyError`). A read_committed consumer's `end_offsets` asks the
    broker for the last stable offset instead. Recovery then waits for the
    record just below it, which under transactions is a commit marker no
    consumer delivers: it gave up only after two 5 s timeouts ("Aborted tx
    until highwater"), so a changelog's high water is the offset after its
    last committed record (`committed_ends`).
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # noqa: PLC0415

    async def high_waters_from_the_broker(self: Any, partitions: list[Any]) -> Any:
        stable = await self._ensure_consumer().end_offsets(partitions)
        changelogs = {(tp.topic, tp.partition): end for tp, end in stable.items() if _is_changelog(tp)}
        if changelogs:
            ends = await asyncio.to_thread(committed_ends, settings, changelogs)
            stable = {tp: ends.get((tp.topic, tp.partition), end) for tp, end in stable.items()}
        return stable

    AIOKafkaConsumerThread._highwaters = high_waters_from_the_broker  # type: ignore[method-assign]


def _uncommitted_partitions_from_the_beginning() -> None:
    """faust-streaming 0.15.3 (aiokafka): after a rebalance a partition never committed is not read again.

    Faust seeks every assigned partition to its committed offset after each
    rebalance, and drops what it had fetched but not handed to an agent; the
    agents drop their in-memory state too. aiokafka's `seek_to_committed`
    leaves a partition without a committed offset where it was, so a worker
    keeping such a partition went on past records it never finished (under
    exactly_once their output was aborted; at least once, records cleared from
    the stream buffer were never delivered). Such partitions start from the
    beginning instead, as `auto_offset_reset=earliest` does on a first start.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # noqa: PLC0415

    if getattr(AIOKafkaConsumerThread.seek_to_committed, "_rewinds", False):
        return

    async def seek_to_committed_or_beginning(self: Any) -> Any:
        consumer = self._ensure_consumer()

        async def seek() -> Any:
            # aiokafka's `seek_to_committed` awaits between its seeks, so records fetched from a new
            # position could reach an agent before the seeks were recorded: look up, then seek and record.
            committed = {tp: await consumer.committed(tp) for tp in consumer.assignment()}
            targets = {tp: offset for tp, offset in committed.items() if offset}
            never = [tp for tp, offset in committed.items() if not offset and not _is_changelog(tp)]
            if never:  # `seek`, not `seek_to_beginning`: that leaves no position until the next fetch
                targets.update(await consumer.beginning_offsets(never))
            for tp, offset in targets.items():
                consumer.seek(tp, offset)
            record_seeks(seeked_offsets(self.app), targets)  # the ingest's gate opens from these
            return committed

        return await self.call_thread(seek)

    seek_to_committed_or_beginning._rewinds = True  # type: ignore[attr-defined]
    AIOKafkaConsumerThread.seek_to_committed = seek_to_committed_or_beginning  # type: ignore[method-assign]


def create_app(settings: Settings) -> faust.App:
    """A Faust app: RocksDB tables under `data_dir`, web port on `web_host`, acks held by the agents."""
    _uncommitted_partitions_from_the_beginning()
    if settings.exactly_once:
        _commit_every_transaction()
        _report_commits()
        _high_waters_from_the_broker(settings)
    app = faust.App(
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
        consumer_group_instance_id=settings.instance_id,
        table_standby_replicas=0,
        web_enabled=True,
        web_bind=settings.web_host,
        web_host=settings.web_host,
        web_port=settings.web_port,
        canonical_url=f"http://{settings.web_advertised_host or settings.web_host}:{settings.web_port}",
        web_in_thread=False,
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
