"""StoredRows: rows in RocksDB behind a bounded cache read, write, scan and evict exactly like a dict of rows."""

from __future__ import annotations

import gc
import itertools
import random
from pathlib import Path

import orjson
import pytest
import rocksdict

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.engine import RelationshipEngine
from streams.engine.events import decode_event, row_updates
from streams.engine.row import Row
from streams.engine.row_codec import RowCodec, row_codec
from streams.engine.rules import Rules
from streams.service.row_store import (
    MemoryTable,
    PartitionDatabase,
    RowTable,
    StoredRows,
    cache_capacity,
    owner_prefix,
    row_key,
)
from streams.settings import Settings

RowKey = tuple[str, str]
USERS = ["ann", "bob", 'c"at', "dan", "é", "an"]  # "an" is a prefix of "ann": a range read must not mix them


class Checkpoints:
    """What the service does around a StoredRows: changed keys written at checkpoints, under either guarantee.

    exactly_once holds the writes (`pending`) until a later commit moves them to the table.
    """

    def __init__(
        self, rows: StoredRows, data: dict[bytes, bytes], held: list[dict[bytes, bytes | None]]
    ) -> None:
        self.rows, self.data, self.held = rows, data, held
        self.dirty: set[RowKey] = set()

    def changed(self, key: RowKey, _: object = None) -> None:
        self.dirty.add(key)

    def checkpoint(self, transactional: bool, replaying: bool = False) -> None:
        if replaying:  # nothing written: the changed rows stay pinned
            self.rows.written([], keep=self.dirty)
            return
        writes = {
            row_key(key): (None if (row := self.rows.get(key)) is None else row.to_bytes())
            for key in self.dirty
        }
        if transactional:
            if not self.held:
                self.held.append({})
            self.held[0].update(writes)
        else:
            self.apply(writes)
        written, self.dirty = list(self.dirty), set()
        self.rows.written(written, keep=self.dirty)

    def commit(self) -> None:
        for writes in self.held:
            self.apply(writes)
        self.held.clear()

    def apply(self, writes: dict[bytes, bytes | None]) -> None:
        for key, value in writes.items():
            if value is None:
                self.data.pop(key, None)
            else:
                self.data[key] = value


@pytest.mark.parametrize("transactional", [False, True])
@pytest.mark.parametrize("capacity", [0, 1, 4, 1_000])
@pytest.mark.parametrize("seed", range(12))
def test_stored_rows_behave_like_a_dict_through_checkpoints_evictions_and_commits(
    seed: int, capacity: int, transactional: bool
) -> None:
    rng = random.Random(seed)
    data: dict[bytes, bytes] = {}
    held: list[dict[bytes, bytes | None]] = []
    rows = StoredRows(MemoryTable(data), RowCodec(), None, capacity, lambda: held)
    around = Checkpoints(rows, data, held)
    model: dict[RowKey, Row] = {}
    keys = [(o, c) for o in USERS for c in USERS if o != c]
    for _ in range(400):
        key = rng.choice(keys)
        op = rng.random()
        if op < 0.35:  # what the engine does: get, then mutate in place or add
            row = rows.get(key)
            assert row == model.get(key)
            if row is None:
                row = Row.first(rng.randrange(10**6))
                rows[key] = row
                model[key] = Row.from_bytes(row.to_bytes())
            row.touches += 1
            row.last_at += rng.randrange(1, 1000)
            row.recent[f"e{rng.randrange(10**6)}"] = [row.last_at, 1]
            model[key] = Row.from_bytes(row.to_bytes())
            around.changed(key)
        elif op < 0.45:
            if key in model:
                del rows[key]
                del model[key]
                around.changed(key)
            else:
                with pytest.raises(KeyError):
                    del rows[key]
        elif op < 0.65:
            around.checkpoint(transactional, replaying=rng.random() < 0.1)
            assert rows.cached() <= capacity + len(around.dirty)
        elif op < 0.72:
            around.commit()
        elif op < 0.8:
            owner = rng.choice(USERS)
            assert dict(rows.owner_rows(owner)) == {c: r for (o, c), r in model.items() if o == owner}
        elif op < 0.85:
            assert dict(rows.items()) == model
        else:
            assert rows.get(key) == model.get(key)
            assert (key in rows) == (key in model)
        assert len(rows) == len(model)
    assert dict(rows.items()) == model
    assert sorted(rows) == sorted(model)


