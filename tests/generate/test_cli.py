"""`python -m streams generate`: files, stdout, live start, Kafka hand-off and bad flags."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import orjson
import pytest

import streams.kafka_admin
from streams.__main__ import main
from streams.engine.events import decode_event

FLAGS = ["generate", "--users", "40", "--days", "40", "--seed", "5"]


def test_writes_events_and_truth(tmp_path: Path) -> None:
    """`--out` and `--truth` write JSON lines; the truth rows have the documented fields."""
    out, truth = tmp_path / "events.jsonl", tmp_path / "truth.jsonl"
    assert main([*FLAGS, "--out", str(out), "--truth", str(truth)]) == 0
    lines = out.read_bytes().splitlines()
    assert len(lines) > 500
    assert decode_event(lines[0]).ts >= 1_704_067_200_000
    rows = [orjson.loads(line) for line in truth.read_bytes().splitlines()]
    assert rows
    assert set(rows[0]) == {"owner", "contact", "silent_from", "silent_until", "reciprocal", "rhythm_ms"}


def test_stdout_matches_file(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """Without `--out` the same bytes go to stdout; a JSON report goes to stderr."""
    out = tmp_path / "events.jsonl"
    assert main([*FLAGS, "--out", str(out)]) == 0
    capsysbinary.readouterr()
    assert main(FLAGS) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == out.read_bytes()
    report = orjson.loads(captured.err)
    assert report["events"] == len(captured.out.splitlines())


def test_live_starts_at_wall_clock(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """`--live` starts the timeline now instead of 2024-01-01."""
    before = int(time.time()) * 1000
    assert main([*FLAGS, "--live"]) == 0
    first = decode_event(capsysbinary.readouterr().out.splitlines()[0])
    assert before <= first.ts < before + 2 * 86_400_000


def test_to_kafka_sends_every_event(
    monkeypatch: pytest.MonkeyPatch, capsysbinary: pytest.CaptureFixture[bytes]
) -> None:
    """`--to-kafka` hands every line to the producer (topic by type) and closes it; stdout stays empty."""
    sent: list[tuple[str, bytes | None, bytes]] = []
    state: dict[str, Any] = {}

    class Producer:
        def send(self, topic: str, key: bytes | None = None, value: bytes = b"") -> None:
            sent.append((topic, key, value))

        def flush(self) -> None:
            state["flushed"] = True

        def close(self) -> None:
            state["closed"] = True

    monkeypatch.setattr(streams.kafka_admin, "producer", lambda settings: Producer())
    assert main([*FLAGS, "--to-kafka"]) == 0
    captured = capsysbinary.readouterr()
    assert captured.out == b""
    assert len(sent) == orjson.loads(captured.err)["events"] > 500
    topic, key, value = sent[0]
    event = orjson.loads(value)
    assert topic == f"interactions.{event['type']}s"
    assert key == event["actor_id"].encode()
    assert state == {"flushed": True, "closed": True}


def test_bad_probability_is_rejected(capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """A probability outside [0, 1] exits 2 with a message."""
    assert main([*FLAGS, "--fade", "1.5"]) == 2
    assert b"fade" in capsysbinary.readouterr().err
