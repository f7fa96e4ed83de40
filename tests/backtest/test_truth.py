"""Matching dormant alerts to planted dormancies: windows, directions, detectability, ratios."""

from __future__ import annotations

from pathlib import Path

from streams.backtest.digest import DormantAlert
from streams.backtest.truth import PlantedDormancy, detectable, load_truth, reference_threshold, score
from streams.settings import DAY_MS

T0 = 1_700_000_000_000
END = T0 + 200 * DAY_MS
PLANTED = PlantedDormancy("a", "b", T0, T0 + 60 * DAY_MS, True, DAY_MS)


def _alert(owner: str, contact: str, since: int) -> DormantAlert:
    return DormantAlert(owner, contact, since - 14 * DAY_MS, since, 14 * DAY_MS, DAY_MS)


def test_hit_inside_window_either_direction() -> None:
    """Alerts of both rows of the pair inside the window are hits; the dormancy counts once."""
    alerts = [_alert("a", "b", T0 + 14 * DAY_MS), _alert("b", "a", T0 + 14 * DAY_MS)]
    result = score(alerts, [PLANTED], END, require_mutual=True)
    assert result["hits"] == 2
    assert result["precision"] == 1.0
    assert result["planted_detected"] == 1
    assert result["recall"] == 1.0


def test_window_bounds_are_inclusive() -> None:
    """`dormant_since` equal to `silent_from` or `silent_until` matches; one ms outside does not."""
    inside = [_alert("a", "b", T0), _alert("a", "b", T0 + 60 * DAY_MS)]
    outside = [_alert("a", "b", T0 - 1), _alert("a", "b", T0 + 60 * DAY_MS + 1)]
    assert score(inside, [PLANTED], END, True)["hits"] == 2
    assert score(outside, [PLANTED], END, True)["hits"] == 0


def test_other_pair_is_not_a_hit() -> None:
    """An alert on another pair is a false alarm: precision 0, recall 0."""
    result = score([_alert("a", "c", T0 + 20 * DAY_MS)], [PLANTED], END, True)
    assert result["precision"] == 0.0
    assert result["recall"] == 0.0


def test_open_silence_runs_to_end_of_data() -> None:
    """With `silent_until` null the window ends at the end of data."""
    open_ended = PLANTED._replace(silent_until=None)
    assert score([_alert("a", "b", END)], [open_ended], END, True)["hits"] == 1
    assert score([_alert("a", "b", END + 1)], [open_ended], END, True)["hits"] == 0


def test_detectability() -> None:
    """One-sided ties need `require_mutual` off; the silence must reach the reference threshold."""
    assert reference_threshold(DAY_MS) == 14 * DAY_MS
    assert reference_threshold(10 * DAY_MS) == 30 * DAY_MS
    assert detectable(PLANTED, END, require_mutual=True)
    one_sided = PLANTED._replace(reciprocal=False)
    assert not detectable(one_sided, END, require_mutual=True)
    assert detectable(one_sided, END, require_mutual=False)
    short = PLANTED._replace(silent_until=T0 + 14 * DAY_MS - 2)
    assert not detectable(short, END, True)
    assert detectable(short._replace(silent_until=T0 + 14 * DAY_MS - 1), END, True)
    truncated = PLANTED._replace(silent_until=None)
    assert not detectable(truncated, T0 + 10 * DAY_MS, True)


def test_undetectable_are_left_out_of_recall() -> None:
    """Recall divides by detectable dormancies only; no alerts means precision None."""
    result = score([], [PLANTED, PLANTED._replace(owner="x", reciprocal=False)], END, True)
    assert result["planted"] == 2
    assert result["planted_detectable"] == 1
    assert result["recall"] == 0.0
    assert result["precision"] is None


def test_load_truth_defaults(tmp_path: Path) -> None:
    """A minimal truth row (four fields) loads as reciprocal with rhythm 0."""
    path = tmp_path / "truth.jsonl"
    path.write_text('{"owner": "a", "contact": "b", "silent_from": 5, "silent_until": null}\n\n')
    assert load_truth(path) == [PlantedDormancy("a", "b", 5, None, True, 0)]
