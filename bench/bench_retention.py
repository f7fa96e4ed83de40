"""Retention (`row_ttl`): rows kept and peak memory of a replay with and without it, same lines, same run."""

from __future__ import annotations

import argparse
import multiprocessing
import resource
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench.results import Recorder
from bench.workloads import collegemsg, mentions
from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.gc_tuning import tune_garbage_collector
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import DAY_MS, Settings

SAMPLE_EVERY = 10_000


class Sampling(RelationshipEngine):
    """The reference engine, noting its largest row count (sampled) as it goes."""

    peak_rows = 0

    def advance(self, watermark: int, inclusive: bool = False) -> list[Alert]:
        alerts = super().advance(watermark, inclusive)
        if self.stats.applied % SAMPLE_EVERY == 0:
            self.peak_rows = max(self.peak_rows, len(self.rows))
        return alerts


def one_replay(lines: list[bytes], row_ttl_ms: int) -> dict[str, Any]:
    """Run in a fresh process: events/s, rows at the end, sampled peak rows, peak RSS, alerts."""
    settings = Settings(**REPLAY_DEFAULTS, row_ttl_ms=row_ttl_ms)
    engine = Sampling(settings)
    summary = ReplaySummary()
    started = time.perf_counter()
    alerts = sum(1 for _ in replay(lines, settings, summary, engine=engine))
    seconds = time.perf_counter() - started
    return {
        "row_ttl_ms": row_ttl_ms,
        "events_per_second": round(len(lines) / seconds),
        "rows_at_end": len(engine.rows),
        "peak_rows_sampled": max(engine.peak_rows, len(engine.rows)),
        "rows_reset": summary.rows_reset,
        "rows_reclaimed": summary.rows_reclaimed,
        "alerts": alerts,
        "peak_rss_mb": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024),
    }


def in_child(lines: list[bytes], row_ttl_ms: int) -> dict[str, Any]:
    """`one_replay` in a forked process, so peak RSS is that replay's alone."""
    context = multiprocessing.get_context("fork")
    with context.Pool(1) as pool:
        return pool.apply(one_replay, (lines, row_ttl_ms))


def measure(name: str, lines: list[bytes], row_ttl_ms: int, rounds: int) -> dict[str, Any]:
    """Median of `rounds` alternating runs without and with retention."""
    runs: dict[int, list[dict[str, Any]]] = {0: [], row_ttl_ms: []}
    for _ in range(rounds):
        for ttl, done in runs.items():
            done.append(in_child(lines, ttl))
    kept, retained = ({k: statistics.median(r[k] for r in done) for k in done[0]} for done in runs.values())
    return {
        "workload": name, "events": len(lines), "rounds": rounds, "row_ttl_ms": row_ttl_ms,
        "without": kept, "with": retained,
        "rows_at_end_ratio": round(retained["rows_at_end"] / kept["rows_at_end"], 4),
        "peak_rss_ratio": round(retained["peak_rss_mb"] / kept["peak_rss_mb"], 4),
        "speed_ratio": round(retained["events_per_second"] / kept["events_per_second"], 4),
    }  # fmt: skip


def main() -> int:
    tune_garbage_collector()  # as `python -m streams` does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt.gz")
    parser.add_argument("--mention-events", type=int, default=563_069, help="events of the mention profile")
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    recorder = Recorder("retention")
    # the mention profile spans 7 days: 2 days of retention; CollegeMsg spans 193 days: 30 days
    workloads: dict[str, tuple[Callable[[], list[bytes]], int]] = {
        f"mentions {args.mention_events:,}": (lambda: mentions(args.mention_events), 2 * DAY_MS),
        "CollegeMsg": (lambda: collegemsg(args.data), 30 * DAY_MS),
    }
    runs = []
    for name, (make, ttl) in workloads.items():
        run = measure(name, make(), ttl, args.rounds)
        runs.append(run)
        without, with_ = run["without"], run["with"]
        sys.stdout.write(
            f"{name}: {run['events']:,} events, row_ttl {ttl // DAY_MS} days, medians of {args.rounds}: "
            f"rows at the end {without['rows_at_end']:,.0f} -> {with_['rows_at_end']:,.0f} "
            f"(ratio {run['rows_at_end_ratio']:.3f}), peak rows {without['peak_rows_sampled']:,.0f} -> "
            f"{with_['peak_rows_sampled']:,.0f}, peak RSS {without['peak_rss_mb']:.0f} -> "
            f"{with_['peak_rss_mb']:.0f} MB (ratio {run['peak_rss_ratio']:.3f}), replay "
            f"{without['events_per_second']:,.0f} -> {with_['events_per_second']:,.0f} events/s, "
            f"alerts {without['alerts']:,.0f} -> {with_['alerts']:,.0f}\n"
        )
        sys.stdout.flush()
    recorder.save({"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
