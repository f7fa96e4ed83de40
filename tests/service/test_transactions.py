"""CommittedWrites: exactly_once table writes reach local RocksDB only when their transaction commits."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from streams.service.transactions import CommittedWrites


def fake_table(partitions: int) -> tuple[SimpleNamespace, list[dict[bytes, bytes]]]:
    """A table whose store has one dict per partition database."""
    databases: list[dict[bytes, bytes]] = [{} for _ in range(partitions)]
    store = SimpleNamespace(_db_for_partition=lambda partition: databases[partition])
    return SimpleNamespace(data=store), databases


def test_a_commit_writes_the_last_value_of_each_key_and_only_its_own_transactions() -> None:
    table, databases = fake_table(2)
    writes = CommittedWrites(table)
    for checkpoint in range(1_000):  # one row checkpointed over and over before the commit
        writes.add("app-0-0", 0, b'["ann","bob"]', f"v{checkpoint}".encode())
    writes.add("app-0-0", 0, b"__resume__", b"r")
    writes.add("app-0-1", 1, b'["cat","dan"]', b"other")
    assert len(writes.pending["app-0-0"][0]) == 2, "held writes must not grow with checkpoints"
    assert writes.writes_of(0) == [{b'["ann","bob"]': b"v999", b"__resume__": b"r"}]
    assert writes.writes_of(1) == [{b'["cat","dan"]': b"other"}]
    assert databases == [{}, {}], "nothing reaches the local store before its transaction commits"

    writes.committed("app-0-0")
    assert databases == [{b'["ann","bob"]': b"v999", b"__resume__": b"r"}, {}]
    assert list(writes.pending) == ["app-0-1"]


def test_writes_of_aborted_transactions_never_reach_the_store() -> None:
    table, databases = fake_table(1)
    writes = CommittedWrites(table)
    writes.add("app-0-0", 0, b'["ann","bob"]', b"v1")
    writes.discard_all()  # revocation: open transactions aborted
    writes.committed("app-0-0")
    assert databases == [{}]


def test_a_tombstone_deletes_the_key_once_its_transaction_commits() -> None:
    table, databases = fake_table(1)
    databases[0][b'["ann","bob"]'] = b"v0"
    writes = CommittedWrites(table)
    writes.add("app-0-0", 0, b'["ann","bob"]', None)
    assert databases == [{b'["ann","bob"]': b"v0"}]
    writes.committed("app-0-0")
    assert databases == [{}]


def test_rows_of_a_checkpoint_revoked_while_sending_never_reach_the_store_at_a_later_commit() -> None:
    """exactly_once: a revocation during the sends discards the checkpoint's held writes with its transaction."""
    from streams.service.delivery import ExactlyOnce, _TransactionalCheckpoint  # noqa: PLC0415

    table, databases = fake_table(1)
    writes = CommittedWrites(table)

    class RevokedWhileSending:
        async def send_batches(
            self, tid: str, topic: str, partition: int, records: Any, stopped: Any
        ) -> list[Any]:
            writes.discard_all()  # what `ExactlyOnce.drop_all` does on revocation
            return []

    delivery: Any = object.__new__(ExactlyOnce)
    delivery.committed_writes = writes
    delivery.app = SimpleNamespace(producer=SimpleNamespace())
    delivery.transactions = RevokedWhileSending()
    delivery.topology = SimpleNamespace(rows=table)
    table.changelog_topic = SimpleNamespace(get_topic_name=lambda: "app-rows-changelog")
    records: list[tuple[bytes, bytes | None]] = [(b'["ann","bob"]', b"stale"), (b"__resume__", b"r")]
    asyncio.run(_TransactionalCheckpoint(delivery, 0, "app-0-0").write_rows(records, lambda: False))
    writes.committed("app-0-0")  # the partition came back: the same transactional id commits later work
    assert databases == [{}]
