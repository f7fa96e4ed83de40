"""Against the broker: a worker takes its partition counts from the topics, and refuses topics that contradict each other."""

from __future__ import annotations

import uuid
from collections.abc import Callable

import pytest
from kafka import KafkaAdminClient

from streams.kafka_admin import PartitionMismatch, bootstrap_servers, create_topics, follow_the_broker
from streams.service.topology import owner_updates_topic_name, rows_changelog_topic_name
from streams.settings import Settings, deployment_env, settings_from_env
from tests.service.conftest import BROKER, TopicSet, Worker, produce_lines
from tests.service.test_faults import FAST, alive, assert_like_the_replay, collegemsg_lines, replay_alerts

pytestmark = pytest.mark.broker

PREFIX = 10_000
"""CollegeMsg events the deployment is fed: ~300 alerts with the FAST settings."""


def partition_counts(*topics: str) -> dict[str, int]:
    """Partitions of each topic, as the broker describes it (0: missing)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        described = admin.describe_topics(list(topics))
    finally:
        admin.close()
    return {t["name"]: len(t["partitions"]) if t["error_code"] == 0 else 0 for t in described}


def committed_offsets(group: str) -> dict[str, int]:
    """The group's committed offsets, by `topic:partition` (none: the group never committed)."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        offsets = admin.list_group_offsets({group: None}).get(group, {})
    finally:
        admin.close()
    return {f"{tp.topic}:{tp.partition}": meta.offset for tp, meta in offsets.items() if meta.offset >= 0}


def without_partitions_setting(topic_set: TopicSet) -> TopicSet:
    """The deployment as a worker sees it with `STREAMS_PARTITIONS` unset (default 6)."""
    del topic_set.env["STREAMS_PARTITIONS"]
    assert topic_set.settings.partitions == Settings.model_fields["partitions"].default == 6
    return topic_set


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_topics_made_with_4_partitions_and_a_worker_on_the_default_6_give_the_replays_alerts(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker], guarantee: str
) -> None:
    """The reported failure: before, the worker's first heartbeat to owner partition 4 or 5 raised
    `AssertionError: Unrecognized partition` in aiokafka and the worker exited with status 1."""
    lines = collegemsg_lines(PREFIX)
    want, summary = replay_alerts(lines, **FAST)
    assert summary.alerts["dormant"] > 100
    assert summary.alerts["revived"] > 20
    topic_set = without_partitions_setting(topic_factory(4, **FAST, processing_guarantee=guarantee))
    worker = worker_factory(topic_set)
    produce_lines(topic_set, lines)
    assert_like_the_replay(topic_set, want, [worker])
    assert alive(worker), worker.trouble()
    owner, changelog = (
        owner_updates_topic_name(topic_set.settings),
        rows_changelog_topic_name(topic_set.settings),
    )
    assert partition_counts(owner, changelog) == {owner: 4, changelog: 4}
    assert "Unrecognized partition" not in worker.log_text()


def test_a_changelog_partitioned_unlike_the_owner_stream_stops_the_worker_with_status_2_before_it_consumes(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    topic_set = topic_factory(4)
    settings = topic_set.settings
    owner, changelog = owner_updates_topic_name(settings), rows_changelog_topic_name(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        admin.create_partitions({changelog: 6})
    finally:
        admin.close()
    produce_lines(topic_set, collegemsg_lines(200))
    worker = worker_factory(topic_set)
    assert worker.process is not None
    assert worker.process.wait(timeout=120) == 2
    log = worker.log_text()
    assert "Traceback" not in log
    assert f"topic {owner} has 4 partitions but topic {changelog} has 6" in log
    assert f"--delete --topic {owner}" in log
    assert "python -m streams offsets reset --to earliest" in log
    assert "Worker ready" not in log
    assert committed_offsets(topic_set.app_id) == {}
    assert partition_counts(owner, changelog) == {owner: 4, changelog: 6}


def test_follow_the_broker_creates_what_is_missing_with_the_setting_and_keeps_what_exists() -> None:
    app_id = f"t{uuid.uuid4().hex[:10]}"
    settings = settings_from_env(deployment_env(app_id, 3, broker=BROKER))
    owner, changelog = owner_updates_topic_name(settings), rows_changelog_topic_name(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        admin.create_topics({owner: {"num_partitions": 2, "replication_factor": 1}})
        admin.create_topics({settings.topic_likes: {"num_partitions": 5, "replication_factor": 1}})
    finally:
        admin.close()

    followed = follow_the_broker(settings)

    assert followed.settings.partitions == 2
    assert followed.input_partitions == {
        settings.topic_mentions: 3,
        settings.topic_replies: 3,
        settings.topic_likes: 5,
        # request topics are created with one partition, and read like an input
        settings.topic_erasures: 1,
        settings.topic_feedback: 1,
    }
    assert partition_counts(owner, changelog, settings.topic_alerts) == {
        owner: 2,
        changelog: 2,  # created like the owner stream it belongs to
        settings.topic_alerts: 3,
    }


def test_topics_create_refuses_to_paper_over_a_contradiction() -> None:
    app_id = f"t{uuid.uuid4().hex[:10]}"
    settings = settings_from_env(deployment_env(app_id, 3, broker=BROKER))
    owner, changelog = owner_updates_topic_name(settings), rows_changelog_topic_name(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        admin.create_topics({owner: {"num_partitions": 2, "replication_factor": 1}})
        admin.create_topics({changelog: {"num_partitions": 3, "replication_factor": 1}})
    finally:
        admin.close()
    with pytest.raises(
        PartitionMismatch, match=f"topic {owner} has 2 partitions but topic {changelog} has 3"
    ):
        create_topics(settings, 3)
    assert partition_counts(settings.topic_likes) == {settings.topic_likes: 0}, "nothing created"
