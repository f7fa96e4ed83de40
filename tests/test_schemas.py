"""The JSON Schemas in schemas/ agree with the engine: events, alerts, dead letters, queries."""

from __future__ import annotations

import base64
import itertools
import json
import math
import re
from collections import Counter
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from jsonschema import Draft7Validator
from jsonschema.exceptions import ValidationError

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.digests import digests_of
from streams.engine.engine import RelationshipEngine
from streams.engine.erasures import validate_erasure
from streams.engine.events import (
    INTERACTION_TYPES,
    TS_MAX,
    TS_MIN,
    Interaction,
    InvalidEvent,
    Reason,
    decode_event,
    row_updates,
    validate_event,
)
from streams.engine.feedback import validate_feedback
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, dump_alert, replay
from streams.service.dead_letter import dead_letter as service_dead_letter
from streams.settings import DAY_MS, HOUR_MS, Settings

SCHEMA_DIR = Path(__file__).resolve().parent.parent / "schemas"
SCHEMA_FILES = sorted(SCHEMA_DIR.glob("*.json"))
DRAFT_07 = "http://json-schema.org/draft-07/schema#"
NAME_RE = re.compile(r"^(?P<name>[a-z][a-z0-9-]*)\.v(?P<version>[1-9][0-9]*)\.json$")
FIELDS = ("id", "type", "actor_id", "target_id", "ts")
BYTE_LEVEL = {Reason.TOO_LARGE, Reason.NOT_UTF8, Reason.NOT_JSON}
# the service's checks after decoding: the wall clock (tests/service/test_ingest.py) and poison records
# (tests/service/test_poison_records.py)
WALL_CLOCK = {Reason.TS_IN_FUTURE, Reason.PROCESSING_ERROR}
# feedback records' own (test_the_feedback_schema_and_decoder_agree)
FEEDBACK_ONLY = {Reason.UNKNOWN_ACTION, Reason.UNEXPECTED_FIELD}


def load_schema(name: str) -> dict[str, Any]:
    """Load and check one schema file."""
    schema: dict[str, Any] = json.loads((SCHEMA_DIR / name).read_text(encoding="utf-8"))
    Draft7Validator.check_schema(schema)
    return schema


EVENT = Draft7Validator(load_schema("interaction-event.v1.json"))
ALERT = Draft7Validator(load_schema("alert.v1.json"))
DEAD_LETTER = Draft7Validator(load_schema("dead-letter.v1.json"))
RELATIONSHIPS = Draft7Validator(load_schema("relationships-response.v1.json"))

# --- the shared table of events ------------------------------------------------

DROP = object()
BASE: dict[str, Any] = {
    "id": "e-1",
    "type": "mention",
    "actor_id": "ann",
    "target_id": "bob",
    "ts": 1_700_000_000_000,
}


def ev(**changes: Any) -> dict[str, Any]:
    """`BASE` with fields replaced, or removed when given `DROP`."""
    event = {**BASE, **changes}
    return {k: v for k, v in event.items() if v is not DROP}


