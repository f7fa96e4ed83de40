"""`streams dead-letters redrive`: dry run counts, `--apply` re-publishes what now validates, once."""

from __future__ import annotations

import base64
import os
import subprocess
import sys
from collections.abc import Callable

import orjson
import pytest
from kafka import KafkaProducer

from streams.cli.dead_letters import Redrive, classify, latest_valid_ts
from streams.engine.events import InvalidEvent, decode_event
from streams.kafka_admin import bootstrap_servers
from streams.service.dead_letter import KEPT_BYTES, DeadLetter, dead_letter
from streams.settings import Settings
from tests.service.conftest import BROKER, REPO, TopicSet
from tests.service.test_faults import read_to_end

WORKER_MAX_BYTES = 2048
"""The worker's `STREAMS_MAX_RECORD_BYTES` when it rejected the records; the redrive runs with the default."""


def event(event_id: str, pad: int) -> bytes:
    """A valid interaction event of about `pad` bytes."""
    body = {"id": event_id, "type": "mention", "actor_id": "ann", "target_id": "bob", "ts": 1082040961000}
    return orjson.dumps({**body, "pad": "p" * pad})


def letter_of(raw: bytes, key: bytes | None, topic: str, offset: int) -> DeadLetter:
    """The service's dead letter of `raw`, rejected by a worker with `WORKER_MAX_BYTES`."""
    with pytest.raises(InvalidEvent) as info:
        decode_event(raw, WORKER_MAX_BYTES)
    return dead_letter(info.value, topic, 0, offset, key, raw, 1_764_000_000_000)


def test_classify_sends_what_validates_and_counts_the_rest() -> None:
    raw = event("e1", 3000)
    assert classify(letter_of(raw, b"ann", "in", 3).value, 1_000_000) == Redrive("in", 0, b"ann", raw)
    assert classify(letter_of(raw, b"ann", "in", 3).value, WORKER_MAX_BYTES) == "too_large"
    assert classify(letter_of(b"not json {", None, "in", 4).value, 1_000_000) == "not_json"
    truncated = letter_of(event("e2", 600 * 1024), None, "in", 5)
    assert orjson.loads(truncated.value)["value_truncated"] is True
    assert classify(truncated.value, 1_000_000) is None
    long_key = letter_of(raw, b"k" * (KEPT_BYTES + 1), "in", 6)  # its key was cut: not the original
    assert classify(long_key.value, 1_000_000) is None
    assert classify(b"{not an envelope", 1_000_000) is None
    envelope = orjson.loads(letter_of(raw, None, "in", 7).value)
    assert classify(orjson.dumps({**envelope, "value_b64": "%%%"}), 1_000_000) is None
    assert base64.b64decode(envelope["value_b64"]) == raw


def test_a_letter_still_ahead_of_the_clock_stays_a_letter() -> None:
    raw = event("e1", 3000)  # ts 1082040961000
    letter = letter_of(raw, b"ann", "in", 3).value  # rejected as too large: the reason does not matter
    hybrid = Settings(clock="hybrid", max_future_ms=3_600_000)
    assert latest_valid_ts(Settings(clock="event"), 0) is None
    assert latest_valid_ts(hybrid, 1_000) == 3_601_000
    ahead = latest_valid_ts(hybrid, 1082040961000 - 3_600_001)
    assert classify(letter, 1_000_000, ahead) == "ts_in_future"
    within = latest_valid_ts(hybrid, 1082040961000 - 3_600_000)
    assert classify(letter, 1_000_000, within) == Redrive("in", 0, b"ann", raw)


def redrive(topic_set: TopicSet, *flags: str) -> str:
    """Run the command with the deployment's variables (default record size limit); its output."""
    done = subprocess.run(
        [sys.executable, "-m", "streams", "dead-letters", "redrive", *flags],
        cwd=REPO,
        env={**os.environ, **topic_set.env},
        capture_output=True,
        text=True,
        timeout=180,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


def publish(topic_set: TopicSet, letters: list[DeadLetter]) -> None:
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER), acks="all")
    for letter in letters:
        producer.send(
            topic_set.settings.topic_dead_letter, key=letter.key, value=letter.value, headers=letter.headers
        )
    producer.flush()
    producer.close()


@pytest.mark.broker
def test_dry_run_counts_apply_sends_once_and_a_later_run_sends_only_new_letters(
    topic_factory: Callable[..., TopicSet],
) -> None:
    topic_set = topic_factory(1)
    settings = topic_set.settings
    mentions, likes = settings.topic_mentions, settings.topic_likes
    alice, keyless = event("r1", 3000), event("r2", 4000)
    publish(
        topic_set,
        [
            letter_of(alice, b"alice", mentions, 5),
            letter_of(b"not json {", b"x", mentions, 6),
            letter_of(event("big", 600 * 1024), b"big", mentions, 7),  # truncated in the dead letter
            letter_of(keyless, None, likes, 9),
        ],
    )
    summary = f"{settings.topic_dead_letter}: "

    dry = redrive(topic_set)
    assert summary + "would send 2, still invalid 1 (not_json 1), not recoverable 1" in dry
    assert "dry run: nothing sent" in dry
    assert read_to_end(mentions) == []
    assert read_to_end(likes) == []
    assert summary + "would send 2, still invalid 1 (not_json 1), not recoverable 1" in redrive(topic_set)

    applied = redrive(topic_set, "--apply")
    assert summary + "sent 2, still invalid 1 (not_json 1), not recoverable 1" in applied
    assert [(r.key, r.value) for r in read_to_end(mentions)] == [(b"alice", alice)]
    assert [(r.key, r.value) for r in read_to_end(likes)] == [(None, keyless)]

    again = redrive(topic_set, "--apply")
    assert summary + "sent 0, still invalid 0, not recoverable 0" in again
    assert len(read_to_end(mentions)) == 1

    later = event("r3", 5000)
    publish(topic_set, [letter_of(later, b"carol", mentions, 11)])
    assert summary + "would send 1, still invalid 0, not recoverable 0" in redrive(topic_set)
    assert summary + "sent 1, still invalid 0, not recoverable 0" in redrive(topic_set, "--apply")
    assert [(r.key, r.value) for r in read_to_end(mentions)] == [(b"alice", alice), (b"carol", later)]
