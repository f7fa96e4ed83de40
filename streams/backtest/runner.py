"""Run the whole grid over one file, in worker processes when asked."""

from __future__ import annotations

import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from streams.backtest.evaluate import SettingResult, evaluate
from streams.backtest.fades import fade_figures, row_histories
from streams.backtest.grid import GridPoint
from streams.backtest.profile import DataProfile, profile_events, valid_events
from streams.backtest.truth import PlantedDormancy

__all__ = ["BacktestResult", "read_lines", "run_backtest"]


@dataclass(slots=True)
class BacktestResult:
    """The data profile, one result per grid point (grid order), and the wall time of the run."""

    profile: DataProfile
    results: list[SettingResult]
    seconds: float
    has_truth: bool


def read_lines(path: Path) -> list[bytes]:
    """The file's lines, without line ends."""
    return path.read_bytes().splitlines()


def _evaluate_file(
    path: Path, point: GridPoint, profile: DataProfile, truth: Sequence[PlantedDormancy] | None
) -> SettingResult:
    return evaluate(read_lines(path), point, profile, truth)


def run_backtest(
    lines: Sequence[bytes],
    points: Sequence[GridPoint],
    truth: Sequence[PlantedDormancy] | None = None,
    jobs: int = 1,
    path: Path | None = None,
) -> BacktestResult:
    """Evaluate every point; with `jobs > 1` and a `path`, each worker process re-reads the file.

    Fades are found once, under the first point's settings: the grid varies only
    the threshold, never what makes a row established.
    """
    started = time.perf_counter()
    events = list(valid_events(lines))
    profile = profile_events(events)
    rows = row_histories(events, points[0].settings) if points else {}
    del events
    if jobs > 1 and path is not None and len(points) > 1:
        with ProcessPoolExecutor(max_workers=min(jobs, len(points))) as pool:
            futures = [pool.submit(_evaluate_file, path, point, profile, truth) for point in points]
            results = [future.result() for future in futures]
    else:
        results = [evaluate(lines, point, profile, truth) for point in points]
    for result in results:
        seconds = result.metrics.pop("replay_seconds")
        result.metrics.update(fade_figures(rows, result.dormant, profile.first_ts, profile.last_ts))
        result.metrics["replay_seconds"] = seconds
    return BacktestResult(profile, results, time.perf_counter() - started, truth is not None)
