"""Hostile input on the real broker: every bad record is a dead letter with its reason, the good ones still make the replay's alerts."""

from __future__ import annotations

import base64
import hashlib
import random
import string
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import orjson
import pytest
from faust.auth import SASLCredentials, SSLCredentials
from kafka import KafkaProducer

from streams.kafka_admin import bootstrap_servers, client_options
from streams.service.app import create_app
from streams.settings import Settings
from tests.engine.validity_oracle import (
    FIELD_ORDER,
    FIELD_REASONS,
    ID_MAX_CHARS,
    RECORD_REASONS,
    TS_END,
    TS_MIN,
    TYPES,
    judge,
)
from tests.service.conftest import BROKER, TopicSet, Worker, produce_lines
from tests.service.test_faults import (
    FAST,
    alive,
    assert_same_alerts,
    collegemsg_lines,
    consumed,
    metric,
    read_to_end,
    replay_alerts,
    serving,
    wait_for_ids,
    wait_until,
)

MAX_RECORD_BYTES = 200_000
TS = 1_082_040_961_000  # the first CollegeMsg event


def event(**fields: Any) -> dict[str, Any]:
    """A valid event with some fields replaced."""
    return {"id": "h", "type": "mention", "actor_id": "ha", "target_id": "hb", "ts": TS, **fields}


def record(**fields: Any) -> bytes:
    """A valid event's bytes (ASCII) with some fields replaced."""
    return orjson.dumps(event(**fields))


def without(*names: str) -> bytes:
    """A valid event's bytes without some fields."""
    return orjson.dumps({k: v for k, v in event().items() if k not in names})


class Case(NamedTuple):
    """A hostile record and the dead letter it must make, by construction."""

    raw: bytes
    reason: str
    field: str | None = None


VALID = record()
TS_TEXT = str(TS).encode()
PAD = VALID[:-1] + b',"pad":"'