def test_rows_evicted_after_their_checkpoint_come_back_from_the_table_and_changed_ones_never_leave() -> None:
    data: dict[bytes, bytes] = {}
    rows = StoredRows(MemoryTable(data), RowCodec(), None, capacity=1)
    around = Checkpoints(rows, data, [])
    for contact in ("bob", "cat", "dan"):
        rows[("ann", contact)] = Row.first(1_000)
        around.changed(("ann", contact))
    around.checkpoint(transactional=False)
    assert rows.cached() == 1
    assert len(data) == 3
    assert rows.take_reads() == 0
    changed = rows[("ann", "bob")]
    changed.touches = 7
    around.changed(("ann", "bob"))
    around.checkpoint(transactional=False, replaying=True)  # not written: it must stay
    assert rows[("ann", "bob")] is changed
    assert rows[("ann", "cat")].touches == 0
    assert rows.take_reads() >= 1  # bob was read back, then cat


def test_a_deleted_row_is_never_read_back_from_its_older_stored_value() -> None:
    data: dict[bytes, bytes] = {}
    rows = StoredRows(MemoryTable(data), RowCodec(), None, capacity=0)
    around = Checkpoints(rows, data, [])
    rows[("ann", "bob")] = Row.first(1_000)
    around.changed(("ann", "bob"))
    around.checkpoint(transactional=False)
    del rows[("ann", "bob")]
    around.changed(("ann", "bob"))
    assert row_key(("ann", "bob")) in data  # not written yet
    assert rows.get(("ann", "bob")) is None
    assert list(rows) == []
    assert len(rows) == 0
    around.checkpoint(transactional=False)
    assert data == {}
    assert rows.get(("ann", "bob")) is None


def test_owner_rows_read_a_key_range_that_other_owners_sharing_a_prefix_stay_out_of() -> None:
    assert owner_prefix("an") == b'["an",'
    data = {
        row_key((o, c)): Row.first(i).to_bytes()
        for i, (o, c) in enumerate([("an", "x"), ("ann", "y"), ("anna", "z")])
    }
    data[b"__resume__"] = b"\x01"
    rows = StoredRows(MemoryTable(data), RowCodec(), None, capacity=0)
    assert [c for c, _ in rows.owner_rows("an")] == ["x"]
    assert [c for c, _ in rows.owner_rows("ann")] == ["y"]
    assert rows.cached() == 0, "a query's rows do not enter the cache"
    assert dict(rows.items()).keys() == {("an", "x"), ("ann", "y"), ("anna", "z")}, "other keys are not rows"


def test_stored_rows_read_and_range_read_a_real_rocksdb(tmp_path: Path) -> None:
    db = rocksdict.Rdict(str(tmp_path / "rows"), options=rocksdict.Options(raw_mode=True))
    try:
        for owner, contact in [("ann", "bob"), ("an", "x"), ("bob", "ann")]:
            db[row_key((owner, contact))] = Row.first(5).to_bytes()
        db[b"__resume__"] = b"r"
        table: RowTable = db
        rows = StoredRows(table, row_codec(True), None, capacity=0)
        assert len(dict(rows.items())) == 3 == len(rows)
        assert [c for c, _ in rows.owner_rows("ann")] == ["bob"]
        assert rows[("bob", "ann")].last_at == 5
        assert rows.get(("zed", "a")) is None
    finally:
        db.close()


class PartitionStore:
    """What Faust's RocksDB store does with partition databases: open on first use, drop on revocation."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.databases: dict[int, rocksdict.Rdict] = {}

    def database_of(self, partition: int) -> rocksdict.Rdict:
        if partition not in self.databases:
            path = str(self.root / f"rows-{partition}.db")
            self.databases[partition] = rocksdict.Rdict(path, options=rocksdict.Options(raw_mode=True))
        return self.databases[partition]

    def revoke(self, partition: int) -> None:
        self.databases.pop(partition)
        gc.collect()  # all Faust does: it never closes the database itself


@pytest.mark.parametrize("held", [False, True], ids=["looked_up", "held"])
def test_rows_of_a_revoked_partition_do_not_hold_its_database_so_it_reopens(
    tmp_path: Path, held: bool
) -> None:
    """A CI run's worker crashed on "lock hold by current process": its rows kept the database open."""
    store = PartitionStore(tmp_path)
    store.database_of(0)[row_key(("ann", "bob"))] = Row.first(5).to_bytes()
    table: RowTable = store.database_of(0) if held else PartitionDatabase(store.database_of, 0)
    rows = StoredRows(table, row_codec(True), None, capacity=0)
    engine = RelationshipEngine(Settings(), rows=rows)  # the partition's engine, alive past the revocation
    store.revoke(0)
    if held:
        with pytest.raises(Exception, match="lock"):
            store.database_of(0)
        return
    store.database_of(0)[row_key(("ann", "cid"))] = Row.first(7).to_bytes()  # the partition is back
    assert engine.rows[("ann", "bob")].last_at == 5
    assert [contact for contact, _ in rows.owner_rows("ann")] == ["bob", "cid"]
    store.revoke(0)


