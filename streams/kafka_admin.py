"""kafka-python helpers for the tools: bootstrap servers, topic creation, partition counts, producer and consumer."""

from __future__ import annotations

import logging
import time
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.service.topology import owner_updates_topic_name, rows_changelog_topic_name
from streams.settings import Settings

__all__ = [
    "BrokerTopics",
    "PartitionMismatch",
    "bootstrap_servers",
    "client_options",
    "create_topics",
    "follow_the_broker",
    "owner_partition_count",
    "topic_plan",
]

log = logging.getLogger(__name__)

UNKNOWN_TOPIC = 3
"""Kafka's UNKNOWN_TOPIC_OR_PARTITION error code: the topic does not exist."""
DESCRIBE_TIMEOUT_S = 30.0
"""How long a just-created topic may take to show its partitions in the broker's metadata."""


class PartitionMismatch(Exception):
    """The broker's topics contradict each other's partition counts: a worker must not start (exit status 2)."""


def bootstrap_servers(broker: str) -> list[str]:
    """`kafka://h1:9092;h2:9092` -> `["h1:9092", "h2:9092"]`."""
    parts = (part.strip() for part in broker.replace(",", ";").split(";"))
    return [part.split("://", 1)[-1] for part in parts if part]


def client_options(settings: Settings) -> dict[str, Any]:
    """Connection options shared by every kafka-python client (security passed through)."""
    options: dict[str, Any] = {
        "bootstrap_servers": bootstrap_servers(settings.broker),
        "security_protocol": settings.broker_security_protocol,
    }
    if settings.broker_sasl_mechanism:
        options["sasl_mechanism"] = settings.broker_sasl_mechanism
        options["sasl_plain_username"] = settings.broker_sasl_username
        options["sasl_plain_password"] = settings.broker_sasl_password
    if settings.broker_ssl_cafile:
        options["ssl_cafile"] = str(settings.broker_ssl_cafile)
    if settings.broker_ssl_certfile:
        options["ssl_certfile"] = str(settings.broker_ssl_certfile)
    if settings.broker_ssl_keyfile:
        options["ssl_keyfile"] = str(settings.broker_ssl_keyfile)
    return options


def topic_plan(settings: Settings, partitions: int) -> list[NewTopic]:
    """The topics the service needs; the owner-keyed stream and the rows changelog get `settings.partitions`,
    every one `settings.replication_factor` replicas and `min.insync.replicas`."""
    replicas, replicated = settings.replication_factor, settings.replication_configs()
    keep_week = {"retention.ms": str(7 * 86_400_000), **replicated}
    plan = [NewTopic(name, partitions, replicas, topic_configs=keep_week) for name in settings.input_topics()]
    plan.append(NewTopic(settings.topic_alerts, partitions, replicas, topic_configs=keep_week))
    if settings.digests:
        plan.append(NewTopic(settings.topic_digests, partitions, replicas, topic_configs=keep_week))
    plan.append(
        NewTopic(
            settings.topic_dead_letter,
            partitions,
            replicas,
            topic_configs={"retention.ms": str(30 * 86_400_000), **replicated},
        )
    )
    # One partition: erasures are rare, and every owner partition gets each one anyway.
    plan.append(NewTopic(settings.topic_erasures, 1, replicas, topic_configs=keep_week))
    # One partition too: feedback is a person's click, rare next to interactions (more partitions work).
    plan.append(NewTopic(settings.topic_feedback, 1, replicas, topic_configs=keep_week))
    plan.append(
        NewTopic(owner_updates_topic_name(settings), settings.partitions, replicas, topic_configs=keep_week)
    )
    plan.append(
        NewTopic(
            rows_changelog_topic_name(settings),
            settings.partitions,
            replicas,
            # A row deleted (reclaimed, erased) leaves the changelog within a week: its older values
            # are compacted away, and its tombstone goes `delete.retention.ms` (1 day) after that.
            topic_configs={
                "cleanup.policy": "compact",
                "max.compaction.lag.ms": str(7 * 86_400_000),
                **replicated,
            },
        )
    )
    return plan


def owner_partition_count(settings: Settings, counts: Mapping[str, int]) -> int:
    """Partitions of the owner-keyed stream: those of the existing owner stream and rows changelog, which must
    agree; `settings.partitions` when neither exists yet.

    `counts` has the partition count of each existing topic. Rows live in the
    changelog partition of their owner's partition (`owner_partition`), so a
    changelog with another count than the owner stream holds rows where no
    worker would look for them.

    >>> owner_partition_count(Settings(app_id="a"), {"a-owner-updates": 4})
    4
    >>> owner_partition_count(Settings(app_id="a", partitions=3), {})
    3
    """
    owner, changelog = owner_updates_topic_name(settings), rows_changelog_topic_name(settings)
    if owner in counts and changelog in counts and counts[owner] != counts[changelog]:
        raise PartitionMismatch(_mismatch_message(settings, counts[owner], counts[changelog]))
    return counts.get(owner, counts.get(changelog, settings.partitions))


