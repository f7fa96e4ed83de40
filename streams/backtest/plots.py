"""PNG figures of a backtest (matplotlib, Agg backend): thresholds, gaps, volume, trade-off, precision/recall."""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Any

import matplotlib

matplotlib.use("Agg")

import matplotlib.pyplot as plt
from matplotlib.figure import Figure

from streams.backtest.evaluate import SettingResult
from streams.backtest.runner import BacktestResult
from streams.settings import DAY_MS

__all__ = ["reference_result", "write_figures"]

_DPI = 90


def reference_result(results: list[SettingResult]) -> SettingResult:
    """The grid point nearest the SPEC defaults (k = 3, 14 days)."""
    return min(results, key=lambda r: (abs(r.point.k - 3.0), abs(r.point.min_silence_days - 14.0)))


def _axis_values(results: list[SettingResult]) -> tuple[list[float], list[float]]:
    ks = sorted({r.point.k for r in results})
    days = sorted({r.point.min_silence_days for r in results})
    return ks, days


def _thresholds(result: BacktestResult, title: str) -> Figure:
    ks, days = _axis_values(result.results)
    fig, axes = plt.subplots(
        len(ks), len(days), figsize=(3 * len(days) + 1, 2.2 * len(ks) + 1), sharex=True, squeeze=False
    )
    top = max((max(r.thresholds_ms, default=0) for r in result.results), default=0) / DAY_MS
    bins = [i * max(top, 1.0) / 40 for i in range(41)]
    for r in result.results:
        ax = axes[ks.index(r.point.k)][days.index(r.point.min_silence_days)]
        ax.hist([t / DAY_MS for t in r.thresholds_ms], bins=bins, color="tab:blue")
        ax.set_title(f"{r.point.label}  (n={len(r.thresholds_ms)})", fontsize=9)
        ax.set_yscale("log")
    for ax in axes[-1]:
        ax.set_xlabel("threshold (days)")
    fig.suptitle(f"{title}: threshold_ms of dormant alerts")
    return fig


def _gaps(result: BacktestResult, title: str) -> Figure:
    ref = reference_result(result.results)
    fig, ax = plt.subplots(figsize=(8, 4.5))
    gaps = [max(g / DAY_MS, 0.01) for g in ref.gaps_ms] or [1.0]
    low, high = min(gaps) / 1.2, max(gaps) * 1.2
    bins = [low * (high / low) ** (i / 40) for i in range(41)]
    ax.hist(gaps, bins=bins, color="tab:green")
    ax.set_xscale("log")
    top = ax.get_ylim()[1]
    for i, k in enumerate(sorted({r.point.k for r in result.results})):
        floor = ref.point.min_silence_days / k
        ax.axvline(floor, linestyle="--", color="grey", linewidth=1)
        ax.text(
            floor,
            top * (0.97 - 0.07 * i),
            f" {ref.point.min_silence_days:g} d / k={k:g}",
            fontsize=8,
            va="top",
        )
    ax.set_xlabel(
        "typical gap (days, log scale); left of a dashed line the min-silence floor sets the threshold"
    )
    ax.set_ylabel("dormant alerts")
    ax.set_title(f"{title}: typical_gap_ms of dormant alerts at {ref.point.label}")
    return fig


def _volume(result: BacktestResult, title: str) -> Figure:
    ks, days = _axis_values(result.results)
    fig, (left, right) = plt.subplots(1, 2, figsize=(11, 4.5))
    width = 0.8 / len(ks)
    by_point = {(r.point.k, r.point.min_silence_days): r.metrics for r in result.results}
    for i, k in enumerate(ks):
        xs = [j + (i - (len(ks) - 1) / 2) * width for j in range(len(days))]
        left.bar(xs, [by_point[(k, d)]["per_owner_month"] for d in days], width, label=f"k={k:g}")
        right.bar(xs, [by_point[(k, d)]["revived_share"] or 0.0 for d in days], width, label=f"k={k:g}")
    for ax, label in (
        (left, "dormant alerts per owner-month"),
        (right, "share of dormant alerts later revived"),
    ):
        ax.set_xticks(range(len(days)), [f"min {d:g}d" for d in days])
        ax.set_ylabel(label)
        ax.legend()
    fig.suptitle(f"{title}: alert volume and revivals by setting")
    return fig


