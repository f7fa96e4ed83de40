"""Every command runs with the garbage-collector thresholds of a row-heavy process."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.__main__ import main
from streams.gc_tuning import ROW_HEAVY_THRESHOLDS


@pytest.fixture
def restored_thresholds() -> Iterator[None]:
    before = gc.get_threshold()
    yield
    gc.set_threshold(*before)


@pytest.mark.usefixtures("restored_thresholds")
def test_the_command_line_sets_the_row_heavy_thresholds(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    gc.set_threshold(700, 10, 10)
    events = tmp_path / "events.jsonl"
    events.write_text('{"id":"e1","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}\n')
    assert main(["replay", str(events)]) == 0
    assert gc.get_threshold() == ROW_HEAVY_THRESHOLDS
    assert capsys.readouterr().err  # the replay's summary