CASES: list[tuple[str, Any, Reason | None]] = [
    # valid
    ("base", ev(), None),
    ("each type: reply", ev(type="reply"), None),
    ("each type: like", ev(type="like"), None),
    ("id 1 char", ev(id="x"), None),
    ("id 1 non-ASCII char", ev(id="é"), None),
    ("id 128 ASCII", ev(id="a" * 128), None),
    ("actor 128 non-ASCII", ev(actor_id="é" * 128), None),
    ("target 128 astral", ev(target_id="😀" * 128), None),
    ("ts minimum", ev(ts=TS_MIN), None),
    ("ts maximum - 1", ev(ts=TS_MAX - 1), None),
    ("ts integral float", ev(ts=1_700_000_000_000.0), None),
    ("ts integral float at minimum", ev(ts=float(TS_MIN)), None),
    ("extra scalar field", ev(lang="en", score=1.5, flag=None), None),
    ("extra nested object", ev(meta={"client": {"name": "web", "v": [1, 2]}}), None),
    ("extra array", ev(tags=["a", 1, None, {"b": True}]), None),
    ("self-interaction is valid", ev(target_id="ann"), None),
    # not an object
    ("array", [BASE], Reason.NOT_OBJECT),
    ("string", "mention", Reason.NOT_OBJECT),
    ("number", 42, Reason.NOT_OBJECT),
    ("null", None, Reason.NOT_OBJECT),
    # missing fields
    ("empty object", {}, Reason.MISSING_FIELD),
    ("no id", ev(id=DROP), Reason.MISSING_FIELD),
    ("no type", ev(type=DROP), Reason.MISSING_FIELD),
    ("no actor", ev(actor_id=DROP), Reason.MISSING_FIELD),
    ("no target", ev(target_id=DROP), Reason.MISSING_FIELD),
    ("no ts", ev(ts=DROP), Reason.MISSING_FIELD),
    # wrong types
    ("id null", ev(id=None), Reason.WRONG_TYPE),
    ("id number", ev(id=7), Reason.WRONG_TYPE),
    ("actor object", ev(actor_id={"id": "ann"}), Reason.WRONG_TYPE),
    ("actor null", ev(actor_id=None), Reason.WRONG_TYPE),
    ("target null", ev(target_id=None), Reason.WRONG_TYPE),
    ("target false", ev(target_id=False), Reason.WRONG_TYPE),
    ("target array", ev(target_id=["bob"]), Reason.WRONG_TYPE),
    ("type null", ev(type=None), Reason.WRONG_TYPE),
    ("type number", ev(type=1), Reason.WRONG_TYPE),
    ("ts null", ev(ts=None), Reason.WRONG_TYPE),
    ("ts true", ev(ts=True), Reason.WRONG_TYPE),
    ("ts string", ev(ts="1700000000000"), Reason.WRONG_TYPE),
    ("ts fractional float", ev(ts=1_700_000_000_000.5), Reason.WRONG_TYPE),
    ("ts 1.5", ev(ts=1.5), Reason.WRONG_TYPE),
    # lengths
    ("id empty", ev(id=""), Reason.BAD_LENGTH),
    ("actor empty", ev(actor_id=""), Reason.BAD_LENGTH),
    ("id 129 ASCII", ev(id="a" * 129), Reason.BAD_LENGTH),
    ("target 129 non-ASCII", ev(target_id="é" * 129), Reason.BAD_LENGTH),
    ("actor 129 astral", ev(actor_id="😀" * 129), Reason.BAD_LENGTH),
    # unknown type
    ("type capitalised", ev(type="Mention"), Reason.UNKNOWN_TYPE),
    ("type retweet", ev(type="retweet"), Reason.UNKNOWN_TYPE),
    ("type empty", ev(type=""), Reason.UNKNOWN_TYPE),
    # time range
    ("ts minimum - 1", ev(ts=TS_MIN - 1), Reason.TS_OUT_OF_RANGE),
    ("ts maximum", ev(ts=TS_MAX), Reason.TS_OUT_OF_RANGE),
    ("ts zero", ev(ts=0), Reason.TS_OUT_OF_RANGE),
    ("ts negative", ev(ts=-1), Reason.TS_OUT_OF_RANGE),
    ("ts seconds, not ms", ev(ts=1_700_000_000), Reason.TS_OUT_OF_RANGE),
    ("ts integral float too big", ev(ts=1e20), Reason.TS_OUT_OF_RANGE),
]

# the JSON Schema keywords that express each reason code
KEYWORDS: dict[Reason, set[str]] = {
    Reason.NOT_OBJECT: {"type"},
    Reason.MISSING_FIELD: {"required"},
    Reason.WRONG_TYPE: {"type"},
    Reason.BAD_LENGTH: {"minLength", "maxLength"},
    Reason.UNKNOWN_TYPE: {"enum"},
    Reason.TS_OUT_OF_RANGE: {"minimum", "exclusiveMaximum"},
}


