"""Opening an owner partition from its local RocksDB: from the checkpoint's counts, against the scan of every row.

The mention profile's rows are built into one partition database by the
service's own partition code (`OwnerPartition`, checkpoints written as the
service writes them). Then the database is opened in rounds, alternating: as a
restart opens it now (the last checkpoint whole: its counts, deadlines read as
they come due), and with the scan every restart did before (forced by removing
the `__begun__` marker, which is what a checkpoint cut short leaves). No
broker: this is the part of a restart that grows with the rows; the worker's
start and Faust's recovery come on top (`make bench-recovery`).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import orjson
import rocksdict

from bench.results import Recorder
from bench.workloads import distinct_rows, mentions
from streams.engine.events import decode_event, row_updates
from streams.engine.row_codec import row_codec
from streams.service.delivery import write_batch
from streams.service.owner_partition import OwnerPartition
from streams.service.partition_store import BEGUN_KEY, checkpoint_records, open_partition
from streams.service.records import OwnerRecord
from streams.service.row_store import cache_capacity
from streams.settings import Settings

SOURCE = "interactions:0"
PER_RECORD = 200
"""Row updates per owner-stream record."""
CHECKPOINT_EVERY = 50
"""Records between checkpoints (the service checkpoints by time and changed rows)."""


def owner_records(lines: list[bytes]) -> list[OwnerRecord]:
    """Every update of `lines` for one owner partition, in records of PER_RECORD, each with its marker."""
    updates: list[list[Any]] = []
    for offset, line in enumerate(lines):
        interaction = decode_event(line)
        if interaction.actor != interaction.target:
            for ts, event_id, owner, contact, direction, kind, _, _ in row_updates(interaction):
                updates.append([ts, event_id, owner, contact, direction, kind, 0, offset])
    records = []
    max_ts = 0
    for i in range(0, len(updates), PER_RECORD):
        chunk = updates[i : i + PER_RECORD]
        max_ts = max(max_ts, *(u[0] for u in chunk))
        records.append(OwnerRecord([SOURCE], chunk, {SOURCE: (max_ts, False)}))
    return records


def opened(
    path: Path, settings: Settings, capacity: int
) -> tuple[OwnerPartition[Any], bool, rocksdict.Rdict]:
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    part, counted = open_partition(0, settings, db, row_codec(True), [SOURCE], capacity, list)
    return part, counted, db


def build(path: Path, lines: list[bytes], settings: Settings, capacity: int) -> float:
    """The partition database of `lines`, checkpointed as the service does; seconds it took."""
    started = time.perf_counter()
    part, _, db = opened(path, settings, capacity)
    codec = row_codec(True)

    def checkpoint() -> None:
        done = part.checkpoint()
        write_batch(db, checkpoint_records(done, codec))
        part.written(done)

    for offset, record in enumerate(owner_records(lines)):
        part.handle(record, None, offset=offset, now_ms=0, record_ms=0)
        if offset % CHECKPOINT_EVERY == CHECKPOINT_EVERY - 1:
            checkpoint()
    checkpoint()
    db.close()
    return time.perf_counter() - started


def open_once(path: Path, settings: Settings, capacity: int, scan: bool) -> dict[str, Any]:
    """Open the partition (forcing the scan if asked); seconds, rows, deadlines held in memory."""
    db = rocksdict.Rdict(str(path), options=rocksdict.Options(raw_mode=True))
    begun = db[BEGUN_KEY]
    if scan:
        del db[BEGUN_KEY]
    db.close()
    started = time.perf_counter()
    part, counted, db = opened(path, settings, capacity)
    seconds = time.perf_counter() - started
    assert counted != scan
    figures = {
        "seconds": seconds,
        "rows": len(part.engine.rows),
        "established": part.engine.established_rows,
        "deadlines_in_memory": len(part.engine.timers),
    }
    del part
    db[BEGUN_KEY] = begun
    db.close()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mention-events", type=int, default=563_069, help="events of the mention profile")
    parser.add_argument("--rounds", type=int, default=3, help="pairs of opens (counts, scan)")
    parser.add_argument("--cache-mb", type=int, default=512, help="STREAMS_ROW_CACHE_MB of the worker")
    parser.add_argument("--partitions", type=int, default=6, help="owner partitions sharing the cache")
    args = parser.parse_args()
    recorder = Recorder("partition_open")
    settings = Settings()
    capacity = cache_capacity(args.cache_mb, args.partitions)
    lines = mentions(args.mention_events)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows-0.db"
        built_s = build(path, lines, settings, capacity)
        sys.stdout.write(f"built {distinct_rows(lines):,} rows of {len(lines):,} events in {built_s:.1f} s\n")
        runs: dict[str, list[dict[str, Any]]] = {"counts": [], "scan": []}
        for number in range(args.rounds):
            for scan in (False, True) if number % 2 == 0 else (True, False):
                figures = open_once(path, settings, capacity, scan)
                runs["scan" if scan else "counts"].append(figures)
                sys.stdout.write(
                    f"round {number + 1}, {'scan' if scan else 'counts'}: {figures['seconds']:.3f} s, "
                    f"{figures['rows']:,} rows, {figures['deadlines_in_memory']:,} deadlines in memory\n"
                )
                sys.stdout.flush()
    medians = {name: statistics.median(run["seconds"] for run in found) for name, found in runs.items()}
    first = runs["counts"][0]
    figures = {
        "events": len(lines),
        "rows": first["rows"],
        "established": first["established"],
        "row_cache_capacity": capacity,
        "build_s": round(built_s, 1),
        "open_counts_s": round(medians["counts"], 4),
        "open_scan_s": round(medians["scan"], 3),
        "deadlines_in_memory_counts": first["deadlines_in_memory"],
        "deadlines_in_memory_scan": runs["scan"][0]["deadlines_in_memory"],
        "ratio_counts_to_scan": round(medians["counts"] / medians["scan"], 5),
    }
    sys.stdout.write(orjson.dumps(figures, option=orjson.OPT_INDENT_2).decode() + "\n")
    recorder.save(figures)
    return 0


if __name__ == "__main__":
    sys.exit(main())
