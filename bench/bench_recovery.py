"""Recovery time after SIGKILL with N rows in the changelog (local RocksDB kept, and lost), and bytes on disk."""

from __future__ import annotations

import argparse
import shutil
import sys
import tempfile
import time
from pathlib import Path

import orjson

from bench.harness import deployment, free_port, metric, produce, start_worker, stop

T0 = 1_700_000_000_000


def pair_events(pairs: int) -> list[bytes]:
    """One like between each of `pairs` distinct pairs: 2 rows per event."""
    return [
        orjson.dumps({"id": f"r{n}", "type": "like", "actor_id": f"u{n}", "target_id": f"v{n}", "ts": T0 + n})
        for n in range(pairs)
    ]


def wait_for(port: int, name: str, target: float, timeout_s: float) -> float:
    """Seconds until the metric `name` reaches `target`."""
    started = time.perf_counter()
    while time.perf_counter() - started < timeout_s:
        if metric(port, name) >= target:
            return time.perf_counter() - started
        time.sleep(0.25)
    raise TimeoutError(f"{name} did not reach {target} in {timeout_s} s")


def disk_bytes(path: Path) -> int:
    return sum(f.stat().st_size for f in path.rglob("*") if f.is_file())


def recover(env: dict[str, str], data_dir: Path, rows: int) -> float:
    """Start a worker on `data_dir`; seconds until it has loaded `rows` rows."""
    port = free_port()
    started = time.perf_counter()
    worker = start_worker(env, data_dir, port)
    try:
        wait_for(port, "relationships_recovered_rows_total", rows, 900)
        return time.perf_counter() - started
    finally:
        stop(worker)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--rows", type=int, default=1_000_000, help="rows to build (two per event)")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    events = args.rows // 2
    env = deployment(args.partitions, clock="event", checkpoint_max_rows="50000")
    produce(env, pair_events(events))
    out = sys.stdout
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        port = free_port()
        worker = start_worker(env, data, port)
        try:
            build = wait_for(port, "relationships_events_applied_total", events, 1800)
            time.sleep(3)  # let the last checkpoint reach the changelog
        finally:
            worker.kill()
            worker.wait()
        out.write(
            f"built {args.rows} rows from {events} events in {build:.1f} s ({events / build:,.0f} events/s)\n"
        )
        on_disk = disk_bytes(data)
        out.write(f"RocksDB on disk: {on_disk / 1e6:.1f} MB = {on_disk / args.rows:.0f} B per row\n")
        local = recover(env, data, args.rows)
        out.write(f"restart after SIGKILL, local RocksDB kept: {local:.1f} s to load {args.rows} rows\n")
        shutil.rmtree(data)
        remote = recover(env, data, args.rows)
        out.write(f"restart with the data dir lost (changelog only): {remote:.1f} s (target < 60 s)\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
