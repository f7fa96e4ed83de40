"""The one seam to faust-streaming / aiokafka / mode internals: every patch and private read, and their start-up check."""

from __future__ import annotations

import asyncio
import importlib
import importlib.metadata
import inspect
import logging
import re
import sys
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from typing import Any, Literal, NamedTuple, Protocol

from aiokafka.structs import TopicPartition
from faust.types.tuples import ack_lock

__all__ = [
    "FRAMEWORK",
    "INTERNALS",
    "ChangelogRestore",
    "FrameworkMismatch",
    "InputHandOff",
    "Internal",
    "ack_offsets",
    "changelog_sent_callback",
    "check_faust_internals",
    "commit_every_transaction",
    "commit_only_open_transactions",
    "consumer_committed_offsets",
    "differences",
    "high_waters_from_the_broker",
    "idempotent_producers",
    "in_transaction",
    "input_in_batches",
    "is_changelog",
    "on_transaction_committed",
    "open_databases",
    "partition_database",
    "partition_databases",
    "pinned_versions",
    "plain_producer",
    "restore_changelog_batches",
    "share_rocksdb_memory",
    "signature_shape",
    "transaction_lock",
    "transaction_producers",
    "uncommitted_partitions_from_the_beginning",
    "version_differences",
]

log = logging.getLogger(__name__)

DISTRIBUTION = "relationship-streams"
"""This project's distribution: its metadata carries the pins of pyproject.toml."""
FRAMEWORK = ("faust-streaming", "aiokafka", "mode-streaming")
"""The distributions whose internals this module uses; it was written for the versions pyproject.toml pins."""

Kind = Literal["method", "class attribute", "instance attribute"]


class Internal(NamedTuple):
    """One internal this module relies on; `signature` (parameters only) for methods it replaces or calls."""

    owner: str
    """`module:Class`."""
    name: str
    kind: Kind
    signature: str | None
    use: str
    """What this module does with it."""
    patched_on: str | None = None
    """`module:Class` the patch is installed on, when not `owner`: `owner` must inherit it from there."""

    def problem(self) -> str | None:
        """What differs from what this module was written for; None when nothing does."""
        module_name, class_name = self.owner.split(":")
        try:
            cls = getattr(importlib.import_module(module_name), class_name)
        except (ImportError, AttributeError):
            return "the class is gone"
        if self.kind == "instance attribute":
            return None if _set_in_init(cls, self.name) else "no longer set in __init__"
        if inspect.getattr_static(cls, self.name, _MISSING) is _MISSING:
            return "missing"
        if self.patched_on is not None and getattr(cls, self.name) is not _attribute(
            self.patched_on, self.name
        ):
            return f"overridden: the patch on {self.patched_on.replace(':', '.')} would not apply"
        if self.signature is None:
            return None
        try:
            shape = signature_shape(getattr(cls, self.name))
        except (TypeError, ValueError):
            return "no longer a function"
        return None if shape == self.signature else f"signature {shape}, written for {self.signature}"


_MISSING = object()


def _attribute(owner: str, name: str) -> Any:
    module_name, class_name = owner.split(":")
    return getattr(getattr(importlib.import_module(module_name), class_name), name, _MISSING)


