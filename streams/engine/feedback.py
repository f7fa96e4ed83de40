"""Feedback from the people alerted (docs/semantics.md §11): mute, unmute and snooze a relationship row."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from enum import IntEnum
from typing import Any, NamedTuple

import orjson

from streams.engine.events import MAX_ID_CHARS, TS_MAX, TS_MIN, InvalidEvent, Reason

__all__ = [
    "FEEDBACK_STATE_FORMAT_VERSION",
    "Action",
    "Feedback",
    "HeldFeedback",
    "RowFeedback",
    "decode_feedback",
    "feedback_state_from_bytes",
    "feedback_state_to_bytes",
    "read_feedback",
    "validate_feedback",
]

FEEDBACK_STATE_FORMAT_VERSION = 1
"""The leading byte `feedback_state_to_bytes` writes."""
RowKey = tuple[str, str]


class Action(IntEnum):
    """What a feedback record asks; the value orders same-`ts` feedback on one row (the last one wins)."""

    UNMUTE = 0
    MUTE = 1
    SNOOZE = 2


_ACTIONS = {action.name.lower(): action for action in Action}


class Feedback(NamedTuple):
    """One feedback record: the value of a record on the feedback topic, or a line of `--feedback`."""

    owner: str
    """The row's owner: the person who was (or would be) alerted."""
    contact: str
    """The row's contact."""
    action: Action
    """Mute, unmute or snooze."""
    until: int | None
    """Snooze only: event time (ms) the snooze ends at; at or before `ts` it lifts any snooze."""
    ts: int
    """Event time (ms) the feedback takes effect at, in order with the interactions."""


class HeldFeedback(NamedTuple):
    """Feedback waiting for the watermark; tuples order as the engine applies them."""

    ts: int
    owner: str
    contact: str
    action: int
    until: int
    """`Feedback.until`, 0 when it has none."""
    tag: int = 0
    """Opaque to the engine: lets the service know when a record's feedback is applied."""


class RowFeedback:
    """What feedback has said about one row, and the dormant alert it holds back."""

    __slots__ = ("mute_key", "muted", "snooze_key", "snoozed_until", "withheld")

    def __init__(self) -> None:
        self.muted = False
        """No alert of this row goes out."""
        self.mute_key: tuple[int, int] = (-1, -1)
        """`(ts, action)` of the mute or unmute applied last; an older one arriving late changes nothing."""
        self.snoozed_until: int | None = None
        """No dormant alert of this row goes out before this event time."""
        self.snooze_key: tuple[int, int] = (-1, -1)
        """`(ts, until)` of the snooze applied last."""
        self.withheld = False
        """The row's current dormant episode was not announced: its alert waits for the row to be heard again,
        and no `revived` alert follows it."""

    def silenced(self, at: int) -> bool:
        """No dormant alert may go out at event time `at`."""
        return self.muted or (self.snoozed_until is not None and at < self.snoozed_until)

    def to_json(self) -> list[Any]:
        """JSON-ready form (see `feedback_state_to_bytes`)."""
        return [self.muted, *self.mute_key, self.snoozed_until, *self.snooze_key, self.withheld]

    @classmethod
    def from_json(cls, fields: list[Any]) -> RowFeedback:
        """Inverse of `to_json`."""
        entry = cls()
        muted, mute_ts, mute_action, until, snooze_ts, snooze_until, withheld = fields
        entry.muted, entry.mute_key = bool(muted), (int(mute_ts), int(mute_action))
        entry.snoozed_until = None if until is None else int(until)
        entry.snooze_key, entry.withheld = (int(snooze_ts), int(snooze_until)), bool(withheld)
        return entry

    def __eq__(self, other: object) -> bool:
        return isinstance(other, RowFeedback) and self.to_json() == other.to_json()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"RowFeedback({self.to_json()})"


