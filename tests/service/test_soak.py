"""Soak (short): bench/soak.py at a modest rate against the real broker, judged by its own verdict."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.conftest import BROKER, REPO

pytestmark = pytest.mark.broker


def test_soak_one_minute_rss_levels_off(tmp_path: Path) -> None:
    summary_path = tmp_path / "soak.json"
    command = [sys.executable, str(REPO / "bench" / "soak.py"), "--minutes", "1", "--rate", "200"]
    command += ["--sample-seconds", "3", "--json", str(summary_path), "--broker", BROKER]
    done = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=240, check=False)
    assert summary_path.exists(), f"exit {done.returncode}: {done.stdout[-1000:]} {done.stderr[-2000:]}"
    summary = json.loads(summary_path.read_text())
    print(json.dumps(summary))
    # Kept up with the input (counted when production stops: at most ~6 s behind at 200 events/s on a
    # shared 2-core machine), and memory is not running away: the last third grows < 10%.
    assert summary["events_applied"] >= 0.90 * summary["events_produced"], summary
    assert summary["rss_growth_last_third"] < 0.10, summary