# One or more records per documented reason (docs/semantics.md §1), each written with its reason.
HAND_WRITTEN = [
    Case(b"\x00" * (MAX_RECORD_BYTES + 1), "too_large"),
    Case(PAD + b"p" * (MAX_RECORD_BYTES - len(PAD) - 1) + b'"}', "too_large"),  # a valid event, 1 byte over
    Case(b"\xff" * (MAX_RECORD_BYTES + 1), "too_large"),  # size comes before the bytes
    Case(b"\xff\xfe\xfd", "not_utf8"),
    Case(VALID.replace(b'"ha"', b'"h\xc3"'), "not_utf8"),  # a cut two-byte character inside a string
    Case(VALID.replace(b'"ha"', b'"h\xed\xa0\x80"'), "not_utf8"),  # an encoded surrogate
    Case(VALID.replace(b'"ha"', b'"h\xc0\xaf"'), "not_utf8"),  # an overlong encoding
    Case(b"\x80" + VALID, "not_utf8"),
    Case(b"", "not_json"),
    Case(b" ", "not_json"),
    Case(b"\n", "not_json"),
    Case(b"\xef\xbb\xbf" + VALID, "not_json"),  # a byte-order mark
    Case(VALID + b"{}", "not_json"),
    Case(VALID[:-1], "not_json"),
    Case(b"{'id': 'h'}", "not_json"),
    Case(b"[" * 5_000 + b"]" * 5_000, "not_json"),  # deeper than the parser's 1,024 levels
    Case(VALID[:-1] + b',"x":' + b"[" * 1_100 + b"]" * 1_100 + b"}", "not_json"),
    Case(VALID.replace(TS_TEXT, b"1" + b"0" * 400), "not_json"),  # beyond binary64
    Case(VALID.replace(TS_TEXT, b"NaN"), "not_json"),
    Case(VALID.replace(TS_TEXT, b"Infinity"), "not_json"),
    Case(VALID.replace(TS_TEXT, b"-Infinity"), "not_json"),
    Case(VALID.replace(TS_TEXT, b"1e999"), "not_json"),
    Case(VALID.replace(b'"ha"', b'"\\ud800"'), "not_json"),  # an unpaired surrogate escape
    Case(b"null", "not_object"),
    Case(b"[]", "not_object"),
    Case(b'"event"', "not_object"),
    Case(TS_TEXT, "not_object"),
    Case(b"true", "not_object"),
    Case(orjson.dumps([event()]), "not_object"),
    *(Case(without(name), "missing_field", name) for name in FIELD_ORDER),
    Case(b'{"a":' * 1_000 + b"1" + b"}" * 1_000, "missing_field", "id"),
    Case(orjson.dumps({"event": event()}), "missing_field", "id"),
    Case(record(id=12), "wrong_type", "id"),
    Case(record(actor_id={"id": "ha"}), "wrong_type", "actor_id"),
    Case(record(target_id=True), "wrong_type", "target_id"),
    Case(record(type=None), "wrong_type", "type"),
    Case(record(type=["like"]), "wrong_type", "type"),
    Case(record(ts=str(TS)), "wrong_type", "ts"),
    Case(record(ts=TS + 0.5), "wrong_type", "ts"),
    Case(record(ts=True), "wrong_type", "ts"),
    Case(record(ts=None), "wrong_type", "ts"),
    Case(record(id="x" * 150_000), "bad_length", "id"),  # a huge string, under the size limit
    Case(record(id="\U0001f600" * (ID_MAX_CHARS + 1)), "bad_length", "id"),
    Case(record(actor_id=""), "bad_length", "actor_id"),
    Case(record(target_id="b" * (ID_MAX_CHARS + 1)), "bad_length", "target_id"),
    Case(record(type="poke"), "unknown_type", "type"),
    Case(record(type="Mention"), "unknown_type", "type"),
    Case(record(ts=TS_MIN - 1), "ts_out_of_range", "ts"),
    Case(record(ts=TS_END), "ts_out_of_range", "ts"),
    Case(record(ts=float(TS_END)), "ts_out_of_range", "ts"),
    Case(record(ts=-(2**63)), "ts_out_of_range", "ts"),
    Case(record(ts=2**64 - 1), "ts_out_of_range", "ts"),
    Case(record(ts=1e308), "ts_out_of_range", "ts"),
    # several faults: the first check in the documented order names the reason
    Case(record(id="", type="poke", ts=0), "bad_length", "id"),
    Case(record(actor_id=1, target_id=""), "wrong_type", "actor_id"),
    Case(orjson.dumps({"ts": 0, "type": "poke", "target_id": "hb", "actor_id": "ha"}), "missing_field", "id"),
    Case(orjson.dumps({k: v for k, v in event(ts=0).items() if k != "type"}), "missing_field", "type"),
    Case(record(type="poke", ts="soon"), "unknown_type", "type"),
]

ID_FIELDS = FIELD_ORDER[:3]
REASONS = RECORD_REASONS + FIELD_REASONS
NOT_A_STRING: list[Any] = [None, True, False, 0, 7, -1.5, 1e300, [], ["h"], {}, {"id": "h"}]
NOT_A_TS: list[Any] = [None, True, "1082040961000", "", TS + 0.25, -0.5, [TS], {"ms": TS}]


def letters(rng: random.Random, low: int, high: int) -> str:
    """A random ASCII string of `low` to `high` letters."""
    return "".join(rng.choices(string.ascii_letters, k=rng.randint(low, high)))