def engine_reason(obj: Any) -> InvalidEvent | None:
    """What `validate_event` says: None when valid, else the exception."""
    try:
        validate_event(obj)
    except InvalidEvent as exc:
        return exc
    return None


def error_field(error: ValidationError) -> str | None:
    """The event field a schema error is about (None for the whole object)."""
    if error.path:
        return str(error.path[0])
    if error.validator == "required":
        return str(error.message).split("'")[1]
    return None


def test_table_covers_every_value_level_reason() -> None:
    reasons = {reason for _, _, reason in CASES if reason is not None}
    assert reasons == set(Reason) - BYTE_LEVEL - WALL_CLOCK - FEEDBACK_ONLY
    assert len({name for name, _, _ in CASES}) == len(CASES)


@pytest.mark.parametrize(("obj", "expected"), [(o, r) for _, o, r in CASES], ids=[n for n, _, _ in CASES])
def test_engine_and_schema_agree(obj: Any, expected: Reason | None) -> None:
    exc = engine_reason(obj)
    assert (exc.reason if exc else None) == expected
    errors = list(EVENT.iter_errors(obj))
    assert (not errors) == (expected is None), [e.message for e in errors]
    if exc is None:
        return
    # the schema flags the same field, with a keyword that means the same thing
    flagged = {(error_field(e), e.validator) for e in errors}
    assert any(f == exc.field and v in KEYWORDS[exc.reason] for f, v in flagged), flagged


def test_valid_events_round_trip_through_bytes() -> None:
    for name, obj, expected in CASES:
        if expected is not None:
            continue
        event = decode_event(orjson.dumps(obj))
        assert isinstance(event, Interaction), name
        assert isinstance(event.ts, int), name
        assert event.ts == obj["ts"], name


# --- generated agreement -------------------------------------------------------

EDGE_STRINGS = ["", "a", "é", "a" * 128, "é" * 128, "😀" * 128, "a" * 129, "é" * 129, "😀" * 129]
EDGE_INTS = [TS_MIN - 1, TS_MIN, 1_700_000_000_000, TS_MAX - 1, TS_MAX, 0, -1]
scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(),
    st.sampled_from(EDGE_INTS),
    st.floats(),
    st.sampled_from([*(float(i) for i in EDGE_INTS), TS_MIN + 0.5, 1.5]),
    st.text(max_size=140),
    st.sampled_from([*EDGE_STRINGS, *INTERACTION_TYPES, "Like", "retweet"]),
)
json_values = st.recursive(
    scalars,
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3),
    max_leaves=6,
)
EDGE_TS: list[int | float] = [*EDGE_INTS, *(float(i) for i in EDGE_INTS), TS_MIN + 0.5, 1e20]
IN_RANGE = st.integers(min_value=TS_MIN, max_value=TS_MAX - 1)
# a field is drawn plausible (valid, or an edge either side of a rule) unless chosen to break
PLAUSIBLE: dict[str, st.SearchStrategy[Any]] = {
    "id": st.text(min_size=1, max_size=128) | st.sampled_from(EDGE_STRINGS),
    "type": st.sampled_from([*INTERACTION_TYPES, *INTERACTION_TYPES, "Like", "retweet", ""]),
    "actor_id": st.text(min_size=1, max_size=128) | st.sampled_from(EDGE_STRINGS),
    "target_id": st.text(min_size=1, max_size=128) | st.sampled_from(EDGE_STRINGS),
    "ts": IN_RANGE
    | IN_RANGE.map(float)
    | IN_RANGE.map(lambda i: i + 0.5)
    | st.floats(min_value=TS_MIN - 1, max_value=TS_MAX + 1)
    | st.sampled_from(EDGE_TS),
}


