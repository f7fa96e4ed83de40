"""RocksDB memory of a worker's owner partition databases: one cache for all of them, memtables charged to it."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import rocksdict

__all__ = ["BLOOM_BITS_PER_KEY", "MEMTABLE_SHARE", "RocksDBMemory", "RocksDBMemoryUse", "memory_use"]

MEMTABLE_SHARE = 0.5
"""Of `STREAMS_ROCKSDB_MEMORY_MB`, what the memtables may hold before the largest one is flushed."""
BLOOM_BITS_PER_KEY = 10
"""About 1 % false positives: most updates look up a row that does not exist yet."""


@dataclass(frozen=True, slots=True)
class RocksDBMemoryUse:
    """What the open partition databases of one worker hold in memory, in bytes."""

    block_cache: int
    """The block cache: data blocks, index and filter blocks, and (shared) the memtables charged to it."""
    memtables: int
    """Memtables of every open database, flushed or not yet."""
    table_readers: int
    """Index and filter blocks held outside the block cache (none when they are cached: shared memory)."""


class RocksDBMemory:
    """One LRU cache shared by every owner partition database of a worker, memtables charged to it.

    The layout of Kafka Streams' `BoundedMemoryRocksDBConfig`: the cache holds
    data blocks and the index and filter blocks (partitioned, with their top
    level pinned), and a write buffer manager charges the memtables of all the
    databases to the same cache, flushing once they pass `MEMTABLE_SHARE` of
    it. So the worker's RocksDB memory is one number however many partitions
    it serves, where each database opened with Faust's options has a cache and
    memtables of its own, and index and filter blocks that grow with its rows.
    """

    def __init__(self, total_bytes: int) -> None:
        self.cache = rocksdict.Cache(total_bytes)
        self.write_buffers = rocksdict.WriteBufferManager.new_write_buffer_manager_with_cache(
            int(total_bytes * MEMTABLE_SHARE), False, self.cache
        )

    def options(self, sizes: Any) -> rocksdict.Options:
        """Options of one database: `sizes` (Faust's `RocksDBOptions`) for its files and memtables, memory shared."""
        options = rocksdict.Options(raw_mode=True)
        options.create_if_missing(True)
        options.set_max_open_files(sizes.max_open_files)
        options.set_write_buffer_size(sizes.write_buffer_size)
        options.set_max_write_buffer_number(sizes.max_write_buffer_number)
        options.set_target_file_size_base(sizes.target_file_size_base)
        options.set_write_buffer_manager(self.write_buffers)
        table = rocksdict.BlockBasedOptions()
        table.set_bloom_filter(BLOOM_BITS_PER_KEY, False)
        table.set_block_cache(self.cache)
        table.set_cache_index_and_filter_blocks(True)
        table.set_pin_top_level_index_and_filter(True)
        table.set_index_type(rocksdict.BlockBasedIndexType.two_level_index_search())
        table.set_partition_filters(True)
        options.set_block_based_table_factory(table)
        return options


def _property(db: Any, name: str) -> int:
    value: int | None = db.property_int_value(name)
    return value or 0


def memory_use(databases: Iterable[Any], shared: RocksDBMemory | None) -> RocksDBMemoryUse:
    """RocksDB's own account of the memory of `databases` (open rocksdict `Rdict`s) and the `shared` cache."""
    databases = list(databases)
    if shared is not None:
        block_cache = shared.cache.get_usage()
    else:  # each database reports its own cache
        block_cache = sum(_property(db, "rocksdb.block-cache-usage") for db in databases)
    return RocksDBMemoryUse(
        block_cache=block_cache,
        memtables=sum(_property(db, "rocksdb.cur-size-all-mem-tables") for db in databases),
        table_readers=sum(_property(db, "rocksdb.estimate-table-readers-mem") for db in databases),
    )
