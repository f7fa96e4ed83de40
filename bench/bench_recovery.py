"""Restart after SIGKILL on realistic rows (local RocksDB kept, and lost: changelog restored in batches, and by
Faust a record at a time), and the worker's bytes on disk per row."""

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


def recover(
    env: dict[str, str], data_dir: Path, rows: int, port: int | None = None, stall_s: float = 300.0
) -> float:
    """Start a worker on `data_dir` (web `port`, else a free one); seconds until it has loaded `rows` rows and
    recovers nothing more."""
    port = port or free_port()
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
    """Build the rows of `lines` with one worker, SIGKILL it, then time four restarts.

    The worker has a static group membership (`STREAMS_INSTANCE_ID`, as the
    StatefulSet gives each pod) and keeps its web port, so a restart takes its
    partitions back without waiting for the killed member's session to time out
    (Faust's assignor requires the URL of a static member's cached assignment
    to be its own). The second restart is a worker without one, after the
    first stopped: it waits for that member's session timeout, as any restart
    after a SIGKILL does without static membership. The last two lose the
    data directory: Faust's recovery a record at a time, then in batches.
    """
    rows = distinct_rows(lines)
    env = deployment(partitions, checkpoint_max_rows="50000", instance_id="bench-worker-0")
    dynamic = {name: value for name, value in env.items() if name != "STREAMS_INSTANCE_ID"}
    expected = expected_output(lines, env)
    produce(env, lines)
    with tempfile.TemporaryDirectory() as tmp:
        data = Path(tmp) / "data"
        ports: list[int] = []
        built = drain(
            env, 1, expected, data.parent, kill=True, before_stop=lambda _, used: ports.extend(used)
        )
        data = data.parent / "w0"
        on_disk = disk_bytes(data)
        local = recover(env, data, rows, ports[0])
        local_dynamic = recover(dynamic, data, rows)
        shutil.rmtree(data)
        per_record = recover({**env, "STREAMS_RESTORE_IN_BATCHES": "false"}, data, rows, ports[0])
        shutil.rmtree(data)
        remote = recover(env, data, rows, ports[0])
    return {
        "workload": name, "events": len(lines), "rows": rows, "pairs_seen_once": round(pairs_seen_once(lines), 3),
        "partitions": partitions,
        "build_s": built.done_s, "build_eps": round(len(lines) / built.done_s),
        "data_dir_bytes_after_build": on_disk, "data_dir_bytes_per_row": round(on_disk / rows),
        "local_kept_s": round(local, 1), "local_kept_dynamic_membership_s": round(local_dynamic, 1),
        "changelog_only_s": round(remote, 1),
        "changelog_only_faust_per_record_s": round(per_record, 1),
        "changelog_only_ratio": round(remote / per_record, 3),
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
            f"per row | restart after SIGKILL, local RocksDB kept: {run['local_kept_s']} s (without static "
            f"membership {run['local_kept_dynamic_membership_s']} s) | "
            f"data dir lost (changelog only): {run['changelog_only_s']} s, with Faust's recovery a record at a "
            f"time {run['changelog_only_faust_per_record_s']} s (ratio {run['changelog_only_ratio']})\n"
        )
        out.flush()
    recorder.save({"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
