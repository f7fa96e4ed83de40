"""The daily cycle: people act in the day and evening of their local time, rarely at night."""

from __future__ import annotations

import random

from streams.generate.config import MINUTE_MS
from streams.settings import DAY_MS, HOUR_MS

__all__ = ["HOUR_WEIGHTS", "in_waking_hours"]

HOUR_WEIGHTS: tuple[float, ...] = (
    0.25, 0.12, 0.06, 0.04, 0.04, 0.08,  # 00-05
    0.2, 0.45, 0.7, 0.8, 0.85, 0.9,  # 06-11
    1.0, 0.95, 0.85, 0.8, 0.8, 0.85,  # 12-17
    0.9, 0.95, 1.0, 1.0, 0.85, 0.5,  # 18-23
)  # fmt: skip
"""Relative activity per local hour (max 1)."""

_MAX_TRIES = 48


def in_waking_hours(rng: random.Random, ts: int, offset_ms: int) -> int:
    """Move `ts` forward (by 20-120 min steps) until a draw against the local hour's weight accepts it."""
    for _ in range(_MAX_TRIES):
        hour = (ts + offset_ms) % DAY_MS // HOUR_MS
        if rng.random() < HOUR_WEIGHTS[hour]:
            return ts
        ts += rng.randint(20 * MINUTE_MS, 120 * MINUTE_MS)
    return ts
