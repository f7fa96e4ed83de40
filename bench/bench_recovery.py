"""Restart after SIGKILL on realistic rows (local RocksDB kept, and lost), and the worker's bytes on disk per row."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.drain import drain, expected_output
from bench.harness import deployment, free_port, metric, produce, start_worker, stop
from bench.results import Recorder
from bench.workloads import collegemsg, distinct_rows, mentions, one_event_pairs, pairs_seen_once


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def recover(env: dict[str, str], data_dir: Path, rows: int, stall_s: float = 300.0) -> float:
    """Start a worker on `data_dir`; seconds until it has loaded `rows` rows and recovers nothing more."""
    port = free_port()
    started = time.perf_counter()
    worker = start_worker(env, data_dir, port)
    loaded, last_progress = 0.0, started
    try:
        while True:
            now = time.perf_counter()
            count = metric(port, "relationships_recovered_rows_total")
            if count >= rows and metric(port, "relationships_recovering_partitions") == 0:
                return now - started
            if count > loaded:
                loaded, last_progress = count, now
            if now - last_progress > stall_s:
                raise TimeoutError(f"{loaded} of {rows} rows loaded, none more for {stall_s} s")
            time.sleep(0.25)
    finally:
        stop(worker)


def measure(name: str, lines: list[bytes], partitions: int) -> dict[str, Any]:
    """Build the rows of `lines` with one worker, SIGKILL it, then time two restarts."""
    rows = distinct_rows(lines)
    env = deployment(partitions, checkpoint_max_rows="50000")
    expected = expected_output(lines, env)
    produce(env, lines)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        built = drain(env, 1, expected, data.parent, kill=True)
        data = data.parent / "w0"
        on_disk = disk_bytes(data)
        local = recover(env, data, rows)
        shutil.rmtree(data)
        remote = recover(env, data, rows)
    return {
        "workload": name, "events": len(lines), "rows": rows, "pairs_seen_once": round(pairs_seen_once(lines), 3),
        "partitions": partitions,
        "build_s": built.done_s, "build_eps": round(len(lines) / built.done_s),
        "data_dir_bytes_after_build": on_disk, "data_dir_bytes_per_row": round(on_disk / rows),
        "local_kept_s": round(local, 1), "changelog_only_s": round(remote, 1),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt.gz")
    parser.add_argument("--mention-events", type=int, default=563_069, help="events of the mention profile")
    parser.add_argument("--pairs", type=int, default=0, help="one-event pairs of the old baseline (0: skip)")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    recorder = Recorder("recovery")
    workloads: dict[str, Callable[[], list[bytes]]] = {"CollegeMsg": lambda: collegemsg(args.data)}
    if args.mention_events:
        workloads[f"mentions {args.mention_events:,}"] = lambda: mentions(args.mention_events)
    if args.pairs:
        workloads["one-event pairs (old baseline)"] = lambda: one_event_pairs(args.pairs)
    out = sys.stdout
    runs = []
    for name, make in workloads.items():
        run = measure(name, make(), args.partitions)
        runs.append(run)
        out.write(
            f"{name}: {run['events']:,} events -> {run['rows']:,} rows, built in {run['build_s']} s "
            f"({run['build_eps']:,} events/s to all alerts out); worker data dir {run['data_dir_bytes_per_row']} B "
            f"per row | restart after SIGKILL, local RocksDB kept: {run['local_kept_s']} s | "
            f"data dir lost (changelog only): {run['changelog_only_s']} s\n"
        )
        out.flush()
    recorder.save({"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
