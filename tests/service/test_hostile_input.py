"""Hostile input on the real broker: every bad record is a dead letter with its reason, the good ones still make the replay's alerts."""

from __future__ import annotations

import base64
import hashlib
import random
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.auth import SASLCredentials, SSLCredentials
from kafka import KafkaProducer

from streams.engine.events import MAX_ID_CHARS, TS_MAX, TS_MIN, InvalidEvent, decode_event
from streams.kafka_admin import bootstrap_servers, client_options
from streams.service.app import create_app
from streams.settings import Settings
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

pytestmark = pytest.mark.broker

MAX_RECORD_BYTES = 200_000
TS = 1_082_040_961_000  # the first CollegeMsg event


def event(**fields: Any) -> dict[str, Any]:
    """A valid event with some fields replaced."""
    return {"id": "h", "type": "mention", "actor_id": "ha", "target_id": "hb", "ts": TS, **fields}


def hostile_records(rng: random.Random) -> list[bytes]:
    """A few hundred invalid records of every kind (each one checked to be invalid)."""
    valid = orjson.dumps(event())
    records: list[bytes] = [
        b"",
        b" ",
        b"\n",
        b"null",
        b"[]",
        b'"event"',
        b"1082040961000",
        b"\xff\xfe\xfd",
        b"\xef\xbb\xbf" + valid,  # a byte-order mark
        valid.replace(b'"ha"', b'"h\xc3"'),  # invalid UTF-8 inside a string
        valid + b"{}",
        b"[" * 5_000 + b"]" * 5_000,  # deeper than the parser's limit
        b'{"a":' * 3_000 + b"1" + b"}" * 3_000,
        valid[:-1] + b',"x":' + b"[" * 1_100 + b"]" * 1_100 + b"}",
        orjson.dumps(event(id="x" * 150_000)),  # a huge string, under the size limit
        orjson.dumps(event(id="\U0001f600" * (MAX_ID_CHARS + 1))),
        orjson.dumps(event(actor_id="")),
        orjson.dumps(event(target_id="b" * (MAX_ID_CHARS + 1))),
        orjson.dumps(event(type="poke")),
        orjson.dumps(event(type="Mention")),
        orjson.dumps(event(type=None)),
        orjson.dumps(event(type=["like"])),
        orjson.dumps(event(id=12)),
        orjson.dumps(event(actor_id={"id": "ha"})),
        orjson.dumps(event(target_id=True)),
        orjson.dumps(event(ts=str(TS))),
        orjson.dumps(event(ts=TS + 0.5)),
        orjson.dumps(event(ts=True)),
        orjson.dumps(event(ts=None)),
        orjson.dumps(event(ts=TS_MIN - 1)),
        orjson.dumps(event(ts=TS_MAX)),
        orjson.dumps(event(ts=float(TS_MAX))),
        orjson.dumps(event(ts=-(2**63))),
        orjson.dumps(event(ts=2**64 - 1)),
        orjson.dumps(event(ts=1e308)),
        valid.replace(str(TS).encode(), b"1" + b"0" * 400),  # a 401-digit number
        valid.replace(str(TS).encode(), b"NaN"),
        valid.replace(str(TS).encode(), b"Infinity"),
        valid.replace(str(TS).encode(), b"-Infinity"),
        valid.replace(str(TS).encode(), b"1e999"),
        b"\x00" * (MAX_RECORD_BYTES + 1),
    ]
    for name in ("id", "type", "actor_id", "target_id", "ts"):
        records.append(orjson.dumps({k: v for k, v in event().items() if k != name}))
    while len(records) < 300:
        kind = rng.randrange(4)
        if kind == 0:  # random bytes
            records.append(rng.randbytes(rng.randrange(1, 400)))
        elif kind == 1:  # truncated JSON
            records.append(valid[: rng.randrange(1, len(valid))])
        elif kind == 2:  # a flipped byte
            raw = bytearray(valid)
            raw[rng.randrange(len(raw))] ^= 1 << rng.randrange(8)
            records.append(bytes(raw))
        else:  # random JSON of the wrong shape
            records.append(orjson.dumps(rng.choice([[], {}, 0, "x", None, [event()], {"event": event()}])))
    hostile = []
    for raw in records:
        try:
            decode_event(raw, MAX_RECORD_BYTES)
        except InvalidEvent:
            hostile.append(raw)
    assert len(hostile) >= 280, "the generator should make invalid records"
    return hostile


def expected_reason(raw: bytes) -> str:
    """The reason the service must give (decode_event with the service's size limit)."""
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw, MAX_RECORD_BYTES)
    return info.value.reason.value


def test_a_burst_of_garbage_is_dead_lettered_and_the_alerts_are_the_replays(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    hostile = hostile_records(random.Random(20260501))
    valid = collegemsg_lines(20_000)
    edge = [  # valid events at the limits (late, on rows of their own)
        orjson.dumps(event(id="edge-1", actor_id="edge-a", target_id="edge-b", ts=TS_MIN)),
        orjson.dumps(event(id="i" * MAX_ID_CHARS, actor_id="a" * MAX_ID_CHARS, target_id="\U0001f600" * 128)),
    ]
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
    assert sum(summary.invalid.values()) == sum(1 for raw in hostile if raw.strip())
    topic_set = topic_factory(3, **FAST, max_record_bytes=MAX_RECORD_BYTES)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    produce_lines(topic_set, lines)

    assert_same_alerts(wait_for_ids(topic_set, want), want)
    wait_until(lambda: consumed(worker) >= len(lines), 60, "every record to be read")
    assert alive(worker), "the worker died"

    letters = read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"])
    got = Counter()
    for record in letters:
        envelope = orjson.loads(record.value)
        raw = base64.b64decode(envelope["value_b64"])
        got[(raw, envelope["reason"])] += 1
        assert dict(record.headers)["streams.error.reason"].decode() == envelope["reason"]
    want_letters = Counter((raw, expected_reason(raw)) for raw in hostile)
    assert got == want_letters, (
        f"missing {list(want_letters - got)[:3]}, unexpected {list(got - want_letters)[:3]}"
    )
    reasons = Counter(reason for _, reason in want_letters.elements())
    assert set(reasons) >= {"too_large", "not_utf8", "not_json", "not_object", "missing_field"}
    assert set(reasons) >= {"wrong_type", "bad_length", "unknown_type", "ts_out_of_range"}
    assert metric(worker, "relationships_dead_letters_total") == len(hostile)
    for reason, count in reasons.items():
        assert metric(worker, "relationships_invalid_events_total", f'{{reason="{reason}"}}') == count


def crashed(worker: Worker) -> bool:
    """An agent of the worker crashed (Faust restarts it; the batch it held is lost)."""
    return "Crashed reason=" in worker.log_text()


def run_until_read_or_crashed(worker: Worker, records: int) -> None:
    """Wait until the worker read `records` input records or an agent crashed."""
    wait_until(lambda: crashed(worker) or consumed(worker) >= records, 90, f"{records} records read")


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
