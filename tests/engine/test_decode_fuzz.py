"""Hostile input against decode_event and dead letters: properties (hypothesis), and an atheris harness (run as a script)."""

from __future__ import annotations

import base64
import hashlib
import json
import math
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator

from streams.engine.events import (
    INTERACTION_TYPES,
    MAX_ID_CHARS,
    TS_MAX,
    TS_MIN,
    Interaction,
    InvalidEvent,
    Reason,
    decode_event,
)
from streams.service.dead_letter import dead_letter

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "dead-letter.v1.json"
DEAD_LETTER = Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
ID_FIELDS = ("id", "actor_id", "target_id")
CHECK_ORDER = ("id", "actor_id", "target_id", "type", "ts")  # docs/semantics.md §1
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies ----------------------------------------------------------------

# Any Unicode scalar value: orjson cannot encode lone surrogates (they are not UTF-8).
ID_CHARS = st.characters(exclude_categories=("Cs",))
ids = st.text(ID_CHARS, min_size=1, max_size=MAX_ID_CHARS)
timestamps = st.integers(TS_MIN, TS_MAX - 1)
json_scalars = st.none() | st.booleans() | st.integers(-(2**63), 2**64 - 1) | st.text(ID_CHARS, max_size=20)
json_scalars |= st.floats(allow_nan=False, allow_infinity=False)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(ID_CHARS, max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
extras = st.dictionaries(
    st.text(ID_CHARS, max_size=10).filter(lambda k: k not in CHECK_ORDER), json_values, max_size=4
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with random ids, type, ts and unknown extra fields."""
    event: dict[str, Any] = draw(extras)
    event.update(
        id=draw(ids),
        type=draw(st.sampled_from(INTERACTION_TYPES)),
        actor_id=draw(ids),
        target_id=draw(ids),
        ts=draw(timestamps),
    )
    return event


DROP = object()
WRONG_FOR_ID = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False)
    | st.lists(st.integers(), max_size=2)
)
WRONG_FOR_ID |= st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)


@st.composite
def mutated_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event with some fields dropped or replaced by hostile values."""
    event = draw(valid_events())
    for name in draw(st.lists(st.sampled_from(CHECK_ORDER), max_size=3, unique=True)):
        if name in ID_FIELDS:
            choice = (
                st.just(DROP) | WRONG_FOR_ID | st.just("") | st.text(ID_CHARS, min_size=129, max_size=300)
            )
        elif name == "type":
            choice = (
                st.just(DROP)
                | WRONG_FOR_ID
                | st.text(ID_CHARS, max_size=12)
                | st.sampled_from(["Mention", "LIKE", " reply", "reply "])
            )
        else:
            choice = (
                st.just(DROP)
                | st.none()
                | st.booleans()
                | st.text(max_size=14)
                | st.integers(-(2**200), 2**200)
                | st.sampled_from(
                    [
                        TS_MIN - 1,
                        TS_MIN,
                        TS_MAX - 1,
                        TS_MAX,
                        float(TS_MIN),
                        float(TS_MAX),
                        TS_MIN + 0.5,
                        1e300,
                        -0.0,
                    ]
                )
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.lists(st.integers(), max_size=2)
            )
        value = draw(choice)
        if value is DROP:
            del event[name]
        else:
            event[name] = value
    return event


def expected_reason(obj: Any) -> tuple[Reason, str | None] | None:
    """Oracle written from docs/semantics.md §1: the first failing check names the reason (None = valid)."""
    if not isinstance(obj, dict):
        return Reason.NOT_OBJECT, None
    for name in ID_FIELDS:
        if name not in obj:
            return Reason.MISSING_FIELD, name
        value = obj[name]
        if not isinstance(value, str):
            return Reason.WRONG_TYPE, name
        if not 1 <= len(value) <= MAX_ID_CHARS:
            return Reason.BAD_LENGTH, name
    if "type" not in obj:
        return Reason.MISSING_FIELD, "type"
    if not isinstance(obj["type"], str):
        return Reason.WRONG_TYPE, "type"
    if obj["type"] not in INTERACTION_TYPES:
        return Reason.UNKNOWN_TYPE, "type"
    if "ts" not in obj:
        return Reason.MISSING_FIELD, "ts"
    ts = obj["ts"]
    if isinstance(ts, bool) or not isinstance(ts, int | float):
        return Reason.WRONG_TYPE, "ts"
    if isinstance(ts, float) and not ts.is_integer():
        return Reason.WRONG_TYPE, "ts"
    if not TS_MIN <= ts < TS_MAX:
        return Reason.TS_OUT_OF_RANGE, "ts"
    return None


def encode(obj: Any, spelling: str = "orjson") -> bytes:
    """JSON bytes: orjson (UTF-8, compact), or the stdlib (ASCII escapes; also for integers beyond 64 bits)."""
    if spelling == "orjson":
        try:
            return orjson.dumps(obj)
        except TypeError:  # orjson refuses integers beyond 64 bits
            pass
    return json.dumps(obj).encode()


def outcome(raw: bytes, max_bytes: int | None = None) -> Interaction | InvalidEvent:
    """decode_event's result or its InvalidEvent; any other exception fails the test."""
    try:
        return decode_event(raw, max_bytes)
    except InvalidEvent as exc:
        return exc


def assert_rejected(
    raw: bytes, reason: Reason, field: str | None = None, max_bytes: int | None = None
) -> None:
    """`raw` is a dead letter with exactly this reason (and field)."""
    result = outcome(raw, max_bytes)
    assert isinstance(result, InvalidEvent), f"{raw[:80]!r} accepted as {result}"
    assert (result.reason, result.field) == (reason, field), f"{raw[:80]!r}: {result}"


def interaction_of(event: dict[str, Any]) -> Interaction:
    """What a valid event must decode to."""
    return Interaction(
        event["id"],
        INTERACTION_TYPES.index(event["type"]),
        event["actor_id"],
        event["target_id"],
        int(event["ts"]),
    )


# --- decode_event: valid events decode exactly ----------------------------------


@FUZZ
@given(valid_events())
def test_valid_events_decode_exactly(event: dict[str, Any]) -> None:
    want = interaction_of(event)
    assert decode_event(orjson.dumps(event)) == want
    # the same event spelled differently: ASCII escapes, whitespace, integral float ts
    assert decode_event(json.dumps(event, ensure_ascii=True, indent=1).encode()) == want
    assert decode_event(orjson.dumps({**event, "ts": float(event["ts"])})) == want


@FUZZ
@given(valid_events(), st.integers(0, 64))
def test_size_limit_is_checked_first_and_exactly(event: dict[str, Any], slack: int) -> None:
    raw = orjson.dumps(event)
    assert decode_event(raw, max_bytes=len(raw) + slack) == interaction_of(event)
    assert_rejected(raw, Reason.TOO_LARGE, max_bytes=len(raw) - 1)
    assert_rejected(b"\xff" * (len(raw) + 1), Reason.TOO_LARGE, max_bytes=len(raw))


@pytest.mark.parametrize("char", ["a", "é", "€", "\U0001f600", "\x00"])
def test_ids_of_128_code_points_pass_and_129_do_not(char: str) -> None:
    for name in ID_FIELDS:
        event = {"id": "e", "type": "like", "actor_id": "a", "target_id": "b", "ts": TS_MIN, name: char * 128}
        assert decode_event(orjson.dumps(event)) == interaction_of(event)
        assert_rejected(orjson.dumps({**event, name: char * 129}), Reason.BAD_LENGTH, name)
        assert_rejected(orjson.dumps({**event, name: ""}), Reason.BAD_LENGTH, name)


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (b"946684800000", None),
        (b"946684800000.0", None),
        (b"9.466848e11", None),
        (b"4102444799999", None),
        (b"946684799999", Reason.TS_OUT_OF_RANGE),
        (b"4102444800000", Reason.TS_OUT_OF_RANGE),
        (b"4102444800000.0", Reason.TS_OUT_OF_RANGE),
        (b"-0.0", Reason.TS_OUT_OF_RANGE),
        (b"-1", Reason.TS_OUT_OF_RANGE),
        (b"9223372036854775808", Reason.TS_OUT_OF_RANGE),
        (b"-9223372036854775809", Reason.TS_OUT_OF_RANGE),
        (b"1" + b"0" * 300, Reason.TS_OUT_OF_RANGE),
        (b"1e308", Reason.TS_OUT_OF_RANGE),
        (b"946684800000.5", Reason.WRONG_TYPE),
        (b'"1600000000000"', Reason.WRONG_TYPE),
        (b"true", Reason.WRONG_TYPE),
        (b"null", Reason.WRONG_TYPE),
        (b"[1600000000000]", Reason.WRONG_TYPE),
        (b"NaN", Reason.NOT_JSON),
        (b"Infinity", Reason.NOT_JSON),
        (b"-Infinity", Reason.NOT_JSON),
        (b"1e400", Reason.NOT_JSON),
    ],
)
def test_timestamps_at_and_beyond_the_bounds(ts: bytes, reason: Reason | None) -> None:
    raw = b'{"id":"e","type":"mention","actor_id":"a","target_id":"b","ts":' + ts + b"}"
    if reason is None:
        assert decode_event(raw).ts == int(float(ts))
    else:
        assert_rejected(raw, reason, None if reason is Reason.NOT_JSON else "ts")