def feedback_state_to_bytes(state: dict[RowKey, RowFeedback]) -> bytes:
    """Version 1: the byte 0x01, then a JSON array of `[owner, contact, *RowFeedback.to_json()]`, sorted.

    >>> entry = RowFeedback(); entry.muted = True
    >>> feedback_state_from_bytes(feedback_state_to_bytes({("a", "b"): entry}))
    {('a', 'b'): RowFeedback([True, -1, -1, None, -1, -1, False])}
    """
    rows = [[owner, contact, *state[owner, contact].to_json()] for owner, contact in sorted(state)]
    return bytes((FEEDBACK_STATE_FORMAT_VERSION,)) + orjson.dumps(rows)


def feedback_state_from_bytes(data: bytes) -> dict[RowKey, RowFeedback]:
    """Inverse of `feedback_state_to_bytes`; ValueError on an unknown version or a malformed body."""
    if not data:
        raise ValueError("empty feedback state bytes")
    if data[0] != FEEDBACK_STATE_FORMAT_VERSION:
        raise ValueError(f"unknown feedback state format version byte 0x{data[0]:02x}")
    try:
        return {(row[0], row[1]): RowFeedback.from_json(row[2:]) for row in orjson.loads(data[1:])}
    except (orjson.JSONDecodeError, TypeError, ValueError, IndexError) as exc:
        raise ValueError(f"malformed feedback state bytes ({len(data)} bytes)") from exc


def decode_feedback(raw: bytes) -> Feedback:
    """Parse and validate one feedback record (schemas/feedback.v1.json); raise `InvalidEvent` with a reason."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(Reason.NOT_JSON, detail=str(exc)[:200]) from None
    return validate_feedback(obj)


def _user(obj: dict[str, Any], name: str) -> str:
    if name not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, name)
    value = obj[name]
    if type(value) is not str:
        raise InvalidEvent(Reason.WRONG_TYPE, name)
    if not 0 < len(value) <= MAX_ID_CHARS:
        raise InvalidEvent(Reason.BAD_LENGTH, name)
    return value


def _time(obj: dict[str, Any], name: str) -> int:
    if name not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, name)
    value = obj[name]
    if type(value) is float and value.is_integer():
        value = int(value)
    if type(value) is not int:
        raise InvalidEvent(Reason.WRONG_TYPE, name)
    if not TS_MIN <= value < TS_MAX:
        raise InvalidEvent(Reason.TS_OUT_OF_RANGE, name)
    return value


def validate_feedback(obj: Any) -> Feedback:
    """Validate an already-parsed JSON value as a feedback record.

    >>> validate_feedback({"owner_id": "a", "contact_id": "b", "action": "snooze", "until": 2e12, "ts": 1e12})
    Feedback(owner='a', contact='b', action=<Action.SNOOZE: 2>, until=2000000000000, ts=1000000000000)
    """
    if type(obj) is not dict:
        raise InvalidEvent(Reason.NOT_OBJECT)
    owner = _user(obj, "owner_id")
    contact = _user(obj, "contact_id")
    if "action" not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, "action")
    name = obj["action"]
    if type(name) is not str:
        raise InvalidEvent(Reason.WRONG_TYPE, "action")
    action = _ACTIONS.get(name)
    if action is None:
        raise InvalidEvent(Reason.UNKNOWN_ACTION, "action")
    until: int | None = None
    if action is Action.SNOOZE:
        until = _time(obj, "until")
    elif obj.get("until") is not None:
        raise InvalidEvent(Reason.UNEXPECTED_FIELD, "until", f"only a snooze has one, not {name}")
    return Feedback(owner, contact, action, until, _time(obj, "ts"))


def read_feedback(lines: Iterable[bytes]) -> Iterator[Feedback]:
    """Every feedback record of a JSON-lines file; a bad line raises `ValueError` naming it (none is skipped)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield decode_feedback(line.rstrip(b"\r\n"))
        except InvalidEvent as exc:
            raise ValueError(
                f"feedback line {number}: {exc.reason.value} {exc.field or ''}".rstrip()
            ) from exc
