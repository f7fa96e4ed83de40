"""When an owner partition writes a checkpoint: on time, on many changed rows, on a heartbeat with work."""

from __future__ import annotations

import time
from types import SimpleNamespace
from typing import Any

from streams.service.relationships import OwnerPartitions
from streams.settings import Settings


def due(
    dirty: int, heartbeat: bool, held_alerts: int = 0, elapsed_ms: float = 0, replaying: bool = False
) -> bool:
    part = SimpleNamespace(partition=0, dirty=lambda: dirty, replaying=lambda: replaying)
    partitions: Any = SimpleNamespace(
        settings=Settings(checkpoint_interval_ms=500, checkpoint_max_rows=100),
        delivery=SimpleNamespace(has_unsent_alerts=lambda partition: partition == 0 and held_alerts > 0),
        checkpointed_at={0: time.monotonic() - elapsed_ms / 1000},
    )
    return OwnerPartitions.checkpoint_due(partitions, part, heartbeat)  # type: ignore[arg-type]


def test_a_bare_heartbeat_waits_for_the_interval() -> None:
    assert not due(dirty=0, heartbeat=True)
    assert due(dirty=0, heartbeat=True, elapsed_ms=600)


def test_a_heartbeat_with_changed_rows_or_held_alerts_checkpoints_at_once() -> None:
    assert due(dirty=1, heartbeat=True)
    assert due(dirty=0, heartbeat=True, held_alerts=1)
    assert not due(dirty=1, heartbeat=False)


def test_many_changed_rows_checkpoint_at_once_and_re_handling_never_does() -> None:
    assert due(dirty=100, heartbeat=False)
    assert not due(dirty=100, heartbeat=True, elapsed_ms=600, replaying=True)
