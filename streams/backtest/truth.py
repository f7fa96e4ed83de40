"""Ground truth of generated data: planted dormancies, which are detectable, and precision/recall."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any, NamedTuple

import orjson

from streams.backtest.digest import DormantAlert
from streams.engine.rules import Rules
from streams.settings import DAY_MS, Settings

__all__ = ["PlantedDormancy", "load_truth", "reference_threshold", "score"]

_REFERENCE = Rules(Settings(k=3.0, min_silence_ms=14 * DAY_MS, max_silence_ms=90 * DAY_MS))
"""SPEC-default threshold arithmetic (k = 3, 14 to 90 days), whatever setting is being scored."""


class PlantedDormancy(NamedTuple):
    """The pair stops interacting at `silent_from` and interacts again at `silent_until` (None: never)."""

    owner: str
    contact: str
    silent_from: int
    silent_until: int | None
    reciprocal: bool = True
    rhythm_ms: int = 0

    def silence_ms(self, end_ts: int) -> int:
        """Silence since the pair's last interaction (`silent_from - 1`), up to the revival or `end_ts`."""
        until = self.silent_until if self.silent_until is not None else end_ts
        return until - (self.silent_from - 1)


def load_truth(path: Path) -> list[PlantedDormancy]:
    """Read a truth JSONL file (`generate --truth`); `reciprocal` defaults to true, `rhythm_ms` to 0."""
    planted = []
    for line in path.read_bytes().splitlines():
        if line.strip():
            row: dict[str, Any] = orjson.loads(line)
            reciprocal, rhythm = bool(row.get("reciprocal", True)), int(row.get("rhythm_ms", 0))
            planted.append(
                PlantedDormancy(
                    row["owner"], row["contact"], row["silent_from"], row["silent_until"], reciprocal, rhythm
                )
            )
    return planted


def reference_threshold(rhythm_ms: int) -> int:
    """`min(max(3 x rhythm, 14 d), 90 d)`: how long a silence must last to count as detectable."""
    return _REFERENCE.threshold([rhythm_ms])


def detectable(planted: PlantedDormancy, end_ts: int, require_mutual: bool) -> bool:
    """Reciprocal (when mutual ties are required) and silent at least the reference threshold in the data."""
    if require_mutual and not planted.reciprocal:
        return False
    return planted.silence_ms(end_ts) >= reference_threshold(planted.rhythm_ms)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def score(
    alerts: Sequence[DormantAlert], planted: Iterable[PlantedDormancy], end_ts: int, require_mutual: bool
) -> dict[str, Any]:
    """Hits, precision and recall of dormant alerts against the planted dormancies (see docs/backtest.md)."""
    windows: dict[tuple[str, str], list[tuple[int, int, int]]] = defaultdict(list)
    truth = list(planted)
    for index, row in enumerate(truth):
        until = row.silent_until if row.silent_until is not None else end_ts
        windows[_pair(row.owner, row.contact)].append((row.silent_from, until, index))
    hits, detected = 0, set()
    for alert in alerts:
        candidates = windows.get(_pair(alert.owner, alert.contact), [])
        matched = [i for lo, hi, i in candidates if lo <= alert.dormant_since <= hi]
        hits += bool(matched)
        detected.update(matched)
    eligible = [i for i, row in enumerate(truth) if detectable(row, end_ts, require_mutual)]
    found = sum(1 for i in eligible if i in detected)
    return {
        "hits": hits,
        "precision": round(hits / len(alerts), 4) if alerts else None,
        "planted": len(truth),
        "planted_detectable": len(eligible),
        "planted_detected": len(detected),
        "recall": round(found / len(eligible), 4) if eligible else None,
    }