INTERNALS: tuple[Internal, ...] = (
    Internal(
        "faust.transport.drivers.aiokafka:Consumer",
        "_commit_tps",
        "method",
        "(self, tps, start_new_transaction)",
        "replaced by `commit_every_transaction`, which calls it",
        patched_on="faust.transport.consumer:Consumer",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Producer",
        "commit_transactions",
        "method",
        "(self, tid_to_offset_map, group_id, start_new_transaction=True)",
        "replaced by `commit_only_open_transactions`",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Producer",
        "_settings_extra",
        "method",
        "(self)",
        "replaced by `idempotent_producers`",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        "_highwaters",
        "method",
        "(self, partitions)",
        "replaced by `high_waters_from_the_broker`",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        "seek_to_committed",
        "method",
        "(self)",
        "replaced by `uncommitted_partitions_from_the_beginning`",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        "_ensure_consumer",
        "method",
        "(self)",
        "the aiokafka consumer, in both replacements",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:AIOKafkaConsumerThread",
        "call_thread",
        "method",
        "(self, fun, *args, **kwargs)",
        "mode's `QueueServiceThread.call_thread`: runs the seeks on the consumer's thread",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "in_transaction",
        "instance attribute",
        None,
        "exactly_once is on (`commit_every_transaction`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "transactions",
        "instance attribute",
        None,
        "its transaction manager (`commit_every_transaction`)",
    ),
    Internal(
        "faust.transport.consumer:TransactionManager",
        "producer",
        "instance attribute",
        None,
        "the producer holding the transactions (`commit_every_transaction`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "_committed_offset",
        "instance attribute",
        None,
        "committed offsets without a broker round trip (`consumer_committed_offsets`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "_gap",
        "instance attribute",
        None,
        "offsets Faust saw skipped and counts as acked: chopped where `ack_offsets` acks them itself",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "_acked",
        "instance attribute",
        None,
        "acked offsets by partition, which Faust's commit reads (`ack_offsets`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "_acked_index",
        "instance attribute",
        None,
        "the same offsets as a set, against acking one twice (`ack_offsets`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "_n_acked",
        "instance attribute",
        None,
        "acks since the last commit (`ack_offsets`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "_waiting_for_ack",
        "instance attribute",
        None,
        "woken by an ack, as Faust's `ack` does (`ack_offsets`)",
    ),
    Internal(
        "faust.transport.consumer:ThreadDelegateConsumer",
        "_getmany",
        "method",
        "(self, active_partitions, timeout)",
        "wrapped by `input_in_batches`",
    ),
    Internal(
        "faust.sensors.monitor:Monitor",
        "stream_inbound_time",
        "class attribute",
        None,
        "when each partition last fed a stream: set for the input handed off (`input_in_batches`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "suspend_flow",
        "instance attribute",
        None,
        "set while a rebalance stops the flow: a hand-off waiting for room gives up (`input_in_batches`)",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Producer",
        "_transaction_producers",
        "class attribute",
        None,
        "one aiokafka producer per transactional id (`transaction_producers`)",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Producer",
        "_trn_locks",
        "class attribute",
        None,
        "the lock Faust's commit of a transaction takes (`transaction_lock`)",
    ),
    Internal(
        "faust.transport.drivers.aiokafka:Producer",
        "_ensure_producer",
        "method",
        "(self)",
        "the non-transactional aiokafka producer (`plain_producer`)",
    ),
    Internal(
        "aiokafka.producer.producer:AIOKafkaProducer",
        "_txn_manager",
        "instance attribute",
        None,
        "whether a transaction is open (`in_transaction`)",
    ),
    Internal(
        "aiokafka.producer.transaction_manager:TransactionManager",
        "is_in_transaction",
        "method",
        "(self)",
        "whether a transaction is open (`in_transaction`)",
    ),
    Internal(
        "aiokafka.producer.sender:Sender",
        "_find_coordinator",
        "method",
        "(self, coordinator_type, coordinator_key)",
        "wrapped by `coordinator_lookups_survive_a_lost_broker`",
    ),
    Internal(
        "faust.stores.rocksdb:Store",
        "_db_for_partition",
        "method",
        "(self, partition)",
        "one partition's RocksDB database (`partition_database`)",
    ),
    Internal(
        "faust.stores.rocksdb:Store",
        "_dbs",
        "instance attribute",
        None,
        "the partition databases open, by partition (`open_databases`: their memory gauges)",
    ),
    Internal(
        "faust.stores.rocksdb:Store",
        "rocksdb_options",
        "instance attribute",
        None,
        "the `RocksDBOptions` every partition database is opened with (`share_rocksdb_memory`)",
    ),
    Internal(
        "faust.stores.rocksdb:RocksDBOptions",
        "as_options",
        "method",
        "(self)",
        "replaced on the store's instance: what `open` opens each database with (`share_rocksdb_memory`)",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "tp_to_table",
        "instance attribute",
        None,
        "the table of each changelog partition (`restore_changelog_batches`)",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "active_offsets",
        "instance attribute",
        None,
        "the last changelog offset applied, per active partition: moved by `restore_changelog_batches`",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "standby_offsets",
        "instance attribute",
        None,
        "the same per standby partition (`restore_changelog_batches`)",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "_active_events_received_at",
        "instance attribute",
        None,
        "when an active changelog partition last gave a record, for Faust's recovery stats",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "_standby_events_received_at",
        "instance attribute",
        None,
        "the same for standby partitions",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "_set_recovery_ended",
        "method",
        "(self)",
        "ends recovery as Faust's `_slurp_changelogs` ends it (`restore_changelog_batches`)",
    ),
    Internal(
        "faust.tables.recovery:Recovery",
        "flush_buffers",
        "method",
        "(self)",
        "applies what Faust's recovery queue buffered, before recovery ends",
    ),
    Internal(
        "faust.tables.base:Collection",
        "apply_changelog_batch",
        "method",
        "(self, batch)",
        "one fetch's changelog records to the store (`restore_changelog_batches`)",
    ),
    Internal(
        "faust.stores.rocksdb:Store",
        "apply_changelog_batch",
        "method",
        "(self, batch, to_key, to_value)",
        "reads `event.message` `tp`, `partition`, `offset`, `key`, `value` only (`_ChangelogMessage`)",
    ),
    Internal(
        "faust.transport.consumer:Consumer",
        "flow_active",
        "class attribute",
        None,
        "off while a rebalance stops the flow: the fetch is dropped, as Faust drops it",
    ),
    Internal(
        "faust.tables.base:Collection",
        "_on_changelog_sent",
        "method",
        "(self, fut)",
        "advances the persisted changelog offset (`changelog_sent_callback`)",
    ),
)
"""Every internal used here. Patched behaviour beyond these shapes is guarded by the broker tests (docs/guarantees.md)."""


