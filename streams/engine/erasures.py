"""Erasure requests (docs/semantics.md §9): forget a user as of an event time."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from typing import Any, NamedTuple

import orjson

from streams.engine.events import MAX_ID_CHARS, TS_MAX, TS_MIN, InvalidEvent, Reason

__all__ = ["Erasure", "decode_erasure", "read_erasures", "validate_erasure"]


class Erasure(NamedTuple):
    """One erasure request: the value of a record on the erasures topic, or a line of `--erasures`."""

    user: str
    """The user to forget, as it appears in `actor_id`/`target_id`."""
    ts: int
    """Event time the erasure takes effect at, epoch ms: the user's events before it are forgotten."""


def decode_erasure(raw: bytes) -> Erasure:
    """Parse and validate one erasure record (schemas/erasure.v1.json); raise `InvalidEvent` with a reason."""
    try:
        obj = orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise InvalidEvent(Reason.NOT_JSON, detail=str(exc)[:200]) from None
    return validate_erasure(obj)


def validate_erasure(obj: Any) -> Erasure:
    """Validate an already-parsed JSON value as an erasure record."""
    if type(obj) is not dict:
        raise InvalidEvent(Reason.NOT_OBJECT)
    if "user_id" not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, "user_id")
    user = obj["user_id"]
    if type(user) is not str:
        raise InvalidEvent(Reason.WRONG_TYPE, "user_id")
    if not 0 < len(user) <= MAX_ID_CHARS:
        raise InvalidEvent(Reason.BAD_LENGTH, "user_id")
    if "ts" not in obj:
        raise InvalidEvent(Reason.MISSING_FIELD, "ts")
    ts = obj["ts"]
    if type(ts) is float and ts.is_integer():
        ts = int(ts)
    if type(ts) is not int:
        raise InvalidEvent(Reason.WRONG_TYPE, "ts")
    if not TS_MIN <= ts < TS_MAX:
        raise InvalidEvent(Reason.TS_OUT_OF_RANGE, "ts")
    return Erasure(user, ts)


def read_erasures(lines: Iterable[bytes]) -> Iterator[Erasure]:
    """Every erasure of a JSON-lines file; a bad line raises `ValueError` naming it (none is skipped)."""
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            yield decode_erasure(line.rstrip(b"\r\n"))
        except InvalidEvent as exc:
            raise ValueError(f"erasure line {number}: {exc.reason.value} {exc.field or ''}".rstrip()) from exc