def random_case(rng: random.Random, reason: str) -> Case:
    """A random record made to fail with `reason`, and only that."""
    if reason == "not_utf8":  # a byte that never occurs in UTF-8, or a stray continuation byte
        at = rng.randrange(len(VALID) + 1)
        return Case(
            VALID[:at] + rng.choice([b"\xff", b"\xfe", b"\x80", b"\xbf", b"\xc1\x81"]) + VALID[at:], reason
        )
    if reason == "not_json":  # a proper prefix of an object, or bare words
        if rng.random() < 0.7:
            return Case(VALID[: rng.randrange(1, len(VALID))], reason)
        return Case(f"x{letters(rng, 0, 30)}".encode(), reason)
    if reason == "not_object":
        value = rng.choice([[rng.random() for _ in range(rng.randrange(4))], rng.randrange(-(10**9), 10**9)])
        return Case(orjson.dumps(rng.choice([value, letters(rng, 0, 20), [event()]])), reason)
    if reason == "missing_field":
        dropped = rng.sample(FIELD_ORDER, rng.randint(1, len(FIELD_ORDER)))
        return Case(without(*dropped), reason, min(dropped, key=FIELD_ORDER.index))
    if reason == "wrong_type":
        name = rng.choice(FIELD_ORDER)
        return Case(record(**{name: rng.choice(NOT_A_TS if name == "ts" else NOT_A_STRING)}), reason, name)
    if reason == "bad_length":
        name = rng.choice(ID_FIELDS)
        value = "" if rng.random() < 0.3 else letters(rng, ID_MAX_CHARS + 1, 4 * ID_MAX_CHARS)
        return Case(record(**{name: value}), reason, name)
    if reason == "unknown_type":
        value = rng.choice([letters(rng, 0, 12), rng.choice(TYPES).upper(), rng.choice(TYPES) + " "])
        assert value not in TYPES
        return Case(record(type=value), reason, "type")
    assert reason == "ts_out_of_range"
    ts = rng.choice([rng.randrange(-(2**63), TS_MIN), rng.randrange(TS_END, 2**63)])
    return Case(record(ts=rng.choice([ts, float(ts)])), reason, "ts")


def hostile_cases(rng: random.Random) -> list[Case]:
    """The hand-written cases and 30 random ones for each reason but `too_large`, shuffled."""
    cases = list(HAND_WRITTEN)
    for reason in REASONS[1:]:
        cases += [random_case(rng, reason) for _ in range(30)]
    rng.shuffle(cases)
    return cases


def test_every_hostile_case_has_the_contracts_reason() -> None:
    cases = hostile_cases(random.Random(20260501))
    assert {case.reason for case in cases} == set(REASONS)
    for case in cases:  # the table, cross-checked by the oracle written from the contract
        verdict = judge(case.raw, MAX_RECORD_BYTES)
        assert (verdict.reason, verdict.field) == (case.reason, case.field), case.raw[:100]


