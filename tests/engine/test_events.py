"""decode_event and row_updates against SPEC §1: valid events and every dead-letter reason."""

from __future__ import annotations

import json
from typing import Any

import orjson
import pytest

from streams.engine.events import (
    IN,
    OUT,
    Interaction,
    InvalidEvent,
    Reason,
    RowUpdate,
    decode_event,
    row_updates,
)

TS = 1_600_000_000_000
VALID: dict[str, Any] = {
    "id": "e1",
    "type": "reply",
    "actor_id": "ann",
    "target_id": "bob",
    "ts": TS,
}


def encode(obj: Any) -> bytes:
    """JSON bytes of any value (orjson, UTF-8, no escaping of non-ASCII)."""
    return orjson.dumps(obj)


def with_fields(**changes: Any) -> dict[str, Any]:
    """The valid event with some fields replaced."""
    return {**VALID, **changes}


def without(name: str) -> dict[str, Any]:
    """The valid event with one field removed."""
    return {k: v for k, v in VALID.items() if k != name}


def reason_of(raw: bytes, max_bytes: int | None = None) -> tuple[Reason, str | None]:
    """The (reason, field) a record is rejected with; fails the test if it is accepted."""
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw, max_bytes=max_bytes)
    return info.value.reason, info.value.field


def test_valid_event_decodes_to_an_interaction() -> None:
    assert decode_event(encode(VALID)) == Interaction("e1", 1, "ann", "bob", TS)


@pytest.mark.parametrize(("kind", "index"), [("mention", 0), ("reply", 1), ("like", 2)])
def test_each_type_maps_to_its_index(kind: str, index: int) -> None:
    assert decode_event(encode(with_fields(type=kind))).type == index


def test_extra_fields_are_ignored() -> None:
    raw = encode(with_fields(tweet={"text": "hi", "n": [1, 2]}, lang="en", ts_source=None))
    assert decode_event(raw) == Interaction("e1", 1, "ann", "bob", TS)


def test_invalid_event_is_a_value_error_with_reason_and_field() -> None:
    with pytest.raises(ValueError, match="missing_field") as info:
        decode_event(encode(without("actor_id")))
    assert isinstance(info.value, InvalidEvent)
    assert (info.value.reason, info.value.field) == (Reason.MISSING_FIELD, "actor_id")
    assert info.value.reason.value == "missing_field"


def test_too_large_is_checked_on_the_raw_bytes() -> None:
    raw = encode(VALID)
    assert decode_event(raw, max_bytes=len(raw)).id == "e1"
    assert reason_of(raw, max_bytes=len(raw) - 1) == (Reason.TOO_LARGE, None)
    # checked before parsing: even garbage of the right size is "too large"
    assert reason_of(b"x" * 11, max_bytes=10) == (Reason.TOO_LARGE, None)


@pytest.mark.parametrize(
    "raw",
    [
        b"\xff\xfe\x00",
        b'{"id": "\xff", "type": "like", "actor_id": "a", "target_id": "b", "ts": 1600000000000}',
        "é".encode("latin-1"),
    ],
)
def test_not_utf8(raw: bytes) -> None:
    assert reason_of(raw) == (Reason.NOT_UTF8, None)


@pytest.mark.parametrize(
    "raw",
    [
        b"",
        b"{",
        b'{"id": "e1",',
        b"{'id': 'e1'}",
        encode(VALID) + b"}",
        encode(VALID) + b" " + encode(VALID),
        b"hello",
    ],
)
def test_not_json(raw: bytes) -> None:
    assert reason_of(raw) == (Reason.NOT_JSON, None)


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity"])
def test_nan_and_infinity_literals_are_not_json(literal: bytes) -> None:
    raw = encode(VALID).replace(str(TS).encode(), literal)
    assert literal in raw
    assert reason_of(raw) == (Reason.NOT_JSON, None)


@pytest.mark.parametrize("value", [[], [VALID], "event", 1, 1.5, True, None])
def test_not_object(value: Any) -> None:
    assert reason_of(encode(value)) == (Reason.NOT_OBJECT, None)