# --- decode_event: hostile input --------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096))
@example(b"")
@example(b"\xef\xbb\xbf{}")
@example(b"\x00")
@example(b"[" * 5000)
def test_random_bytes_raise_only_invalid_event(raw: bytes) -> None:
    result = outcome(raw)
    if isinstance(result, InvalidEvent):
        assert isinstance(result.reason, Reason)
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            assert result.reason is Reason.NOT_UTF8
            return
        try:
            value = json.loads(text)
        except (ValueError, RecursionError):  # the stdlib parser is no oracle for depth
            assert result.reason in {Reason.NOT_JSON, Reason.NOT_OBJECT}
            return
        if isinstance(value, dict | list):
            assert result.reason is not Reason.NOT_UTF8


@FUZZ
@given(mutated_events(), st.sampled_from(["orjson", "ascii"]))
def test_mutated_events_are_rejected_with_the_documented_reason(event: dict[str, Any], spelling: str) -> None:
    raw = encode(event, spelling)
    # The stdlib spells inf/nan `Infinity`/`NaN`, which is not JSON (orjson writes null).
    non_finite = spelling == "ascii" and any(
        isinstance(v, float) and not math.isfinite(v) for v in event.values()
    )
    want = (Reason.NOT_JSON, None) if non_finite else expected_reason(event)
    result = outcome(raw)
    if want is None:
        assert result == interaction_of(event)
    else:
        assert isinstance(result, InvalidEvent), f"{event} accepted"
        assert (result.reason, result.field) == want, event


