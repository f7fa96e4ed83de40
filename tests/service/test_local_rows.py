"""Checkpoint rows reach the partition's RocksDB database in one write batch, deletions included."""

from __future__ import annotations

from pathlib import Path
from types import SimpleNamespace

import rocksdict

from streams.service.delivery import write_local_rows


def test_puts_and_deletions_land_in_the_partitions_database_only(tmp_path: Path) -> None:
    databases = [
        rocksdict.Rdict(str(tmp_path / f"p{n}"), options=rocksdict.Options(raw_mode=True)) for n in range(2)
    ]
    try:
        store = SimpleNamespace(_db_for_partition=lambda partition: databases[partition])
        databases[1][b'["ann","old"]'] = b"stale"
        write_local_rows(
            store, 1, [(b'["ann","bob"]', b"\x01row"), (b'["ann","old"]', None), (b"__resume__", b"r")]
        )
        assert dict(databases[1].items()) == {b'["ann","bob"]': b"\x01row", b"__resume__": b"r"}
        assert dict(databases[0].items()) == {}
    finally:
        for database in databases:
            database.close()


def test_a_store_without_partition_databases_gets_each_key() -> None:
    store: dict[bytes, bytes] = {b"gone": b"x"}
    write_local_rows(store, 0, [(b"k", b"v"), (b"gone", None), (b"missing", None)])
    assert store == {b"k": b"v"}