class FrameworkMismatch(Exception):
    """An internal this module relies on is gone or changed shape: the worker must not start (exit status 2)."""


def signature_shape(function: Callable[..., Any]) -> str:
    """A function's parameters without annotations, seen through `__wrapped__` (our own patches).

    >>> signature_shape(lambda self, tps, start=True, *args, **kwargs: None)
    '(self, tps, start=True, *args, **kwargs)'
    """
    signature = inspect.signature(function)
    parameters = [
        parameter.replace(annotation=inspect.Parameter.empty) for parameter in signature.parameters.values()
    ]
    return str(signature.replace(parameters=parameters, return_annotation=inspect.Signature.empty))


def _set_in_init(cls: type, name: str) -> bool:
    """`name` is annotated on the class or named in an `__init__` of its hierarchy."""
    for klass in cls.__mro__:
        if name in vars(klass).get("__annotations__", {}):
            return True
        init = vars(klass).get("__init__")
        if inspect.isfunction(init) and name in init.__code__.co_names:
            return True
    return False


def differences() -> list[str]:
    """`owner.name: what differs`, for every internal not as this module was written for it."""
    found = []
    for internal in INTERNALS:
        problem = internal.problem()
        if problem is not None:
            found.append(f"{internal.owner.replace(':', '.')}.{internal.name}: {problem}")
    return found


def pinned_versions() -> dict[str, str]:
    """The `==` pins of `FRAMEWORK` in this project's metadata (pyproject.toml as installed)."""
    pins: dict[str, str] = {}
    for requirement in importlib.metadata.requires(DISTRIBUTION) or []:
        match = re.fullmatch(r"([A-Za-z0-9._-]+)==([^\s;]+)", requirement)
        if match and match[1] in FRAMEWORK:
            pins[match[1]] = match[2]
    return pins


def _installed(distribution: str) -> str:
    try:
        return importlib.metadata.version(distribution)
    except importlib.metadata.PackageNotFoundError:
        return "none"


def version_differences() -> list[str]:
    """Each framework distribution whose installed version is not the pinned one."""
    try:
        pins = pinned_versions()
    except importlib.metadata.PackageNotFoundError:
        return [f"{DISTRIBUTION} is not installed: the pins are unknown"]
    return [
        f"{name} {_installed(name)} installed, pyproject.toml pins {pins.get(name, 'nothing')}"
        for name in FRAMEWORK
        if _installed(name) != pins.get(name)
    ]


def check_faust_internals() -> None:
    """At start, before anything is consumed: raise `FrameworkMismatch` if an internal differs.

    A version other than the pinned one only logs a warning: the shapes
    checked here are what the patches need to run, and someone trying an
    upgrade must be able to start a worker to run the broker tests.
    """
    versions = version_differences()
    for difference in versions:
        log.warning("faust internals checked against a version not pinned: %s", difference)
    found = differences()
    if not found:
        return
    try:
        pins = pinned_versions()
    except importlib.metadata.PackageNotFoundError:
        pins = {}
    written_for = ", ".join(f"{name}=={pins.get(name, '?')}" for name in FRAMEWORK)
    installed = ", ".join(f"{name} {_installed(name)}" for name in FRAMEWORK)
    raise FrameworkMismatch(
        f"Faust internals differ from those of {written_for} (pyproject.toml), which "
        f"streams/service/faust_internals.py was written for; installed: {installed}. "
        f"Differs: {'; '.join(found)}. Fix: install the pinned versions (`pip install -e .`), "
        "or adapt streams/service/faust_internals.py to the installed ones "
        "(docs/guarantees.md, 'The seam to Faust')."
    )