@FUZZ
@given(json_values)
def test_any_json_value_is_an_event_or_a_documented_rejection(value: Any) -> None:
    result = outcome(encode(value))
    want = expected_reason(value)
    if want is None:
        assert isinstance(result, Interaction)
    else:
        assert isinstance(result, InvalidEvent)
        assert (result.reason, result.field) == want


@FUZZ
@given(valid_events(), st.data())
def test_truncated_json_is_not_json(event: dict[str, Any], data: st.DataObject) -> None:
    raw = orjson.dumps(event)
    cut = data.draw(st.integers(0, len(raw) - 1))
    prefix = raw[:cut]
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError:  # cut inside a multi-byte character
        assert_rejected(prefix, Reason.NOT_UTF8)
    else:
        assert_rejected(prefix, Reason.NOT_JSON)


@FUZZ
@given(valid_events(), st.data())
def test_byte_level_mutations_never_raise_anything_else(event: dict[str, Any], data: st.DataObject) -> None:
    raw = bytearray(orjson.dumps(event))
    for _ in range(data.draw(st.integers(1, 4))):
        at = data.draw(st.integers(0, len(raw) - 1))
        action = data.draw(st.sampled_from(["flip", "insert", "delete"]))
        if action == "flip":
            raw[at] ^= 1 << data.draw(st.integers(0, 7))
        elif action == "insert":
            raw[at:at] = data.draw(st.binary(min_size=1, max_size=4))
        elif len(raw) > 1:
            del raw[at]
    result = outcome(bytes(raw))
    assert isinstance(result, Interaction | InvalidEvent)
    if isinstance(result, InvalidEvent):
        assert isinstance(result.reason, Reason)