@st.composite
def events(draw: st.DrawFn) -> dict[str, Any]:
    """An event-like object: plausible fields, a few broken (missing or any JSON value), extras."""
    broken = draw(st.sets(st.sampled_from(FIELDS), max_size=3))
    obj: dict[str, Any] = draw(
        st.dictionaries(st.text(max_size=10).filter(lambda k: k not in FIELDS), json_values, max_size=3)
    )
    for name in FIELDS:
        if name not in broken:
            obj[name] = draw(PLAUSIBLE[name])
        elif draw(st.booleans()):
            obj[name] = draw(json_values)
    return obj


@settings(max_examples=500)
@given(st.one_of(events(), json_values))
def test_engine_and_schema_agree_on_generated_values(obj: Any) -> None:
    exc = engine_reason(obj)
    assert (exc is None) == EVENT.is_valid(obj), (exc, obj)


# --- alerts from the engine ------------------------------------------------------

T0 = 1_700_000_000_000
SCENARIO: list[Any] = [
    # ann <-> bob: three touches a day apart, then silence, then ann again
    {"id": "e1", "type": "mention", "actor_id": "ann", "target_id": "bob", "ts": T0},
    {"id": "e2", "type": "reply", "actor_id": "bob", "target_id": "ann", "ts": T0 + DAY_MS},
    {"id": "e3", "type": "like", "actor_id": "ann", "target_id": "bob", "ts": T0 + 2 * DAY_MS},
    {"id": "e3", "type": "like", "actor_id": "ann", "target_id": "bob", "ts": T0 + 2 * DAY_MS},
    {"id": "e4", "type": "like", "actor_id": "ann", "target_id": "ann", "ts": T0 + 2 * DAY_MS},
    # carl -> dan only: one direction, so nulls in last_in_at / last_out_at
    {"id": "c1", "type": "mention", "actor_id": "carl", "target_id": "dan", "ts": T0},
    {"id": "c2", "type": "mention", "actor_id": "carl", "target_id": "dan", "ts": T0 + DAY_MS},
    "not an event",
    {"id": "e5", "type": "mention", "actor_id": "ann", "target_id": "bob", "ts": T0 + 20 * DAY_MS},
    {"id": "c3", "type": "reply", "actor_id": "carl", "target_id": "dan", "ts": T0 + 21 * DAY_MS},
    {"id": "e6", "type": "reply", "actor_id": "bob", "target_id": "ann", "ts": T0 + 19 * DAY_MS},
]
SCENARIO_SETTINGS = Settings(
    **REPLAY_DEFAULTS,
    min_touches=2,
    require_mutual=False,
    touch_merge_ms=HOUR_MS,
    k=3.0,
    min_silence_ms=3 * DAY_MS,
    max_silence_ms=10 * DAY_MS,
)


def scenario_alerts() -> list[dict[str, Any]]:
    """Replay `SCENARIO` and return its alerts as a consumer would read them."""
    lines = [orjson.dumps(item) if isinstance(item, dict) else item.encode() for item in SCENARIO]
    return [orjson.loads(dump_alert(alert)) for alert in replay(lines, SCENARIO_SETTINGS)]


def test_every_engine_alert_validates() -> None:
    alerts = scenario_alerts()
    pairs = Counter((a["kind"], a["owner_id"], a["contact_id"]) for a in alerts)
    rows = [("ann", "bob"), ("bob", "ann"), ("carl", "dan"), ("dan", "carl")]
    assert pairs == Counter({(kind, o, c): 1 for kind in ("dormant", "revived") for o, c in rows})
    assert any(a["last_in_at"] is None for a in alerts)
    assert any(a["last_out_at"] is None for a in alerts)
    for alert in alerts:
        errors = [e.message for e in ALERT.iter_errors(alert)]
        assert not errors, (alert, errors)
        assert alert["alert_id"] == (
            f"{alert['kind']}:{alert['owner_id']}:{alert['contact_id']}:{alert['last_interaction_at']}"
        )
        assert alert["dormant_since"] == alert["last_interaction_at"] + alert["threshold_ms"]


