"""Draw docs/figures/benchmarks/benchmarks.png from the measured results.json beside it."""

from __future__ import annotations

import json
import sys
from typing import Any

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt
from matplotlib.axes import Axes

from bench.results import FIGURES, RESULTS


def _throughput(ax: Axes, results: dict[str, Any]) -> None:
    labels, ours, base = [], [], []
    for run in results.get("replay", {}).get("runs", []):
        labels.append(f"replay\n{run['workload']}")
        ours.append(run["replay_eps"])
        base.append(run["bare_parse_eps"])
    for run in results.get("service", {}).get("runs", []):
        labels.append(f"service {run['workers']}w\n{run['workload']}")
        ours.append(run["service_eps"])
        base.append(run["bare_consumer_eps"])
    x = range(len(labels))
    ax.bar([i - 0.2 for i in x], base, 0.4, label="baseline (bare parse / bare consumer)")
    ax.bar([i + 0.2 for i in x], ours, 0.4, label="ours")
    ax.set_yscale("log")
    ax.set_xticks(list(x), labels, fontsize=6)
    ax.set_ylabel("events/s (log)")
    ax.set_title("throughput vs same-run baseline")
    ax.legend(fontsize=7)


def _latency(ax: Axes, results: dict[str, Any]) -> None:
    latency = results.get("latency")
    if not latency:
        ax.set_title("alert latency: not measured")
        return
    deciles = latency["deciles_ms"]
    ax.plot([q * 10 for q in range(len(deciles))], deciles, marker="o")
    ax.axhline(1000, color="red", linestyle="--", label="target p99 < 1 s")
    ax.set_xlabel("percentile")
    ax.set_ylabel("deadline -> alert on topic (ms)")
    ax.set_title(f"alert latency, hybrid clock (p99 {latency['p99_ms']} ms)")
    ax.legend(fontsize=7)


def _row_bytes(ax: Axes, results: dict[str, Any]) -> None:
    runs = results.get("rows", {}).get("workloads", [])
    labels = [run["workload"] for run in runs]
    x = range(len(labels))
    series = (("serialised median", "serialised_median"), ("RocksDB on disk", "rocksdb_bytes_per_row"),
              ("in memory", "in_memory_bytes_per_row"))  # fmt: skip
    for offset, (name, key) in zip((-0.27, 0, 0.27), series, strict=True):
        ax.bar([i + offset for i in x], [run[key] for run in runs], 0.27, label=name)
    ax.axhline(120, color="red", linestyle="--", label="on-disk target 120 B")
    ax.set_xticks(list(x), labels, fontsize=6)
    ax.set_ylabel("bytes per row")
    ax.set_title("row size")
    ax.legend(fontsize=7)


def _recovery(ax: Axes, results: dict[str, Any]) -> None:
    runs = results.get("recovery", {}).get("runs", [])
    labels = [f"{run['workload']}\n{run['rows']:,} rows" for run in runs]
    x = range(len(labels))
    ax.bar([i - 0.27 for i in x], [run["local_kept_s"] for run in runs], 0.27, label="local RocksDB kept")
    ax.bar(list(x), [run["changelog_only_s"] for run in runs], 0.27, label="data dir lost")
    ax.bar(
        [i + 0.27 for i in x],
        [run.get("changelog_only_faust_per_record_s", 0) for run in runs],
        0.27,
        label="data dir lost, Faust's recovery per record",
    )
    ax.axhline(30, color="red", linestyle="--", label="target, data dir lost: 30 s")
    ax.set_xticks(list(x), labels, fontsize=6)
    ax.set_ylabel("s from worker start to rows loaded")
    ax.set_title("restart after SIGKILL")
    ax.legend(fontsize=7)


def _guarantees(ax: Axes, results: dict[str, Any]) -> None:
    guarantees = results.get("guarantees")
    if not guarantees:
        ax.set_title("exactly_once cost: not measured")
        return
    names = ["at_least_once", "exactly_once"]
    for i, name in enumerate(names):
        seconds = guarantees[name]["seconds"]
        ax.scatter([i] * len(seconds), seconds, color="grey", s=12)
        ax.bar(i, guarantees[name]["median_s"], 0.5, alpha=0.6)
    ax.set_xticks(range(len(names)), names, fontsize=7)
    ax.set_ylabel("s from worker start to all alerts out")
    ax.set_title(f"{guarantees['events']:,} events backlog, median and runs")


def _memory(ax: Axes, results: dict[str, Any]) -> None:
    large = results.get("large_worker")
    if not large:
        ax.set_title("one worker with many rows: not measured")
        return
    samples = large["samples"]
    rows = [sample["rows"] / 1e6 for sample in samples]
    ax.plot(rows, [sample["rss_mb"] for sample in samples], label="worker RSS")
    ax.plot(
        rows,
        [sample["rocksdb_block_cache_mb"] for sample in samples],
        label="RocksDB cache (memtables in it)",
    )
    if "held_updates" in samples[0]:
        held = ax.twinx()
        held.plot(rows, [sample["held_updates"] / 1e6 for sample in samples], color="grey", linestyle=":")
        held.set_ylabel("updates held for the watermark (millions, dotted)")
    ax.axhline(
        large["rss_target_mb"], color="red", linestyle="--", label=f"target {large['rss_target_mb']:,} MB"
    )
    ax.set_xlabel("rows held (millions)")
    ax.set_ylabel("MB")
    ax.set_title(f"one worker, {large['rows'] / 1e6:.1f}M rows: memory as rows grow")
    ax.legend(fontsize=7)


def draw(results: dict[str, Any]) -> None:
    """The six panels, one per benchmark family, with the machine and dates in the title."""
    fig, axes = plt.subplots(1, 6, figsize=(30, 4.8))
    panels = (_throughput, _latency, _row_bytes, _recovery, _memory, _guarantees)
    for panel, ax in zip(panels, axes, strict=True):
        panel(ax, results)
    machines = {
        f"{s['machine']['nproc']} CPUs {s['machine']['cpu_model']}, {s['machine']['memory_gib']} GiB"
        for s in results.values()
    }
    dates = sorted(s["started"][:10] for s in results.values())
    fig.suptitle(
        f"{'; '.join(sorted(machines))}; measured {dates[0]}..{dates[-1]}" if dates else "", fontsize=9
    )
    fig.tight_layout()
    fig.savefig(FIGURES / "benchmarks.png", dpi=80)
    plt.close(fig)


def main() -> int:
    draw(json.loads(RESULTS.read_text()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
