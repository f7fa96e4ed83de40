"""Replication factor 3, min ISR 2: a broker SIGKILLed mid-stream costs no alert (three-broker cluster)."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient
from kafka.admin import ConfigResource, ConfigResourceType

from streams.kafka_admin import bootstrap_servers, topic_plan
from streams.settings import Settings
from tests.cluster.conftest import cluster_sh
from tests.service.conftest import TopicSet, Worker
from tests.service.test_faults import (
    FAST,
    BackgroundProducer,
    alive,
    assert_like_the_replay,
    collegemsg_lines,
    consumed,
    replay_alerts,
    serving,
    wait_until,
)

pytestmark = pytest.mark.cluster

REPLICATED: dict[str, Any] = {"replication_factor": 3, "min_insync_replicas": 2}
IDLE_THROUGH_FAILOVER_MS = 30_000
"""`idle_timeout_ms` here: longer than a partition is silent while its leader fails over (its records wait in
the producer). Called idle meanwhile, it would let the watermark pass them, and they would arrive late."""


def replication(settings: Settings, topics: list[str]) -> dict[str, tuple[set[int], str, str]]:
    """Per topic, as the cluster has it: the replica counts of its partitions, its `min.insync.replicas` and
    where that comes from (`DYNAMIC_TOPIC_CONFIG`: the topic's own; `STATIC_BROKER_CONFIG`: the broker's)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker))
    try:
        described = admin.describe_topics(topics)
        configs = admin.describe_configs(
            [ConfigResource(ConfigResourceType.TOPIC, topic, ["min.insync.replicas"]) for topic in topics],
            config_filter="all",
        )["topic"]
    finally:
        admin.close()
    found = {}
    for topic in described:
        if topic["error_code"] == 0 and topic["partitions"]:
            min_isr = configs[topic["name"]]["min.insync.replicas"]
            replicas = {len(p["replica_nodes"]) for p in topic["partitions"]}
            found[topic["name"]] = (replicas, min_isr["value"], min_isr["config_source"])
    return found


def busiest_leader(settings: Settings, topics: list[str]) -> int:
    """The node leading the most partitions of `topics` (node ids are cluster.sh's node numbers)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(settings.broker))
    try:
        leaders = Counter(p["leader_id"] for t in admin.describe_topics(topics) for p in t["partitions"])
    finally:
        admin.close()
    return leaders.most_common(1)[0][0]


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_broker_sigkilled_mid_stream_costs_no_alert(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines = collegemsg_lines(20_000)
    want, _ = replay_alerts(lines, **FAST)
    topic_set = topic_factory(
        3, **FAST, **REPLICATED, idle_timeout_ms=IDLE_THROUGH_FAILOVER_MS, processing_guarantee=guarantee
    )
    settings = topic_set.settings
    worker = worker_factory(topic_set, "w1")
    wait_until(lambda: serving(worker), 90, "the worker's web port")
    # Every topic of the deployment, Faust's own assignor topic included (the worker creates that one).
    topics = [t.name for t in topic_plan(settings, 3)] + [f"{settings.app_id}-__assignor-__leader"]
    found: dict[str, tuple[set[int], str, str]] = {}

    def every_topic_described() -> bool:  # the assignor topic may take a moment to reach every broker
        found.update(replication(settings, topics))
        return found.keys() == set(topics)

    wait_until(every_topic_described, 60, "every topic, Faust's assignor topic included, to be described")
    assert {topic: replicas for topic, (replicas, _, _) in found.items()} == {topic: {3} for topic in topics}
    # The project's topics carry min ISR 2 themselves; Faust's assignor topic has the cluster's default.
    assert {topic: (min_isr, source) for topic, (_, min_isr, source) in found.items()} == {
        **dict.fromkeys(topics[:-1], ("2", "DYNAMIC_TOPIC_CONFIG")),
        topics[-1]: ("2", "STATIC_BROKER_CONFIG"),
    }

    victim = busiest_leader(settings, topics)
    producer = BackgroundProducer(topic_set, lines, chunks=8, pause_s=1.0).start()
    wait_until(lambda: consumed(worker) >= len(lines) // 4, 120, "a quarter of the input to be read")
    killed_at = time.monotonic()
    cluster_sh("kill", str(victim))
    read_at_kill = consumed(worker)
    producer.join(timeout_s=240)
    assert read_at_kill < len(lines), "the worker had read everything before the kill: not mid-stream"
    # With one of three brokers gone, every write still finds its two in-sync replicas.
    assert_like_the_replay(topic_set, want, [worker])
    assert alive(worker), f"the worker exited: {worker.trouble()}"
    print(
        f"[{guarantee}] node {victim} SIGKILLed after {read_at_kill:.0f} of {len(lines)} events read; "
        f"alerts equal the replay's ({len(want)}) {time.monotonic() - killed_at:.0f}s after the kill"
    )