def mutations(alert: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    """Copies of a valid alert, each broken in one way the schema must catch."""
    for name in alert:
        yield f"without {name}", {k: v for k, v in alert.items() if k != name}
    yield "kind asleep", {**alert, "kind": "asleep"}
    other = "revived" if alert["kind"] == "dormant" else "dormant"
    yield "alert_id of the other kind", {**alert, "alert_id": f"{other}:x:y:1"}
    yield "schema_version 2", {**alert, "schema_version": 2}
    yield "schema_version true", {**alert, "schema_version": True}
    yield "strength string", {**alert, "strength": "1.0"}
    yield "touches 0", {**alert, "touches": 0}
    yield "last_out_at float", {**alert, "last_out_at": T0 + 0.5}
    yield "owner empty", {**alert, "owner_id": ""}
    yield (
        "counts.in without like",
        {
            **alert,
            "counts": {"out": alert["counts"]["out"], "in": {"mention": 0, "reply": 0}},
        },
    )
    yield (
        "negative count",
        {
            **alert,
            "counts": {"out": {**alert["counts"]["out"], "reply": -1}, "in": alert["counts"]["in"]},
        },
    )


def test_alert_schema_rejects_broken_alerts() -> None:
    alert = scenario_alerts()[0]
    assert ALERT.is_valid({**alert, "explanation": {"added": "later"}})  # additive is fine
    for name, broken in mutations(alert):
        assert not ALERT.is_valid(broken), name


# --- digests -----------------------------------------------------------------------

DIGEST = Draft7Validator(load_schema("digest.v1.json"))


def collegemsg_digests() -> list[dict[str, Any]]:
    """The digests of 20,000 CollegeMsg events under short silences (3 listed at most)."""
    config = Settings(
        **REPLAY_DEFAULTS, min_touches=3, min_silence_ms=DAY_MS, max_silence_ms=7 * DAY_MS, digest_top=3
    )
    lines = [orjson.dumps(e) for e in itertools.islice(collegemsg_events(COLLEGEMSG), 20_000)]
    summary = ReplaySummary()
    alerts = list(replay(lines, config, summary))
    return digests_of(alerts, summary.watermark, config.digest_top)


def test_every_digest_validates() -> None:
    digests = collegemsg_digests()
    assert any(d["more"] for d in digests)
    assert any(not d["more"] for d in digests)
    for digest in digests:
        errors = [e.message for e in DIGEST.iter_errors(digest)]
        assert not errors, (digest, errors)
    assert all(DIGEST.is_valid(example) for example in load_schema("digest.v1.json")["examples"])


def test_digest_schema_rejects_broken_digests() -> None:
    digest = next(d for d in collegemsg_digests() if d["more"])
    entry = digest["dormant"][0]
    broken = {
        "without dormant": {k: v for k, v in digest.items() if k != "dormant"},
        "nothing listed": {**digest, "dormant": []},
        "more negative": {**digest, "more": -1},
        "a day as a number": {**digest, "day": 12552},
        "schema_version 2": {**digest, "schema_version": 2},
        "a revived alert listed": {**digest, "dormant": [{**entry, "alert_id": "revived:a:b:1"}]},
        "an entry without strength": {
            **digest,
            "dormant": [{k: v for k, v in entry.items() if k != "strength"}],
        },
    }
    for name, value in broken.items():
        assert not DIGEST.is_valid(value), name


# --- dead letters ------------------------------------------------------------------


def dead_letter(raw: bytes, key: bytes | None, max_bytes: int | None = None) -> dict[str, Any]:
    """The dead-letter record value the schema describes, for a record that fails to decode."""
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw, max_bytes)
    exc = info.value
    return {
        "reason": exc.reason.value,
        "field": exc.field,
        "detail": exc.detail,
        "source": {"topic": "interactions.mentions", "partition": 3, "offset": 41},
        "key_b64": None if key is None else base64.b64encode(key).decode("ascii"),
        "value_b64": base64.b64encode(raw).decode("ascii"),
        "error_at": 1_764_000_000_000,
        "schema_version": 1,
    }


