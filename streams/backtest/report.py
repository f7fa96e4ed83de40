"""The text and JSON summaries of a backtest."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

from streams.backtest.runner import BacktestResult

__all__ = ["summary_dict", "summary_text"]

_COLUMNS = (
    ("setting", "label", "{:<16}"),
    ("dormant", "dormant_alerts", "{:>8}"),
    ("/owner-mo", "per_owner_month", "{:>10.3f}"),
    ("p99", "p99_per_owner_month", "{:>4}"),
    ("revived", "revived_share", "{:>8.1%}"),
    ("at-min", "at_min_silence_share", "{:>7.1%}"),
    ("false-al", "false_alarm_share", "{:>9.3f}"),
    ("fades", "fades", "{:>6}"),
    ("caught", "fades_caught_share", "{:>7.3f}"),
    ("delay d", "median_delay_days", "{:>8}"),
)
_TRUTH_COLUMNS = (("precision", "precision", "{:>10.3f}"), ("recall", "recall", "{:>7.3f}"))


def summary_dict(result: BacktestResult, source: str, figures: Sequence[Path]) -> dict[str, Any]:
    """JSON-ready summary: data profile, one entry per setting, figure paths."""
    return {
        "input": source,
        "data": result.profile.as_dict(),
        "seconds": round(result.seconds, 3),
        "has_truth": result.has_truth,
        "settings": [r.metrics for r in result.results],
        "figures": [str(path) for path in figures],
    }


def _cell(fmt: str, value: Any) -> str:
    if value is None:
        return fmt.replace(".3f", "").replace(".1%", "").format("-")
    return fmt.format(value)


def summary_text(result: BacktestResult, source: str) -> str:
    """A fixed-width table, one line per setting, with a header on the data."""
    data = result.profile.as_dict()
    lines = [
        f"backtest of {source}: {data['events']} events, {data['users']} users, "
        f"{data['span_days']} days; {len(result.results)} settings in {result.seconds:.1f} s; "
        f"rule {result.results[0].point.settings.rule if result.results else '-'}"
    ]
    columns = _COLUMNS + (_TRUTH_COLUMNS if result.has_truth else ())
    columns += (("thr p50 d", "threshold_days", "{:>10}"), ("gap p50 d", "typical_gap_days", "{:>10}"))
    header = [fmt.replace(".3f", "").replace(".1%", "").format(name) for name, _, fmt in columns]
    lines.append(" ".join(header))
    for r in result.results:
        cells = []
        for _, key, fmt in columns:
            value = r.metrics[key]
            cells.append(_cell(fmt, value["p50"] if isinstance(value, dict) else value))
        lines.append(" ".join(cells))
    if result.results:
        first = result.results[0].metrics
        lines.append(
            f"fades: {first['fades']} rows established whose last event leaves at least F = "
            f"{first['fade_days']} d of data after it (F is 90 d on data spanning under 365 d, else 180 d)"
        )
        lines.append(
            "false-al: share of dormant alerts whose row has an event within 90 d of dormant_since; "
            "caught: share of fades alerted for their last event; delay d: median for caught fades"
        )
    if result.has_truth and result.results:
        first = result.results[0].metrics
        lines.append(
            f"truth: {first['planted']} planted dormancies, {first['planted_detectable']} detectable "
            "(reciprocal, and silent at least max(3 x rhythm, 14 d) before revival or end of data)"
        )
    return "\n".join(lines) + "\n"
