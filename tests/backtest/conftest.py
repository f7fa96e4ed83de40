"""Fixtures of the backtest tests: a clean environment and a small generated history on disk."""

from __future__ import annotations

from pathlib import Path

import orjson
import pytest

from streams.generate import GeneratorConfig, generate


@pytest.fixture(scope="module")
def history(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path]:
    """A generated events file (80 users, 120 days) and its truth file."""
    folder = tmp_path_factory.mktemp("history")
    stream = generate(GeneratorConfig(users=80, days=120, seed=3))
    events, truth = folder / "events.jsonl", folder / "truth.jsonl"
    events.write_bytes(b"\n".join(stream.lines) + b"\n")
    truth.write_bytes(b"".join(orjson.dumps(row) + b"\n" for row in stream.truth))
    return events, truth