BAD_RECORDS: list[tuple[bytes, Reason, int | None]] = [
    (b"x" * 2048, Reason.TOO_LARGE, 1024),
    (b"\xff\xfe{}", Reason.NOT_UTF8, None),
    (b"{", Reason.NOT_JSON, None),
    (b"", Reason.NOT_JSON, None),
    (b"[1]", Reason.NOT_OBJECT, None),
    (orjson.dumps(ev(id=DROP)), Reason.MISSING_FIELD, None),
    (orjson.dumps(ev(ts=True)), Reason.WRONG_TYPE, None),
    (orjson.dumps(ev(id="")), Reason.BAD_LENGTH, None),
    (orjson.dumps(ev(type="poke")), Reason.UNKNOWN_TYPE, None),
    (orjson.dumps(ev(ts=0)), Reason.TS_OUT_OF_RANGE, None),
]


def test_dead_letter_reason_enum_is_the_reason_codes() -> None:
    enum = DEAD_LETTER.schema["properties"]["reason"]["enum"]
    assert sorted(enum) == sorted(reason.value for reason in Reason)
    assert {reason for _, reason, _ in BAD_RECORDS} == set(Reason) - WALL_CLOCK - FEEDBACK_ONLY


@pytest.mark.parametrize(("raw", "reason", "max_bytes"), BAD_RECORDS, ids=[r for _, r, _ in BAD_RECORDS])
def test_dead_letter_records_validate(raw: bytes, reason: Reason, max_bytes: int | None) -> None:
    for key in (None, b"", b"ann", b"\x00\xff"):
        record = dead_letter(raw, key, max_bytes)
        assert record["reason"] == reason
        errors = [e.message for e in DEAD_LETTER.iter_errors(record)]
        assert not errors, errors
        assert base64.b64decode(record["value_b64"], validate=True) == raw


def test_service_dead_letters_validate_and_carry_the_documented_headers() -> None:
    description = DEAD_LETTER.schema["description"]
    for raw, _, max_bytes in BAD_RECORDS:
        with pytest.raises(InvalidEvent) as info:
            decode_event(raw, max_bytes)
        letter = service_dead_letter(info.value, "interactions.likes", 2, 7, b"ann", raw, 1_764_000_000_000)
        value = orjson.loads(letter.value)
        errors = [e.message for e in DEAD_LETTER.iter_errors(value)]
        assert not errors, errors
        headers = dict(letter.headers)
        assert headers.keys() == {
            "streams.error.reason",
            "streams.source.topic",
            "streams.source.partition",
            "streams.source.offset",
            "ce_specversion",
            "ce_id",
            "ce_source",
            "ce_type",
            "ce_time",
            "ce_dataschema",
            "content-type",
        }
        for name in headers:
            assert f"`{name}`" in description
        assert headers["streams.error.reason"].decode() == value["reason"]
        assert headers["streams.source.topic"].decode() == value["source"]["topic"]
        assert int(headers["streams.source.partition"]) == value["source"]["partition"]
        assert int(headers["streams.source.offset"]) == value["source"]["offset"]


def test_dead_letter_schema_rejects_broken_records() -> None:
    record = dead_letter(b"{", b"k")
    broken = {
        "unknown reason": {**record, "reason": "bad"},
        "no source": {k: v for k, v in record.items() if k != "source"},
        "negative offset": {**record, "source": {**record["source"], "offset": -1}},
        "partition string": {**record, "source": {**record["source"], "partition": "3"}},
        "value not base64": {**record, "value_b64": "not base64!"},
        "value null": {**record, "value_b64": None},
        "field number": {**record, "field": 1},
        "error_at float": {**record, "error_at": 1.5},
        "schema_version 2": {**record, "schema_version": 2},
    }
    for name, value in broken.items():
        assert not DEAD_LETTER.is_valid(value), name


