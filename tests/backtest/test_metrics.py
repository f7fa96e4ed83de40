"""History measures: percentiles, per owner-month volume, revival share, clamp shares."""

from __future__ import annotations

from streams.backtest.digest import AlertDigest
from streams.backtest.metrics import distribution, history_metrics, percentile, volume
from streams.backtest.profile import MONTH_MS, DataProfile, profile_lines
from streams.replay import REPLAY_DEFAULTS
from streams.settings import DAY_MS, Settings

T0 = 1_700_000_000_000


def _alert(kind: str, owner: str, contact: str, since: int, threshold: int) -> dict[str, object]:
    return {
        "kind": kind, "owner_id": owner, "contact_id": contact, "last_interaction_at": since - threshold,
        "dormant_since": since,
        "threshold_ms": threshold, "typical_gap_ms": threshold // 3,
    }  # fmt: skip


def test_percentile_nearest_rank() -> None:
    """Nearest rank: p50 of 1..4 is 2, p90 is 4; empty gives None."""
    assert percentile([4, 1, 3, 2], 0.5) == 2
    assert percentile([4, 1, 3, 2], 0.9) == 4
    assert percentile([], 0.5) is None
    assert distribution([DAY_MS, 3 * DAY_MS]) == {"p10": 1.0, "p50": 1.0, "p90": 3.0}


def test_volume_per_owner_month() -> None:
    """Mean over users x months; p99 and max over (owner, month) buckets including empty ones."""
    profile = DataProfile(events=10, users=100, first_ts=T0, last_ts=T0 + 2 * MONTH_MS)
    digest = AlertDigest.collect(
        [_alert("dormant", "a", f"c{i}", T0 + i, 14 * DAY_MS) for i in range(5)]
        + [_alert("dormant", "b", "c", T0 + MONTH_MS, 14 * DAY_MS)]
        + [_alert("dormant", "c", f"d{i}", T0 + i, 14 * DAY_MS) for i in range(2)]
    )
    measured = volume(digest, profile)
    # 200 buckets: 197 empty, then 1, 2, 5: the 198th smallest is the p99
    assert measured["per_owner_month"] == 0.04
    assert measured["max_per_owner_month"] == 5
    assert measured["p99_per_owner_month"] == 1


def test_revived_share_and_clamps() -> None:
    """A dormant alert counts as revived only with a `revived` alert of the same row and episode."""
    settings = Settings(**REPLAY_DEFAULTS)
    floor = settings.min_silence_ms
    digest = AlertDigest.collect(
        [
            _alert("dormant", "a", "b", T0, floor),
            _alert("dormant", "a", "c", T0, floor),
            _alert("dormant", "a", "d", T0, 20 * DAY_MS),
            _alert("dormant", "b", "a", T0, settings.max_silence_ms),
            _alert("revived", "a", "b", T0, floor),
            _alert("revived", "a", "c", T0 + 1, floor),
        ]
    )
    profile = DataProfile(events=10, users=4, first_ts=T0, last_ts=T0 + MONTH_MS)
    measured = history_metrics(digest, profile, settings)
    assert measured["dormant_alerts"] == 4
    assert measured["revived_alerts"] == 2
    assert measured["revived_share"] == 0.25
    assert measured["owners_alerted"] == 2
    assert measured["rows_alerted"] == 4
    assert measured["at_min_silence_share"] == 0.5
    assert measured["at_max_silence_share"] == 0.25


def test_profile_skips_invalid_lines() -> None:
    """The profile counts valid events, distinct users and the time span."""
    lines = [
        b'{"id":"1","type":"like","actor_id":"a","target_id":"b","ts":1700000000000}',
        b"not json",
        b"",
        b'{"id":"2","type":"reply","actor_id":"c","target_id":"a","ts":1700000100000}',
    ]
    assert profile_lines(lines) == DataProfile(2, 3, 1_700_000_000_000, 1_700_000_100_000)
