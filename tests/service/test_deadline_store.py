"""StoredDeadlines pop what an index in memory pops; a partition over it restarts without a scan and loses nothing."""

from __future__ import annotations

import itertools
import random
from collections.abc import Iterator, MutableMapping
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
import rocksdict

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.engine import RelationshipEngine
from streams.engine.events import RowUpdate, decode_event, row_updates
from streams.engine.row_codec import row_codec
from streams.engine.timers import DeadlineIndex
from streams.service.deadline_store import (
    ENTRY_FORMAT_VERSION,
    EXPIRY_PREFIX,
    TIMER_PREFIX,
    StoredDeadlines,
    entry_key,
    parse_entry_key,
)
from streams.service.owner_partition import OwnerPartition
from streams.service.partition_store import checkpoint_records, open_partition
from streams.service.records import OwnerRecord
from streams.service.row_store import MemoryTable, StoredRows
from streams.settings import Settings

RowKey = tuple[str, str]
Records = list[tuple[bytes, bytes | None]]
USERS = ["ann", "bob", 'c"at', "an", "é"]
SOURCE = "in:0"
DAY = 86_400_000


def apply(data: MutableMapping[bytes, bytes], records: Records) -> None:
    for key, value in records:
        if value is None:
            if key in data:
                del data[key]
        else:
            data[key] = value


def stored_entries(data: dict[bytes, bytes], prefix: bytes) -> list[tuple[int, RowKey]]:
    return sorted(parse_entry_key(prefix, key) for key in data if key.startswith(prefix))


def test_entry_keys_sort_by_deadline_then_round_trip() -> None:
    deadlines = [-(2**63), -1, 0, 1, 255, 256, 2**62, 2**63 - 1]
    keys = [entry_key(TIMER_PREFIX, d, ("z", "a")) for d in deadlines]
    assert keys == sorted(keys)
    assert [parse_entry_key(TIMER_PREFIX, key) for key in keys] == [(d, ("z", "a")) for d in deadlines]
    assert ENTRY_FORMAT_VERSION == b"\x01"
    assert not TIMER_PREFIX.startswith((b"[", b"_"))
    assert not EXPIRY_PREFIX.startswith((b"[", b"_"))


@pytest.mark.parametrize("transactional", [False, True])
@pytest.mark.parametrize("capacity", [0, 1, 5, 1_000])
@pytest.mark.parametrize("seed", range(10))
def test_stored_deadlines_pop_what_an_index_in_memory_pops(
    seed: int, capacity: int, transactional: bool
) -> None:
    """Sets (some at or below what was popped: late events), discards, pops, checkpoints, commits and
    restarts from the table; `live_of` is what the engine derives from a row: the model's live deadline."""
    rng = random.Random(seed)
    data: dict[bytes, bytes] = {}
    held: list[dict[bytes, bytes | None]] = []
    model = DeadlineIndex()

    def opened() -> StoredDeadlines:
        index = StoredDeadlines(MemoryTable(data), TIMER_PREFIX, capacity, lambda: held)
        index.bind(model.get)
        return index

    def checkpoint() -> None:
        puts, deletions = index.checkpoint_records()
        records = puts + deletions  # the service writes the rows between them
        if transactional:  # one open transaction per partition: its writes, the latest of each key
            if not held:
                held.append({})
            held[0].update(records)
        else:
            apply(data, records)
        index.written()
        assert len(index) <= max(capacity, 0) + sum(1 for d in model.live().values() if d <= limit)

    def commit() -> None:
        for writes in held:
            apply(data, list(writes.items()))
        held.clear()

    index = opened()
    keys = [(o, c) for o in USERS for c in USERS if o != c]
    limit = 0
    restarts = 0
    for _ in range(700):
        key = rng.choice(keys)
        op = rng.random()
        if op < 0.4:
            deadline = limit + rng.randrange(-5, 300)
            model.set(key, deadline)
            index.set(key, deadline)
        elif op < 0.5:
            model.discard(key)
            index.discard(key)
        elif op < 0.68:
            limit += rng.randrange(0, 40)
            if any(d <= limit for d in model.live().values()):
                assert index.may_be_due(limit)
            if index.may_be_due(limit) or model.may_be_due(limit):
                assert index.pop_due(limit) == model.pop_due(limit)
        elif op < 0.84:
            checkpoint()
        elif op < 0.9:
            commit()
        elif op < 0.93:  # a restart after a checkpoint: memory is gone, the table holds the rest
            checkpoint()
            commit()
            index = opened()
            restarts += 1
        else:
            assert index.get(key) == model.get(key)
    end = limit + 10_000
    assert index.pop_due(end) == model.pop_due(end)
    checkpoint()
    commit()
    assert stored_entries(data, TIMER_PREFIX) == [], "every popped or stale entry is deleted"
    assert restarts > 0


