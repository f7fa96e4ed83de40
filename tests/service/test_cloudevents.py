"""Alert and dead-letter records are CloudEvents (Kafka binding, binary mode): decoded with the `cloudevents` SDK."""

from __future__ import annotations

import base64
import json
import re
import uuid
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any, NamedTuple

import orjson
import pytest
from cloudevents.core.base import BaseCloudEvent
from cloudevents.core.bindings.kafka import KafkaMessage, from_binary_event

from streams.engine.events import InvalidEvent, decode_event
from streams.service.cloudevents import (
    ALERT_SCHEMA,
    ALERT_TYPES,
    DEAD_LETTER_SCHEMA,
    DEAD_LETTER_TYPE,
    DIGEST_SCHEMA,
    DIGEST_TYPE,
    alert_headers,
    digest_headers,
    event_source,
    rfc3339,
)
from streams.service.dead_letter import dead_letter
from tests.service.conftest import BROKER, REPO, TopicSet, Worker, produce_lines
from tests.service.test_faults import (
    FAST,
    collegemsg_lines,
    read_to_end,
    replay_alerts,
    serving,
    wait_until,
)

BAD_LINES = [b"not json {", b"[1, 2]"]
CONSUMERS_DOC = REPO / "docs" / "consumers.md"


def cloud_event(record: Any) -> BaseCloudEvent:
    """A consumed Kafka record decoded by the SDK's Kafka binding (binary mode)."""
    return from_binary_event(KafkaMessage(dict(record.headers), record.key, record.value))


def schema_id(name: str) -> str:
    return str(json.loads((REPO / "schemas" / name).read_text())["$id"])


def test_dataschemas_are_the_schema_ids() -> None:
    assert schema_id("alert.v1.json") == ALERT_SCHEMA
    assert schema_id("dead-letter.v1.json") == DEAD_LETTER_SCHEMA
    assert schema_id("digest.v1.json") == DIGEST_SCHEMA


def test_a_digest_is_a_cloudevent_of_its_own_type_dated_by_its_day() -> None:
    digest = {"digest_id": "digest:ann:1", "day_start": 86_400_000, "owner_id": "ann"}
    headers = dict(digest_headers(digest, "urn:x"))
    assert headers["ce_id"] == b"digest:ann:1"
    assert headers["ce_type"] == b"dev.relationship-streams.digest.v1"
    assert headers["ce_time"] == b"1970-01-02T00:00:00.000Z"
    assert headers["ce_dataschema"] == DIGEST_SCHEMA.encode()
    event = from_binary_event(KafkaMessage(headers, b"ann", orjson.dumps(digest)))
    assert (event.get_type(), event.get_data()) == (DIGEST_TYPE, digest)


def test_times_are_rfc3339_utc_with_milliseconds() -> None:
    assert rfc3339(0) == "1970-01-01T00:00:00.000Z"
    assert rfc3339(1_082_040_961_007) == "2004-04-15T14:56:01.007Z"
    assert datetime.fromisoformat(rfc3339(1_764_000_000_123)).timestamp() == 1_764_000_000.123
    assert rfc3339(10**20) == "9999-12-31T23:59:59.999Z"  # RFC 3339 ends there; a header never fails
    assert rfc3339(-(10**20)) == "0001-01-01T00:00:00.000Z"


def test_each_alert_kind_has_its_own_versioned_type_and_the_source_names_the_app() -> None:
    assert ALERT_TYPES == {
        "dormant": "dev.relationship-streams.alert.dormant.v1",
        "revived": "dev.relationship-streams.alert.revived.v1",
    }
    assert event_source("relationships") == "urn:relationship-streams:relationships"
    assert event_source("a b/c") == "urn:relationship-streams:a%20b%2Fc"
    alert = {"alert_id": "revived:a:b:1", "kind": "revived", "dormant_since": 86_400_000}
    headers = dict(alert_headers(alert, "urn:x"))
    assert headers["ce_type"] == b"dev.relationship-streams.alert.revived.v1"
    assert headers["ce_time"] == b"1970-01-02T00:00:00.000Z"


def test_a_dead_letter_decodes_with_the_sdk_and_keeps_its_older_headers() -> None:
    raw = b"{oops"
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw, 1024)
    letter = dead_letter(info.value, "in.likes", 2, 7, b"ann", raw, 1_764_000_000_000, "urn:x")
    event = from_binary_event(KafkaMessage(dict(letter.headers), letter.key, letter.value))
    assert (event.get_id(), event.get_source(), event.get_type()) == (
        "in.likes:2:7",
        "urn:x",
        DEAD_LETTER_TYPE,
    )
    assert event.get_time() == datetime.fromtimestamp(1_764_000_000, UTC)
    assert event.get_data() == orjson.loads(letter.value)
    assert dict(letter.headers)["streams.source.offset"] == b"7"


