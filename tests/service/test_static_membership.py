"""Static membership (`STREAMS_INSTANCE_ID`): a worker restarted within the session timeout causes no rebalance."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import pytest

from streams.service.app import create_app
from streams.settings import Settings
from tests.service.conftest import TopicSet, Worker, metric_samples, stable_members


def test_the_instance_id_is_the_consumers_group_instance_id() -> None:
    assert create_app(Settings(instance_id="relationships-worker-0")).conf.consumer_group_instance_id == (
        "relationships-worker-0"
    )
    assert create_app(Settings()).conf.consumer_group_instance_id is None


def _rebalances(worker: Worker) -> float:
    """`relationships_rebalances_total` as the worker's /metrics reports it."""
    samples = metric_samples(worker)
    assert "relationships_rebalances_total" in samples, "no relationships_rebalances_total"
    return samples["relationships_rebalances_total"]


def _holds_partitions(worker: Worker) -> bool:
    """The worker reports consumer lag for partitions assigned to it (refreshed every few seconds)."""
    return any(series.startswith("relationships_consumer_lag_records{") for series in metric_samples(worker))


def _wait(predicate: Callable[[], bool], what: str, timeout_s: float = 90.0) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except OSError:  # web port not up yet
            pass
        time.sleep(0.5)
    raise AssertionError(f"timed out waiting for {what}")


def _instance_ids(app_id: str) -> list[str]:
    return sorted(member["group_instance_id"] for member in stable_members(app_id))


@pytest.mark.broker
def test_a_static_member_killed_and_restarted_within_the_session_timeout_causes_no_rebalance(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker], tmp_path: Path
) -> None:
    """Two static members; one is SIGKILLed and comes back as the same pod would (same id, port, volume).

    The other one sees no rebalance: with dynamic membership the restart is a leave
    (after the session timeout) and a join, two rebalances for every member.
    """
    topic_set = topic_factory(4, session_timeout_ms=60_000)
    first = worker_factory(topic_set, name="w0")
    first.env["STREAMS_INSTANCE_ID"] = "worker-0"
    first.stop()
    first.start()
    second = worker_factory(topic_set, name="w1")
    second.env["STREAMS_INSTANCE_ID"] = "worker-1"
    second.stop()
    second.start()
    _wait(lambda: _instance_ids(topic_set.app_id) == ["worker-0", "worker-1"], "both static members")
    _wait(lambda: _holds_partitions(first) and _holds_partitions(second), "both workers assigned")
    time.sleep(5)  # nothing else moves
    seen = _rebalances(first)

    second.kill()
    again = Worker("w1-again", second.env, tmp_path / "w1-again.log", web_port=second.web_port).start()
    try:
        _wait(lambda: _holds_partitions(again), "the restarted worker to get its partitions back")
        assert _instance_ids(topic_set.app_id) == ["worker-0", "worker-1"]
        time.sleep(5)
        assert _rebalances(first) == seen, "the other member saw a rebalance"
    finally:
        again.stop()