def test_the_cache_budget_is_the_workers_shared_by_its_owner_partitions() -> None:
    assert cache_capacity(512, 8) == 64_000
    assert cache_capacity(0, 8) == 0


def collegemsg_updates(count: int | None) -> list[object]:
    updates: list[object] = []
    for event in itertools.islice(collegemsg_events(COLLEGEMSG), count):
        interaction = decode_event(orjson.dumps(event), 10_000)
        if interaction.actor != interaction.target:
            updates.extend(row_updates(interaction))
    return updates


@pytest.mark.parametrize("capacity", [0, 50])
def test_an_engine_over_stored_rows_gives_the_alerts_and_counts_of_one_over_a_dict(capacity: int) -> None:
    settings = Settings(allowed_lateness_ms=0, clock="event")
    reference = RelationshipEngine(settings)
    data: dict[bytes, bytes] = {}
    rows = StoredRows(MemoryTable(data), RowCodec(), Rules(settings), capacity)
    around = Checkpoints(rows, data, [])
    engine = RelationshipEngine(settings, rows, on_row_changed=around.changed, on_row_removed=around.changed)
    expected: list[object] = []
    found: list[object] = []
    for i, update in enumerate(collegemsg_updates(None)):
        expected += reference.offer(update)  # type: ignore[arg-type]
        found += engine.offer(update)  # type: ignore[arg-type]
        if i % 97 == 0:
            watermark = update.ts - 1  # type: ignore[attr-defined]
            expected += reference.advance(watermark)
            found += engine.advance(watermark)
            around.checkpoint(transactional=False)
    expected += reference.finish()
    found += engine.finish()
    assert found == expected
    assert len(expected) > 100
    assert (engine.established_rows, engine.dormant_rows) == (
        reference.established_rows,
        reference.dormant_rows,
    )
    assert rows.take_reads() > 0 or capacity > len(rows)
    # a restart over the written table finds the same rows and counts
    around.checkpoint(transactional=False)
    restarted = RelationshipEngine(
        settings, StoredRows(MemoryTable(data), RowCodec(), Rules(settings), capacity)
    )
    assert (restarted.established_rows, restarted.dormant_rows, len(restarted.rows)) == (
        reference.established_rows,
        reference.dormant_rows,
        len(reference.rows),
    )
    assert dict(restarted.rows.items()) == reference.rows


class CountingTable(MemoryTable):
    """A table that counts point reads."""

    gets = 0

    def get(self, key: bytes) -> bytes | None:
        self.gets += 1
        return super().get(key)


def test_a_cache_holding_every_row_never_looks_up_a_new_row_until_it_drops_one() -> None:
    data = {row_key(("ann", "bob")): Row.first(1).to_bytes()}
    table = CountingTable(data)
    rows = StoredRows(table, RowCodec(), None, capacity=2)
    assert len(dict(rows.items())) == 1
    assert rows.get(("ann", "new")) is None
    rows[("ann", "new")] = Row.first(2)
    assert table.gets == 0, "every row is in memory: a miss is a new row"
    around = Checkpoints(rows, data, [])
    around.changed(("ann", "new"))
    rows[("ann", "other")] = Row.first(3)  # three rows: one is dropped at the checkpoint
    around.changed(("ann", "other"))
    around.checkpoint(transactional=False)
    assert rows.cached() == 2
    assert rows.get(("zed", "x")) is None
    assert table.gets == 1, "once a row was dropped, a miss must look"
    assert {key for key, _ in rows.items()} == {("ann", "bob"), ("ann", "new"), ("ann", "other")}