def is_changelog(tp: Any) -> bool:
    """A table's changelog partition (Faust names them `<app>-<table>-changelog`)."""
    return str(tp.topic).endswith("-changelog")


def _replace(cls: type, name: str, replacement: Callable[..., Any]) -> None:
    """Put `replacement` in place of `cls.name`; its `__wrapped__` is Faust's original, for `signature_shape`."""
    replacement.__wrapped__ = inspect.unwrap(getattr(cls, name))  # type: ignore[attr-defined]
    setattr(cls, name, replacement)


# Patches: each one a faust-streaming 0.15.3 defect (docs/guarantees.md, section 4).


def commit_every_transaction() -> None:
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
        for transactional_id in list(transaction_producers(producer)):
            if transactional_id not in ended:
                await _commit_if_open(producer, transactional_id, start_new_transaction)
        return bool(committed)

    ending_every_transaction._ends_every_transaction = True  # type: ignore[attr-defined]
    _replace(Consumer, "_commit_tps", ending_every_transaction)


def _on_committed(producer: Any, transactional_id: str) -> None:
    """Tell the service a transaction committed (`Transactions.on_committed`)."""
    committing = getattr(producer, "streams_committing", None)
    if committing is not None:
        committing.add(transactional_id)
    listener = getattr(producer, "streams_on_committed", None)
    if listener is not None:
        listener(transactional_id)


def on_transaction_committed(producer: Any, listener: Callable[[str], None]) -> None:
    """Call `listener(transactional_id)` after each transaction of Faust's `producer` commits (`commit_only_open_transactions`)."""
    producer.streams_on_committed = listener


def commit_only_open_transactions() -> None:
    """faust-streaming 0.15.3, exactly_once: commit only transactions still open, and tell the service which committed.

    A revocation aborts every open transaction (`Transactions.abort_open`);
    Faust begins them again only at the assignment that follows. A commit
    in between (the consumer's periodic one, or one under way when the
    rebalance began) sent offsets to a producer with no transaction and
    crashed the worker (IllegalOperation "Not in the middle of a
    transaction"; a worker leaving the join/leave test exited with status 1).
    Those offsets belong to aborted work, which is redone from the committed
    offsets: they are not committed, and the transaction is not reported.
    """
    from faust.transport.drivers.aiokafka import Producer  # noqa: PLC0415

    if getattr(Producer.commit_transactions, "_commits_only_open", False):
        return

    async def committing_only_open(
        self: Any, tid_to_offset_map: Any, group_id: str, start_new_transaction: bool = True
    ) -> None:
        for transactional_id, offsets in tid_to_offset_map.items():
            await _commit_if_open(self, transactional_id, start_new_transaction, (offsets, group_id))

    committing_only_open._commits_only_open = True  # type: ignore[attr-defined]
    _replace(Producer, "commit_transactions", committing_only_open)


async def _commit_if_open(
    producer: Any, transactional_id: str, start_new_transaction: bool, offsets: tuple[Any, str] | None = None
) -> None:
    """Under the transaction's lock, which a revocation's abort takes too: if it is open, send it
    `offsets` (and their group) if any, commit it, report it (`_on_committed`) and begin the next.
    Offsets for a transaction gone or aborted are dropped, logged: they belong to work redone."""
    async with producer._trn_locks[transactional_id]:
        transaction = transaction_producers(producer).get(transactional_id)
        if transaction is None:
            if offsets is not None:
                log.warning(
                    "commit of unknown transaction %s: its offsets are not committed", transactional_id
                )
            return
        if not in_transaction(transaction):
            if offsets is not None:
                log.info(
                    "transaction %s was aborted by a revocation: its offsets are not committed",
                    transactional_id,
                )
            return
        if offsets is not None:
            await transaction.send_offsets_to_transaction(*offsets)
        await transaction.commit_transaction()
        _on_committed(producer, transactional_id)
        if start_new_transaction:
            await transaction.begin_transaction()


