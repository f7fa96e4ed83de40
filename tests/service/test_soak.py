"""Soak: bench/soak.py's verdict on made-up runs, and a short soak against the real broker judged by that verdict."""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.soak import DEFAULT_DRAIN_SECONDS, Events, Run, Sample, summarize
from streams.engine.events import decode_event
from tests.service.conftest import BROKER, REPO

RATE = 200
MINUTES = 1
# At 200 events/s RocksDB's memtables are still filling after a minute (measured: second-half slopes of
# 17 to 20 MB/min in three runs, ~1.5 KB per event), so the soak's 4 MB/min default would call that a leak. 30 MB/min
# (2.5 KB per event) still fails a worker that keeps more than that per event; `make soak` (3,000 events/s,
# 30 minutes) is the finer check.
MAX_SLOPE_MB_PER_MIN = 30


LIMITS = argparse.Namespace(max_slope=4.0, max_last_third_growth=0.10, drain_seconds=DEFAULT_DRAIN_SECONDS)


def made_up_run(rss_mb: list[float], produced: int = 1000, applied: int = 1000) -> Run:
    """A run sampled every 3 s with these RSS readings, whose worker applied `applied` events by the end."""
    run = Run(produced=produced, produce_seconds=3.0 * len(rss_mb))
    run.samples = [Sample(3.0 * n, rss, produced, applied) for n, rss in enumerate(rss_mb)]
    run.counters = {"relationships_events_applied_total": float(applied)}
    return run


def test_the_verdict_passes_a_run_that_kept_up_and_levelled_off() -> None:
    summary = summarize(made_up_run([100, 150, 200] + [230.0] * 17), 200, LIMITS)
    assert summary["failures"] == []
    assert (summary["kept_up"], summary["levelled_off"]) == (True, True)


def test_the_verdict_names_every_criterion_a_run_missed() -> None:
    behind = summarize(made_up_run([230.0] * 20, produced=1000, applied=999), 200, LIMITS)
    assert [f.split(":")[0] for f in behind["failures"]] == ["did not keep up"]
    assert behind["kept_up"] is False
    # 1 MB per 3 s sample is 20 MB/min, yet the last third grows only 6/243 (< 10 %): the slope catches it.
    slow_leak = summarize(made_up_run([230.0 + n for n in range(20)]), 200, LIMITS)
    assert slow_leak["failures"] == [
        "memory kept growing: second-half RSS slope 20.00 MB/min > --max-slope 4"
    ]
    # A steep rise at the end (9.2 MB per sample over the last 6) fails both memory criteria.
    jump = summarize(made_up_run([230.0] * 14 + [230.0 + 9.2 * n for n in range(1, 7)]), 200, LIMITS)
    assert jump["failures"] == [
        "memory kept growing: second-half RSS slope 132.70 MB/min > --max-slope 4",
        "memory kept growing: RSS grew 24.0% over the last third > --max-last-third-growth 10.0%",
    ]
    assert jump["levelled_off"] is False
    too_short = summarize(made_up_run([230.0] * 5), 200, LIMITS)
    assert too_short["failures"] == ["5 RSS samples, fewer than the 6 needed to judge memory"]


def test_soak_events_are_valid_distinct_and_between_two_users() -> None:
    """The verdict expects every produced event applied: none may be invalid, a duplicate or a self-interaction."""
    events = Events(users=300, contacts=5)
    decoded = [decode_event(events.next()) for _ in range(20_000)]
    assert len({e.id for e in decoded}) == len(decoded)
    assert all(e.actor != e.target for e in decoded)
    assert [e.ts for e in decoded] == sorted(e.ts for e in decoded)


@pytest.mark.broker
def test_soak_one_minute_keeps_up_and_rss_growth_stays_bounded(tmp_path: Path) -> None:
    summary_path = tmp_path / "soak.json"
    soak = str(REPO / "bench" / "soak.py")
    command = [sys.executable, soak, "--minutes", str(MINUTES), "--rate", str(RATE), "--sample-seconds", "3"]
    command += ["--max-slope", str(MAX_SLOPE_MB_PER_MIN), "--json", str(summary_path), "--broker", BROKER]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=900, check=False)
    assert done.returncode == 0, f"soak exit {done.returncode}: {done.stderr[-3000:]} {done.stdout[-2000:]}"
    summary = json.loads(summary_path.read_text())
    print(json.dumps(summary))
    # The verdict exit 0 stands for, restated from the summary; and the load really ran.
    assert summary["failures"] == [], summary
    assert summary["kept_up"], summary
    assert summary["levelled_off"], summary
    assert summary["events_applied"] == summary["events_produced"] >= 0.95 * RATE * 60 * MINUTES, summary
    assert summary["rss_growth_last_third"] <= summary["max_last_third_growth"] == 0.10, summary
    assert summary["max_slope_mb_per_min"] == MAX_SLOPE_MB_PER_MIN, summary
    assert summary["rss_slope_second_half_mb_per_min"] <= MAX_SLOPE_MB_PER_MIN, summary
    assert summary["samples"] >= 6, summary
