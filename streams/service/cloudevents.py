"""CloudEvents 1.0 attributes of alert, digest and dead-letter records: Kafka headers of the binary content mode."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from urllib.parse import quote

__all__ = [
    "ALERT_SCHEMA",
    "ALERT_TYPES",
    "CONTENT_TYPE",
    "DEAD_LETTER_SCHEMA",
    "DEAD_LETTER_TYPE",
    "DIGEST_SCHEMA",
    "DIGEST_TYPE",
    "SPEC_VERSION",
    "alert_headers",
    "dead_letter_headers",
    "digest_headers",
    "event_source",
    "rfc3339",
]

SPEC_VERSION = "1.0"
CONTENT_TYPE = "application/json"
ALERT_SCHEMA = "https://schemas.relationship-streams.dev/alert.v1.json"
"""`$id` of schemas/alert.v1.json."""
DEAD_LETTER_SCHEMA = "https://schemas.relationship-streams.dev/dead-letter.v1.json"
"""`$id` of schemas/dead-letter.v1.json."""
DIGEST_SCHEMA = "https://schemas.relationship-streams.dev/digest.v1.json"
"""`$id` of schemas/digest.v1.json."""
ALERT_TYPES = {kind: f"dev.relationship-streams.alert.{kind}.v1" for kind in ("dormant", "revived")}
DEAD_LETTER_TYPE = "dev.relationship-streams.dead-letter.v1"
DIGEST_TYPE = "dev.relationship-streams.digest.v1"
_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_MIN_MS = (datetime(1, 1, 1, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)
_MAX_MS = (datetime(9999, 12, 31, 23, 59, 59, 999000, tzinfo=UTC) - _EPOCH) // timedelta(milliseconds=1)


def event_source(app_id: str) -> str:
    """`ce_source` of a deployment: a URN naming its app id (`urn:relationship-streams:relationships`)."""
    return f"urn:relationship-streams:{quote(app_id, safe='')}"


def rfc3339(epoch_ms: int) -> str:
    """Epoch milliseconds as RFC 3339 UTC with milliseconds (`2004-04-15T14:56:01.000Z`), clamped to years 1-9999."""
    moment = _EPOCH + timedelta(milliseconds=min(max(epoch_ms, _MIN_MS), _MAX_MS))
    return moment.isoformat(timespec="milliseconds").replace("+00:00", "Z")


def _headers(
    event_id: str, source: str, event_type: str, time_ms: int, schema: str
) -> list[tuple[str, bytes]]:
    return [
        ("ce_specversion", SPEC_VERSION.encode()),
        ("ce_id", event_id.encode()),
        ("ce_source", source.encode()),
        ("ce_type", event_type.encode()),
        ("ce_time", rfc3339(time_ms).encode()),
        ("ce_dataschema", schema.encode()),
        ("content-type", CONTENT_TYPE.encode()),
    ]


def alert_headers(alert: dict[str, Any], source: str) -> list[tuple[str, bytes]]:
    """An alert's headers: `ce_id` is its `alert_id`, `ce_time` its `dormant_since` (deterministic, like the id)."""
    return _headers(
        alert["alert_id"], source, ALERT_TYPES[alert["kind"]], alert["dormant_since"], ALERT_SCHEMA
    )


def dead_letter_headers(
    topic: str, partition: int, offset: int, source: str, error_at_ms: int
) -> list[tuple[str, bytes]]:
    """A dead letter's headers: `ce_id` is the rejected record's `topic:partition:offset`, `ce_time` its `error_at`."""
    return _headers(
        f"{topic}:{partition}:{offset}", source, DEAD_LETTER_TYPE, error_at_ms, DEAD_LETTER_SCHEMA
    )


def digest_headers(digest: dict[str, Any], source: str) -> list[tuple[str, bytes]]:
    """A digest's headers: `ce_id` is its `digest_id`, `ce_time` its `day_start`."""
    return _headers(digest["digest_id"], source, DIGEST_TYPE, digest["day_start"], DIGEST_SCHEMA)
