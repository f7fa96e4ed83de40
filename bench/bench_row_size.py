"""Bytes per relationship row on realistic rows: serialised (table value), in RocksDB on disk, and in memory."""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions

from bench.results import Recorder
from bench.workloads import collegemsg, mentions, one_event_pairs
from streams.engine.engine import RelationshipEngine
from streams.engine.events import IN, OUT, RowUpdate, decode_event
from streams.replay import REPLAY_DEFAULTS
from streams.service.relationships import row_key
from streams.settings import Settings


def load_rows(lines: list[bytes]) -> RelationshipEngine:
    """Apply every event to an engine (both directions, as the service does) and keep its rows."""
    engine = RelationshipEngine(Settings(**REPLAY_DEFAULTS))
    for number, line in enumerate(lines, start=1):
        e = decode_event(line)
        engine.offer(RowUpdate(e.ts, e.id, e.actor, e.target, OUT, e.type, 0, number))
        engine.offer(RowUpdate(e.ts, e.id, e.target, e.actor, IN, e.type, 0, number))
        engine.advance(e.ts)
    engine.finish()
    return engine


def rocksdb_bytes(items: list[tuple[bytes, bytes]]) -> int:
    """Bytes on disk of a RocksDB opened with Faust's options holding `items`, flushed and compacted."""
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.db"
        db: Any = RocksDBOptions().open(path)
        for key, value in items:
            db[key] = value
        db.flush()
        db.compact_range(None, None)
        db.close()
        size = sum(f.stat().st_size for f in path.rglob("*") if f.is_file())
        shutil.rmtree(path)
    return size


def measure(name: str, lines: list[bytes]) -> dict[str, Any]:
    """Row sizes of the rows `lines` make."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = load_rows(lines)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    items = [(row_key(key), row.to_bytes()) for key, row in engine.rows.items()]
    values = sorted(len(value) for _, value in items)
    rows = len(items)
    return {
        "workload": name,
        "events": len(lines),
        "rows": rows,
        "serialised_median": round(statistics.median(values)),
        "serialised_mean": round(statistics.mean(values)),
        "serialised_p99": values[int(rows * 0.99)],
        "key_median": round(statistics.median(len(key) for key, _ in items)),
        "rocksdb_bytes_per_row": round(rocksdb_bytes(items) / rows),
        "in_memory_bytes_per_row": round((after - before) / rows),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt.gz")
    parser.add_argument("--mention-events", type=int, default=563_069, help="events of the mention profile")
    parser.add_argument("--pairs", type=int, default=250_000, help="one-event pairs of the old baseline")
    args = parser.parse_args()
    recorder = Recorder("rows")
    workloads: dict[str, Callable[[], list[bytes]]] = {
        "CollegeMsg": lambda: collegemsg(args.data),
        "mentions (generated)": lambda: mentions(args.mention_events),
        "one-event pairs (old baseline)": lambda: one_event_pairs(args.pairs),
    }
    out = sys.stdout
    results = []
    for name, make in workloads.items():
        result = measure(name, make())
        results.append(result)
        out.write(
            f"{name}: {result['events']:,} events, {result['rows']:,} rows | serialised median "
            f"{result['serialised_median']} B (mean {result['serialised_mean']}, p99 {result['serialised_p99']}), "
            f"key {result['key_median']} B | RocksDB on disk {result['rocksdb_bytes_per_row']} B | "
            f"in memory {result['in_memory_bytes_per_row']} B per row\n"
        )
        out.flush()
    recorder.save({"workloads": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
