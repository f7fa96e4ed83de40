"""The cost of exactly_once: the same backlog drained under each guarantee until all its alerts are out (medians)."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.drain import drain, expected_output
from bench.harness import deployment, produce
from bench.results import Recorder
from bench.workloads import collegemsg

GUARANTEES = ("at_least_once", "exactly_once")


def summary(runs: list[dict[str, Any]]) -> dict[str, Any]:
    """Median, min and max of the runs' times to done, and the rate of the median."""
    seconds = [run["done_s"] for run in runs]
    events = runs[0]["events"]
    median = statistics.median(seconds)
    return {
        "seconds": seconds,
        "median_s": round(median, 2),
        "min_s": min(seconds),
        "max_s": max(seconds),
        "eps_of_median": round(events / median),
        "eps_after_first_applied_median": statistics.median(run["eps_after_first_applied"] for run in runs),
        "runs": runs,
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt.gz")
    parser.add_argument("--repeat", type=int, default=2, help="copies of CollegeMsg (2 = 119,670 events)")
    parser.add_argument("--partitions", type=int, default=3)
    parser.add_argument("--runs", type=int, default=3, help="runs per guarantee, alternating (>= 3)")
    args = parser.parse_args()
    recorder = Recorder("guarantees")
    lines = collegemsg(args.data, args.repeat)
    expected = expected_output(lines, deployment(args.partitions))
    out = sys.stdout
    out.write(
        f"backlog: {len(lines):,} events (CollegeMsg x{args.repeat}), {len(expected.alert_ids):,} alerts, "
        f"{args.partitions} partitions, one worker; clock from the worker's start to every alert readable "
        f"and the last row write in the changelog readable (read_committed; none more for 3 s)\n"
    )
    runs: dict[str, list[dict[str, Any]]] = {g: [] for g in GUARANTEES}
    for number in range(args.runs):
        for guarantee in GUARANTEES:
            env = deployment(args.partitions, processing_guarantee=guarantee)
            produce(env, lines)
            with tempfile.TemporaryDirectory() as tmp:
                figures = drain(env, 1, expected, Path(tmp)).figures()
            runs[guarantee].append(figures)
            out.write(
                f"run {number + 1} {guarantee:>13}: done at {figures['done_s']:6.1f} s "
                f"({figures['eps_from_start']:,} events/s from start; first event applied at "
                f"{figures['first_applied_s']} s, alerts out at {figures['alerts_out_s']} s, last row write at "
                f"{figures['last_row_write_s']} s)\n"
            )
            out.flush()
    results = {g: summary(runs[g]) for g in GUARANTEES}
    ratios = [
        eos["done_s"] / alo["done_s"]
        for alo, eos in zip(runs["at_least_once"], runs["exactly_once"], strict=True)
    ]
    ratio = results["exactly_once"]["median_s"] / results["at_least_once"]["median_s"]
    for guarantee, result in results.items():
        out.write(
            f"{guarantee:>13}: median {result['median_s']} s (min {result['min_s']}, max {result['max_s']}) "
            f"= {result['eps_of_median']:,} events/s\n"
        )
    out.write(
        f"time exactly_once / at_least_once: {ratio:.2f} of the medians; per run pair "
        f"{', '.join(f'{r:.2f}' for r in ratios)}\n"
    )
    recorder.save({
        "workload": f"CollegeMsg x{args.repeat}", "events": len(lines), "alerts": len(expected.alert_ids),
        "partitions": args.partitions, "workers": 1, **results,
        "time_ratio_exactly_once_over_at_least_once": round(ratio, 3),
        "time_ratios_per_run_pair": [round(r, 3) for r in ratios],
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