# --- an owner partition over stored rows and deadlines ------------------------------------------


@cache
def collegemsg_records(events: int, per_record: int) -> tuple[OwnerRecord, ...]:
    updates: list[list[Any]] = []
    for n, event in enumerate(itertools.islice(collegemsg_events(COLLEGEMSG), events)):
        interaction = decode_event(orjson.dumps(event), 10_000)
        if interaction.actor != interaction.target:
            for update in row_updates(interaction):
                ts, event_id, owner, contact, direction, kind, _, _ = update
                updates.append([ts, event_id, owner, contact, direction, kind, 0, n])
    records = []
    max_ts = 0
    for i in range(0, len(updates), per_record):
        chunk = updates[i : i + per_record]
        max_ts = max(max_ts, *(u[0] for u in chunk))
        records.append(OwnerRecord([SOURCE], chunk, {SOURCE: (max_ts, False)}))
    records.append(OwnerRecord([], [], {SOURCE: (max_ts, True)}))
    return tuple(records)


SETTINGS = {
    "v1": Settings(allowed_lateness_ms=0, clock="event"),
    "row_ttl": Settings(allowed_lateness_ms=DAY, clock="event", row_ttl_ms=30 * DAY),
}
CHECKPOINT_EVERY = 7
RESTART_EVERY = 90


