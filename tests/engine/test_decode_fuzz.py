"""Hostile input against decode_event, judged by a contract oracle (tests/engine/validity_oracle.py); dead letters; an atheris harness (run as a script)."""

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

from streams.engine.events import INTERACTION_TYPES, Interaction, InvalidEvent, Reason, decode_event
from streams.service.dead_letter import dead_letter
from streams.settings import Settings

if __name__ == "__main__":  # run as a script (atheris): the repository root makes `tests` importable
    sys.path.insert(0, str(Path(__file__).resolve().parents[2]))
from tests.engine.validity_oracle import (
    FIELD_ORDER,
    ID_MAX_CHARS,
    ID_MIN_CHARS,
    MAX_DEPTH,
    TS_END,
    TS_MIN,
    TYPES,
    Event,
    Verdict,
    judge,
)

SCHEMA = Path(__file__).resolve().parents[2] / "schemas" / "dead-letter.v1.json"
DEAD_LETTER = Draft7Validator(json.loads(SCHEMA.read_text(encoding="utf-8")))
ID_FIELDS = ("id", "actor_id", "target_id")
FUZZ = settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# --- strategies: bounds from the schema, not from the code under test ------------

# Any Unicode scalar value: orjson cannot encode lone surrogates (they are not UTF-8).
ID_CHARS = st.characters(exclude_categories=("Cs",))
ids = st.text(ID_CHARS, min_size=ID_MIN_CHARS, max_size=ID_MAX_CHARS)
timestamps = st.integers(TS_MIN, TS_END - 1)
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
    st.text(ID_CHARS, max_size=10).filter(lambda k: k not in FIELD_ORDER), json_values, max_size=4
)


@st.composite
def valid_events(draw: st.DrawFn) -> dict[str, Any]:
    """A valid event built from the schema (any ids, type, ts, unknown extra fields), its keys in any order."""
    event: dict[str, Any] = draw(extras)
    event.update(
        id=draw(ids),
        type=draw(st.sampled_from(TYPES)),
        actor_id=draw(ids),
        target_id=draw(ids),
        ts=draw(timestamps | timestamps.map(float)),
    )
    return dict(draw(st.permutations(list(event.items()))))


DROP = object()
WRONG_FOR_ID = (
    st.none()
    | st.booleans()
    | st.integers(-(2**80), 2**80)
    | st.floats(allow_nan=False)
    | st.lists(st.integers(), max_size=2)
)
WRONG_FOR_ID |= st.dictionaries(st.text(max_size=3), st.integers(), max_size=2)
HOSTILE_TS = st.sampled_from(
    [TS_MIN - 1, TS_MIN, TS_END - 1, TS_END, float(TS_MIN), float(TS_END), TS_MIN + 0.5, 1e300, -0.0]
)


@st.composite
def mutated_events(draw: st.DrawFn, faults: tuple[int, int] = (1, 3)) -> dict[str, Any]:
    """A valid event with `faults` (least, most) fields dropped or replaced by hostile values (reasons compete)."""
    event = draw(valid_events())
    low, high = faults
    for name in draw(st.lists(st.sampled_from(FIELD_ORDER), min_size=low, max_size=high, unique=True)):
        if name in ID_FIELDS:
            choice = (
                st.just(DROP)
                | WRONG_FOR_ID
                | st.just("")
                | st.text(ID_CHARS, min_size=ID_MAX_CHARS + 1, max_size=300)
            )
        elif name == "type":
            choice = (
                st.just(DROP)
                | WRONG_FOR_ID
                | st.text(ID_CHARS, max_size=12)
                | st.sampled_from(["Mention", "LIKE", " reply", "reply ", "like\x00"])
            )
        else:
            choice = (
                st.just(DROP)
                | st.none()
                | st.booleans()
                | st.text(max_size=14)
                | st.integers(-(2**200), 2**200)
                | HOSTILE_TS
                | st.floats(allow_nan=False, allow_infinity=False)
                | st.lists(st.integers(), max_size=2)
            )
        value = draw(choice)
        if value is DROP:
            del event[name]
        else:
            event[name] = value
    return event


