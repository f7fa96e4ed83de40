"""A partition's rows on disk: its RocksDB holds them all, memory a bounded cache of decoded hot rows."""

from __future__ import annotations

from collections.abc import Callable, Collection, ItemsView, Iterable, Iterator, MutableMapping
from typing import Any, Protocol

import orjson

from streams.engine.row import Row
from streams.engine.row_codec import RowCodec
from streams.engine.rules import Rules

__all__ = [
    "ROW_BYTES_IN_MEMORY",
    "ROW_KEY_PREFIX",
    "MemoryTable",
    "PartitionDatabase",
    "PendingWrites",
    "RowTable",
    "StoredRows",
    "cache_capacity",
    "row_key",
    "stored_entries",
]

RowKey = tuple[str, str]
ROW_KEY_PREFIX = b"["
"""Row keys are JSON arrays; the partition's markers (`__resume__`, ...) start with `_`, deadlines with 0x01."""
ROW_BYTES_IN_MEMORY = 1_000
"""What one decoded row costs in the heap, for `STREAMS_ROW_CACHE_MB` (measured 0.8-1.3 KB: docs/benchmarks.md)."""


def row_key(key: RowKey) -> bytes:
    """Table key of a row: the JSON array `[owner, contact]`."""
    return orjson.dumps(key)


def owner_prefix(owner: str) -> bytes:
    """The start every row key of `owner` shares: `["owner",`."""
    return orjson.dumps([owner])[:-1] + b","


def cache_capacity(cache_mb: int, partitions: int) -> int:
    """Rows one owner partition keeps decoded: the worker's `STREAMS_ROW_CACHE_MB` shared by every partition."""
    return cache_mb * 1_000_000 // ROW_BYTES_IN_MEMORY // max(partitions, 1)


class RowTable(Protocol):
    """One partition's RocksDB database (rocksdict `Rdict`, raw mode), as far as the rows need it."""

    def get(self, key: bytes) -> bytes | None:
        """The value of `key`, None if absent."""

    def items(self, backwards: bool = False, from_key: bytes | None = None) -> Iterable[tuple[bytes, bytes]]:
        """Items in key order, from `from_key` on."""


PendingWrites = Callable[[], list[dict[bytes, bytes | None]]]
"""Writes sent but not in the local database yet (exactly_once: until their transaction commits)."""


def _no_pending() -> list[dict[bytes, bytes | None]]:
    return []


_MISSING = object()


