"""Retention in the service (`STREAMS_ROW_TTL_MS`): the replay's alerts, rows reclaimed with changelog tombstones."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.engine import RelationshipEngine
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.service.row_store import ROW_KEY_PREFIX
from streams.settings import DAY_MS, Settings
from tests.service.conftest import TopicSet, Worker, produce_lines, wait_for_alerts
from tests.service.test_faults import (
    ROWS_ON_DISK,
    assert_like_the_replay,
    by_alert_id,
    metric,
    read_to_end,
    wait_until,
)

pytestmark = pytest.mark.broker

ROW_TTL_MS = 20 * DAY_MS


@pytest.fixture(scope="module")
def lines() -> list[bytes]:
    return [orjson.dumps(event) for event in collegemsg_events(COLLEGEMSG)]


@pytest.fixture(scope="module")
def expected(lines: list[bytes]) -> tuple[dict[str, dict[str, Any]], ReplaySummary, int]:
    """The replay's alerts, its summary and how many rows it holds at the end."""
    settings = Settings(**REPLAY_DEFAULTS, row_ttl_ms=ROW_TTL_MS)
    summary = ReplaySummary()
    engine = RelationshipEngine(settings)
    alerts = list(replay(lines, settings, summary, engine=engine))
    return by_alert_id(alerts), summary, len(engine.rows)


def test_row_ttl_changes_the_alerts_of_collegemsg(
    lines: list[bytes], expected: tuple[dict[str, dict[str, Any]], ReplaySummary, int]
) -> None:
    """The precondition of the service test below: the setting matters on this data."""
    kept = by_alert_id(list(replay(lines, Settings(**REPLAY_DEFAULTS))))
    want, summary, rows = expected
    assert summary.rows_reclaimed > 10_000
    assert summary.rows_reset > 0
    assert rows < 27_676 // 2  # CollegeMsg's distinct rows
    assert want.keys() != kept.keys()


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_service_with_row_ttl_equals_the_replay_through_a_sigkill_and_writes_tombstones(
    guarantee: str,
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    lines: list[bytes],
    expected: tuple[dict[str, dict[str, Any]], ReplaySummary, int],
    tmp_path: Path,
) -> None:
    want, summary, rows = expected
    topic_set = topic_factory(3, row_ttl_ms=ROW_TTL_MS, processing_guarantee=guarantee, **ROWS_ON_DISK)
    data_dir = tmp_path / "kept"
    worker = worker_factory(topic_set, "before", data_dir=data_dir)
    produce_lines(topic_set, lines)
    wait_for_alerts(topic_set, len(want) // 2, settle_s=0)
    worker.kill()
    after = worker_factory(topic_set, "after", data_dir=data_dir)
    assert_like_the_replay(topic_set, want, [after])
    # the worker holds the rows the replay holds at the end: the others were reclaimed (gauged every 5 s)
    wait_until(lambda: metric(after, "relationships_rows") == rows, 30, f"the rows gauge at {rows}")

    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    changelog = [
        r
        for r in read_to_end(f"{topic_set.app_id}-rows-changelog", isolation)
        if r.key.startswith(ROW_KEY_PREFIX)
    ]
    tombstones = {r.key for r in changelog if r.value is None}
    assert len(tombstones) > summary.rows_reclaimed // 2
    latest: dict[bytes, bytes | None] = {}
    for record in changelog:
        latest[record.key] = record.value
    live = sum(1 for value in latest.values() if value is not None)
    assert live < len(latest) - summary.rows_reclaimed // 2