@pytest.mark.parametrize("name", ["id", "type", "actor_id", "target_id", "ts"])
def test_missing_field(name: str) -> None:
    assert reason_of(encode(without(name))) == (Reason.MISSING_FIELD, name)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("id", 17),
        ("id", None),
        ("id", ["e1"]),
        ("actor_id", 1),
        ("actor_id", None),
        ("target_id", {"id": "bob"}),
        ("target_id", False),
        ("type", 1),
        ("type", None),
        ("type", ["reply"]),
        ("ts", True),
        ("ts", False),
        ("ts", str(TS)),
        ("ts", None),
        ("ts", TS + 0.5),
        ("ts", [TS]),
        ("ts", {"ms": TS}),
    ],
)
def test_wrong_type(name: str, value: Any) -> None:
    assert reason_of(encode(with_fields(**{name: value}))) == (Reason.WRONG_TYPE, name)


@pytest.mark.parametrize("name", ["id", "actor_id", "target_id"])
@pytest.mark.parametrize("char", ["x", "é", "字", "😀"])
def test_string_length_bounds_count_code_points(name: str, char: str) -> None:
    ok = decode_event(encode(with_fields(**{name: char * 128})))
    assert getattr(ok, {"id": "id", "actor_id": "actor", "target_id": "target"}[name]) == char * 128
    assert decode_event(encode(with_fields(**{name: char})))  # 1 char is the lower bound
    assert reason_of(encode(with_fields(**{name: ""}))) == (Reason.BAD_LENGTH, name)
    assert reason_of(encode(with_fields(**{name: char * 129}))) == (Reason.BAD_LENGTH, name)


def test_length_of_escaped_astral_characters_is_in_code_points() -> None:
    # json.dumps escapes "😀" as a surrogate pair (\ud83d\ude00): still one code point
    raw = json.dumps(with_fields(id="😀" * 128)).encode()
    assert b"\\ud83d\\ude00" in raw
    assert decode_event(raw).id == "😀" * 128
    raw = json.dumps(with_fields(id="😀" * 129)).encode()
    assert reason_of(raw) == (Reason.BAD_LENGTH, "id")


@pytest.mark.parametrize("kind", ["retweet", "Mention", "REPLY", "", " like", "likes"])
def test_unknown_type(kind: str) -> None:
    assert reason_of(encode(with_fields(type=kind))) == (Reason.UNKNOWN_TYPE, "type")


@pytest.mark.parametrize("ts", [946_684_800_000, 946_684_800_001, 4_102_444_799_999])
def test_ts_in_range(ts: int) -> None:
    assert decode_event(encode(with_fields(ts=ts))).ts == ts


@pytest.mark.parametrize("ts", [946_684_799_999, 4_102_444_800_000, 0, -1, 1_600_000_000, 2**63 - 1])
def test_ts_out_of_range(ts: int) -> None:
    assert reason_of(encode(with_fields(ts=ts))) == (Reason.TS_OUT_OF_RANGE, "ts")


def test_out_of_range_float_ts() -> None:
    assert reason_of(b'{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1e13}') == (
        Reason.TS_OUT_OF_RANGE,
        "ts",
    )


@pytest.mark.parametrize("text", [b"1600000000000.0", b"1.6e12", b"16000000000000e-1"])
def test_integral_float_ts_is_accepted_as_an_int(text: bytes) -> None:
    raw = b'{"id":"e1","type":"reply","actor_id":"ann","target_id":"bob","ts":' + text + b"}"
    decoded = decode_event(raw)
    assert decoded.ts == TS
    assert type(decoded.ts) is int


def test_row_updates_are_the_out_and_in_halves() -> None:
    out, in_ = row_updates(Interaction("e9", 2, "ann", "bob", TS), tag=7)
    assert out == RowUpdate(TS, "e9", "ann", "bob", OUT, 2, 7)
    assert in_ == RowUpdate(TS, "e9", "bob", "ann", IN, 2, 7)
    assert (OUT, IN) == (0, 1)


def test_row_updates_order_by_ts_then_id() -> None:
    late_a = row_updates(Interaction("a", 0, "x", "y", TS + 1))[0]
    b = row_updates(Interaction("b", 0, "x", "y", TS))[0]
    a = row_updates(Interaction("a", 0, "x", "y", TS))[0]
    assert sorted([late_a, b, a]) == [a, b, late_a]