@FUZZ
@given(
    valid_events(), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])
)
def test_invalid_utf8_inside_a_string_is_not_utf8(event: dict[str, Any], bad: bytes) -> None:
    raw = orjson.dumps({**event, "id": "x"}).replace(b'"id":"x"', b'"id":"x' + bad + b'"', 1)
    assert_rejected(raw, Reason.NOT_UTF8)


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"[" * 1025 + b"]" * 1025, Reason.NOT_JSON, None),  # deeper than the parser's limit
        (b"[" * 1000 + b"]" * 1000, Reason.NOT_OBJECT, None),
        (b'{"a":' * 1000 + b"1" + b"}" * 1000, Reason.MISSING_FIELD, "id"),
        (
            b'{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000,"x":'
            + b"[" * 1030
            + b"]" * 1030
            + b"}",
            Reason.NOT_JSON,
            None,
        ),
        (b'{"id":"' + b"x" * 2_000_000 + b'"}', Reason.BAD_LENGTH, "id"),
        (
            b'{"id":"\\ud800","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}',
            Reason.NOT_JSON,
            None,
        ),
        (
            b'{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}{}',
            Reason.NOT_JSON,
            None,
        ),
        (
            b'\xef\xbb\xbf{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}',
            Reason.NOT_JSON,
            None,
        ),
        (
            b'{"id":"e","type":"poke","actor_id":"a","target_id":"b","ts":1600000000000}',
            Reason.UNKNOWN_TYPE,
            "type",
        ),
        (
            b'{"id":"e","type":"Reply","actor_id":"a","target_id":"b","ts":1600000000000}',
            Reason.UNKNOWN_TYPE,
            "type",
        ),
        (
            b'{"id":"e","type":null,"actor_id":"a","target_id":"b","ts":1600000000000}',
            Reason.WRONG_TYPE,
            "type",
        ),
        (
            b'{"id":"e","id":7,"type":"like","actor_id":"a","target_id":"b","ts":1600000000000}',
            Reason.WRONG_TYPE,
            "id",
        ),
        (b"", Reason.NOT_JSON, None),
        (b"   ", Reason.NOT_JSON, None),
        (b"null", Reason.NOT_OBJECT, None),
        (b'"{}"', Reason.NOT_OBJECT, None),
    ],
)
def test_hostile_shapes(raw: bytes, reason: Reason, field: str | None) -> None:
    assert_rejected(raw, reason, field)


def test_nested_json_within_the_parser_limit_is_an_ignored_extra_field() -> None:
    raw = (
        b'{"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000,"x":'
        + b"[" * 1000
        + b"]" * 1000
        + b"}"
    )
    assert decode_event(raw) == Interaction("e", 2, "a", "b", 1_600_000_000_000)


# --- dead letters -------------------------------------------------------------------


@FUZZ
@given(
    st.binary(max_size=2048) | valid_events().map(encode) | mutated_events().map(encode),
    st.none() | st.binary(max_size=64),
    st.text(ID_CHARS, min_size=1, max_size=40),
    st.integers(0, 2**31 - 1),
    st.integers(0, 2**62),
    st.integers(0, 2**62),
    st.sampled_from([None, 64, 1024]),
)
def test_dead_letters_follow_the_schema_and_keep_the_original_bytes(
    raw: bytes, key: bytes | None, topic: str, partition: int, offset: int, now_ms: int, max_bytes: int | None
) -> None:
    result = outcome(raw, max_bytes)
    if not isinstance(result, InvalidEvent):
        return
    letter = dead_letter(result, topic, partition, offset, key, raw, now_ms)
    envelope = orjson.loads(letter.value)
    errors = sorted(DEAD_LETTER.iter_errors(envelope), key=str)
    assert not errors, errors[0].message
    assert base64.b64decode(envelope["value_b64"], validate=True) == raw
    assert (
        None if envelope["key_b64"] is None else base64.b64decode(envelope["key_b64"], validate=True)
    ) == key
    assert letter.key == key
    assert (envelope["reason"], envelope["field"]) == (result.reason.value, result.field)
    assert envelope["source"] == {"topic": topic, "partition": partition, "offset": offset}
    assert envelope["error_at"] == now_ms
    headers = dict(letter.headers)
    assert headers["streams.error.reason"] == result.reason.value.encode()
    assert headers["streams.source.topic"].decode() == topic
    assert int(headers["streams.source.partition"]) == partition
    assert int(headers["streams.source.offset"]) == offset


