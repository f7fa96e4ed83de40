"""The worker's owner partition databases share one RocksDB cache, memtables charged to it, and report their memory."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from streams.service.app import create_app
from streams.service.faust_internals import open_databases
from streams.service.rocksdb_memory import MEMTABLE_SHARE, memory_use
from streams.service.topology import MB, Topology, declare_topology
from streams.settings import Settings

PARTITIONS = 3
KEYS = 60_000
"""Per database: about 5 MB of memtable each, 15 MB in all, under one 16 MB write buffer each."""
FLUSH_WAIT_S = 20.0
"""How long the background flushes the write buffer manager asked for may take on a loaded machine."""


def _topology(tmp_path: Path, memory_mb: int) -> Topology:
    settings = Settings(data_dir=str(tmp_path), rocksdb_memory_mb=memory_mb, rocksdb_write_buffer_mb=16)
    return declare_topology(create_app(settings), settings)


def _write(databases: list[Any]) -> None:
    for db in databases:
        for key in range(KEYS):
            db[f"row{key:08d}".encode()] = os.urandom(40)


@pytest.fixture
def databases() -> Iterator[list[Any]]:
    opened: list[Any] = []
    yield opened
    for db in opened:
        db.close()


def test_the_partition_databases_are_opened_with_the_sizes_of_the_settings(tmp_path: Path) -> None:
    topology = _topology(tmp_path, memory_mb=8)
    sizes = topology.rows.data.rocksdb_options
    assert sizes.write_buffer_size == 16 * MB
    assert topology.rocksdb_memory is not None
    assert topology.rocksdb_memory.write_buffers.get_buffer_size() == int(8 * MB * MEMTABLE_SHARE)
    assert _topology(tmp_path / "faust", memory_mb=0).rocksdb_memory is None


def test_the_memtables_of_every_database_are_bounded_together(tmp_path: Path, databases: list[Any]) -> None:
    topology = _topology(tmp_path, memory_mb=8)
    store = topology.rows.data
    databases += [store._db_for_partition(p) for p in range(PARTITIONS)]
    _write(databases)
    bound = 8 * MB * MEMTABLE_SHARE + 2 * MB
    deadline = time.monotonic() + FLUSH_WAIT_S
    used = memory_use(open_databases(store), topology.rocksdb_memory)
    while used.memtables > bound and time.monotonic() < deadline:  # the flushes run on RocksDB's threads
        time.sleep(0.1)
        used = memory_use(open_databases(store), topology.rocksdb_memory)
    assert topology.rocksdb_memory is not None
    assert used.memtables <= bound, f"flushed once past half the shared memory: {used}"
    assert used.block_cache >= used.memtables, f"charged to the one cache: {used}"


def test_without_shared_memory_each_database_keeps_its_own_memtables(
    tmp_path: Path, databases: list[Any]
) -> None:
    topology = _topology(tmp_path, memory_mb=0)
    store = topology.rows.data
    databases += [store._db_for_partition(p) for p in range(PARTITIONS)]
    _write(databases)
    used = memory_use(open_databases(store), None)
    assert used.memtables > 12 * MB, "no database reached its own 16 MB write buffer"


def test_index_and_filter_blocks_are_in_the_shared_cache_not_beside_it(
    tmp_path: Path, databases: list[Any]
) -> None:
    readers: dict[int, int] = {}
    for memory_mb in (64, 0):  # 64 MB: no flush before the explicit one, the same files either way
        topology = _topology(tmp_path / str(memory_mb), memory_mb)
        store = topology.rows.data
        opened = [store._db_for_partition(p) for p in range(PARTITIONS)]
        databases += opened
        for db in opened:
            _write([db])
            db.flush()
            for key in range(0, KEYS, 11):
                assert db.get(f"row{key:08d}".encode()) is not None
                assert db.get(f"absent{key:08d}".encode()) is None
        used = memory_use(open_databases(store), topology.rocksdb_memory)
        assert used.block_cache > 0, "blocks read are cached"
        readers[memory_mb] = used.table_readers
    assert readers[64] * 5 < readers[0], (
        "with the shared cache, index and filter blocks are cached, not beside it"
    )


def test_a_database_written_with_either_options_reads_back_with_the_other(tmp_path: Path) -> None:
    written: dict[bytes, bytes] = {}
    for memory_mb in (0, 8, 0):  # Faust's options, the shared ones (an upgrade), Faust's again (a rollback)
        store = _topology(tmp_path, memory_mb).rows.data
        db = store._db_for_partition(0)
        try:
            assert {key: db.get(key) for key in written} == written
            for key in range(len(written), len(written) + 20_000):
                written[f"row{key:08d}".encode()] = os.urandom(40)
                db[f"row{key:08d}".encode()] = written[f"row{key:08d}".encode()]
            db.flush()
        finally:
            db.close()
