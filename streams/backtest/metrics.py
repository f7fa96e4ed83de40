"""History-only measures: alert volume per owner-month, revival share, threshold and gap distributions."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Sequence
from typing import Any

from streams.backtest.digest import AlertDigest
from streams.backtest.profile import MONTH_MS, DataProfile
from streams.settings import DAY_MS, Settings

__all__ = ["distribution", "history_metrics", "percentile", "volume"]


def percentile(values: Sequence[float], share: float) -> float | None:
    """Nearest-rank percentile (`share` in [0, 1]) of unsorted values; None when empty."""
    if not values:
        return None
    ordered = sorted(values)
    rank = max(math.ceil(share * len(ordered)), 1)
    return ordered[rank - 1]


def distribution(values_ms: Sequence[int]) -> dict[str, float | None]:
    """p10, p50 and p90 in days (2 decimals)."""
    days = [value / DAY_MS for value in values_ms]
    out: dict[str, float | None] = {}
    for name, share in (("p10", 0.1), ("p50", 0.5), ("p90", 0.9)):
        value = percentile(days, share)
        out[name] = None if value is None else round(value, 2)
    return out


def volume(digest: AlertDigest, profile: DataProfile) -> dict[str, float | int]:
    """Dormant alerts per owner-month: mean over users x months, and p99/max over (owner, month) buckets."""
    buckets = Counter(
        (alert.owner, (alert.dormant_since - profile.first_ts) // MONTH_MS) for alert in digest.dormant
    )
    cells = max(profile.users, 1) * max(math.ceil(profile.months), 1)
    rank = math.ceil(0.99 * cells)
    nonzero = sorted(buckets.values())
    zeros = cells - len(nonzero)
    p99 = 0 if rank <= zeros else nonzero[rank - zeros - 1]
    mean = len(digest.dormant) / (max(profile.users, 1) * profile.months)
    return {
        "per_owner_month": round(mean, 4),
        "p99_per_owner_month": p99,
        "max_per_owner_month": max(nonzero, default=0),
    }


def history_metrics(digest: AlertDigest, profile: DataProfile, settings: Settings) -> dict[str, Any]:
    """Everything measurable without ground truth, for one setting."""
    dormant = digest.dormant
    count = len(dormant)
    thresholds = [alert.threshold_ms for alert in dormant]
    revived = sum(1 for alert in dormant if digest.was_revived(alert))
    return {
        "dormant_alerts": count,
        "revived_alerts": len(digest.revived),
        "rows_alerted": len({(alert.owner, alert.contact) for alert in dormant}),
        "owners_alerted": len({alert.owner for alert in dormant}),
        **volume(digest, profile),
        "revived_share": round(revived / count, 4) if count else None,
        "threshold_days": distribution(thresholds),
        "typical_gap_days": distribution([alert.typical_gap_ms for alert in dormant]),
        "at_min_silence_share": round(thresholds.count(settings.min_silence_ms) / count, 4)
        if count
        else None,
        "at_max_silence_share": round(thresholds.count(settings.max_silence_ms) / count, 4)
        if count
        else None,
    }