# --- relationships query response --------------------------------------------------


def relationships_response(owner: str) -> dict[str, Any]:
    """A `GET /relationships/{owner}` body built from the engine's rows after the scenario."""
    engine = RelationshipEngine(SCENARIO_SETTINGS)
    for item in SCENARIO:
        if not isinstance(item, dict) or item["actor_id"] == item["target_id"]:
            continue
        for update in row_updates(validate_event(item)):
            engine.offer(update)
        engine.advance(engine.max_ts)
    engine.finish()
    rules, as_of = engine.rules, engine.watermark
    contacts = []
    for (row_owner, contact), row in sorted(engine.rows.items()):
        if row_owner != owner:
            continue
        established = rules.established(row)
        counts = row.counts
        contacts.append(
            {
                "contact_id": contact,
                "status": "dormant" if row.dormant else "active",
                "established": established,
                "strength": row.strength * rules.decay(as_of - row.last_at),
                "last_interaction_at": row.last_at,
                "last_out_at": row.last_out_at,
                "last_in_at": row.last_in_at,
                "touches": row.touches,
                "typical_gap_ms": math.floor(rules.typical_gap(row.gaps)) if established else None,
                "threshold_ms": rules.threshold(row.gaps) if established else None,
                "deadline": None if row.dormant else rules.deadline(row),
                "dormant_since": row.dormant_since,
                "counts": {
                    "out": dict(zip(INTERACTION_TYPES, counts[0:3], strict=True)),
                    "in": dict(zip(INTERACTION_TYPES, counts[3:6], strict=True)),
                },
            }
        )
    return {
        "owner_id": owner,
        "as_of": as_of,
        "count": len(contacts),
        "truncated": False,
        "contacts": contacts,
        "schema_version": 1,
    }


@pytest.mark.parametrize("owner", ["ann", "bob", "carl", "dan"])
def test_relationships_response_from_engine_rows_validates(owner: str) -> None:
    body = orjson.loads(orjson.dumps(relationships_response(owner)))
    assert body["count"] == 1
    errors = [e.message for e in RELATIONSHIPS.iter_errors(body)]
    assert not errors, errors


def test_relationships_schema_rejects_broken_responses() -> None:
    body = relationships_response("ann")
    contact = body["contacts"][0]
    dormant = {**contact, "status": "dormant", "dormant_since": T0, "deadline": None}
    assert RELATIONSHIPS.is_valid({**body, "contacts": [dormant]})
    broken_contacts = {
        "unknown status": {**contact, "status": "asleep"},
        "dormant without dormant_since": {**contact, "status": "dormant", "deadline": None},
        "active with dormant_since": {**contact, "status": "active", "dormant_since": T0},
        "dormant with a deadline": {**dormant, "deadline": T0},
        "established null": {**contact, "established": None},
        "no counts": {k: v for k, v in contact.items() if k != "counts"},
    }
    for name, broken in broken_contacts.items():
        assert not RELATIONSHIPS.is_valid({**body, "contacts": [broken]}), name
    assert not RELATIONSHIPS.is_valid({**body, "truncated": "no"})
    assert not RELATIONSHIPS.is_valid({**body, "count": -1})
    assert not RELATIONSHIPS.is_valid({k: v for k, v in body.items() if k != "as_of"})


# --- the schema files themselves ------------------------------------------------------


def property_schemas(schema: dict[str, Any], path: str = "") -> Iterator[tuple[str, dict[str, Any]]]:
    """Every schema under `properties` (recursively, through `items` too), with its path."""
    for name, sub in schema.get("properties", {}).items():
        yield f"{path}.{name}", sub
        yield from property_schemas(sub, f"{path}.{name}")
    items = schema.get("items")
    if isinstance(items, dict):
        yield from property_schemas(items, f"{path}[]")


