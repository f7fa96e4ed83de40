"""The input going quiet until every partition is claimed idle, then coming back: the replay's alerts, none late."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from streams.service.records import decode_owner_record, source_name
from streams.service.topology import owner_updates_topic_name
from tests.service.conftest import TopicSet, Worker, produce_lines
from tests.service.test_faults import (
    FAST,
    assert_like_the_replay,
    collegemsg_lines,
    metric,
    read_to_end,
    replay_alerts,
    serving_worker,
    wait_until,
)

pytestmark = pytest.mark.broker


@pytest.fixture(scope="module")
def prefix() -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    """20k CollegeMsg events and their replay alerts (FAST settings)."""
    lines = collegemsg_lines(20_000)
    return lines, replay_alerts(lines, **FAST)[0]


def claimed_idle(topic_set: TopicSet) -> set[str]:
    """Input partitions whose last marker in every owner partition says idle (committed records under exactly_once)."""
    settings = topic_set.settings
    isolation = "read_committed" if settings.exactly_once else "read_uncommitted"
    last: dict[tuple[int, str], bool] = {}
    for record in read_to_end(owner_updates_topic_name(settings), isolation):
        for source, (_max_ts, idle) in decode_owner_record(record.value).markers.items():
            last[(record.partition, source)] = idle
    owner_partitions = range(topic_set.partitions)
    sources = {source for _, source in last}
    return {source for source in sources if all(last.get((p, source)) for p in owner_partitions)}


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_input_back_after_every_partition_was_claimed_idle_gives_the_replays_alerts_and_nothing_late(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    guarantee: str,
) -> None:
    """What the broker-outage test met by chance (docs/guarantees.md, "Broker outage"), every time.

    Under exactly_once a batch's input partitions go in records of their own; read
    before its own record, the others' markers moved the watermark past the updates
    of a partition still claimed idle, which were then applied late.
    """
    lines, want = prefix
    topic_set, worker = serving_worker(topic_factory, worker_factory, None, "w1", guarantee)
    half = len(lines) // 2
    produce_lines(topic_set, lines[:half])
    inputs = {
        source_name(t, p) for t in topic_set.settings.input_topics() for p in range(topic_set.partitions)
    }
    wait_until(
        lambda: inputs <= claimed_idle(topic_set), 120, "every input partition to be claimed idle", 1.0
    )
    produce_lines(topic_set, lines[half:])
    assert_like_the_replay(topic_set, want, [worker])
    # The replay has no late event; the service, fed the same lines, must not have one either.
    assert metric(worker, "relationships_late_events_total") == 0
