"""`streams replay` prints the summary with the largest watermark jump, so whoever runs a backfill sees an outlier."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.__main__ import main

T0 = 1_700_000_000_000
YEAR_MS = 365 * 86_400_000


def test_the_summary_reports_the_largest_watermark_jump_and_the_late_events(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    times = [T0, T0 + 60_000, T0 + YEAR_MS, T0 + 120_000, T0 + 180_000]
    path = tmp_path / "events.jsonl"
    path.write_bytes(
        b"".join(
            orjson.dumps({"id": f"e{i}", "type": "like", "actor_id": "a", "target_id": "b", "ts": ts}) + b"\n"
            for i, ts in enumerate(times)
        )
    )
    assert main(["replay", str(path)]) == 0
    summary = orjson.loads(capsysbinary.readouterr().err)
    assert summary["watermark_max_jump_ms"] == YEAR_MS - 60_000
    assert summary["late"] == 2