def high_waters_from_the_broker(
    changelog_ends: Callable[[dict[tuple[str, int], int]], Awaitable[Mapping[tuple[str, int], int]]],
) -> None:
    """faust-streaming 0.15.3, exactly_once: table recovery reads the changelog up to a stale high water.

    In a transaction Faust takes high waters from the consumer's cached last
    stable offsets, which are -1 for a partition not fetched yet: after a
    rebalance, recovery then skips the changelog (or stops on a
    `ConsistencyError`). A read_committed consumer's `end_offsets` asks the
    broker for the last stable offset instead. Recovery then waits for the
    record just below it, which under transactions is a commit marker no
    consumer delivers: it gave up only after two 5 s timeouts ("Aborted tx
    until highwater"), so a changelog's high water is the offset after its
    last committed record: `changelog_ends(changelogs)`, which reads them off the event loop.
    """
    from faust.transport.drivers.aiokafka import AIOKafkaConsumerThread  # noqa: PLC0415

    async def high_waters_from_the_broker(self: Any, partitions: list[Any]) -> Any:
        stable = await self._ensure_consumer().end_offsets(partitions)
        changelogs = {(tp.topic, tp.partition): end for tp, end in stable.items() if is_changelog(tp)}
        if changelogs:
            ends = await changelog_ends(changelogs)
            stable = {tp: ends.get((tp.topic, tp.partition), end) for tp, end in stable.items()}
        return stable

    _replace(AIOKafkaConsumerThread, "_highwaters", high_waters_from_the_broker)


