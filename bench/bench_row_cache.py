"""Worker memory and speed with rows on disk behind a small row cache, against a cache that holds every row (same run).

One worker drains the mention profile (most pairs seen once) with `STREAMS_ROW_CACHE_MB`
small, then large enough for every row, then small with the RocksDB memory Faust gives a
table by default (64 MB memtables, a 2 GB block cache), in alternating order each round. Per run: the
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
from bench.harness import MemorySampler, deployment, metric, peak_rss_mb, produce
from bench.results import Recorder
from bench.workloads import mentions
from streams.replay import ENGINES, EngineName

GAUGE_INTERVAL_S = 6.0
"""Longer than the worker's 5 s refresh of its row gauges."""


def one_run(
    lines: list[bytes], env_overrides: dict[str, str], partitions: int, replay_engine: EngineName
) -> dict[str, Any]:
    """One worker on a fresh deployment of `lines`, with settings `env_overrides`."""
    env = deployment(partitions, **env_overrides)
    expected = expected_output(lines, env, replay_engine)
    produce(env, lines)
    seen: dict[str, float] = {}
    samplers: list[MemorySampler] = []

    def sample(processes: list[subprocess.Popen[bytes]], ports: list[int]) -> None:
        samplers.append(MemorySampler(processes[0].pid, ports[0]))
        samplers[0].start()

    def inspect(processes: list[subprocess.Popen[bytes]], ports: list[int]) -> None:
        time.sleep(GAUGE_INTERVAL_S)  # the row gauges are refreshed on a timer
        seen["peak_rss_mb"] = peak_rss_mb(processes[0].pid)
        for name in ("relationships_rows", "relationships_rows_cached", "relationships_row_reads_total"):
            seen[name] = metric(ports[0], name)
        samplers[0].stopped.set()

    with tempfile.TemporaryDirectory() as tmp:
        drained = drain(env, 1, expected, Path(tmp), before_stop=inspect, after_start=sample).figures()
    return {
        "settings": env_overrides,
        "peak_rss_mb": round(seen["peak_rss_mb"]),
        "eps_from_start": drained["eps_from_start"],
        "eps_after_first_applied": drained["eps_after_first_applied"],
        "rows": seen["relationships_rows"],
        "rows_cached": seen["relationships_rows_cached"],
        "row_reads": seen["relationships_row_reads_total"],
        "rss_growth_mb_per_million_rows": samplers[0].growth_mb_per_million_rows(),
        "samples": samplers[0].samples,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--events", type=int, default=563_069, help="events of the mention profile")
    parser.add_argument("--small-mb", type=int, default=16, help="the small row cache, per worker")
    parser.add_argument("--large-mb", type=int, default=100_000, help="a cache every row fits in")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument(
        "--only-small",
        action="store_true",
        help="run the small cache alone (no baselines): the memory of a worker with many rows, e.g. 20M",
    )
    parser.add_argument(
        "--replay-engine",
        choices=ENGINES,
        default="python",
        help="engine of the replay the output is checked against (compiled for millions of rows)",
    )
    args = parser.parse_args()
    lines = mentions(args.events)
    configs = {
        "small": {"row_cache_mb": str(args.small_mb)},
        "all_rows": {"row_cache_mb": str(args.large_mb)},
        # the same small cache with the RocksDB memory Faust gives a table by default
        "small_faust_rocksdb": {
            "row_cache_mb": str(args.small_mb),
            "rocksdb_write_buffer_mb": "64",
            "rocksdb_memory_mb": "0",
        },
    }
    if args.only_small:
        configs = {"small": configs["small"]}
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in configs}
    out = sys.stdout
    for round_ in range(args.rounds):
        order = list(configs) if round_ % 2 == 0 else list(reversed(configs))
        for name in order:
            run = one_run(lines, configs[name], args.partitions, args.replay_engine)
            runs[name].append(run)
            out.write(
                f"round {round_ + 1}, {name} {configs[name]}: peak RSS {run['peak_rss_mb']:,} MB, "
                f"rows {run['rows']:,.0f} ({run['rows_cached']:,.0f} in memory, {run['row_reads']:,.0f} read back), "
                f"{run['eps_from_start']:,} events/s from the start, {run['eps_after_first_applied']:,} after the "
                f"first applied event; RSS growth {run['rss_growth_mb_per_million_rows']} MB per million rows\n"
            )
            out.flush()

    def median(name: str, figure: str) -> float:
        return float(statistics.median(run[figure] for run in runs[name]))

    summary: dict[str, Any] = {"events": len(lines), "configs": configs}
    if args.only_small:
        summary.update(
            {figure: median("small", figure) for figure in ("peak_rss_mb", "rows", "eps_from_start")}
        )
        out.write(
            f"medians of {args.rounds}: peak RSS {summary['peak_rss_mb']:,.0f} MB with {args.small_mb} MB of row "
            f"cache and {summary['rows']:,.0f} rows, {summary['eps_from_start']:,.0f} events/s from the start\n"
        )
        Recorder("row_cache_small_only").save({"summary": summary, "runs": runs["small"]})
        return 0
    for figure in ("peak_rss_mb", "eps_from_start", "eps_after_first_applied"):
        summary[figure] = {name: median(name, figure) for name in configs}
    summary["rss_ratio"] = round(median("small", "peak_rss_mb") / median("all_rows", "peak_rss_mb"), 3)
    summary["speed_ratio"] = round(
        median("small", "eps_from_start") / median("all_rows", "eps_from_start"), 3
    )
    summary["rss_ratio_to_faust_rocksdb"] = round(
        median("small", "peak_rss_mb") / median("small_faust_rocksdb", "peak_rss_mb"), 3
    )
    summary["speed_ratio_to_faust_rocksdb"] = round(
        median("small", "eps_from_start") / median("small_faust_rocksdb", "eps_from_start"), 3
    )
    rss, eps = summary["peak_rss_mb"], summary["eps_from_start"]
    out.write(
        f"medians of {args.rounds}: peak RSS {rss['small']:,.0f} MB with {args.small_mb} MB of row cache, "
        f"{rss['all_rows']:,.0f} MB with every row in memory (ratio {summary['rss_ratio']}), "
        f"{rss['small_faust_rocksdb']:,.0f} MB with Faust's RocksDB memory (ratio "
        f"{summary['rss_ratio_to_faust_rocksdb']}); events/s from the start {eps['small']:,.0f}, "
        f"{eps['all_rows']:,.0f} (ratio {summary['speed_ratio']}), {eps['small_faust_rocksdb']:,.0f} "
        f"(ratio {summary['speed_ratio_to_faust_rocksdb']})\n"
    )
    Recorder("row_cache").save({"summary": summary, "runs": [run for name in configs for run in runs[name]]})
    return 0


if __name__ == "__main__":
    sys.exit(main())