@pytest.mark.broker
def test_a_burst_of_garbage_is_dead_lettered_and_the_alerts_are_the_replays(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    cases = hostile_cases(random.Random(20260501))
    hostile = [case.raw for case in cases]
    valid = collegemsg_lines(20_000)
    edge = [  # valid events at the limits (late, on rows of their own)
        record(id="edge-1", actor_id="edge-a", target_id="edge-b", ts=TS_MIN),
        record(id="i" * ID_MAX_CHARS, actor_id="a" * ID_MAX_CHARS, target_id="\U0001f600" * ID_MAX_CHARS),
    ]
    assert all(judge(raw, MAX_RECORD_BYTES).event is not None for raw in edge)
    thirds = len(hostile) // 3
    lines = (
        valid[:5_000]
        + hostile[:thirds]
        + valid[5_000:10_000]
        + edge
        + hostile[thirds : 2 * thirds]
        + valid[10_000:15_000]
        + hostile[2 * thirds :]
        + valid[15_000:]
    )
    want, summary = replay_alerts(lines, **FAST, max_record_bytes=MAX_RECORD_BYTES)
    # (the replay reads lines: it skips blank ones, which the service dead-letters as not_json)
    assert summary.invalid == Counter(case.reason for case in cases if case.raw.strip())
    topic_set = topic_factory(3, **FAST, max_record_bytes=MAX_RECORD_BYTES)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    produce_lines(topic_set, lines)

    assert_same_alerts(wait_for_ids(topic_set, want), want)
    wait_until(lambda: consumed(worker) >= len(lines), 60, "every record to be read")
    assert alive(worker), "the worker died"

    got: Counter[tuple[bytes, str, str | None]] = Counter()
    for letter in read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"]):
        envelope = orjson.loads(letter.value)
        raw = base64.b64decode(envelope["value_b64"])  # kept whole: every case is under 512 KiB
        got[(raw, envelope["reason"], envelope["field"])] += 1
        assert dict(letter.headers)["streams.error.reason"].decode() == envelope["reason"]
    want_letters = Counter((case.raw, case.reason, case.field) for case in cases)
    assert got == want_letters, (
        f"missing {list(want_letters - got)[:3]}, unexpected {list(got - want_letters)[:3]}"
    )
    reasons = Counter(case.reason for case in cases)
    assert metric(worker, "relationships_dead_letters_total") == len(cases)
    for reason, count in reasons.items():
        assert metric(worker, "relationships_invalid_events_total", f'{{reason="{reason}"}}') == count


def crashed(worker: Worker) -> bool:
    """An agent of the worker crashed (Faust restarts it; the batch it held is lost)."""
    return "Crashed reason=" in worker.log_text()


def run_until_read_or_crashed(worker: Worker, records: int) -> None:
    """Wait until the worker read `records` input records or an agent crashed."""
    wait_until(lambda: crashed(worker) or consumed(worker) >= records, 90, f"{records} records read")


@pytest.mark.broker
def test_a_900_kb_record_is_dead_lettered_and_its_batch_is_kept(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    valid = collegemsg_lines(6_000)
    huge = orjson.dumps(event())[:-1] + b',"pad":"' + b"p" * 900_000 + b'"}'
    lines = [*valid[:3_000], huge, *valid[3_000:]]
    want, _ = replay_alerts(lines, **FAST, max_record_bytes=MAX_RECORD_BYTES)
    topic_set = topic_factory(1, **FAST, max_record_bytes=MAX_RECORD_BYTES)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    produce_lines(topic_set, lines)
    run_until_read_or_crashed(worker, len(lines))
    assert not crashed(worker), "an agent crashed"
    letters = [orjson.loads(r.value) for r in read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"])]
    assert [letter["reason"] for letter in letters] == ["too_large"]
    # Over 512 KiB the envelope keeps the first 64 KiB, the size and the SHA-256 (schemas/dead-letter.v1.json).
    assert letters[0]["value_truncated"] is True
    assert letters[0]["value_size"] == len(huge)
    assert letters[0]["value_sha256"] == hashlib.sha256(huge).hexdigest()
    assert base64.b64decode(letters[0]["value_b64"]) == huge[: 64 * 1024]
    assert alive(worker)
    assert_same_alerts(wait_for_ids(topic_set, want, timeout_s=60), want)


@pytest.mark.broker
def test_a_tombstone_is_a_dead_letter(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    lines = collegemsg_lines(3_000)
    want, _ = replay_alerts(lines, **FAST)
    topic_set = topic_factory(1, **FAST)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER), acks="all")
    try:
        producer.send(topic_set.env["STREAMS_TOPIC_MENTIONS"], key=b"ann", value=None)
        producer.flush()
    finally:
        producer.close()
    produce_lines(topic_set, lines)
    run_until_read_or_crashed(worker, len(lines) + 1)
    assert not crashed(worker), "an agent crashed"
    assert alive(worker)
    letters = [orjson.loads(r.value) for r in read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"])]
    assert [(letter["reason"], letter["value_b64"]) for letter in letters] == [("not_json", "")]
    assert_same_alerts(wait_for_ids(topic_set, want, timeout_s=60), want)


DAY_MS = 86_400_000
YEAR_MS = 365 * DAY_MS


@pytest.mark.broker
def test_an_event_from_the_future_is_a_dead_letter_under_the_hybrid_clock(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    """Good events from tomorrow on (within `max_future`): the hybrid clock's watermark stays on event time and
    their alerts are the replay's. One event three years ahead of them is a dead letter, not a watermark jump."""
    collegemsg = [orjson.loads(raw) for raw in collegemsg_lines(10_000)]
    shift = int(time.time() * 1000) + DAY_MS - collegemsg[0]["ts"]
    good = [orjson.dumps({**e, "ts": e["ts"] + shift}) for e in collegemsg]
    future = orjson.dumps(
        {**collegemsg[5_000], "id": "future", "ts": collegemsg[5_000]["ts"] + shift + 3 * YEAR_MS}
    )
    lines = [*good[:5_000], future, *good[5_000:]]
    want, _ = replay_alerts(good, **FAST)
    assert len(want) > 100
    topic_set = topic_factory(3, **FAST, clock="hybrid", max_future_ms=YEAR_MS)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    produce_lines(topic_set, lines)

    assert_same_alerts(wait_for_ids(topic_set, want), want)
    wait_until(lambda: consumed(worker) >= len(lines), 60, "every record to be read")
    letters = read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"])
    envelopes = [orjson.loads(letter.value) for letter in letters]
    assert [(e["reason"], e["field"], base64.b64decode(e["value_b64"])) for e in envelopes] == [
        ("ts_in_future", "ts", future)
    ]
    assert dict(letters[0].headers)["streams.error.reason"] == b"ts_in_future"
    assert metric(worker, "relationships_invalid_events_total", '{reason="ts_in_future"}') == 1
    assert metric(worker, "relationships_dead_letters_total") == 1
    assert alive(worker)


# --- security basics -------------------------------------------------------------------------


def listening_addresses(port: int) -> set[str]:
    """Local IPv4 addresses with a socket listening on `port` (from /proc/net/tcp)."""
    found: set[str] = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:  # 0A = LISTEN
            found.add(".".join(str(b) for b in reversed(bytes.fromhex(address))))
    return found


@pytest.mark.broker
def test_the_web_port_binds_loopback_and_logs_carry_no_payloads(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    secret = "payload-canary-7f3a"
    lines = [
        *collegemsg_lines(1_000),
        orjson.dumps(event(id=secret, type="poke")),
        orjson.dumps(event(id=secret, ts="soon")),
        f'{{"id": "{secret}", broken'.encode(),
    ]
    topic_set = topic_factory(1, log_level="info")
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    assert listening_addresses(worker.web_port) == {"127.0.0.1"}
    produce_lines(topic_set, lines)
    wait_until(lambda: metric(worker, "relationships_dead_letters_total") >= 3, 60, "the dead letters")
    log = worker.log_text()
    assert "dead letter" in log  # they are logged: where from and why
    assert secret not in log  # but never what they held


def test_security_settings_reach_faust_and_kafka_python(tmp_path: Path) -> None:
    cafile = tmp_path / "ca.pem"
    cafile.write_text("")
    settings = Settings(
        broker_security_protocol="SASL_PLAINTEXT",
        broker_sasl_mechanism="SCRAM-SHA-512",
        broker_sasl_username="svc",
        broker_sasl_password="s3cret-pw",
    )
    credentials = create_app(settings).conf.broker_credentials
    assert isinstance(credentials, SASLCredentials)
    assert (credentials.username, credentials.password, credentials.mechanism.value) == (
        "svc",
        "s3cret-pw",
        "SCRAM-SHA-512",
    )
    options = client_options(settings)
    assert options["security_protocol"] == "SASL_PLAINTEXT"
    assert (options["sasl_mechanism"], options["sasl_plain_username"], options["sasl_plain_password"]) == (
        "SCRAM-SHA-512",
        "svc",
        "s3cret-pw",
    )
    assert "s3cret-pw" not in repr(settings)
    tls = Settings(broker_security_protocol="SSL", broker_ssl_cafile=None)
    assert isinstance(create_app(tls).conf.broker_credentials, SSLCredentials)
    assert client_options(Settings(broker_ssl_cafile=cafile))["ssl_cafile"] == str(cafile)
    assert create_app(Settings()).conf.broker_credentials is None
    assert create_app(Settings()).conf.web_bind == "127.0.0.1"
    assert create_app(Settings(web_host="0.0.0.0")).conf.web_bind == "0.0.0.0"