def test_every_schema_exists() -> None:
    assert [p.name for p in SCHEMA_FILES] == [
        "alert.v1.json",
        "dead-letter.v1.json",
        "digest.v1.json",
        "erasure.v1.json",
        "feedback.v1.json",
        "interaction-event.v1.json",
        "relationships-response.v1.json",
    ]


def test_the_erasure_schema_and_decoder_agree() -> None:
    schema = Draft7Validator(load_schema("erasure.v1.json"))
    good = [*load_schema("erasure.v1.json")["examples"], {"user_id": "é" * 128, "ts": 946684800000, "x": 1}]
    for value in good:
        assert schema.is_valid(value), value
        assert validate_erasure(value) == (value["user_id"], value["ts"])
    bad = [
        {"ts": 946684800000},
        {"user_id": "", "ts": 946684800000},
        {"user_id": "é" * 129, "ts": 946684800000},
        {"user_id": 1, "ts": 946684800000},
        {"user_id": "bob", "ts": 4102444800000},
        {"user_id": "bob", "ts": "1"},
        {"user_id": "bob"},
    ]
    for value in bad:
        assert not schema.is_valid(value), value
        with pytest.raises(InvalidEvent):
            validate_erasure(value)


def test_the_feedback_schema_and_decoder_agree() -> None:
    schema = Draft7Validator(load_schema("feedback.v1.json"))
    base = {"owner_id": "ann", "contact_id": "bob", "ts": 946684800000}
    good = [
        *load_schema("feedback.v1.json")["examples"],
        {**base, "action": "unmute", "x": 1},
        {**base, "action": "mute", "until": None},
        {**base, "action": "snooze", "until": 946684800000},
        {**base, "owner_id": "é" * 128, "action": "snooze", "until": 4102444799999.0},
    ]
    for value in good:
        assert schema.is_valid(value), value
        feedback = validate_feedback(value)
        assert (feedback.owner, feedback.contact, feedback.action.name.lower(), feedback.ts) == (
            value["owner_id"],
            value["contact_id"],
            value["action"],
            value["ts"],
        )
        assert feedback.until == value.get("until")
    bad = [
        ({**base, "action": "block"}, "unknown_action"),
        ({**base, "action": 1}, "wrong_type"),
        ({**base, "action": "snooze"}, "missing_field"),
        ({**base, "action": "snooze", "until": None}, "wrong_type"),
        ({**base, "action": "snooze", "until": 4102444800000}, "ts_out_of_range"),
        ({**base, "action": "mute", "until": 946684800000}, "unexpected_field"),
        ({**base, "action": "mute", "owner_id": ""}, "bad_length"),
        ({**base, "action": "mute", "contact_id": "é" * 129}, "bad_length"),
        ({"owner_id": "ann", "contact_id": "bob", "action": "mute"}, "missing_field"),
        ({"contact_id": "bob", "action": "mute", "ts": 946684800000}, "missing_field"),
        ({**base, "action": "mute", "ts": "1"}, "wrong_type"),
        ([base], "not_object"),
    ]
    for value, reason in bad:
        assert not schema.is_valid(value), value
        with pytest.raises(InvalidEvent) as caught:
            validate_feedback(value)
        assert caught.value.reason == reason, value


@pytest.mark.parametrize("path", SCHEMA_FILES, ids=[p.name for p in SCHEMA_FILES])
def test_schema_file_conventions(path: Path) -> None:
    match = NAME_RE.match(path.name)
    assert match, path.name
    schema = load_schema(path.name)
    assert schema["$schema"] == DRAFT_07
    assert schema["$id"].endswith(f"/{path.name}")
    assert f".v{match['version']}." in schema["$id"]
    assert schema.get("title")
    assert schema.get("description")
    assert schema["type"] == "object"
    assert schema.get("additionalProperties", True) is True
    version = schema["properties"].get("schema_version")
    if version is not None:
        assert version == {**version, "const": int(match["version"])}
    for where, sub in property_schemas(schema):
        assert sub.get("title"), f"{path.name}{where} has no title"
        assert sub.get("description"), f"{path.name}{where} has no description"