class StoredRows(MutableMapping[RowKey, Row]):
    """Rows keyed `(owner, contact)`: every row in the partition's RocksDB, at most `capacity` decoded in memory.

    The engine mutates the rows it gets in place and its owner partition
    writes the changed ones at each checkpoint (`Checkpointing.write_rows`).
    So a row may leave memory only once it is written: `written` is told
    which rows a checkpoint wrote, and evicts the least recently written
    rows beyond `capacity`, never one in `keep` (changed since). A row read
    again comes back from RocksDB, or from `pending` writes not there yet
    (exactly_once holds them until their transaction commits). A row deleted
    since it was written (erasure, `row_ttl`) stays in memory as a
    tombstone until written, so RocksDB's older value is never read back.

    `len` counts the rows the last full scan found (the engine scans once when
    it is created) plus those added since, minus those deleted.

    >>> table = {}
    >>> rows = StoredRows(MemoryTable(table), RowCodec(), None, capacity=0)
    >>> rows[("ann", "bob")] = Row.first(1_000)
    >>> table[row_key(("ann", "bob"))] = rows[("ann", "bob")].to_bytes()  # what a checkpoint writes
    >>> rows.written([("ann", "bob")], keep=()); rows.cached()
    0
    >>> rows[("ann", "bob")].last_at, len(rows), rows.reads
    (1000, 1, 1)
    """

    def __init__(
        self,
        table: RowTable,
        codec: RowCodec,
        rules: Rules | None,
        capacity: int,
        pending: PendingWrites = _no_pending,
    ) -> None:
        self._table = table
        self._codec = codec
        self._rules = rules
        self.capacity = capacity
        """Rows kept decoded once written (more while more are changed and not written yet)."""
        self._pending = pending
        self._cache: dict[RowKey, Row | None] = {}
        """Decoded rows, least recently written first; None: deleted, not written yet."""
        self._fresh: set[RowKey] = set()
        """Rows added since they were last written, so absent from RocksDB or holding an older row there."""
        self._count = 0
        self._complete = False
        """Memory holds every row (a full scan kept them all, none dropped since): a miss needs no lookup."""
        self._absent: RowKey | None = None
        """The last key `get` found nowhere: the engine sets it next, and it is new."""
        self.reads = 0
        """Rows decoded from RocksDB (or pending writes) because they were not in memory, since `take_reads`."""

    # --- reads ------------------------------------------------------------
    def get(self, key: RowKey, default: Any = None) -> Any:
        """The row, from memory or else RocksDB; `default` if there is none."""
        cache = self._cache
        row = cache.get(key, _MISSING)
        if row is _MISSING:
            if self._complete:
                return default
            data = self._stored(row_key(key))
            if data is None:
                self._absent = key
                return default
            row = cache[key] = self._decode(data)
            self.reads += 1
        return default if row is None else row

    def __getitem__(self, key: RowKey) -> Row:
        row: Row | None = self.get(key)
        if row is None:
            raise KeyError(key)
        return row

    def __contains__(self, key: object) -> bool:
        return isinstance(key, tuple) and self.get(key) is not None

    def __len__(self) -> int:
        return self._count

    def restore_count(self, count: int) -> None:
        """Start from the row count a checkpoint saved, with no scan; a partition that fits in memory is read
        into it whole, so a new row needs no lookup."""
        self._count = count
        if count <= self.capacity:
            for _ in self._scan():
                pass

    def take_reads(self) -> int:
        """`reads`, counting afresh from now."""
        reads, self.reads = self.reads, 0
        return reads

    def _tombstones(self) -> int:
        return sum(1 for row in self._cache.values() if row is None)

    def cached(self) -> int:
        """Rows (and tombstones) decoded in memory now."""
        return len(self._cache)

    def _stored(self, key: bytes) -> bytes | None:
        for writes in self._pending():
            if key in writes:
                return writes[key]
        return self._table.get(key)

    def _decode(self, data: bytes) -> Row:
        row = self._codec.decode(data)
        if self._rules is not None:  # what the engine derived while it held the row (not serialised)
            row.known_established = self._rules.established(row)
        return row

    # --- writes -----------------------------------------------------------
    def __setitem__(self, key: RowKey, row: Row) -> None:
        cache = self._cache
        before = cache.get(key, _MISSING)
        if before is _MISSING:
            new = self._complete or key == self._absent or self._stored(row_key(key)) is None
        else:
            new = before is None
        if new:
            self._count += 1
        cache[key] = row
        self._fresh.add(key)
        self._absent = None

    def __delitem__(self, key: RowKey) -> None:
        if self.get(key) is None:
            raise KeyError(key)
        self._cache[key] = None
        self._fresh.discard(key)
        self._count -= 1

    def written(self, keys: Iterable[RowKey], keep: Collection[RowKey]) -> None:
        """A checkpoint wrote `keys`: they become the most recently written; evict beyond `capacity`."""
        cache, fresh = self._cache, self._fresh
        for key in keys:
            fresh.discard(key)
            if key in cache:
                cache[key] = cache.pop(key)
        excess = len(cache) - self.capacity
        if excess <= 0:
            return
        evicted = []
        for key in cache:
            if excess <= 0:
                break
            if key not in keep and key not in fresh:
                evicted.append(key)
                excess -= 1
        for key in evicted:
            del cache[key]
        self._complete = False

    # --- scans ------------------------------------------------------------
    def items(self) -> ItemsView[RowKey, Row]:
        """Every row (a full scan of RocksDB, which also recounts `len` and fills memory up to `capacity`)."""
        return _ScannedItems(self)

    def _scan(self) -> Iterator[tuple[RowKey, Row]]:
        count = 0
        for key, row in self._rows(ROW_KEY_PREFIX, warm=True):
            count += 1
            yield key, row
        self._count = count
        self._complete = count + self._tombstones() == len(self._cache)

    def __iter__(self) -> Iterator[RowKey]:
        for key, _ in self._rows(ROW_KEY_PREFIX, warm=False):
            yield key

    def owner_rows(self, owner: str) -> Iterator[tuple[str, Row]]:
        """The `(contact, row)` pairs of `owner`: a key-range read, not a scan."""
        for key, row in self._rows(owner_prefix(owner), warm=False):
            yield key[1], row

    def _rows(self, prefix: bytes, warm: bool) -> Iterator[tuple[RowKey, Row]]:
        """Rows whose key starts with `prefix`, in key order; `warm` keeps those decoded while memory has room."""
        cache = self._cache
        for encoded, data in self._entries(prefix):
            owner, contact = orjson.loads(encoded)
            key = (owner, contact)
            cached = cache.get(key, _MISSING)
            if cached is _MISSING:
                if data is None:
                    continue
                row = self._decode(data)
                if warm and len(cache) < self.capacity:
                    cache[key] = row
                yield key, row
            elif isinstance(cached, Row):
                yield key, cached

    def _entries(self, prefix: bytes) -> Iterator[tuple[bytes, bytes | None]]:
        """`(key, stored value)` of the row keys starting with `prefix`; None: memory has the row, added since."""
        fresh = [encoded for encoded in map(row_key, self._fresh) if encoded.startswith(prefix)]
        return stored_entries(self._table, self._pending, prefix, prefix, fresh)