# JSON tokens that are not JSON, or are at the parser's limits (RFC 8259 §6, §7).
HOSTILE_TOKENS = [
    "NaN",
    "Infinity",
    "-Infinity",
    "1e400",
    "-1e999",
    "1" + "0" * 400,
    "1e-400",
    "-0",
    "01",
    "1.",
    ".5",
    "+1",
    "0x1F",
    "True",
    "nul",
    "'x'",
    '"\\x41"',
    '"\\u12"',
    '"\\ud800"',
    '"x\\udc00"',
    '"\\ud83d\\ude00"',
    '"a\tb"',
    '"\\/"',
    "[1,]",
    '{"a":1,}',
    "\u00a01",
]
SPACE = st.sampled_from(["", "", " ", "\t", "\n", "\r\n "])
SHORT_ESCAPES = {
    '"': '\\"',
    "\\": "\\\\",
    "/": "\\/",
    "\b": "\\b",
    "\f": "\\f",
    "\n": "\\n",
    "\r": "\\r",
    "\t": "\\t",
}


def spell_string(draw: st.DrawFn, text: str) -> str:
    """A JSON string literal for `text`, each character written as itself or escaped."""
    out = ['"']
    for char in text:
        must = char in '"\\' or char < " "
        if not must and draw(st.integers(0, 7)) != 0:
            out.append(char)
        elif char in SHORT_ESCAPES and draw(st.booleans()):
            out.append(SHORT_ESCAPES[char])
        elif ord(char) > 0xFFFF:
            high, low = divmod(ord(char) - 0x10000, 0x400)
            out.append(f"\\u{0xD800 + high:04x}\\u{0xDC00 + low:04X}")
        else:
            out.append(f"\\u{ord(char):04x}")
    return "".join([*out, '"'])


def spell_number(draw: st.DrawFn, number: int | float) -> str:
    """A JSON number literal for `number`: plain, with a zero fraction, or with an exponent."""
    if isinstance(number, float):
        return repr(number)
    forms = [str(number), f"{number}.0", f"{number}.000"]
    forms += [f"{number * 10**k}e-{k}" for k in (1, 3)]
    forms += [f"{number // 10**k}E+{k}" for k in (1, 2) if number and number % 10**k == 0]
    return draw(st.sampled_from(forms))


def spell(draw: st.DrawFn, value: Any, hostile: int) -> str:
    """`value` as JSON text, spelled one of the many ways; one value in `hostile` (0: none) becomes an odd token."""
    if hostile and draw(st.integers(1, hostile)) == 1:
        return draw(st.sampled_from(HOSTILE_TOKENS))
    if isinstance(value, dict):
        members = []
        for name, item in value.items():
            if draw(st.integers(0, 9)) == 0:  # a repeated name before the one that counts
                members.append(f"{spell_string(draw, name)}:{spell(draw, draw(json_scalars), hostile)}")
            members.append(
                f"{spell_string(draw, name)}{draw(SPACE)}:{draw(SPACE)}{spell(draw, item, hostile)}"
            )
        return "{" + draw(SPACE) + f"{draw(SPACE)},{draw(SPACE)}".join(members) + draw(SPACE) + "}"
    if isinstance(value, list):
        return "[" + ",".join(draw(SPACE) + spell(draw, item, hostile) for item in value) + draw(SPACE) + "]"
    if isinstance(value, str):
        return spell_string(draw, value)
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return spell_number(draw, value)


@st.composite
def spelled(draw: st.DrawFn, values: st.SearchStrategy[Any], hostile: bool) -> bytes:
    """JSON text of a drawn value, in UTF-8, spelled by `spell` (with `hostile`, at a drawn rate of odd tokens)."""
    rate = draw(st.sampled_from([0, 8, 40])) if hostile else 0
    return (draw(SPACE) + spell(draw, draw(values), rate) + draw(SPACE)).encode()


# --- the check: decode_event agrees with the contract --------------------------------


def outcome(raw: bytes, max_bytes: int | None = None) -> Interaction | InvalidEvent:
    """decode_event's result or its InvalidEvent; any other exception fails the test."""
    try:
        return decode_event(raw, max_bytes)
    except InvalidEvent as exc:
        return exc


def fields_of(decoded: Interaction) -> Event:
    """The five fields decode_event returned, named as in the record."""
    return Event(decoded.id, INTERACTION_TYPES[decoded.type], decoded.actor, decoded.target, decoded.ts)


def assert_agrees(raw: bytes, max_bytes: int | None = None) -> Verdict:
    """decode_event gives the oracle's verdict on `raw`: the same event, or the same reason and field."""
    want = judge(raw, max_bytes)
    got = outcome(raw, max_bytes)
    if want.event is None:
        assert isinstance(got, InvalidEvent), f"{raw[:120]!r} decoded as {got}; contract: {want}"
        assert (got.reason.value, got.field) == (want.reason, want.field), (
            f"{raw[:120]!r}: {got}; contract: {want}"
        )
    else:
        assert isinstance(got, Interaction), f"{raw[:120]!r} rejected: {got}; contract: {want}"
        assert fields_of(got) == want.event, raw[:120]
        assert type(got.ts) is int
    return want


