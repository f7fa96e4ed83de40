"""Partition counts a worker follows, decided from what the broker has (no broker needed)."""

from __future__ import annotations

import pytest

from streams.kafka_admin import PartitionMismatch, owner_partition_count, topic_plan
from streams.settings import Settings

SETTINGS = Settings(app_id="app", partitions=6, broker="kafka://h1:9092;h2:9092")
OWNER, CHANGELOG = "app-owner-updates", "app-rows-changelog"


@pytest.mark.parametrize(
    ("counts", "expected"),
    [
        ({}, 6),  # nothing yet: the setting
        ({OWNER: 4}, 4),
        ({CHANGELOG: 3}, 3),  # the owner stream is created like the changelog it belongs with
        ({OWNER: 4, CHANGELOG: 4, "app.mentions": 9}, 4),  # input topics are partitioned freely
    ],
)
def test_the_owner_stream_count_comes_from_the_broker_and_the_setting_only_when_nothing_exists(
    counts: dict[str, int], expected: int
) -> None:
    assert owner_partition_count(SETTINGS, counts) == expected


def test_an_owner_stream_and_changelog_that_disagree_are_refused_with_both_counts_and_the_fix() -> None:
    with pytest.raises(PartitionMismatch) as refused:
        owner_partition_count(SETTINGS, {OWNER: 4, CHANGELOG: 6})
    message = str(refused.value)
    assert f"topic {OWNER} has 4 partitions but topic {CHANGELOG} has 6" in message
    assert f"kafka-topics.sh --bootstrap-server h1:9092,h2:9092 --delete --topic {OWNER}" in message
    assert CHANGELOG in message.split("Fix:", 1)[1]
    assert "python -m streams offsets reset --to earliest" in message


def test_the_plan_sizes_internal_topics_by_the_owner_count_and_the_rest_by_the_given_one() -> None:
    plan = {
        topic.name: topic.num_partitions
        for topic in topic_plan(SETTINGS.model_copy(update={"partitions": 4}), 9)
    }
    assert plan[OWNER] == plan[CHANGELOG] == 4
    assert plan[SETTINGS.topic_erasures] == plan[SETTINGS.topic_feedback] == 1
    internal = {OWNER, CHANGELOG, SETTINGS.topic_erasures, SETTINGS.topic_feedback}
    assert {name: count for name, count in plan.items() if name not in internal} == dict.fromkeys(
        [*SETTINGS.input_topics(), SETTINGS.topic_alerts, SETTINGS.topic_dead_letter], 9
    )


def test_every_planned_topic_gets_the_replication_factor_and_min_insync_replicas() -> None:
    plan = topic_plan(SETTINGS.model_copy(update={"replication_factor": 3, "min_insync_replicas": 2}), 9)
    assert len(plan) == 9
    assert {topic.name: topic.replication_factor for topic in plan} == {topic.name: 3 for topic in plan}
    assert all(topic.topic_configs["min.insync.replicas"] == "2" for topic in plan)
    configs = {topic.name: topic.topic_configs for topic in plan}
    assert configs[CHANGELOG]["cleanup.policy"] == "compact"
    assert configs[CHANGELOG]["max.compaction.lag.ms"] == str(7 * 86_400_000), (
        "erased rows leave within a week"
    )


def test_the_local_default_is_one_replica_with_one_in_sync() -> None:
    plan = topic_plan(SETTINGS, 6)
    assert {topic.replication_factor for topic in plan} == {1}
    assert {topic.topic_configs["min.insync.replicas"] for topic in plan} == {"1"}
