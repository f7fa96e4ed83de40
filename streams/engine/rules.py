"""SPEC §2-3 arithmetic: strength decay, established, typical gap, threshold and deadline."""

from __future__ import annotations

import math

from streams.engine.row import Row
from streams.settings import Settings

__all__ = ["Rules"]


class Rules:
    """The settings a row's arithmetic needs, pre-computed once.

    >>> rules = Rules(Settings())
    >>> rules.threshold([86_400_000] * 4)
    1209600000
    """

    __slots__ = (
        "adaptive",
        "dedup_window",
        "gap_window",
        "half_life",
        "k",
        "max_silence",
        "min_silence",
        "min_touches",
        "require_mutual",
        "touch_merge",
        "weights",
    )

    def __init__(self, settings: Settings) -> None:
        self.weights = settings.weights()
        self.half_life = float(settings.half_life_ms)
        self.touch_merge = settings.touch_merge_ms
        self.gap_window = settings.gap_window
        self.min_touches = settings.min_touches
        self.require_mutual = settings.require_mutual
        self.k = settings.k
        self.adaptive = settings.rule == "adaptive"
        self.min_silence = settings.min_silence_ms
        self.max_silence = settings.max_silence_ms
        self.dedup_window = settings.dedup_window_ms

    def decay(self, elapsed_ms: int) -> float:
        """The factor `2^(-elapsed / half_life)`."""
        return math.exp2(-elapsed_ms / self.half_life)

    def established(self, row: Row) -> bool:
        """`touches >= min_touches` and, if required, one interaction each way."""
        if row.touches < self.min_touches:
            return False
        if not self.require_mutual:
            return True
        counts = row.counts
        return (counts[0] or counts[1] or counts[2]) != 0 and (counts[3] or counts[4] or counts[5]) != 0

    @staticmethod
    def typical_gap(gaps: list[int]) -> float:
        """Median of the gap history (as `statistics.median`); 0 when there is none (`min_touches` 1)."""
        count = len(gaps)
        if count == 0:
            return 0
        ordered = sorted(gaps)
        middle = count // 2
        if count % 2:
            return ordered[middle]
        return (ordered[middle - 1] + ordered[middle]) / 2

    def threshold(self, gaps: list[int]) -> int:
        """`floor(min(max(k * typical_gap, min_silence), max_silence))` in whole ms (rule `v1`).

        Rule `adaptive` (docs/semantics.md §3) takes the larger of `k *
        typical_gap` and the longest of the `n` kept gaps doubled, shrunk
        towards `min_silence` as if it had been seen twice more:
        `(n * 2 * max(gaps) + 2 * min_silence) // (n + 2)`; then the same clamp.

        >>> Rules(Settings(rule="adaptive")).threshold([86_400_000] * 3 + [20 * 86_400_000])
        2707200000
        """
        scaled = self.k * self.typical_gap(gaps)
        if self.adaptive:
            count = len(gaps)
            spread = (count * 2 * max(gaps, default=0) + 2 * self.min_silence) // (count + 2)
            scaled = max(scaled, spread)
        return math.floor(min(max(scaled, self.min_silence), self.max_silence))

    def deadline(self, row: Row) -> int | None:
        """`last_at + threshold` for an established row, else None."""
        if not self.established(row):
            return None
        threshold = row.cached_threshold
        if threshold is None:
            threshold = row.cached_threshold = self.threshold(row.gaps)
        return row.last_at + threshold
