"""exactly_once on the real broker: the replay's alerts, each once, with and without SIGKILL (cost: make bench-guarantees)."""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from tests.service.conftest import TopicSet, Worker, produce_lines
from tests.service.test_faults import (
    FAST,
    BackgroundProducer,
    assert_same_alerts,
    collegemsg_lines,
    metric,
    read_committed_alerts,
    repeated_ids,
    replay_alerts,
    serving,
    wait_for_ids,
    wait_until,
)

pytestmark = pytest.mark.broker

EOS = {"processing_guarantee": "exactly_once"}


@pytest.fixture(scope="module")
def prefix() -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    """20k CollegeMsg events and their replay alerts (FAST settings)."""
    lines = collegemsg_lines(20_000)
    return lines, replay_alerts(lines, **FAST)[0]


def test_exactly_once_run_matches_the_replay_without_repeats(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
) -> None:
    lines, want = prefix
    topic_set = topic_factory(3, **FAST, **EOS)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    produce_lines(topic_set, lines)
    alerts = wait_for_ids(topic_set, want, read=read_committed_alerts)
    assert_same_alerts(alerts, want)
    assert not repeated_ids(alerts)
    assert "TransactionManager" in worker.log_text()


def test_exactly_once_survives_sigkill_without_repeated_alerts(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    tmp_path: Path,
) -> None:
    lines, want = prefix
    topic_set = topic_factory(3, **FAST, **EOS)
    data_dir = tmp_path / "state"
    worker = worker_factory(topic_set, "before", data_dir=data_dir)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    producer = BackgroundProducer(topic_set, lines, chunks=10, pause_s=0.5).start()
    # SIGKILL in the middle of the work: some alerts committed, most events still to come.
    wait_until(
        lambda: (
            metric(worker, "relationships_events_applied_total") >= 0.3 * len(lines)
            and len(read_committed_alerts(topic_set)) > 0
        ),
        120,
        "30% of the events to be applied and some alerts committed",
        every_s=0.05,
    )
    worker.kill()
    assert 0 < len(read_committed_alerts(topic_set)) < len(want), "not killed in the middle of the work"
    worker_factory(topic_set, "after", data_dir=data_dir)
    producer.join()
    alerts = wait_for_ids(topic_set, want, read=read_committed_alerts)
    repeats = repeated_ids(alerts)
    assert not repeats, f"{len(repeats)} alert ids published more than once, e.g. {sorted(repeats)[:3]}"
    assert_same_alerts(alerts, want)
