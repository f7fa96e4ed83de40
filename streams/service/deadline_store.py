"""A partition's deadline index on disk: entries keyed by deadline in its RocksDB, the soonest in memory."""

from __future__ import annotations

import heapq
import struct
from collections.abc import Callable

import orjson

from streams.engine.timers import DeadlineIndex
from streams.service.row_store import PendingWrites, RowTable, row_key, stored_entries

__all__ = [
    "ENTRY_FORMAT_VERSION",
    "EXPIRY_PREFIX",
    "TIMER_PREFIX",
    "StoredDeadlines",
    "entry_key",
    "parse_entry_key",
]

RowKey = tuple[str, str]
LiveDeadline = Callable[[RowKey], "int | None"]
TableRecords = list[tuple[bytes, "bytes | None"]]

TIMER_PREFIX = b"\x01t"
"""Keys of the dormancy deadlines (`RelationshipEngine.timers`); rows start with `[`, markers with `_`."""
EXPIRY_PREFIX = b"\x01e"
"""Keys of the reclaim deadlines (`RelationshipEngine.expiries`, `row_ttl` only)."""
ENTRY_FORMAT_VERSION = b"\x01"
"""The value of every entry: the key says everything, the byte is the format's version."""
_DEADLINE = struct.Struct(">Q")
_BIAS = 2**63  # a signed deadline as an unsigned big-endian number sorts as the deadline
_NOT_READ = -(2**63)


def entry_key(prefix: bytes, deadline: int, key: RowKey) -> bytes:
    """`prefix`, the deadline (8 bytes, big-endian, biased: byte order is deadline order), the row's key.

    >>> parse_entry_key(TIMER_PREFIX, entry_key(TIMER_PREFIX, -5, ("ann", "bob")))
    (-5, ('ann', 'bob'))
    >>> entry_key(TIMER_PREFIX, 9, ("z", "z")) < entry_key(TIMER_PREFIX, 10, ("a", "a"))
    True
    """
    return prefix + _DEADLINE.pack(deadline + _BIAS) + row_key(key)


def parse_entry_key(prefix: bytes, encoded: bytes) -> tuple[int, RowKey]:
    """Inverse of `entry_key`."""
    start = len(prefix)
    deadline = _DEADLINE.unpack_from(encoded, start)[0] - _BIAS
    owner, contact = orjson.loads(encoded[start + _DEADLINE.size :])
    return deadline, (owner, contact)


