"""Which records are valid events, and each invalid one's dead-letter reason, decided from the contract alone.

The contract is `schemas/interaction-event.v1.json` (checked here with `jsonschema`) plus what
`docs/semantics.md` §1 adds: the size limit, UTF-8, RFC 8259 JSON, and the order of the checks.
Nothing here calls or imports `streams.engine.events`; the size limit is the caller's (a `Settings` value).

Decisions where the contract is silent or ambiguous (each reported with the oracle):

- **Check order.** §1 runs the checks "size, bytes, JSON, object, then `id`, `actor_id`, `target_id`,
  `type`, `ts`": read field by field, so every check of `id` comes before any check of `actor_id`.
  Within one field the table's order applies: absent, then the wrong JSON type, then the value's rule.
- **Parser limits.** RFC 8259 lets a parser limit nesting (§9) and the range and precision of numbers
  (§6, which recommends IEEE 754 binary64). The oracle takes those limits: nesting deeper than
  `MAX_DEPTH` containers (docs/guarantees.md §3: "the parser's 1,024 levels") and a number beyond the
  binary64 range (such as `1e400` or a 400-digit integer) are `not_json`, wherever they are in the
  record; a number with a fraction or an exponent is read as the nearest binary64, so
  `1700000000000.0000001` is the integer 1700000000000.
- **Unpaired surrogates.** A string escape such as `"\\ud800"` names no Unicode character (RFC 8259
  §8.2; I-JSON, RFC 7493 §2.1, forbids it); the record is not UTF-8 text once unescaped: `not_json`,
  wherever it is, in the value of a repeated name that a later one replaces too.
- **Duplicate names.** RFC 8259 §4 leaves them to the parser; the last one wins (as in ECMAScript).
- **Byte-order mark.** A leading U+FEFF is not JSON whitespace (RFC 8259 §2, §8.1): `not_json`.
"""

from __future__ import annotations

import json
import math
import re
import sys
from pathlib import Path
from typing import Any, NamedTuple

from jsonschema import Draft7Validator

SCHEMAS = Path(__file__).resolve().parents[2] / "schemas"
EVENT_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "interaction-event.v1.json").read_text(encoding="utf-8"))
DEAD_LETTER_SCHEMA: dict[str, Any] = json.loads((SCHEMAS / "dead-letter.v1.json").read_text(encoding="utf-8"))
EVENT_VALIDATOR = Draft7Validator(EVENT_SCHEMA)

# The contract's bounds, as the schema states them (for generators and hand-written cases).
_PROPERTIES = EVENT_SCHEMA["properties"]
TYPES: tuple[str, ...] = tuple(_PROPERTIES["type"]["enum"])
ID_MIN_CHARS: int = _PROPERTIES["id"]["minLength"]
ID_MAX_CHARS: int = _PROPERTIES["id"]["maxLength"]
TS_MIN: int = _PROPERTIES["ts"]["minimum"]
TS_END: int = _PROPERTIES["ts"]["exclusiveMaximum"]

FIELD_ORDER = ("id", "actor_id", "target_id", "type", "ts")  # docs/semantics.md §1
RECORD_REASONS = ("too_large", "not_utf8", "not_json", "not_object")  # about the record as a whole
FIELD_REASONS = ("missing_field", "wrong_type", "bad_length", "unknown_type", "ts_out_of_range")
REASON_OF_KEYWORD = {
    "required": "missing_field",
    "type": "wrong_type",
    "minLength": "bad_length",
    "maxLength": "bad_length",
    "enum": "unknown_type",
    "minimum": "ts_out_of_range",
    "exclusiveMaximum": "ts_out_of_range",
}
MAX_DEPTH = 1024

assert set(FIELD_ORDER) == set(EVENT_SCHEMA["required"]) == set(_PROPERTIES)
WALL_CLOCK_REASONS = ("ts_in_future",)  # the service's, after decoding (hybrid clock only): not the oracle's
PROCESSING_REASONS = ("processing_error",)  # the service's, a poison record: not about its bytes
FEEDBACK_REASONS = ("unknown_action", "unexpected_field")  # feedback records' own, never an event's
assert set(
    RECORD_REASONS + FIELD_REASONS + WALL_CLOCK_REASONS + PROCESSING_REASONS + FEEDBACK_REASONS
) == set(DEAD_LETTER_SCHEMA["properties"]["reason"]["enum"])

_STRING = re.compile(r'"[^"\\]*(?:\\.[^"\\]*)*"', re.DOTALL)
_BRACKET = re.compile(r"[\[\]{}]")
_SURROGATE = re.compile("[\ud800-\udfff]")


class Event(NamedTuple):
    """The five fields of a valid event, as the record states them (`ts` as an exact integer)."""

    id: str
    type: str
    actor_id: str
    target_id: str
    ts: int


