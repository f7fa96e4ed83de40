"""Worker memory and speed with rows on disk behind a small row cache, against a cache that holds every row (same run).

One worker drains the mention profile (most pairs seen once) with `STREAMS_ROW_CACHE_MB`
small, then large enough for every row, in alternating order each round. Per run: the
worker's peak RSS (VmHWM, read before it stops), the rows it holds and keeps decoded, the
rows it read back from RocksDB, and events/s from its start to all output out.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench.drain import drain, expected_output
from bench.harness import deployment, metric, produce
from bench.results import Recorder
from bench.workloads import mentions

GAUGE_INTERVAL_S = 6.0
"""Longer than the worker's 5 s refresh of its row gauges."""


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of `pid` (VmHWM, /proc/<pid>/status), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def one_run(lines: list[bytes], cache_mb: int, partitions: int) -> dict[str, Any]:
    """One worker with `cache_mb` on a fresh deployment of `lines`."""
    env = deployment(partitions, row_cache_mb=str(cache_mb))
    expected = expected_output(lines, env)
    produce(env, lines)
    seen: dict[str, float] = {}

    def inspect(processes: list[subprocess.Popen[bytes]], ports: list[int]) -> None:
        time.sleep(GAUGE_INTERVAL_S)  # the row gauges are refreshed on a timer
        seen["peak_rss_mb"] = peak_rss_mb(processes[0].pid)
        for name in ("relationships_rows", "relationships_rows_cached", "relationships_row_reads_total"):
            seen[name] = metric(ports[0], name)

    with tempfile.TemporaryDirectory() as tmp:
        drained = drain(env, 1, expected, Path(tmp), before_stop=inspect).figures()
    return {
        "cache_mb": cache_mb,
        "peak_rss_mb": round(seen["peak_rss_mb"]),
        "eps_from_start": drained["eps_from_start"],
        "eps_after_first_applied": drained["eps_after_first_applied"],
        "rows": seen["relationships_rows"],
        "rows_cached": seen["relationships_rows_cached"],
        "row_reads": seen["relationships_row_reads_total"],
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=563_069, help="events of the mention profile")
    parser.add_argument("--small-mb", type=int, default=16, help="the small row cache, per worker")
    parser.add_argument("--large-mb", type=int, default=100_000, help="a cache every row fits in")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    lines = mentions(args.events)
    runs: dict[int, list[dict[str, Any]]] = {args.small_mb: [], args.large_mb: []}
    out = sys.stdout
    for round_ in range(args.rounds):
        order = [args.small_mb, args.large_mb] if round_ % 2 == 0 else [args.large_mb, args.small_mb]
        for cache_mb in order:
            run = one_run(lines, cache_mb, args.partitions)
            runs[cache_mb].append(run)
            out.write(
                f"round {round_ + 1}, STREAMS_ROW_CACHE_MB={cache_mb}: peak RSS {run['peak_rss_mb']:,} MB, "
                f"rows {run['rows']:,.0f} ({run['rows_cached']:,.0f} in memory, {run['row_reads']:,.0f} read back), "
                f"{run['eps_from_start']:,} events/s from the start, {run['eps_after_first_applied']:,} after the "
                "first applied event\n"
            )
            out.flush()

    def median(cache_mb: int, figure: str) -> float:
        return float(statistics.median(run[figure] for run in runs[cache_mb]))

    small, large = args.small_mb, args.large_mb
    summary = {
        "events": len(lines),
        "small_mb": small,
        "large_mb": large,
        "peak_rss_mb": {"small": median(small, "peak_rss_mb"), "large": median(large, "peak_rss_mb")},
        "eps_from_start": {
            "small": median(small, "eps_from_start"),
            "large": median(large, "eps_from_start"),
        },
        "rss_ratio": round(median(small, "peak_rss_mb") / median(large, "peak_rss_mb"), 3),
        "speed_ratio": round(median(small, "eps_from_start") / median(large, "eps_from_start"), 3),
    }
    out.write(
        f"medians of {args.rounds}: peak RSS {summary['peak_rss_mb']['small']:,.0f} MB with {small} MB of row "
        f"cache against {summary['peak_rss_mb']['large']:,.0f} MB with every row in memory (ratio "
        f"{summary['rss_ratio']}); events/s from the start {summary['eps_from_start']['small']:,.0f} against "
        f"{summary['eps_from_start']['large']:,.0f} (ratio {summary['speed_ratio']})\n"
    )
    Recorder("row_cache").save({"summary": summary, "runs": runs[small] + runs[large]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