def encode(obj: Any, spelling: str = "orjson") -> bytes:
    """JSON bytes: orjson (UTF-8, compact), or the stdlib (ASCII escapes; also for integers beyond 64 bits)."""
    if spelling == "orjson":
        try:
            return orjson.dumps(obj)
        except TypeError:  # orjson refuses integers beyond 64 bits
            pass
    return json.dumps(obj).encode()


def event_of(record: dict[str, Any]) -> Event:
    """The fields a valid generated event carries."""
    return Event(record["id"], record["type"], record["actor_id"], record["target_id"], int(record["ts"]))


def record(**fields: Any) -> bytes:
    """A valid event's bytes with some fields replaced."""
    base = {"id": "e", "type": "like", "actor_id": "a", "target_id": "b", "ts": 1_600_000_000_000}
    return orjson.dumps({**base, **fields})


# --- valid events decode exactly --------------------------------------------------------


@FUZZ
@given(valid_events())
def test_valid_events_decode_exactly(event: dict[str, Any]) -> None:
    raw = orjson.dumps(event)
    assert assert_agrees(raw) == Verdict(event_of(event))  # the oracle agrees with the generator too
    # the same event spelled differently: ASCII escapes, whitespace, integral float ts
    assert assert_agrees(json.dumps(event, ensure_ascii=True, indent=1).encode()) == Verdict(event_of(event))
    assert assert_agrees(orjson.dumps({**event, "ts": float(event["ts"])})) == Verdict(event_of(event))


@FUZZ
@given(spelled(valid_events(), hostile=False))
def test_any_spelling_of_a_valid_event_decodes_exactly(raw: bytes) -> None:
    assert assert_agrees(raw).event is not None


@FUZZ
@given(valid_events(), st.integers(0, 64))
def test_size_limit_is_checked_first_and_exactly(event: dict[str, Any], slack: int) -> None:
    raw = orjson.dumps(event)
    assert assert_agrees(raw, max_bytes=len(raw) + slack) == Verdict(event_of(event))
    assert assert_agrees(raw, max_bytes=len(raw) - 1) == Verdict(None, "too_large")
    assert assert_agrees(b"\xff" * (len(raw) + 1), max_bytes=len(raw)) == Verdict(None, "too_large")


def test_the_default_size_limit_is_inclusive() -> None:
    limit = Settings().max_record_bytes
    head = record()[:-1] + b',"pad":"'
    exactly = head + b"p" * (limit - len(head) - 2) + b'"}'
    assert len(exactly) == limit
    assert assert_agrees(exactly, limit).event is not None
    assert assert_agrees(exactly[:-2] + b'p"}', limit) == Verdict(None, "too_large")


@pytest.mark.parametrize("char", ["a", "é", "€", "\U0001f600", "\x00"])
def test_ids_of_128_code_points_pass_and_129_do_not(char: str) -> None:
    assert ID_MAX_CHARS == 128  # docs/semantics.md §1 and the schema agree
    for name in ID_FIELDS:
        assert assert_agrees(record(**{name: char * 128})).event is not None
        assert assert_agrees(record(**{name: char * 129})) == Verdict(None, "bad_length", name)
        assert assert_agrees(record(**{name: ""})) == Verdict(None, "bad_length", name)