def _precision_recall(result: BacktestResult, title: str) -> Figure:
    ks, _days = _axis_values(result.results)
    fig, ax = plt.subplots(figsize=(7, 5))
    for k in ks:
        row = sorted((r for r in result.results if r.point.k == k), key=lambda r: r.point.min_silence_days)
        xs = [r.metrics["recall"] or 0.0 for r in row]
        ys = [r.metrics["precision"] or 0.0 for r in row]
        ax.plot(xs, ys, marker="o", label=f"k={k:g}")
        for r, x, y in zip(row, xs, ys, strict=True):
            ax.annotate(
                f"{r.point.min_silence_days:g}d",
                (x, y),
                textcoords="offset points",
                xytext=(4, 4),
                fontsize=8,
            )
    ax.set_xlabel("recall (planted detectable dormancies found)")
    ax.set_ylabel("precision (dormant alerts inside a planted silence)")
    ax.set_title(f"{title}: precision vs recall (labels: min silence)")
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def _tradeoff(result: BacktestResult, title: str, compare: Sequence[Mapping[str, Any]] = ()) -> Figure:
    ks, _days = _axis_values(result.results)
    fig, ax = plt.subplots(figsize=(7, 5))
    rule = result.results[0].point.settings.rule if result.results else ""
    other = compare[0].get("rule", "v1") if compare else ""
    for i, k in enumerate(ks):
        before = sorted((m for m in compare if m["k"] == k), key=lambda m: m["min_silence_days"])
        if before:  # the compared run's points: hollow, same colour per k
            ax.plot(
                [m["median_delay_days"] or 0.0 for m in before],
                [m["false_alarm_share"] or 0.0 for m in before],
                marker="o", markerfacecolor="none", linestyle="--", color=f"C{i}", alpha=0.6,
                label=f"k={k:g}, rule {other}",
            )  # fmt: skip
        row = sorted((r for r in result.results if r.point.k == k), key=lambda r: r.point.min_silence_days)
        xs = [r.metrics["median_delay_days"] or 0.0 for r in row]
        ys = [r.metrics["false_alarm_share"] or 0.0 for r in row]
        ax.plot(
            xs,
            ys,
            marker="o",
            linestyle=":",
            color=f"C{i}",
            label=f"k={k:g}, rule {rule}" if compare else f"k={k:g}",
        )
        for r, x, y in zip(row, xs, ys, strict=True):
            caught = r.metrics["fades_caught_share"]
            missed = "" if caught is None or caught >= 1.0 else f", caught {caught:.2f}"
            ax.annotate(
                f"{r.point.min_silence_days:g}d{missed}",
                (x, y),
                textcoords="offset points",
                xytext=(6, 4 - 10 * i),
                fontsize=8,
            )
    ax.set_xlabel("median delay of caught fades (days)")
    ax.set_ylabel("false-alarm share (row active within 90 d of dormant_since)")
    ax.set_title(
        f"{title}: false alarms vs delay\n(labels: min silence; fades caught where below 1.00)", fontsize=10
    )
    ax.grid(alpha=0.3)
    ax.legend()
    return fig


def write_figures(
    result: BacktestResult, out_dir: Path, title: str, compare: Sequence[Mapping[str, Any]] = ()
) -> list[Path]:
    """Write the PNGs into `out_dir` (created) and return their paths.

    `compare`: the `settings` of another run's summary.json, drawn hollow in the
    trade-off figure (e.g. rule v1 under a rule-adaptive run).
    """
    out_dir.mkdir(parents=True, exist_ok=True)
    makers: dict[str, Callable[[BacktestResult, str], Figure]] = {
        "thresholds.png": _thresholds,
        "typical_gaps.png": _gaps,
        "alerts_per_owner_month.png": _volume,
        "tradeoff.png": lambda result, title: _tradeoff(result, title, compare),
    }
    if result.has_truth:
        makers["precision_recall.png"] = _precision_recall
    paths = []
    for name, make in makers.items():
        fig = make(result, title)
        fig.tight_layout()
        fig.savefig(out_dir / name, dpi=_DPI)
        plt.close(fig)
        paths.append(out_dir / name)
    return paths
