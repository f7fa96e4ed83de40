"""One worker with many rows (issue 12's 20M): its memory as the rows grow, then a restart after SIGKILL, state kept.

One worker drains the mention profile's generator at `--events` (11.5M events make about 20M
rows, most pairs seen once) with the service's defaults, its RSS, rows and RocksDB memory
sampled every 10 s. It is then killed (SIGKILL) and started again on its data directory as
the same static member, timed until every row's partition is open. The baselines are in the
same run: the worker's RSS before its first event, and its RSS at a quarter of the rows
(so growth per million rows separates what grows from what filled).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.bench_recovery import recover
from bench.drain import drain, expected_output
from bench.harness import MemorySampler, deployment, peak_rss_mb, produce
from bench.results import Recorder
from bench.workloads import distinct_rows, mentions

RSS_TARGET_MB = 1_000
RESTART_TARGET_S = 10.0


def measure(events: int, partitions: int, row_cache_mb: int) -> dict[str, Any]:
    """Build the rows of `events` mention events with one worker, sampling its memory; kill it; time a restart."""
    lines = mentions(events)
    rows = distinct_rows(lines)
    env = deployment(
        partitions,
        row_cache_mb=str(row_cache_mb),
        checkpoint_max_rows="50000",
        instance_id="bench-large-0",
        input_max_drift_ms="60000",
    )
    expected = expected_output(lines, env, "compiled")
    produce(env, lines)
    del lines
    samplers: list[MemorySampler] = []
    seen: dict[str, Any] = {}

    def sample(processes: list[Any], ports: list[int]) -> None:
        samplers.append(MemorySampler(processes[0].pid, ports[0]))
        samplers[0].start()

    def before_kill(processes: list[Any], ports: list[int]) -> None:
        seen["peak_rss_mb"] = peak_rss_mb(processes[0].pid)
        seen["port"] = ports[0]
        samplers[0].stopped.set()

    with tempfile.TemporaryDirectory() as tmp:
        built = drain(env, 1, expected, Path(tmp), kill=True, before_stop=before_kill, after_start=sample)
        restart_s = recover(env, Path(tmp) / "w0", rows, seen["port"])
    sampler = samplers[0]
    return {
        "events": events, "rows": rows, "partitions": partitions, "row_cache_mb": row_cache_mb,
        "build_s": built.done_s, "build_eps": round(events / built.done_s),
        "peak_rss_mb": round(seen["peak_rss_mb"]), "rss_target_mb": RSS_TARGET_MB,
        "rss_ratio_to_target": round(seen["peak_rss_mb"] / RSS_TARGET_MB, 3),
        "rss_before_first_row_mb": ([s["rss_mb"] for s in sampler.samples if s["rows"] == 0] or [None])[-1],
        "rss_growth_mb_per_million_rows": sampler.growth_mb_per_million_rows(),
        "restart_kept_s": round(restart_s, 1), "restart_target_s": RESTART_TARGET_S,
        "restart_ratio_to_target": round(restart_s / RESTART_TARGET_S, 3),
        "samples": sampler.samples,
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=11_500_000, help="events of the mention profile")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--row-cache-mb", type=int, default=16, help="STREAMS_ROW_CACHE_MB")
    args = parser.parse_args()
    recorder = Recorder("large_worker")
    run = measure(args.events, args.partitions, args.row_cache_mb)
    sys.stdout.write(
        f"one worker, {run['events']:,} mention events -> {run['rows']:,} rows in {run['build_s']} s "
        f"({run['build_eps']:,} events/s): peak RSS {run['peak_rss_mb']:,} MB ({run['rss_ratio_to_target']} of "
        f"{RSS_TARGET_MB:,} MB), {run['rss_before_first_row_mb']} MB before its first row, growth "
        f"{run['rss_growth_mb_per_million_rows']} MB per million rows | restart after SIGKILL, state kept: "
        f"{run['restart_kept_s']} s ({run['restart_ratio_to_target']} of {RESTART_TARGET_S} s)\n"
    )
    recorder.save(run)
    return 0


if __name__ == "__main__":
    sys.exit(main())