@pytest.mark.parametrize(
    ("ts", "reason"),
    [
        (b"946684800000", None),
        (b"946684800000.0", None),
        (b"9.466848e11", None),
        (b"94668480000000e-2", None),
        (b"4102444799999", None),
        (b"4102444799999.000", None),
        (b"1700000000000.0000001", None),  # read as the nearest binary64 (see the oracle)
        (b"946684799999", "ts_out_of_range"),
        (b"4102444800000", "ts_out_of_range"),
        (b"4102444800000.0", "ts_out_of_range"),
        (b"4.1024448E12", "ts_out_of_range"),
        (b"-0.0", "ts_out_of_range"),
        (b"-0", "ts_out_of_range"),
        (b"0", "ts_out_of_range"),
        (b"1e-400", "ts_out_of_range"),
        (b"-1", "ts_out_of_range"),
        (b"9223372036854775808", "ts_out_of_range"),
        (b"-9223372036854775809", "ts_out_of_range"),
        (b"18446744073709551616", "ts_out_of_range"),
        (b"1" + b"0" * 300, "ts_out_of_range"),
        (b"1e308", "ts_out_of_range"),
        (b"946684800000.5", "wrong_type"),
        (b"4102444799999.5", "wrong_type"),
        (b'"1600000000000"', "wrong_type"),
        (b"true", "wrong_type"),
        (b"null", "wrong_type"),
        (b"[1600000000000]", "wrong_type"),
        (b'{"ms":1600000000000}', "wrong_type"),
        (b"NaN", "not_json"),
        (b"Infinity", "not_json"),
        (b"-Infinity", "not_json"),
        (b"1e400", "not_json"),  # beyond binary64 (see the oracle)
        (b"1" + b"0" * 400, "not_json"),
        (b"01600000000000", "not_json"),
        (b"+1600000000000", "not_json"),
        (b"1600000000000.", "not_json"),
    ],
)
def test_timestamps_at_and_beyond_the_bounds(ts: bytes, reason: str | None) -> None:
    raw = b'{"id":"e","type":"mention","actor_id":"a","target_id":"b","ts":' + ts + b"}"
    verdict = assert_agrees(raw)
    if reason is None:
        assert verdict.event is not None
        assert verdict.event.ts == int(float(ts))
    else:
        assert verdict == Verdict(None, reason, None if reason == "not_json" else "ts")


# --- hostile input ----------------------------------------------------------------------


@FUZZ
@given(st.binary(max_size=4096), st.sampled_from([None, None, 16, 1024]))
@example(b"", None)
@example(b"\xef\xbb\xbf{}", None)
@example(b"\x00", None)
@example(b"[" * 5000, None)
@example(b"\xff" * 17, 16)
def test_random_bytes_raise_only_invalid_event(raw: bytes, max_bytes: int | None) -> None:
    assert_agrees(raw, max_bytes)


@FUZZ
@given(mutated_events(), st.sampled_from(["orjson", "ascii"]))
def test_mutated_events_are_rejected_with_the_documented_reason(event: dict[str, Any], spelling: str) -> None:
    assert_agrees(encode(event, spelling))


@FUZZ
@given(mutated_events(faults=(1, 1)))
def test_one_hostile_field_gets_its_reason(event: dict[str, Any]) -> None:
    assert_agrees(encode(event))


@FUZZ
@given(mutated_events(faults=(2, 2)))
def test_two_hostile_fields_compete_in_the_documented_order(event: dict[str, Any]) -> None:
    assert_agrees(encode(event))


@FUZZ
@given(spelled(mutated_events(), hostile=True) | spelled(json_values, hostile=True))
def test_hostile_spellings_get_the_contracts_verdict(raw: bytes) -> None:
    assert_agrees(raw)


@FUZZ
@given(json_values)
def test_any_json_value_is_an_event_or_a_documented_rejection(value: Any) -> None:
    assert_agrees(encode(value))


@FUZZ
@given(valid_events(), st.data())
def test_truncated_json_is_not_json(event: dict[str, Any], data: st.DataObject) -> None:
    raw = orjson.dumps(event)
    prefix = raw[: data.draw(st.integers(0, len(raw) - 1))]
    try:
        prefix.decode("utf-8")
    except UnicodeDecodeError:  # cut inside a multi-byte character
        assert assert_agrees(prefix) == Verdict(None, "not_utf8")
    else:
        assert assert_agrees(prefix) == Verdict(None, "not_json")


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
            raw[at:at] = data.draw(
                st.binary(min_size=1, max_size=4) | st.sampled_from([b"\\", b'"', b"{", b"]"])
            )
        elif len(raw) > 1:
            del raw[at]
    assert_agrees(bytes(raw))


@FUZZ
@given(
    valid_events(), st.sampled_from([b"\xff", b"\xc3", b"\xed\xa0\x80", b"\xf8\x88\x80\x80\x80", b"\xc0\xaf"])
)
def test_invalid_utf8_inside_a_string_is_not_utf8(event: dict[str, Any], bad: bytes) -> None:
    raw = orjson.dumps({**event, "id": "x"}).replace(b'"id":"x"', b'"id":"x' + bad + b'"', 1)
    assert assert_agrees(raw) == Verdict(None, "not_utf8")


VALID = b'"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000'


