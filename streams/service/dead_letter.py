"""Dead letters: the original key and bytes, where they came from, and a machine-readable reason."""

from __future__ import annotations

import base64
from typing import NamedTuple

import orjson

from streams.engine.events import InvalidEvent

__all__ = ["DeadLetter", "dead_letter"]

SCHEMA_VERSION = 1


class DeadLetter(NamedTuple):
    """What goes to the dead-letter topic (value per schemas/dead-letter.v1.json, plus headers)."""

    key: bytes | None
    """The original record key."""
    value: bytes
    """JSON envelope with the reason, the source position and the original bytes (base64)."""
    headers: list[tuple[str, bytes]]
    """Reason and source position again, as Kafka Connect keeps them."""


def dead_letter(
    error: InvalidEvent, topic: str, partition: int, offset: int, key: bytes | None, raw: bytes, now_ms: int
) -> DeadLetter:
    """Build the dead letter of one rejected input record."""
    envelope = {
        "reason": error.reason.value,
        "field": error.field,
        "detail": error.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key_b64": None if key is None else base64.b64encode(key).decode(),
        "value_b64": base64.b64encode(raw).decode(),
        "error_at": now_ms,
        "schema_version": SCHEMA_VERSION,
    }
    headers = [
        ("streams.error.reason", error.reason.value.encode()),
        ("streams.source.topic", topic.encode()),
        ("streams.source.partition", str(partition).encode()),
        ("streams.source.offset", str(offset).encode()),
    ]
    return DeadLetter(key, orjson.dumps(envelope), headers)
