"""Under exactly_once: which Kafka transaction a record joins, and sending into it (Faust's transactional ids)."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable, Sequence
from typing import Any

import faust
from aiokafka.errors import IllegalOperation
from prometheus_client import Counter

from streams.service.faust_internals import (
    in_transaction,
    partition_database,
    plain_producer,
    transaction_lock,
    transaction_producers,
)
from streams.service.send_errors import count_failed_delivery

__all__ = ["CommittedWrites", "TransactionGone", "Transactions"]


class TransactionGone(Exception):
    """The transaction's producer was stopped (its partition was revoked): the next owner redoes the work."""


class Transactions:
    """Sends records in the transaction that commits the offsets they come from.

    Faust keeps one transactional producer per (partition group, partition
    number) of the topics it consumes, and commits each one's consumed offsets
    in it. Its own routing picks the transaction by the *destination*
    partition, and uses no transaction at all for topics the worker does not
    consume (alerts, dead letters): records would commit apart from the
    offsets that caused them. Here the caller names the *source* partition.
    Everything is a no-op pass-through under at_least_once.
    """

    def __init__(self, app: faust.App, enabled: bool, send_errors: Counter | None = None) -> None:
        self.app = app
        self.enabled = enabled
        """exactly_once is set."""
        self.send_errors = send_errors
        """Counts records sent here that were not delivered (Faust's own sends count in `SendErrorSensor`)."""

    def transactional_id(self, consumed_topic: str, partition: int) -> str | None:
        """The transaction committing `consumed_topic[partition]`'s offsets (None without exactly_once)."""
        if not self.enabled:
            return None
        group = self.app.assignor.group_for_topic(consumed_topic)
        return f"{self.app.conf.id}-{group}-{partition}"

    def is_open(self, transactional_id: str) -> bool:
        """The transaction's producer exists (its partition is assigned here)."""
        return transactional_id in transaction_producers(self._producer())

    def lock(self, transactional_id: str | None) -> Any:
        """Hold Faust's commit of that transaction off while a checkpoint's records go in."""
        if transactional_id is None:
            return contextlib.nullcontext()
        lock = transaction_lock(self._producer(), transactional_id)
        return lock if lock is not None else contextlib.nullcontext()

    async def send(
        self,
        transactional_id: str | None,
        topic: str,
        value: bytes | None,
        key: bytes | None = None,
        partition: int | None = None,
        headers: Any = None,
    ) -> Awaitable[Any]:
        """Queue a record in the transaction (None: outside any); its delivery future.

        The caller holds `lock(transactional_id)`: Faust's own send takes that
        lock (not reentrant), so this goes to the aiokafka producer directly.
        """
        producer = self._aiokafka_producer(transactional_id)
        try:
            delivery: Awaitable[Any] = await producer.send(
                topic, value, key=key, partition=partition, headers=headers
            )
        except IllegalOperation as exc:  # its transaction ended: stopping or revoked
            raise TransactionGone(transactional_id) from exc
        if self.send_errors is not None:
            count_failed_delivery(self.send_errors, delivery)
        return delivery

    async def send_batches(
        self,
        transactional_id: str | None,
        topic: str,
        partition: int,
        records: Sequence[tuple[bytes, bytes | None]],
        stopped: Callable[[], bool] = lambda: False,
    ) -> list[asyncio.Future[Any]]:
        """Queue `(key, value)` records for one partition, in order, in as few producer batches as they fit.

        One delivery future per batch (its result: the batch's first offset),
        instead of one `send` each: a checkpoint writes thousands of rows. Stops
        between batches once `stopped()` (the partition was revoked meanwhile).
        The caller holds `lock(transactional_id)`, as for `send`.
        """
        producer = self._aiokafka_producer(transactional_id)
        deliveries: list[asyncio.Future[Any]] = []
        batch = producer.create_batch()
        for key, value in records:
            if batch.append(key=key, value=value, timestamp=None) is not None:
                continue
            deliveries.append(await self._send_batch(producer, batch, topic, partition, transactional_id))
            if stopped():
                return deliveries
            batch = producer.create_batch()
            if batch.append(key=key, value=value, timestamp=None) is None:
                raise ValueError(f"a record of {topic} does not fit an empty producer batch")
        if batch.record_count():
            deliveries.append(await self._send_batch(producer, batch, topic, partition, transactional_id))
        return deliveries

    async def _send_batch(
        self, producer: Any, batch: Any, topic: str, partition: int, transactional_id: str | None
    ) -> asyncio.Future[Any]:
        records = batch.record_count()
        try:
            delivery: asyncio.Future[Any] = await producer.send_batch(batch, topic, partition=partition)
        except IllegalOperation as exc:  # its transaction ended: stopping or revoked
            raise TransactionGone(transactional_id) from exc
        if self.send_errors is not None:
            count_failed_delivery(self.send_errors, delivery, records)
        return delivery

    def _aiokafka_producer(self, transactional_id: str | None) -> Any:
        producers = self._producer()
        if transactional_id is None:
            return plain_producer(producers)
        producer = transaction_producers(producers).get(transactional_id)
        if producer is None:
            raise TransactionGone(transactional_id)
        return producer

    async def abort_open(self) -> int:
        """On revocation: abort every open transaction (kept partitions' too); the number aborted.

        A rebalance drops the in-memory state and re-reads every partition from
        its committed offset, so what the open transactions hold is redone.
        faust-streaming 0.15.3 leaves the transactions of partitions a worker
        keeps open across the rebalance: the redone work would join the same
        transaction as the work it replaces, and the open transaction holds the
        last stable offset of the changelog back while recovery reads up to it.
        """
        if not self.enabled:
            return 0
        producer = self._producer()
        aborted = 0
        for transactional_id, transaction in list(transaction_producers(producer).items()):
            if in_transaction(transaction):
                await producer.abort_transaction(transactional_id)
                aborted += 1
        return aborted

    def _producer(self) -> Any:
        return self.app.producer


class CommittedWrites:
    """exactly_once: table writes held per transaction, applied to local RocksDB once it commits.

    A revocation aborts the open transaction; rows it wrote must not stay in
    the local table, which a worker keeping the partition reloads from (Faust
    resumes its recovery where it stopped). Kafka Streams keeps EOS state
    stores the same way: nothing uncommitted reaches the local store. Only the
    last value of each key is held: memory is bounded by the rows a
    transaction touches, not by how often they are checkpointed before it
    commits.
    """

    def __init__(self, table: Any) -> None:
        self.table = table
        self.pending: dict[str, dict[int, dict[bytes, bytes | None]]] = {}
        """Transactional id -> partition -> key -> value (None: deleted)."""

    def add(self, transactional_id: str, partition: int, key: bytes, value: bytes | None) -> None:
        """A write sent in the transaction (replacing an earlier one of the same key); None deletes the key."""
        self.pending.setdefault(transactional_id, {}).setdefault(partition, {})[key] = value

    def writes_of(self, partition: int) -> list[dict[bytes, bytes | None]]:
        """The held writes of `partition` (key -> value, None: deleted), one dict per open transaction."""
        return [held[partition] for held in self.pending.values() if partition in held]

    def committed(self, transactional_id: str) -> None:
        """The transaction committed: its writes go to the local table."""
        store = self.table.data
        for partition, writes in self.pending.pop(transactional_id, {}).items():
            db = partition_database(store, partition)
            for key, value in writes.items():
                if value is None:
                    del db[key]
                else:
                    db[key] = value

    def discard_all(self) -> None:
        """On revocation: open transactions are aborted, their writes dropped."""
        self.pending.clear()