def uncommitted_partitions_from_the_beginning(record_seeks: Callable[[Any, Mapping[Any, int]], None]) -> None:
    """faust-streaming 0.15.3 (aiokafka): after a rebalance a partition never committed is not read again.

    Faust seeks every assigned partition to its committed offset after each
    rebalance, and drops what it had fetched but not handed to an agent; the
    agents drop their in-memory state too. aiokafka's `seek_to_committed`
    leaves a partition without a committed offset where it was, so a worker
    keeping such a partition went on past records it never finished (under
    exactly_once their output was aborted; at least once, records cleared from
    the stream buffer were never delivered). Such partitions start from the
    beginning instead, as `auto_offset_reset=earliest` does on a first start.
    `record_seeks(app, targets)` hears where each partition was seeked to.
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
            never = [tp for tp, offset in committed.items() if not offset and not is_changelog(tp)]
            if never:  # `seek`, not `seek_to_beginning`: that leaves no position until the next fetch
                targets.update(await consumer.beginning_offsets(never))
            for tp, offset in targets.items():
                consumer.seek(tp, offset)
            record_seeks(self.app, targets)  # the ingest's gate opens from these
            return committed

        return await self.call_thread(seek)

    seek_to_committed_or_beginning._rewinds = True  # type: ignore[attr-defined]
    _replace(AIOKafkaConsumerThread, "seek_to_committed", seek_to_committed_or_beginning)


def idempotent_producers() -> None:
    """faust-streaming 0.15.3: a producer is idempotent only inside transactions (exactly_once).

    Faust has no setting for it: `Producer._settings_extra` adds
    `enable_idempotence` only when the app is in a transaction. At least once,
    a send retried after a lost acknowledgement (a broker failover) would then
    be written twice, and the idempotent producer's sequence numbers also keep
    a partition's records in order across those retries.
    """
    from faust.transport.drivers.aiokafka import Producer  # noqa: PLC0415

    if getattr(Producer._settings_extra, "_idempotent", False):
        return

    def idempotent(self: Any) -> dict[str, Any]:
        return {"acks": "all", "enable_idempotence": True}

    idempotent._idempotent = True  # type: ignore[attr-defined]
    _replace(Producer, "_settings_extra", idempotent)


def coordinator_lookups_survive_a_lost_broker() -> None:
    """aiokafka 0.14.0, exactly_once: a lost connection while finding a coordinator crashes the worker.

    `Sender._find_coordinator` retries when the coordinator is not available
    or its node not ready, but a connection closed under the request (the
    broker it asked was SIGKILLed) becomes a bare `KafkaError` that ends the
    sender routine, the producer and then the worker (aio-libs/aiokafka#1151).
    Retried like the errors it already retries: refresh the metadata, back
    off, ask again (another broker answers).
    """
    from aiokafka.errors import KafkaConnectionError, KafkaError  # noqa: PLC0415
    from aiokafka.producer.sender import Sender  # noqa: PLC0415

    original = Sender._find_coordinator
    if getattr(original, "_survives_a_lost_broker", False):
        return

    async def find_coordinator(self: Any, coordinator_type: Any, coordinator_key: Any) -> Any:
        while True:
            try:
                return await original(self, coordinator_type, coordinator_key)
            except KafkaError as exc:
                if not isinstance(exc.__cause__, KafkaConnectionError):
                    raise
                log.warning("finding the %s coordinator: %r; retrying", coordinator_type, exc.__cause__)
                await self.client.force_metadata_update()
                await asyncio.sleep(self._retry_backoff)

    find_coordinator._survives_a_lost_broker = True  # type: ignore[attr-defined]
    _replace(Sender, "_find_coordinator", find_coordinator)


class InputHandOff(Protocol):
    """Where `input_in_batches` hands fetched input records (`streams.service.input_batches.InputBatches`)."""

    topics: frozenset[str]
    """The topics whose records are handed off."""

    async def put(self, fetched: dict[Any, list[Any]], generation: int, suspended: Any) -> None:
        """Take one fetch's records of `topics`, by partition; `suspended` is set while a rebalance stops the flow."""


class FetchListener(Protocol):
    """What `input_in_batches` tells of every fetch (`streams.service.owner_fetches.UnhandledFetches`)."""

    def fetched(self, records: Mapping[Any, Sequence[Any]]) -> None:
        """One fetch's records, by topic partition, before Faust takes them."""


class FetchFilter(Protocol):
    """Which partitions `input_in_batches` fetches (`streams.service.input_alignment.InputAlignment`)."""

    def to_fetch(self, partitions: Set[Any]) -> Set[Any]:
        """Of Faust's active `partitions`, those to fetch now (never none of them)."""


class ChangelogRestore(Protocol):
    """Changelogs `input_in_batches` writes to their tables a fetch at a time (`streams.service.changelog_restore`)."""

    topics: frozenset[str]
    """The changelog topics whose records skip Faust's recovery queue."""

    def restored(self, records: int) -> None:
        """`records` changelog records were written to their table in one batch."""


class _ChangelogMessage(NamedTuple):
    """What Faust's `Store.apply_changelog_batch` reads of a changelog record's `Message`."""

    tp: Any
    partition: int
    offset: int
    key: bytes | None
    value: bytes | None


class _ChangelogEvent(NamedTuple):
    """What Faust's `Store.apply_changelog_batch` reads of an `Event`: its message."""

    message: _ChangelogMessage


def restore_changelog_batches(
    app: Any, fetched: Mapping[Any, Sequence[Any]], restore: ChangelogRestore
) -> None:
    """Write one fetch's changelog records to their tables, one batch per partition, as Faust's recovery would.

    faust-streaming 0.15.3 passes each changelog record through the conductor
    and the recovery's queue, and for each one formats two debug messages and
    recounts what every partition has left to recover: about 100 µs of CPU per
    record, so a worker that lost its local state replayed ~10k rows/s
    (docs/benchmarks.md). Here a record at or below the partition's offset
    already applied is skipped, the rest go to `Table.apply_changelog_batch`
    (one RocksDB write batch, then the persisted offset), and the recovery's
    offsets move as its own loop moves them; when no active partition has
    anything left, recovery ends as that loop ends it. Records of partitions
    that are neither active nor standby are dropped (Faust's loop logs them
    and applies them to whatever table it last saw).
    """
    recovery = app.tables.recovery
    now = time.monotonic()
    for tp, records in fetched.items():
        if tp in recovery.active_tps:
            offsets, received = recovery.active_offsets, recovery._active_events_received_at
        elif tp in recovery.standby_tps:
            offsets, received = recovery.standby_offsets, recovery._standby_events_received_at
        else:
            log.warning("changelog records of %s, which is neither active nor standby here: dropped", tp)
            continue
        seen = offsets.get(tp)
        batch = [
            _ChangelogEvent(_ChangelogMessage(tp, record.partition, record.offset, record.key, record.value))
            for record in records
            if seen is None or record.offset > seen
        ]
        if not batch:
            continue
        recovery.tp_to_table[tp].apply_changelog_batch(batch)
        offsets[tp] = batch[-1].message.offset
        received[tp] = now
        restore.restored(len(batch))
    if recovery.in_recovery and not recovery.need_recovery():
        recovery.flush_buffers()
        recovery._set_recovery_ended()
        recovery.signal_recovery_end.set()
    if not app.tables.standbys_ready and not recovery.standby_remaining_total():
        app.tables.on_standbys_ready()


def _split_by_topic(
    records: Mapping[Any, Any], topics: frozenset[str]
) -> tuple[dict[Any, Any], dict[Any, Any]]:
    """One fetch's records of `topics`, and the rest, by topic partition."""
    taken = {tp: fetched for tp, fetched in records.items() if tp.topic in topics}
    return taken, {tp: fetched for tp, fetched in records.items() if tp not in taken}


def input_in_batches() -> None:
    """Records of the input topics skip Faust's per-record path: each fetch hands them over as lists.

    faust-streaming 0.15.3 turns every fetched record into a `Message`, then an
    `Event` put on a stream's queue, with a task per record in its fetch loop:
    about 70 µs of CPU per record, against a few for the ingest's own work
    (docs/benchmarks.md). An app with `streams_input` (an `InputHandOff`)
    gets its topics' records as aiokafka fetched them, a list per partition,
    and acks them itself (`ack_offsets`); Faust still owns the consumer, the
    group, the seeks and the commits. Records fetched in a consumer generation
    that ended meanwhile are dropped, as Faust's `getmany` drops them. The
    monitor hears of each hand-off as of a record reaching a stream: Faust
    reports a partition whose stream has not taken a record for
    `tp_stream_timeout_secs` while the broker holds more ("Stream has not
    started processing"). An app with `streams_fetches` (a `FetchListener`)
    hears of every fetch of the current consumer generation before Faust
    takes the records it keeps. An app with `streams_changelogs` (a
    `ChangelogRestore`) has its tables' changelog records written a fetch
    at a time (`restore_changelog_batches`) while the consumer's flow is on
    (else Faust drops the fetch, and the rebalance that stopped the flow
    restarts recovery), also when the fetch spanned a new generation: Faust
    takes those too, and they are read from where the new recovery seeked
    (dropping them left the partition's recovery waiting for records already
    read, found by `test_workers_join_and_leave_while_data_flows`). An app
    with `streams_alignment` (a `FetchFilter`) fetches only the partitions it
    keeps of Faust's active ones: the others' records stay in aiokafka's
    buffer (one fetch each at most) and the consumer's position does not
    move, so Faust's own pausing and resuming are left as they are.
    """
    from faust.transport.consumer import ThreadDelegateConsumer  # noqa: PLC0415

    original = ThreadDelegateConsumer._getmany
    if getattr(original, "_hands_off", False):
        return

    async def getmany_handing_off_input(self: Any, active_partitions: Any, timeout: float) -> Any:  # noqa: ASYNC109
        hand_off: InputHandOff | None = getattr(self.app, "streams_input", None)
        generation = self.app.consumer_generation_id
        alignment: FetchFilter | None = getattr(self.app, "streams_alignment", None)
        if alignment is not None and active_partitions:
            active_partitions = alignment.to_fetch(active_partitions)
        records = await original(self, active_partitions, timeout)
        listener: FetchListener | None = getattr(self.app, "streams_fetches", None)
        if listener is not None and records and self.app.consumer_generation_id == generation:
            listener.fetched(records)
        restore: ChangelogRestore | None = getattr(self.app, "streams_changelogs", None)
        if restore is not None:
            changelogs, records = _split_by_topic(records, restore.topics)
            if changelogs and self.flow_active:  # Faust's own check; it reads the generation after the fetch
                restore_changelog_batches(self.app, changelogs, restore)
        if hand_off is None:
            return records
        taken, kept = _split_by_topic(records, hand_off.topics)
        if not taken:
            return kept
        if self.app.consumer_generation_id == generation:
            await hand_off.put(taken, generation, self.suspend_flow)
            monitor = getattr(self.app, "monitor", None)
            if monitor is not None:  # what Faust's stream would record: else it reports the partition stuck
                now = time.monotonic()
                for tp in taken:
                    monitor.stream_inbound_time[tp] = now
        return kept

    getmany_handing_off_input._hands_off = True  # type: ignore[attr-defined]
    _replace(ThreadDelegateConsumer, "_getmany", getmany_handing_off_input)


# Reads: what the service asks of Faust's objects beyond their public API.


def transaction_producers(producer: Any) -> Mapping[str, Any]:
    """Faust's (`app.producer`) aiokafka producers, by transactional id: those of partitions assigned here."""
    found: Mapping[str, Any] = producer._transaction_producers
    return found


def transaction_lock(producer: Any, transactional_id: str) -> asyncio.Lock | None:
    """The lock Faust's commit of that transaction takes (None: no such transaction)."""
    lock: asyncio.Lock | None = producer._trn_locks.get(transactional_id)
    return lock


def plain_producer(producer: Any) -> Any:
    """Faust's aiokafka producer outside any transaction (started on first use)."""
    return producer._ensure_producer()


def in_transaction(aiokafka_producer: Any) -> bool:
    """An aiokafka transactional producer has a transaction open."""
    return bool(aiokafka_producer._txn_manager.is_in_transaction())


def consumer_committed_offsets(consumer: Any) -> Mapping[Any, int | None]:
    """Faust's record of the offsets its consumer committed (or found committed on assignment), by TP."""
    found: Mapping[Any, int | None] = getattr(consumer, "_committed_offset", {})
    return found


def ack_offsets(consumer: Any, topic: str, partition: int, offsets: range) -> None:
    """Ack `topic[partition]` at `offsets` in Faust's consumer as if it had delivered and acked each one.

    Faust's own `ack` does this bookkeeping per delivered `Message`; input
    records reach the ingest without one (`input_in_batches`), so a batch's
    offsets are acked here as ranges: the same checks (not below the committed
    offset, not twice) and the same lists Faust's commit reads, under the same
    lock. Their `tp` is aiokafka's `TopicPartition`: a partition's first ack
    makes it the key of Faust's acked offsets, and under exactly_once Faust
    hands those keys to aiokafka's `send_offsets_to_transaction` as they are,
    which refuses Faust's own `TP` (`TypeError: Key should be TopicPartition
    instance`: the consumer crashed).

    Faust may have seen the same offsets skipped (a record delivered past its
    read offset) and recorded them as a gap, which it adds to the acked offsets
    when it commits. Acked here as well, each would be there twice, and Faust
    commits only up to the first repeat: the partition's committed offset then
    crept on by one offset per commit (seen: an input partition 534 records
    behind three minutes after the last rebalance). So the gap is chopped first.
    """
    tp = TopicPartition(topic, partition)
    with ack_lock:
        gaps = consumer._gap.get(tp)
        if gaps:
            gaps.chop(offsets.start, offsets.stop)
        committed = consumer._committed_offset[tp]
        start = offsets.start if committed is None else max(offsets.start, committed)
        index = consumer._acked_index[tp]
        fresh = [offset for offset in range(start, offsets.stop) if offset not in index]
        if fresh:
            index.update(fresh)
            consumer._acked[tp].extend(fresh)
            consumer._n_acked += len(fresh)
        waiting = consumer._waiting_for_ack
        if waiting is not None and not waiting.done():
            waiting.set_result(None)


def partition_databases(store: Any) -> Callable[[int], Any] | None:
    """A RocksDB store's database of one partition, by number; None for a store without them (in-memory)."""
    found: Callable[[int], Any] | None = getattr(store, "_db_for_partition", None)
    return found


def partition_database(store: Any, partition: int) -> Any:
    """A RocksDB store's database of `partition`."""
    return store._db_for_partition(partition)


def open_databases(store: Any) -> list[Any]:
    """The partition databases a RocksDB store has open now; none for a store without them (in-memory)."""
    return list(getattr(store, "_dbs", {}).values())


def share_rocksdb_memory(store: Any, options_for: Callable[[Any], Any]) -> None:
    """Open each partition database of a RocksDB `store` with `options_for(its RocksDBOptions)`.

    Faust builds every database's options in `RocksDBOptions.as_options`,
    with a block cache of its own per call; `options_for` gets the same sizes
    and can share one cache among them (streams/service/rocksdb_memory.py).
    """
    sizes = getattr(store, "rocksdb_options", None)
    if sizes is not None:  # an in-memory store has no databases
        sizes.as_options = lambda: options_for(sizes)


def changelog_sent_callback(table: Any) -> Callable[[Any], None]:
    """What Faust calls when a table's changelog record is delivered (it advances the persisted offset)."""
    callback: Callable[[Any], None] = table._on_changelog_sent
    return callback


def _main() -> int:
    """`python -m streams.service.faust_internals`: the start-up check alone; exit status 2 if it fails."""
    logging.basicConfig(level=logging.WARNING, format="%(message)s")
    try:
        check_faust_internals()
    except FrameworkMismatch as exc:
        sys.stderr.write(f"{exc}\n")
        return 2
    sys.stdout.write(f"{len(INTERNALS)} Faust internals as written for: ok\n")
    return 0


if __name__ == "__main__":
    sys.exit(_main())