def _mismatch_message(settings: Settings, owner_count: int, changelog_count: int) -> str:
    owner, changelog = owner_updates_topic_name(settings), rows_changelog_topic_name(settings)
    servers = ",".join(bootstrap_servers(settings.broker))
    return (
        f"topic {owner} has {owner_count} partitions but topic {changelog} has {changelog_count}; "
        "rows are stored in the changelog partition of their owner's partition, so the two must have the "
        f"same count. Fix: stop every worker of {settings.app_id}, "
        f"delete both internal topics (kafka-topics.sh --bootstrap-server {servers} --delete --topic {owner}; "
        f"the same for {changelog}) and the workers' STREAMS_DATA_DIR, reset the input offsets "
        "(python -m streams offsets reset --to earliest) and start again: the worker creates both with "
        f"STREAMS_PARTITIONS (now {settings.partitions}) partitions and rebuilds the rows from the input topics "
        "(as far as their retention reaches)."
    )


def _partition_counts(
    admin: KafkaAdminClient, topics: Iterable[str], required: bool = False
) -> dict[str, int]:
    """Partition count of each of `topics` that exists; `required`: wait until all show in the metadata (just created)."""
    wanted = sorted(set(topics))
    deadline = time.monotonic() + DESCRIBE_TIMEOUT_S
    while True:
        described = admin.describe_topics(wanted)
        pending = [
            t["name"]
            for t in described
            if t["error_code"] not in (0, UNKNOWN_TOPIC)
            or (t["error_code"] == 0 and not t["partitions"])
            or (t["error_code"] and required)
        ]
        if not pending:
            return {t["name"]: len(t["partitions"]) for t in described if t["error_code"] == 0}
        if time.monotonic() > deadline:
            errors = {t["name"]: t["error_code"] for t in described if t["name"] in pending}
            raise RuntimeError(f"the broker could not describe topics (error codes {errors})")
        time.sleep(0.2)


def _create_missing(
    admin: KafkaAdminClient, settings: Settings, partitions: int, counts: Mapping[str, int]
) -> dict[str, str]:
    """Create the planned topics not in `counts`; topic -> `created` | `exists`."""
    outcome: dict[str, str] = {}
    for topic in topic_plan(settings, partitions):
        if topic.name in counts:
            outcome[topic.name] = "exists"
            continue
        try:
            admin.create_topics([topic])
            outcome[topic.name] = "created"
        except TopicAlreadyExistsError:
            outcome[topic.name] = "exists"
    return outcome


def create_topics(settings: Settings, partitions: int) -> dict[str, str]:
    """Create what is missing; returns topic -> `created, N partitions` | `exists, N partitions`.

    Input, alert and dead-letter topics get `partitions`; the owner stream and
    the rows changelog get `settings.partitions`, or the count of whichever of
    them exists already (`owner_partition_count`).
    """
    admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin", **client_options(settings))
    try:
        names = [topic.name for topic in topic_plan(settings, partitions)]
        counts = _partition_counts(admin, names)
        owner = owner_partition_count(settings, counts)
        outcome = _create_missing(
            admin, settings.model_copy(update={"partitions": owner}), partitions, counts
        )
        counts = _partition_counts(admin, names, required=True)
    finally:
        admin.close()
    return {name: f"{done}, {counts[name]} partitions" for name, done in outcome.items()}


@dataclass(frozen=True, slots=True)
class BrokerTopics:
    """What a worker follows: the broker's partition counts, read once before it starts."""

    settings: Settings
    """The worker's settings, `partitions` being the owner stream's count on the broker."""
    input_partitions: dict[str, int]
    """Partitions of each topic the ingest stage reads: the input topics and the erasures topic."""


def follow_the_broker(settings: Settings) -> BrokerTopics:
    """Before a worker starts (blocking): create the topics missing, then read the partition counts to follow.

    Missing topics are created as `topics create` would (with
    `settings.partitions`); existing ones keep their counts, which the worker
    takes. Raises `PartitionMismatch` when the owner stream and the rows
    changelog disagree, before the worker has consumed anything.
    """
    admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin", **client_options(settings))
    try:
        names = [topic.name for topic in topic_plan(settings, settings.partitions)]
        counts = _partition_counts(admin, names)
        owner = owner_partition_count(settings, counts)
        created = _create_missing(
            admin, settings.model_copy(update={"partitions": owner}), settings.partitions, counts
        )
        if "created" in created.values():
            counts = _partition_counts(admin, names, required=True)
            owner = owner_partition_count(settings, counts)  # another creator may have raced this one
    finally:
        admin.close()
    for name, done in created.items():
        if done == "created":
            log.info("topic %s created with %d partitions", name, counts[name])
    if owner != settings.partitions:
        log.info(
            "the owner stream %s has %d partitions: the worker follows it (STREAMS_PARTITIONS=%d applies to "
            "topics not created yet)",
            owner_updates_topic_name(settings),
            owner,
            settings.partitions,
        )
    return BrokerTopics(
        settings.model_copy(update={"partitions": owner}),
        {topic: counts[topic] for topic in settings.source_topics()},
    )


def producer(settings: Settings) -> KafkaProducer:
    """A reliable producer: acks=all, idempotent (a retried send is not written twice)."""
    return KafkaProducer(
        acks="all", enable_idempotence=True, linger_ms=5, batch_size=256 * 1024, **client_options(settings)
    )


def consumer(settings: Settings, *topics: str, group: str | None = None) -> KafkaConsumer:
    """A consumer from the earliest offset."""
    return KafkaConsumer(
        *topics,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=group is not None,
        **client_options(settings),
    )