def unique(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alerts by id, first copy kept: a restart after a checkpoint cut short emits some again, as the service does."""
    found: dict[str, dict[str, Any]] = {}
    for alert in alerts:
        found.setdefault(alert["alert_id"], alert)
    return found


@cache
def never_stopped(name: str) -> tuple[list[dict[str, Any]], dict[RowKey, Any], tuple[int, int, int]]:
    part: OwnerPartition[str] = OwnerPartition(0, SETTINGS[name], {}, [SOURCE])
    alerts: list[dict[str, Any]] = []
    for offset, record in enumerate(collegemsg_records(60_000, 40)):
        alerts += part.handle(record, f"r{offset}", offset=offset, now_ms=0, record_ms=0)
        if offset % CHECKPOINT_EVERY == 0:
            part.checkpoint()
    rows = {key: row.to_bytes() for key, row in part.engine.rows.items()}
    return alerts, rows, tuple(part.engine.counts())


@pytest.fixture
def database(tmp_path: Path) -> Iterator[rocksdict.Rdict]:
    """A partition's RocksDB, as Faust's store opens it (raw bytes)."""
    db = rocksdict.Rdict(str(tmp_path / "rows-0.db"), options=rocksdict.Options(raw_mode=True))
    yield db
    db.close()


@pytest.mark.parametrize("crash", ["clean", "cut_short"])
@pytest.mark.parametrize("transactional", [False, True])
@pytest.mark.parametrize("capacity", [0, 30])
@pytest.mark.parametrize("name", sorted(SETTINGS))
def test_a_partition_over_stored_deadlines_restarts_without_a_scan_and_alerts_as_if_never_stopped(
    name: str, capacity: int, transactional: bool, crash: str, database: rocksdict.Rdict
) -> None:
    """Restarted every RESTART_EVERY records: `clean` after a checkpoint is written whole (the saved counts
    spare the scan), `cut_short` with only a prefix of its records written (exactly_once: none), so the rows
    may be ahead of the resume record, and the engine scans them."""
    settings = SETTINGS[name]
    codec = row_codec(False)
    records = collegemsg_records(60_000, 40)
    rng = random.Random(f"{name}{capacity}{transactional}{crash}")
    data = database
    held: list[dict[bytes, bytes | None]] = []

    def opened() -> tuple[OwnerPartition[Any], bool]:
        return open_partition(0, settings, data, codec, [SOURCE], capacity, lambda: held)

    def checkpoint(part: OwnerPartition[Any], written: int | None = None) -> None:
        done = part.checkpoint()
        out = checkpoint_records(done, codec)
        if written is not None:
            out = out[:written]
        if transactional:  # one open transaction per partition: its writes, the latest of each key
            if not held:
                held.append({})
            held[0].update(out)
        else:
            apply(data, out)
        assert isinstance(part.engine.rows, StoredRows)
        part.written(done)

    part, counted = opened()
    assert not counted
    alerts: list[dict[str, Any]] = []
    offset = 0
    restart_at = RESTART_EVERY
    scans = counted_loads = reads = 0
    while offset < len(records):
        alerts += part.handle(records[offset], f"r{offset}", offset=offset, now_ms=0, record_ms=0)
        if offset % CHECKPOINT_EVERY == 0:
            checkpoint(part)
            if not transactional or rng.random() < 0.7:
                for writes in held:
                    apply(data, list(writes.items()))
                held.clear()
        offset += 1
        if offset == restart_at:
            restart_at += RESTART_EVERY
            if crash == "clean":
                checkpoint(part)
            else:
                checkpoint(part, written=rng.randrange(1, 40))
                if transactional:
                    held.clear()  # the transaction aborts: every checkpoint since its last commit
            for writes in held:
                apply(data, list(writes.items()))
            held.clear()
            reads += sum(index.take_reads() for index in part.deadlines or ())
            part, counted = opened()
            counted_loads += counted
            scans += not counted
            assert part.next_offset is not None
            offset = part.next_offset
    reads += sum(index.take_reads() for index in part.deadlines or ())

    expected, rows, counts = never_stopped(name)
    assert unique(alerts) == unique(expected)
    assert list(unique(alerts)) == list(unique(expected))
    if crash == "clean":
        assert alerts == expected
        assert scans == 0
        assert counted_loads > 10
    elif transactional:  # nothing of an aborted transaction is written: the table holds whole checkpoints
        assert scans == 0
        assert counted_loads > 10
    else:
        assert scans > 0
    assert {key: row.to_bytes() for key, row in part.engine.rows.items()} == rows
    assert tuple(part.engine.counts()) == counts
    assert len(expected) > 200
    if capacity == 0:
        assert reads > 100, "deadlines came back from the table"


def test_the_engine_derives_every_deadline_it_holds_from_the_row() -> None:
    """What StoredDeadlines relies on: `deadline_of` and `expiry_of` are the live entries, at every step."""
    engine = RelationshipEngine(SETTINGS["row_ttl"])
    checked = 0
    for offset, record in enumerate(collegemsg_records(60_000, 40)):
        for fields in record.updates:
            engine.offer(RowUpdate(*fields[:6], 0, fields[7]))
        if record.markers:
            engine.advance(next(iter(record.markers.values()))[0] - DAY)
        if offset % 100 == 0:
            for key in engine.rows:
                assert engine.timers.get(key) == engine.deadline_of(key)
                assert engine.expiries.get(key) == engine.expiry_of(key)
                checked += 1
    assert checked > 10_000
    assert engine.stats.rows_reclaimed > 0
    assert engine.stats.dormant > 0
