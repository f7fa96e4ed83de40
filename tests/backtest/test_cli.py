"""`python -m streams backtest`: figures, text and JSON summaries, with and without truth."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.__main__ import main

PNG_MAGIC = b"\x89PNG\r\n\x1a\n"
GRID = ["--k", "2,3", "--min-silence-days", "14,21"]
FIGURES = {"thresholds.png", "typical_gaps.png", "alerts_per_owner_month.png", "tradeoff.png"}


def _summary(out_dir: Path) -> dict[str, Any]:
    loaded: dict[str, Any] = orjson.loads((out_dir / "summary.json").read_bytes())
    return loaded


def test_with_truth_writes_figures_and_scores(
    history: tuple[Path, Path], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """All five PNGs, summary.txt and summary.json; --json prints the same JSON with precision/recall."""
    events, truth = history
    out_dir = tmp_path / "out"
    assert (
        main(["backtest", str(events), "--truth", str(truth), "--out-dir", str(out_dir), "--json", *GRID])
        == 0
    )
    for name in [*FIGURES, "precision_recall.png"]:
        data = (out_dir / name).read_bytes()
        assert data.startswith(PNG_MAGIC), name
        assert len(data) < 300_000, name
    printed = orjson.loads(capsysbinary.readouterr().out)
    assert printed == _summary(out_dir)
    assert printed["has_truth"] is True
    assert printed["data"]["users"] == 80
    settings = printed["settings"]
    assert [s["label"] for s in settings] == ["k=2 min=14d", "k=2 min=21d", "k=3 min=14d", "k=3 min=21d"]
    for entry in settings:
        assert {
            "dormant_alerts",
            "per_owner_month",
            "revived_share",
            "threshold_days",
            "typical_gap_days",
            "false_alarm_share",
            "fades",
            "fades_caught_share",
            "median_delay_days",
        } <= set(entry)
        assert 0.0 <= entry["precision"] <= 1.0
        assert 0.0 <= entry["recall"] <= 1.0
        assert 0.0 <= entry["false_alarm_share"] <= 1.0
        assert entry["false_alarms"] <= entry["dormant_alerts"]
        assert 0 < entry["fades_caught"] <= entry["fades"]
        assert entry["fade_days"] == 90
        assert entry["median_delay_days"] >= entry["min_silence_days"]
        assert entry["threshold_days"]["p10"] >= entry["min_silence_days"]
    assert settings[0]["dormant_alerts"] >= settings[1]["dormant_alerts"]
    assert len({entry["fades"] for entry in settings}) == 1  # fades do not depend on the threshold
    assert b"precision" in (out_dir / "summary.txt").read_bytes()


def test_without_truth_text_summary(
    history: tuple[Path, Path], tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """No truth: four PNGs, no precision figure or columns, a text table on stdout with the fade figures."""
    events, _ = history
    out_dir = tmp_path / "out"
    assert (
        main(["backtest", str(events), "--out-dir", str(out_dir), "--k", "3", "--min-silence-days", "14"])
        == 0
    )
    assert {p.name for p in out_dir.glob("*.png")} == FIGURES
    text = capsysbinary.readouterr().out.decode()
    assert text == (out_dir / "summary.txt").read_text()
    assert "k=3 min=14d" in text
    assert "false-al" in text
    assert "precision" not in text
    summary = _summary(out_dir)
    assert summary["has_truth"] is False
    assert "precision" not in summary["settings"][0]


def test_jobs_do_not_change_results(history: tuple[Path, Path], tmp_path: Path) -> None:
    """Worker processes give the same measures as one process (replay seconds aside)."""
    events, truth = history
    results = []
    for jobs in ("1", "2"):
        out_dir = tmp_path / f"jobs{jobs}"
        assert (
            main(
                [
                    "backtest",
                    str(events),
                    "--truth",
                    str(truth),
                    "--out-dir",
                    str(out_dir),
                    "--jobs",
                    jobs,
                    *GRID,
                ]
            )
            == 0
        )
        settings = _summary(out_dir)["settings"]
        results.append([{k: v for k, v in s.items() if k != "replay_seconds"} for s in settings])
    assert results[0] == results[1]


def test_rule_adaptive_against_v1_in_one_tradeoff_figure(history: tuple[Path, Path], tmp_path: Path) -> None:
    """--rule picks the rule of every grid point; --compare draws another run's points in tradeoff.png."""
    events, _ = history
    v1_dir, adaptive_dir, alone_dir = tmp_path / "v1", tmp_path / "adaptive", tmp_path / "alone"
    assert main(["backtest", str(events), "--out-dir", str(v1_dir), *GRID]) == 0
    flags = ["backtest", str(events), "--rule", "adaptive", *GRID]
    assert main([*flags, "--out-dir", str(adaptive_dir), "--compare", str(v1_dir / "summary.json")]) == 0
    assert main([*flags, "--out-dir", str(alone_dir)]) == 0
    v1, adaptive = _summary(v1_dir)["settings"], _summary(adaptive_dir)["settings"]
    alone = _summary(alone_dir)["settings"]
    assert {s["rule"] for s in v1} == {"v1"}
    assert {s["rule"] for s in adaptive} == {"adaptive"}
    assert "rule adaptive" in (adaptive_dir / "summary.txt").read_text().splitlines()[0]
    for before, after in zip(v1, adaptive, strict=True):
        assert before["label"] == after["label"]
        assert after["dormant_alerts"] <= before["dormant_alerts"]  # later deadlines on the same rows
    assert sum(a["dormant_alerts"] for a in adaptive) < sum(b["dormant_alerts"] for b in v1)
    figure = (adaptive_dir / "tradeoff.png").read_bytes()
    assert figure.startswith(PNG_MAGIC)
    assert figure != (alone_dir / "tradeoff.png").read_bytes()  # the v1 points are in it
    untimed = [
        [{k: v for k, v in s.items() if k != "replay_seconds"} for s in run] for run in (adaptive, alone)
    ]
    assert untimed[0] == untimed[1]  # --compare changes only the figure
