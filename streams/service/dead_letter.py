"""Dead letters: the original key and bytes, where they came from, and a machine-readable reason."""

from __future__ import annotations

import base64
import hashlib
from typing import NamedTuple

import orjson

from streams.engine.events import InvalidEvent, Reason
from streams.service.cloudevents import dead_letter_headers, event_source

__all__ = ["DeadLetter", "ProcessingError", "dead_letter"]

SCHEMA_VERSION = 1
# The envelope (base64: 4/3 of the bytes) must stay under the producer's 1 MB request size:
# larger originals keep their first KEPT_BYTES, their size and SHA-256 (the source position
# still points at the whole record).
KEPT_BYTES = 64 * 1024
MAX_KEPT_WHOLE = 512 * 1024
DEFAULT_SOURCE = event_source("relationships")


class ProcessingError(InvalidEvent):
    """A poison record: its processing raised `failures` times (streams/service/poison_records.py)."""

    def __init__(self, error_type: str, message: str, stage: str, part: str, failures: int) -> None:
        super().__init__(Reason.PROCESSING_ERROR, None, f"{error_type}: {message}")
        self.error = {
            "type": error_type,
            "message": message,
            "stage": stage,
            "part": part,
            "failures": failures,
        }
        """The dead letter's `error` object."""


class DeadLetter(NamedTuple):
    """What goes to the dead-letter topic (value per schemas/dead-letter.v1.json, plus headers)."""

    key: bytes | None
    """The original record key."""
    value: bytes
    """JSON envelope with the reason, the source position and the original bytes (base64)."""
    headers: list[tuple[str, bytes]]
    """Reason and source position again, as Kafka Connect keeps them, then the CloudEvents attributes."""


def dead_letter(
    error: InvalidEvent,
    topic: str,
    partition: int,
    offset: int,
    key: bytes | None,
    raw: bytes,
    now_ms: int,
    source: str = DEFAULT_SOURCE,
) -> DeadLetter:
    """Build the dead letter of one rejected input record; `source` is the deployment's `ce_source`."""
    envelope = {
        "reason": error.reason.value,
        "field": error.field,
        "detail": error.detail,
        "source": {"topic": topic, "partition": partition, "offset": offset},
        "key_b64": None if key is None else base64.b64encode(key[:KEPT_BYTES]).decode(),
        "value_b64": base64.b64encode(raw if len(raw) <= MAX_KEPT_WHOLE else raw[:KEPT_BYTES]).decode(),
        "value_size": len(raw),
        "error_at": now_ms,
        "schema_version": SCHEMA_VERSION,
    }
    headers = [
        ("streams.error.reason", error.reason.value.encode()),
        ("streams.source.topic", topic.encode()),
        ("streams.source.partition", str(partition).encode()),
        ("streams.source.offset", str(offset).encode()),
        *dead_letter_headers(topic, partition, offset, source, now_ms),
    ]
    if isinstance(error, ProcessingError):
        envelope["error"] = error.error
    if len(raw) > MAX_KEPT_WHOLE:
        envelope["value_truncated"] = True
        envelope["value_sha256"] = hashlib.sha256(raw).hexdigest()
    return DeadLetter(
        key if key is None or len(key) <= KEPT_BYTES else key[:KEPT_BYTES], orjson.dumps(envelope), headers
    )