class StoredDeadlines:
    """A `Deadlines` index whose every entry is in the partition's RocksDB, keyed by deadline.

    Memory holds the entries set since they were last written, the entries
    read back from the store, and none beyond `capacity` once written (the
    latest deadlines leave first). A range read from the last limit popped
    (`pop_due`) up to the new one brings the stored entries that became due
    into memory, as Flink's RocksDB timer service does; so a partition loads
    without reading any entry, and the index costs memory for its head only.

    The store is not told when a deadline moves or goes away (that would
    need the old entry's key, so a read): an entry read back counts only if
    it is still the row's deadline (`live_of`, derived from the row), and is
    deleted otherwise. Each checkpoint writes the entries set since the one
    before (`checkpoint_records`): before its rows, so any prefix of a
    checkpoint's records leaves an entry for every stored row's deadline; and
    the deletions of popped and stale entries after its rows, so an entry
    never leaves before the row that no longer needs it.

    >>> table = {}
    >>> from streams.service.row_store import MemoryTable
    >>> live = {("ann", "bob"): 70}
    >>> index = StoredDeadlines(MemoryTable(table), TIMER_PREFIX, capacity=0)
    >>> index.bind(live.get); index.set(("ann", "bob"), 70)
    >>> puts, deletions = index.checkpoint_records(); table.update(puts); index.written()
    >>> len(index), index.may_be_due(69), index.may_be_due(70)
    (0, False, True)
    >>> index.pop_due(70), [key for key, _ in index.checkpoint_records()[1]] == [puts[0][0]]
    ([(70, ('ann', 'bob'))], True)
    """

    def __init__(
        self, table: RowTable, prefix: bytes, capacity: int, pending: PendingWrites = lambda: []
    ) -> None:
        self._table = table
        self._prefix = prefix
        self.capacity = capacity
        """Entries kept in memory once written (more while more are set and not written yet)."""
        self._pending = pending
        self._live_of: LiveDeadline = lambda key: None
        self._memory = DeadlineIndex()
        self._read_to = _NOT_READ
        """Every stored entry at or below this deadline has been read into memory (or popped)."""
        self._stored_next: int | None = self._first_stored(prefix)
        """No stored entry not in memory is due before this deadline (None: none is stored)."""
        self._unwritten: set[RowKey] = set()
        self._dropped: list[bytes] = []
        self.reads = 0
        """Stored entries read back, since `take_reads`."""

    def bind(self, live_of: LiveDeadline) -> None:
        """The row's deadline now, derived from the row (`RelationshipEngine.deadline_of` or `expiry_of`)."""
        self._live_of = live_of

    # --- what the engine calls --------------------------------------------
    def __len__(self) -> int:
        return len(self._memory)

    def set(self, key: RowKey, deadline: int) -> None:
        """Schedule `key` at `deadline`, replacing any earlier schedule; written at the next checkpoint."""
        self._memory.set(key, deadline)
        self._unwritten.add(key)

    def discard(self, key: RowKey) -> None:
        """Unschedule `key`: its stored entry, if any, is found stale when read back."""
        self._memory.discard(key)

    def get(self, key: RowKey) -> int | None:
        """The live deadline of `key`, from memory or else derived from its row."""
        deadline = self._memory.get(key)
        return self._live_of(key) if deadline is None else deadline

    def may_be_due(self, limit: int) -> bool:
        """False means nothing is due at `limit`, in memory or in the store."""
        stored = self._stored_next
        return self._memory.may_be_due(limit) or (stored is not None and stored <= limit)

    def pop_due(self, limit: int) -> list[tuple[int, RowKey]]:
        """Every live entry `<= limit`, in `(deadline, owner, contact)` order; their stored entries are deleted
        at the next checkpoint."""
        stored = self._stored_next
        if stored is not None and stored <= limit:
            self._read_due(limit)
        due = self._memory.pop_due(limit)
        prefix = self._prefix
        self._dropped += [entry_key(prefix, deadline, key) for deadline, key in due]
        return due

    # --- what the checkpoint calls ----------------------------------------
    def checkpoint_records(self) -> tuple[TableRecords, TableRecords]:
        """The entries set since the last checkpoint (written before its rows), and the deletions (after them)."""
        prefix, memory = self._prefix, self._memory
        puts: TableRecords = []
        for key in self._unwritten:
            deadline = memory.get(key)
            if deadline is not None:
                puts.append((entry_key(prefix, deadline, key), ENTRY_FORMAT_VERSION))
                if self._stored_next is None or deadline < self._stored_next:
                    self._stored_next = deadline
                if deadline <= self._read_to:  # set late: if it moves before it is popped, a read deletes it
                    self._read_to = deadline - 1
        self._unwritten = set()
        put = {key for key, _ in puts}
        deletions: TableRecords = [(key, None) for key in dict.fromkeys(self._dropped) if key not in put]
        self._dropped = []
        return puts, deletions

    def written(self) -> None:
        """The last checkpoint's records are written: beyond `capacity`, forget the latest entries down to 3/4
        of it, none set since and none at or below the range read so far."""
        memory = self._memory
        if len(memory) <= self.capacity:
            return
        excess = len(memory) - self.capacity * 3 // 4  # down to 3/4: one scan of memory per many checkpoints
        unwritten, read_to = self._unwritten, self._read_to
        candidates = [
            (deadline, key)
            for key, deadline in memory.live().items()
            if deadline > read_to and key not in unwritten
        ]
        evicted = heapq.nlargest(excess, candidates)
        if not evicted:
            return
        memory.forget([key for _, key in evicted])
        earliest = evicted[-1][0]
        if self._stored_next is None or earliest < self._stored_next:
            self._stored_next = earliest

    def take_reads(self) -> int:
        """`reads`, counting afresh from now."""
        reads, self.reads = self.reads, 0
        return reads

    # --- reading the store ------------------------------------------------
    def _first_stored(self, start: bytes) -> int | None:
        for encoded, value in stored_entries(self._table, self._pending, self._prefix, start):
            if value is not None:
                return parse_entry_key(self._prefix, encoded)[0]
        return None

    def _read_due(self, limit: int) -> None:
        """Bring the stored entries in `(read_to, limit]` into memory, keeping those still live."""
        prefix, memory, live_of = self._prefix, self._memory, self._live_of
        start = prefix if self._read_to == _NOT_READ else prefix + _DEADLINE.pack(self._read_to + 1 + _BIAS)
        self._stored_next = None
        for encoded, value in stored_entries(self._table, self._pending, prefix, start):
            if value is None:
                continue
            deadline, key = parse_entry_key(prefix, encoded)
            if deadline > limit:
                self._stored_next = deadline
                break
            self.reads += 1
            live = memory.get(key)
            if live is None:
                live = live_of(key)
            if live == deadline:
                memory.set(key, deadline)
            else:
                self._dropped.append(encoded)
        self._read_to = max(self._read_to, limit)
