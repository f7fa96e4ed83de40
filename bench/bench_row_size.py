"""Bytes per relationship row on realistic rows: serialised (table value), in RocksDB on disk, and in memory.

Each workload's rows are measured in both formats in the same run: version 1 (binary, what `Row.to_bytes`
writes) and version 0 (the JSON array written before it, `Row.to_json_bytes`), with the CPU time per row
to encode and decode each (version 0 with orjson). Input positions are the service's (input partition
and offset, `input_position`), not line numbers, so the rows are the ones a worker stores.
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import sys
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from faust.stores.rocksdb import RocksDBOptions

from bench.results import Recorder
from bench.workloads import collegemsg, mentions, one_event_pairs
from streams.engine.engine import RelationshipEngine
from streams.engine.events import IN, OUT, RowUpdate, decode_event
from streams.engine.row import Row
from streams.replay import REPLAY_DEFAULTS
from streams.service.records import input_position, source_name
from streams.service.row_store import row_key
from streams.settings import Settings

INPUT_PARTITIONS = 6
"""The input is read as if from this many partitions of one topic (positions as the service makes them)."""
TIMED_ROWS = 100_000
"""Encode/decode times are taken on this many rows of each workload (every row if fewer)."""


def load_rows(lines: list[bytes]) -> RelationshipEngine:
    """Apply every event to an engine (both directions, as the service does) and keep its rows."""
    engine = RelationshipEngine(Settings(**REPLAY_DEFAULTS))
    sources = [source_name("interactions", partition) for partition in range(INPUT_PARTITIONS)]
    for number, line in enumerate(lines):
        e = decode_event(line)
        pos = input_position(sources[number % INPUT_PARTITIONS], number // INPUT_PARTITIONS)
        engine.offer(RowUpdate(e.ts, e.id, e.actor, e.target, OUT, e.type, 0, pos))
        engine.offer(RowUpdate(e.ts, e.id, e.target, e.actor, IN, e.type, 0, pos))
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


def sizes(items: list[tuple[bytes, bytes]]) -> dict[str, int]:
    """Value sizes (median, mean, p99) and bytes per row in RocksDB."""
    values = sorted(len(value) for _, value in items)
    return {
        "serialised_median": round(statistics.median(values)),
        "serialised_mean": round(statistics.mean(values)),
        "serialised_p99": values[int(len(values) * 0.99)],
        "rocksdb_bytes_per_row": round(rocksdb_bytes(items) / len(values)),
    }


def cpu_us_per_item(function: Callable[[Any], object], items: list[Any], repeat: int = 3) -> float:
    """CPU time (of this process: the machine is shared) per call of `function`, the best of `repeat` passes."""
    best = float("inf")
    for _ in range(repeat):
        started = time.process_time()
        for item in items:
            function(item)
        best = min(best, time.process_time() - started)
    return round(best / len(items) * 1e6, 2)


def codec_times(rows: list[Row]) -> dict[str, float]:
    """µs per row to encode and decode, version 1 and version 0 (orjson), on the same rows."""
    timed = rows[:: max(1, len(rows) // TIMED_ROWS)]
    binary = [row.to_bytes() for row in timed]
    json = [row.to_json_bytes() for row in timed]
    assert all(
        Row.from_bytes(b) == Row.from_bytes(j) == row for b, j, row in zip(binary, json, timed, strict=True)
    )
    return {
        "timed_rows": len(timed),
        "encode_us": cpu_us_per_item(Row.to_bytes, timed),
        "decode_us": cpu_us_per_item(Row.from_bytes, binary),
        "json_encode_us": cpu_us_per_item(Row.to_json_bytes, timed),
        "json_decode_us": cpu_us_per_item(Row.from_bytes, json),
    }


def measure(name: str, lines: list[bytes]) -> dict[str, Any]:
    """Row sizes of the rows `lines` make."""
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = load_rows(lines)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    keys = [row_key(key) for key in engine.rows]
    rows = list(engine.rows.values())
    binary = sizes([(key, row.to_bytes()) for key, row in zip(keys, rows, strict=True)])
    json = sizes([(key, row.to_json_bytes()) for key, row in zip(keys, rows, strict=True)])
    return {
        "workload": name,
        "events": len(lines),
        "rows": len(rows),
        "format_version": rows[0].to_bytes()[0],
        **binary,
        **{f"json_{measure}": value for measure, value in json.items()},
        "key_median": round(statistics.median(len(key) for key in keys)),
        "in_memory_bytes_per_row": round((after - before) / len(rows)),
        **codec_times(rows),
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
            f"{name}: {result['events']:,} events, {result['rows']:,} rows | version {result['format_version']}: "
            f"serialised median {result['serialised_median']} B (mean {result['serialised_mean']}, "
            f"p99 {result['serialised_p99']}), RocksDB on disk {result['rocksdb_bytes_per_row']} B, "
            f"encode {result['encode_us']} µs, decode {result['decode_us']} µs | JSON (version 0): serialised "
            f"median {result['json_serialised_median']} B (mean {result['json_serialised_mean']}, "
            f"p99 {result['json_serialised_p99']}), RocksDB on disk {result['json_rocksdb_bytes_per_row']} B, "
            f"orjson encode {result['json_encode_us']} µs, decode {result['json_decode_us']} µs | "
            f"key {result['key_median']} B | in memory {result['in_memory_bytes_per_row']} B per row\n"
        )
        out.flush()
    recorder.save({"workloads": results})
    return 0


if __name__ == "__main__":
    sys.exit(main())