class Verdict(NamedTuple):
    """The contract's verdict on one record: the event when valid, else the dead letter's reason and field."""

    event: Event | None
    reason: str | None = None
    field: str | None = None


class NotJSON(ValueError):
    """The text is not a JSON value within the parser limits above."""


def judge(raw: bytes, max_bytes: int | None = None) -> Verdict:
    """The verdict on one record value; `max_bytes` is the service's `max_record_bytes` (None: no limit)."""
    if max_bytes is not None and len(raw) > max_bytes:
        return Verdict(None, "too_large")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        return Verdict(None, "not_utf8")
    try:
        value = parse_json(text)
    except NotJSON:
        return Verdict(None, "not_json")
    limit = sys.getrecursionlimit()
    sys.setrecursionlimit(limit + 3 * MAX_DEPTH)  # the schema's messages repr values nested MAX_DEPTH deep
    try:
        return judge_value(value)
    finally:
        sys.setrecursionlimit(limit)


def judge_value(value: Any) -> Verdict:
    """The verdict on an already-parsed JSON value: the schema's errors, the first by the documented order."""
    faults: set[tuple[str, str]] = set()
    for error in EVENT_VALIDATOR.iter_errors(value):
        if error.validator == "type" and not error.absolute_path:
            return Verdict(None, "not_object")
        if error.validator == "required":
            faults.update((name, "missing_field") for name in error.validator_value if name not in value)
            continue
        assert len(error.absolute_path) == 1, f"a schema rule the oracle does not know: {error}"
        assert error.validator in REASON_OF_KEYWORD, f"a schema keyword the oracle does not know: {error}"
        faults.add((str(error.absolute_path[0]), REASON_OF_KEYWORD[str(error.validator)]))
    if faults:
        field, reason = min(faults, key=lambda f: (FIELD_ORDER.index(f[0]), FIELD_REASONS.index(f[1])))
        return Verdict(None, reason, field)
    return Verdict(Event(value["id"], value["type"], value["actor_id"], value["target_id"], int(value["ts"])))


def parse_json(text: str) -> Any:
    """RFC 8259 JSON with the limits above; raise `NotJSON` otherwise."""
    unpaired: list[str] = []

    def last_name_wins(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        for name, item in pairs:  # every pair, those a repeated name replaces included
            inner = [] if isinstance(item, dict) else strings_in(item)  # a dict's own pairs came through here
            unpaired.extend(s for s in (name, *inner) if _SURROGATE.search(s))
        return dict(pairs)

    limit = sys.getrecursionlimit()
    # Room for MAX_DEPTH nested containers: deeper ones fail here or in the depth check below.
    sys.setrecursionlimit(limit + 3 * MAX_DEPTH)
    try:
        value = json.loads(
            text,
            parse_constant=_refuse_constant,
            parse_float=_binary64,
            parse_int=_integer,
            object_pairs_hook=last_name_wins,
        )
    except (ValueError, RecursionError) as exc:
        raise NotJSON(str(exc)) from None
    finally:
        sys.setrecursionlimit(limit)
    if nesting_depth(text) > MAX_DEPTH:
        raise NotJSON(f"nested deeper than {MAX_DEPTH}")
    if unpaired or any(_SURROGATE.search(s) for s in strings_in(value)):
        raise NotJSON("an unpaired surrogate escape")
    return value


def nesting_depth(text: str) -> int:
    """The deepest nesting of arrays and objects in a valid JSON text."""
    depth = deepest = 0
    for bracket in _BRACKET.findall(_STRING.sub("", text)):
        depth += 1 if bracket in "[{" else -1
        deepest = max(deepest, depth)
    return deepest


def strings_in(value: Any) -> list[str]:
    """Every string in a parsed JSON value, object names included."""
    found: list[str] = []
    pending = [value]
    while pending:
        item = pending.pop()
        if isinstance(item, str):
            found.append(item)
        elif isinstance(item, dict):
            found.extend(item)
            pending.extend(item.values())
        elif isinstance(item, list):
            pending.extend(item)
    return found


def _refuse_constant(name: str) -> Any:
    """`NaN`, `Infinity` and `-Infinity` are not JSON (RFC 8259 §6)."""
    raise ValueError(f"{name} is not a JSON number")


def _binary64(spelled: str) -> float:
    """A number with a fraction or an exponent: the nearest binary64, which must be finite."""
    number = float(spelled)
    if math.isinf(number):
        raise ValueError(f"{spelled[:20]}… is beyond the binary64 range")
    return number


def _integer(spelled: str) -> int:
    """An integer literal: exact, within the binary64 range."""
    if math.isinf(float(spelled)):
        raise ValueError(f"{spelled[:20]}… is beyond the binary64 range")
    return int(spelled)