def test_every_reason_has_a_schema_valid_dead_letter() -> None:
    samples = {
        Reason.TOO_LARGE: (b"{}" * 10, 4),
        Reason.NOT_UTF8: (b"\xff", None),
        Reason.NOT_JSON: (b"", None),
        Reason.NOT_OBJECT: (b"[]", None),
        Reason.MISSING_FIELD: (b"{}", None),
        Reason.WRONG_TYPE: (b'{"id":1}', None),
        Reason.BAD_LENGTH: (b'{"id":""}', None),
        Reason.UNKNOWN_TYPE: (b'{"id":"e","actor_id":"a","target_id":"b","type":"x"}', None),
        Reason.TS_OUT_OF_RANGE: (b'{"id":"e","actor_id":"a","target_id":"b","type":"like","ts":0}', None),
    }
    assert set(samples) == set(Reason)
    for reason, (raw, max_bytes) in samples.items():
        result = outcome(raw, max_bytes)
        assert isinstance(result, InvalidEvent)
        assert result.reason is reason
        envelope = orjson.loads(dead_letter(result, "t", 0, 0, None, raw, 0).value)
        assert DEAD_LETTER.is_valid(envelope)
        assert math.isfinite(envelope["error_at"])


@pytest.mark.parametrize("size", [512 * 1024, 512 * 1024 + 1, 900_000, 3_000_000])
def test_large_dead_letters_stay_under_the_producer_limit(size: int) -> None:
    raw = b'{"id":"' + b"x" * (size - 9) + b'"}'
    assert len(raw) == size
    result = outcome(raw, 1_000_000)
    assert isinstance(result, InvalidEvent)
    letter = dead_letter(result, "t", 0, 7, b"k" * 100_000, raw, 0)
    envelope = orjson.loads(letter.value)
    assert DEAD_LETTER.is_valid(envelope)
    assert len(letter.value) + len(letter.key or b"") < 1_000_000  # aiokafka's max_request_size in Faust
    assert envelope["value_size"] == size
    kept = base64.b64decode(envelope["value_b64"])
    if size <= 512 * 1024:  # kept whole: the original round-trips
        assert kept == raw
        assert "value_truncated" not in envelope
    else:  # the first 64 KiB, and what identifies the whole
        assert kept == raw[: 64 * 1024]
        assert envelope["value_truncated"] is True
        assert envelope["value_sha256"] == hashlib.sha256(raw).hexdigest()


# --- atheris (optional; see docs/guarantees.md) -------------------------------------

SEEDS = [
    b'{"id":"e1","type":"reply","actor_id":"ann","target_id":"bob","ts":1600000000000}',
    b'{"id":"e1","type":"like","actor_id":"ann","target_id":"bob","ts":1.6e12,"x":[1,{"y":null}]}',
    b'{"id":"","type":"poke","actor_id":1,"target_id":null,"ts":"1"}',
    b'[{"id":"e1"}]',
]


def fuzz_one_input(data: bytes) -> None:
    """One atheris input: decode it; a rejection must give a schema-valid, lossless dead letter."""
    try:
        decode_event(data, 4096)
    except InvalidEvent as exc:
        letter = dead_letter(exc, "fuzz", 0, 0, data[:8] or None, data, 0)
        envelope = orjson.loads(letter.value)
        if not DEAD_LETTER.is_valid(envelope) or base64.b64decode(envelope["value_b64"]) != data:
            raise AssertionError(f"bad dead letter for {data!r}") from None


def main(argv: list[str]) -> None:  # pragma: no cover - needs atheris
    """`python tests/engine/test_decode_fuzz.py [CORPUS_DIR] -atheris_runs=N`: libFuzzer over decode_event."""
    import tempfile  # noqa: PLC0415

    import atheris  # type: ignore[import-not-found]  # noqa: PLC0415

    import streams.engine.events as events  # noqa: PLC0415

    # Coverage feedback only reaches Python bytecode: instrument the validator (orjson is native).
    events.validate_event = atheris.instrument_func(events.validate_event)
    globals()["decode_event"] = atheris.instrument_func(events.decode_event)
    if not any(not arg.startswith("-") for arg in argv[1:]):
        corpus = Path(tempfile.mkdtemp(prefix="decode-fuzz-"))
        for number, seed in enumerate(SEEDS):
            (corpus / f"seed{number}").write_bytes(seed)
        argv = [*argv, str(corpus)]
    atheris.Setup(argv, fuzz_one_input)
    atheris.Fuzz()


if __name__ == "__main__":  # pragma: no cover
    main(sys.argv)
