"""Input events: decoding, validation (SPEC §1) and the two row updates each event makes."""

from __future__ import annotations

from enum import StrEnum
from typing import Any, NamedTuple

import orjson

__all__ = [
    "INTERACTION_TYPES",
    "MAX_ID_CHARS",
    "TS_MAX",
    "TS_MIN",
    "Interaction",
    "InvalidEvent",
    "Reason",
    "RowUpdate",
    "decode_event",
    "row_updates",
]

INTERACTION_TYPES: tuple[str, str, str] = ("mention", "reply", "like")
TYPE_INDEX: dict[str, int] = {name: i for i, name in enumerate(INTERACTION_TYPES)}
MAX_ID_CHARS = 128
TS_MIN = 946_684_800_000  # 2000-01-01T00:00:00Z
TS_MAX = 4_102_444_800_000  # 2100-01-01T00:00:00Z, exclusive
OUT, IN = 0, 1

_STRING_FIELDS = ("id", "actor_id", "target_id")


class Reason(StrEnum):
    """Machine-readable reason codes of a dead letter."""

    TOO_LARGE = "too_large"
    NOT_UTF8 = "not_utf8"
    NOT_JSON = "not_json"
    NOT_OBJECT = "not_object"
    MISSING_FIELD = "missing_field"
    WRONG_TYPE = "wrong_type"
    BAD_LENGTH = "bad_length"
    UNKNOWN_TYPE = "unknown_type"
    UNKNOWN_ACTION = "unknown_action"
    UNEXPECTED_FIELD = "unexpected_field"
    TS_OUT_OF_RANGE = "ts_out_of_range"
    TS_IN_FUTURE = "ts_in_future"
    PROCESSING_ERROR = "processing_error"


class InvalidEvent(ValueError):
    """A record that is not a valid interaction event.

    >>> try:
    ...     decode_event(b"[]")
    ... except InvalidEvent as exc:
    ...     (exc.reason, exc.field)
    (<Reason.NOT_OBJECT: 'not_object'>, None)
    """

    def __init__(self, reason: Reason, field: str | None = None, detail: str = "") -> None:
        super().__init__(f"{reason}{'(' + field + ')' if field else ''}{': ' + detail if detail else ''}")
        self.reason = reason
        self.field = field
        self.detail = detail


class Interaction(NamedTuple):
    """One valid event: `actor` did `type` to `target` at `ts` (epoch ms)."""

    id: str
    """Unique event id, used for de-duplication."""
    type: int
    """Index into `INTERACTION_TYPES`."""
    actor: str
    """The user who acted."""
    target: str
    """The user mentioned, replied to, or liked."""
    ts: int
    """Event time, epoch milliseconds UTC."""


class RowUpdate(NamedTuple):
    """Half an event as one relationship row sees it; tuples order as SPEC §3 applies them."""

    ts: int
    """Event time (ms): first sort key."""
    event_id: str
    """Event id: second sort key, and the de-duplication key within the row."""
    owner: str
    """Row owner."""
    contact: str
    """Row contact."""
    direction: int
    """`OUT` (0) when the owner acted, `IN` (1) when the owner was the target."""
    type: int
    """Index into `INTERACTION_TYPES`."""
    tag: int = 0
    """Opaque to the engine: lets the service know when a record's updates are all applied."""
    pos: int = 0
    """Where the event was read (input partition and offset, or line number): tells a re-delivery from a duplicate."""


def decode_event(raw: bytes, max_bytes: int | None = None) -> Interaction:
    """Parse and validate one record; raise `InvalidEvent` with a reason code."""
    if max_bytes is not None and len(raw) > max_bytes:
        raise InvalidEvent(Reason.TOO_LARGE, detail=f"{len(raw)} > {max_bytes} bytes")
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        try:
            raw.decode("utf-8")
        except UnicodeDecodeError:
            raise InvalidEvent(Reason.NOT_UTF8) from None
        raise InvalidEvent(Reason.NOT_JSON, detail=str(exc)[:200]) from None
    return validate_event(obj)


def validate_event(obj: Any) -> Interaction:
    """Validate an already-parsed JSON value against SPEC §1 (agrees with schemas/)."""
    if type(obj) is not dict:
        raise InvalidEvent(Reason.NOT_OBJECT)
    for name in _STRING_FIELDS:
        value = obj.get(name)
        if value is None:
            if name not in obj:
                raise InvalidEvent(Reason.MISSING_FIELD, name)
            raise InvalidEvent(Reason.WRONG_TYPE, name)
        if type(value) is not str:
            raise InvalidEvent(Reason.WRONG_TYPE, name)
        if not 0 < len(value) <= MAX_ID_CHARS:
            raise InvalidEvent(Reason.BAD_LENGTH, name)
    kind = obj.get("type")
    if kind is None and "type" not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, "type")
    if type(kind) is not str:
        raise InvalidEvent(Reason.WRONG_TYPE, "type")
    type_index = TYPE_INDEX.get(kind)
    if type_index is None:
        raise InvalidEvent(Reason.UNKNOWN_TYPE, "type")
    if "ts" not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, "ts")
    ts = obj["ts"]
    if type(ts) is float and ts.is_integer():
        ts = int(ts)  # JSON Schema's "integer" admits 1.0; so do we.
    if type(ts) is not int:
        raise InvalidEvent(Reason.WRONG_TYPE, "ts")
    if not TS_MIN <= ts < TS_MAX:
        raise InvalidEvent(Reason.TS_OUT_OF_RANGE, "ts")
    return Interaction(obj["id"], type_index, obj["actor_id"], obj["target_id"], ts)


def row_updates(event: Interaction, tag: int = 0, pos: int = 0) -> tuple[RowUpdate, RowUpdate]:
    """The `out` update of the actor's row and the `in` update of the target's row."""
    return (
        RowUpdate(event.ts, event.id, event.actor, event.target, OUT, event.type, tag, pos),
        RowUpdate(event.ts, event.id, event.target, event.actor, IN, event.type, tag, pos),
    )