def assert_alert_event(record: Any, app_id: str) -> dict[str, Any]:
    """Every CloudEvents attribute of one alert record; its alert."""
    event = cloud_event(record)
    alert = orjson.loads(record.value)
    assert record.value == orjson.dumps(alert, option=orjson.OPT_SORT_KEYS)  # the body as it always was
    assert event.get_specversion() == "1.0"
    assert event.get_id() == alert["alert_id"]
    assert event.get_source() == f"urn:relationship-streams:{app_id}"
    assert event.get_type() == f"dev.relationship-streams.alert.{alert['kind']}.v1"
    assert event.get_time() == datetime.fromtimestamp(alert["dormant_since"] / 1000, UTC)
    assert event.get_dataschema() == schema_id("alert.v1.json")
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == alert
    assert event.get_extension("partitionkey") == alert["owner_id"]  # the record key, as the binding maps it
    return dict(alert)


def assert_dead_letter_event(record: Any, app_id: str) -> None:
    """Every CloudEvents attribute of one dead-letter record."""
    event = cloud_event(record)
    envelope = orjson.loads(record.value)
    source = envelope["source"]
    assert event.get_specversion() == "1.0"
    assert event.get_id() == f"{source['topic']}:{source['partition']}:{source['offset']}"
    assert event.get_source() == f"urn:relationship-streams:{app_id}"
    assert event.get_type() == "dev.relationship-streams.dead-letter.v1"
    assert event.get_time() == datetime.fromtimestamp(envelope["error_at"] / 1000, UTC)
    assert event.get_dataschema() == schema_id("dead-letter.v1.json")
    assert event.get_datacontenttype() == "application/json"
    assert event.get_data() == envelope
    assert base64.b64decode(envelope["value_b64"]) in BAD_LINES


@pytest.mark.broker
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_alert_and_dead_letter_records_are_cloudevents(
    guarantee: str, topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    lines = collegemsg_lines(4000)
    want, summary = replay_alerts(lines, **FAST)
    assert summary.alerts["dormant"] > 0
    assert summary.alerts["revived"] > 0
    topic_set = topic_factory(2, **FAST, processing_guarantee=guarantee)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 90, "the worker's web port")
    produce_lines(topic_set, lines + BAD_LINES)
    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    alerts_topic = topic_set.env["STREAMS_TOPIC_ALERTS"]

    def alert_ids() -> set[str]:
        return {orjson.loads(r.value)["alert_id"] for r in read_to_end(alerts_topic, isolation)}

    wait_until(lambda: want.keys() <= alert_ids(), 240, f"the replay's {len(want)} alerts", every_s=2)
    records = read_to_end(alerts_topic, isolation)
    kinds = {assert_alert_event(record, topic_set.app_id)["kind"] for record in records}
    assert kinds == {"dormant", "revived"}

    letters = read_to_end(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"], isolation)
    assert len(letters) == len(BAD_LINES)
    for record in letters:
        assert_dead_letter_event(record, topic_set.app_id)

    consumers_example_deduplicates_by_ce_id(alerts_topic, want.keys())


def consumers_example() -> dict[str, Any]:
    """The Python block of docs/consumers.md, executed as a module (not as `__main__`)."""
    text = CONSUMERS_DOC.read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.DOTALL)
    assert len(blocks) == 1, "docs/consumers.md has one Python example"
    namespace: dict[str, Any] = {"__name__": "consumers_example"}
    exec(compile(blocks[0], str(CONSUMERS_DOC), "exec"), namespace)
    return namespace


def consumers_example_deduplicates_by_ce_id(topic: str, want: Any) -> None:
    """The docs example hands each alert on once, even when the whole topic is delivered again."""
    example = consumers_example()
    handled: list[BaseCloudEvent] = []
    seen: set[str] = set()
    bootstrap = BROKER.split("://", 1)[-1]
    for attempt in range(2):  # a second consumer group: every record is delivered once more
        group = f"example-{uuid.uuid4().hex[:8]}"
        handed = example["consume"](bootstrap, topic, group, seen, handled.append, idle_exit_ms=10_000)
        assert handed == (len(want) if attempt == 0 else 0)
    assert sorted(event.get_id() for event in handled) == sorted(want)
    assert all(isinstance(event.get_data(), dict) for event in handled)


class Record(NamedTuple):
    """The fields of a kafka-python ConsumerRecord the example reads."""

    headers: list[tuple[str, bytes]]
    key: bytes
    value: bytes


def test_the_consumers_example_hands_on_a_repeated_alert_once() -> None:
    deliver_once = consumers_example()["deliver_once"]
    alerts = [
        {"alert_id": f"dormant:a:{c}:1", "kind": "dormant", "owner_id": "a", "dormant_since": 1} for c in "bc"
    ]
    records = [
        Record(alert_headers(a, "urn:x"), b"a", orjson.dumps(a, option=orjson.OPT_SORT_KEYS)) for a in alerts
    ]
    handled: list[BaseCloudEvent] = []
    seen: set[str] = set()
    assert deliver_once([records[0], records[1], records[0]], seen, handled.append) == 2
    assert deliver_once(records, seen, handled.append) == 0
    assert [event.get_data() for event in handled] == alerts
    assert seen == {"dormant:a:b:1", "dormant:a:c:1"}
