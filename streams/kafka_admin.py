"""kafka-python helpers for the tools: bootstrap servers, topic creation, producer and consumer."""

from __future__ import annotations

from typing import Any

from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer
from kafka.admin import NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.service.topology import owner_updates_topic_name
from streams.settings import Settings

__all__ = ["bootstrap_servers", "client_options", "create_topics", "topic_plan"]


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
    return options


def topic_plan(settings: Settings, partitions: int) -> list[NewTopic]:
    """The topics the service needs; the owner-keyed stream gets `settings.partitions`."""
    keep_week = {"retention.ms": str(7 * 86_400_000)}
    plan = [NewTopic(name, partitions, 1, topic_configs=keep_week) for name in settings.input_topics()]
    plan.append(NewTopic(settings.topic_alerts, partitions, 1, topic_configs=keep_week))
    plan.append(
        NewTopic(
            settings.topic_dead_letter, partitions, 1, topic_configs={"retention.ms": str(30 * 86_400_000)}
        )
    )
    plan.append(NewTopic(owner_updates_topic_name(settings), settings.partitions, 1, topic_configs=keep_week))
    for table in ("rows",):
        plan.append(
            NewTopic(
                f"{settings.app_id}-{table}-changelog",
                settings.partitions,
                1,
                topic_configs={"cleanup.policy": "compact"},
            )
        )
    return plan


def create_topics(settings: Settings, partitions: int) -> dict[str, str]:
    """Create what is missing; returns topic -> `created` | `exists`."""
    admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin", **client_options(settings))
    outcome: dict[str, str] = {}
    try:
        existing = set(admin.list_topics())
        for topic in topic_plan(settings, partitions):
            if topic.name in existing:
                outcome[topic.name] = "exists"
                continue
            try:
                admin.create_topics([topic])
                outcome[topic.name] = "created"
            except TopicAlreadyExistsError:
                outcome[topic.name] = "exists"
    finally:
        admin.close()
    return outcome


def producer(settings: Settings) -> KafkaProducer:
    """A reliable producer (acks=all, idempotent off for broker compatibility)."""
    return KafkaProducer(acks="all", linger_ms=5, batch_size=256 * 1024, **client_options(settings))


def consumer(settings: Settings, *topics: str, group: str | None = None) -> KafkaConsumer:
    """A consumer from the earliest offset."""
    return KafkaConsumer(
        *topics,
        group_id=group,
        auto_offset_reset="earliest",
        enable_auto_commit=group is not None,
        **client_options(settings),
    )
