"""Topics and tables of the service, named for what they carry."""

from __future__ import annotations

from dataclasses import dataclass

import faust
from faust.types import TableT, TopicT

from streams.settings import Settings

__all__ = ["Topology", "declare_topology", "owner_updates_topic_name"]


def owner_updates_topic_name(settings: Settings) -> str:
    """The internal, owner-keyed stream of row updates and watermark markers."""
    return f"{settings.app_id}-owner-updates"


@dataclass(frozen=True, slots=True)
class Topology:
    """Every topic and table one worker uses."""

    interactions: TopicT
    """The three input topics (mentions, replies, likes), raw bytes."""
    owner_updates: TopicT
    """Row updates re-keyed by owner, with watermark markers and ticks."""
    alerts: TopicT
    """`dormant` / `revived` alerts keyed by owner."""
    dead_letters: TopicT
    """Rejected input records with their reason."""
    rows: TableT[bytes, bytes]
    """Relationship rows: key `[owner, contact]` (JSON), value `Row.to_bytes()`."""


def declare_topology(app: faust.App, settings: Settings) -> Topology:
    """Declare topics and tables on `app`."""
    return Topology(
        interactions=app.topic(*settings.input_topics(), key_serializer="raw", value_serializer="raw"),
        owner_updates=app.topic(
            owner_updates_topic_name(settings),
            partitions=settings.partitions,
            internal=True,
            key_serializer="raw",
            value_serializer="raw",
        ),
        alerts=app.topic(settings.topic_alerts, key_serializer="raw", value_serializer="raw"),
        dead_letters=app.topic(settings.topic_dead_letter, key_serializer="raw", value_serializer="raw"),
        rows=app.Table("rows", partitions=settings.partitions, key_type=bytes, value_type=bytes),
    )
