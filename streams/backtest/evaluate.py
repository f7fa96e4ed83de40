"""One grid point: replay the history under its settings and measure the alerts."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from streams.backtest.digest import AlertDigest, DormantAlert
from streams.backtest.grid import GridPoint
from streams.backtest.metrics import history_metrics
from streams.backtest.profile import DataProfile
from streams.backtest.truth import PlantedDormancy, score
from streams.replay import ReplaySummary, replay

__all__ = ["SettingResult", "evaluate"]


@dataclass(slots=True)
class SettingResult:
    """The measures of one setting, its dormant alerts, and the raw thresholds and gaps the plots need."""

    point: GridPoint
    metrics: dict[str, Any]
    thresholds_ms: list[int] = field(default_factory=list)
    gaps_ms: list[int] = field(default_factory=list)
    dormant: list[DormantAlert] = field(default_factory=list)


def evaluate(
    lines: Sequence[bytes],
    point: GridPoint,
    profile: DataProfile,
    truth: Sequence[PlantedDormancy] | None = None,
) -> SettingResult:
    """Replay `lines` with `point.settings` through the engine; score against `truth` when given."""
    summary = ReplaySummary()
    digest = AlertDigest.collect(replay(lines, point.settings, summary))
    metrics: dict[str, Any] = {
        "label": point.label,
        "k": point.k,
        "min_silence_days": point.min_silence_days,
        "rule": point.settings.rule,
        **history_metrics(digest, profile, point.settings),
    }
    if truth is not None:
        metrics.update(score(digest.dormant, truth, profile.last_ts, point.settings.require_mutual))
    metrics["replay_seconds"] = round(summary.seconds, 3)
    return SettingResult(
        point,
        metrics,
        [alert.threshold_ms for alert in digest.dormant],
        [alert.typical_gap_ms for alert in digest.dormant],
        digest.dormant,
    )