@pytest.mark.parametrize(
    ("raw", "reason", "field"),
    [
        (b"[" * (MAX_DEPTH + 1) + b"]" * (MAX_DEPTH + 1), "not_json", None),  # deeper than the parser's limit
        (b"[" * MAX_DEPTH + b"]" * MAX_DEPTH, "not_object", None),
        (b'{"a":' * MAX_DEPTH + b"1" + b"}" * MAX_DEPTH, "missing_field", "id"),
        (b"{" + VALID + b',"x":' + b"[" * MAX_DEPTH + b"]" * MAX_DEPTH + b"}", "not_json", None),
        (b"{" + VALID + b',"x":' + b"[" * (MAX_DEPTH - 1) + b"]" * (MAX_DEPTH - 1) + b"}", None, None),
        (b"{" + VALID + b',"x":1e400}', "not_json", None),  # beyond binary64, even in an unknown field
        (b'{"id":"' + b"x" * 2_000_000 + b'"}', "bad_length", "id"),
        (
            b'{"id":"\\ud800","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}',
            "not_json",
            None,
        ),
        (
            b'{"id":"\\ud83d\\ude00","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}',
            None,
            None,
        ),
        (b"{" + VALID + b"}{}", "not_json", None),
        (b"{" + VALID + b"},", "not_json", None),
        (b"\xef\xbb\xbf{" + VALID + b"}", "not_json", None),  # a byte-order mark
        (b"\x0c{" + VALID + b"}", "not_json", None),  # not JSON whitespace
        (b" \t\r\n{" + VALID + b"}\n", None, None),
        (
            b'{"id":"e","type":"poke","actor_id":"a","target_id":"b","ts":1600000000000}',
            "unknown_type",
            "type",
        ),
        (
            b'{"id":"e","type":"Reply","actor_id":"a","target_id":"b","ts":1600000000000}',
            "unknown_type",
            "type",
        ),
        (b'{"id":"e","type":null,"actor_id":"a","target_id":"b","ts":1600000000000}', "wrong_type", "type"),
        (
            b'{"id":"e","id":7,"type":"like","actor_id":"a","target_id":"b","ts":1600000000000}',
            "wrong_type",
            "id",
        ),
        (b'{"id":7,"id":"e","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}', None, None),
        (
            b'{"ts":0,"type":"poke","target_id":"","actor_id":1,"id":""}',
            "bad_length",
            "id",
        ),  # order of the checks,
        (
            b'{"id":"","type":"like","target_id":"b","ts":1600000000000}',
            "bad_length",
            "id",
        ),  # not of the record,
        (
            b'{"id":"e","actor_id":"a","target_id":7,"type":"poke"}',
            "wrong_type",
            "target_id",
        ),  # nor of reasons
        (b'{"id":"e","actor_id":"a","target_id":"b","type":"poke","ts":0}', "unknown_type", "type"),
        (b'{"id":"e","actor_id":"a","target_id":"b","ts":true}', "missing_field", "type"),
        (b'{"id":"e","actor_id":"a","target_id":"b","type":"like"}', "missing_field", "ts"),
        (b"", "not_json", None),
        (b"   ", "not_json", None),
        (b"null", "not_object", None),
        (b'"{}"', "not_object", None),
        (b"\xff{}", "not_utf8", None),
    ],
)
def test_hostile_shapes(raw: bytes, reason: str | None, field: str | None) -> None:
    verdict = assert_agrees(raw)
    assert (verdict.reason, verdict.field) == (reason, field)
    assert (verdict.event is None) == (reason is not None)


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
    assert_agrees(raw, max_bytes)
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
    # ts_in_future is the service's check after decoding (tests/service/test_ingest.py); feedback has its own
    # (tests/test_schemas.py)
    assert set(samples) == set(Reason) - {
        Reason.TS_IN_FUTURE,
        Reason.PROCESSING_ERROR,
        Reason.UNKNOWN_ACTION,
        Reason.UNEXPECTED_FIELD,
    }
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
    """One atheris input: decode_event agrees with the oracle; a rejection gives a schema-valid, lossless dead letter."""
    assert_agrees(data, 4096)
    try:
        decode_event(data, 4096)
    except InvalidEvent as exc:
        letter = dead_letter(exc, "fuzz", 0, 0, data[:8] or None, data, 0)
        envelope = orjson.loads(letter.value)
        if not DEAD_LETTER.is_valid(envelope) or base64.b64decode(envelope["value_b64"]) != data:
            raise AssertionError(f"bad dead letter for {data!r}") from None


@pytest.mark.parametrize("seed", [*SEEDS, b"", b"\xff", b"[" * 2000])
def test_the_atheris_harness_checks_its_seeds(seed: bytes) -> None:
    fuzz_one_input(seed)


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
