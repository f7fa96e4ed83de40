"""`streams replay` prints the summary with the largest watermark jump, so whoever runs a backfill sees an outlier."""

from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.__main__ import main
from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events

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


@pytest.mark.parametrize("engine", ["python", "compiled"])
def test_digests_are_written_with_the_alerts_and_the_erasures_taken_out(
    tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes], engine: str
) -> None:
    day = 86_400_000
    lines = [orjson.dumps(e) for e in itertools.islice(collegemsg_events(COLLEGEMSG), 20_000)]
    end = max(orjson.loads(line)["ts"] for line in lines)  # the replay's last watermark
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    erased, erased_at = "127", 1_083_690_000_000  # 2004-05-04 17:00 UTC
    erasures = tmp_path / "erasures.jsonl"
    erasures.write_bytes(orjson.dumps({"user_id": erased, "ts": erased_at}) + b"\n")
    out = tmp_path / "digests.jsonl"
    short = ["--min-touches", "3", "--min-silence-ms", str(day), "--max-silence-ms", str(7 * day)]
    args = ["replay", str(events), "--engine", engine, "--digests", str(out), "--digest-top", "2", *short]
    assert main([*args, "--erasures", str(erasures)]) == 0
    alerts = [orjson.loads(line) for line in capsysbinary.readouterr().out.splitlines()]
    digests = [orjson.loads(line) for line in out.read_bytes().splitlines()]

    def last_ms(alert: dict[str, Any]) -> int:
        return (alert["dormant_since"] // day + 1) * day - 1

    def digested(alert: dict[str, Any]) -> bool:
        names_erased = erased in (alert["owner_id"], alert["contact_id"])
        return (
            alert["kind"] == "dormant"
            and last_ms(alert) <= end
            and not (names_erased and last_ms(alert) >= erased_at)
        )

    assert any(
        erased in (a["owner_id"], a["contact_id"]) and a["dormant_since"] < erased_at <= last_ms(a)
        for a in alerts
    ), "an alert of the erasure's day fired before it applied: the digest must leave it out"
    expected = sorted(a["alert_id"] for a in alerts if digested(a))
    assert any(erased in alert_id.split(":")[1:3] for alert_id in expected), (
        "the erased user's earlier days stay"
    )
    listed = sorted(entry["alert_id"] for digest in digests for entry in digest["dormant"])
    assert set(listed) <= set(expected)
    assert len(listed) + sum(d["more"] for d in digests) == len(expected)
    assert all(1 <= len(d["dormant"]) <= 2 for d in digests)
    assert any(d["more"] for d in digests)