def stored_entries(
    table: RowTable, pending: PendingWrites, prefix: bytes, start: bytes, fresh: Iterable[bytes] = ()
) -> Iterator[tuple[bytes, bytes | None]]:
    """`(key, stored value)` of the keys starting with `prefix`, from `start` on, in key order, each once.

    RocksDB's items, overridden by pending writes (value None: deleted),
    merged with the keys in `fresh` (value None), which only memory holds.
    """
    extra: dict[bytes, bytes | None] = dict.fromkeys(fresh)
    for writes in pending():
        extra.update((key, value) for key, value in writes.items() if key.startswith(prefix) and key >= start)
    waiting = sorted(extra)
    i = 0
    for key, value in table.items(from_key=start):
        if not key.startswith(prefix):
            break
        while i < len(waiting) and waiting[i] < key:
            yield waiting[i], extra[waiting[i]]
            i += 1
        if i < len(waiting) and waiting[i] == key:
            yield key, extra[key]  # a pending write overrides; a fresh row is in memory
            i += 1
        else:
            yield key, value
    for key in waiting[i:]:
        yield key, extra[key]


class _ScannedItems(ItemsView[RowKey, Row]):
    _mapping: StoredRows

    def __iter__(self) -> Iterator[tuple[RowKey, Row]]:
        return self._mapping._scan()


class PartitionDatabase:
    """A `RowTable` that looks its partition's database up in the store on every use, never holding it.

    Faust's RocksDB store drops its handle when a partition is revoked and
    opens the database again when the partition comes back. A handle held
    here past the revocation would keep RocksDB's lock, and that reopening
    would fail ("lock hold by current process"), crashing the worker.
    """

    def __init__(self, database_of: Callable[[int], RowTable], partition: int) -> None:
        self._database_of = database_of
        self._partition = partition

    def get(self, key: bytes) -> bytes | None:
        """The value of `key`, None if absent."""
        return self._database_of(self._partition).get(key)

    def items(self, backwards: bool = False, from_key: bytes | None = None) -> Iterable[tuple[bytes, bytes]]:
        """Items in key order, from `from_key` on."""
        return self._database_of(self._partition).items(backwards=backwards, from_key=from_key)


class MemoryTable:
    """A `RowTable` over a dict, sorted on every scan: for tests and Faust's in-memory store."""

    def __init__(self, data: dict[bytes, Any]) -> None:
        self._data = data

    def get(self, key: bytes) -> bytes | None:
        """The value of `key`, None if absent."""
        value: bytes | None = self._data.get(key)
        return value

    def items(self, backwards: bool = False, from_key: bytes | None = None) -> Iterator[tuple[bytes, bytes]]:
        """Items in key order from `from_key` on."""
        for key in sorted(self._data, reverse=backwards):
            if from_key is None or key >= from_key:
                value = self._data[key]
                if value is not None:
                    yield key, value
