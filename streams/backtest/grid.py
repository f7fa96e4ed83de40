"""The settings grid: every combination of `k` and minimum silence over one base `Settings`."""

from __future__ import annotations

import itertools
from dataclasses import dataclass

from streams.settings import DAY_MS, Settings

__all__ = ["DEFAULT_K", "DEFAULT_MIN_SILENCE_DAYS", "GridPoint", "make_grid", "parse_numbers"]

DEFAULT_K = (2.0, 3.0, 4.0)
DEFAULT_MIN_SILENCE_DAYS = (7.0, 14.0, 21.0)


@dataclass(frozen=True, slots=True)
class GridPoint:
    """One setting of the grid: its label, the two varied values and the full settings."""

    label: str
    k: float
    min_silence_days: float
    settings: Settings


def _short(value: float) -> str:
    return f"{value:g}"


def parse_numbers(text: str) -> tuple[float, ...]:
    """`"2,3,4"` -> `(2.0, 3.0, 4.0)`; each value must be positive."""
    values = tuple(float(part) for part in text.split(",") if part.strip())
    if not values or any(value <= 0 for value in values):
        raise ValueError(f"expected positive comma-separated numbers: {text!r}")
    return values


def make_grid(base: Settings, ks: tuple[float, ...], min_silence_days: tuple[float, ...]) -> list[GridPoint]:
    """The cartesian product, `k` outer, min silence inner; other settings come from `base`."""
    points = []
    for k, days in itertools.product(ks, min_silence_days):
        settings = base.model_copy(update={"k": k, "min_silence_ms": round(days * DAY_MS)})
        points.append(GridPoint(f"k={_short(k)} min={_short(days)}d", k, days, settings))
    return points
