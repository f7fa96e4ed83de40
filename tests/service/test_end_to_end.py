"""The service on the real broker gives exactly the replay's alerts: partitions, workers, SIGKILL, dead letters."""

from __future__ import annotations

import base64
import time
from collections import Counter
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.datasets.collegemsg import COLLEGEMSG as COLLEGEMSG_FIXTURE
from streams.datasets.collegemsg import collegemsg_events
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings
from tests.service.conftest import (
    TopicSet,
    Worker,
    deterministic,
    event_time_state,
    metric_samples,
    produce_lines,
    read_topic,
    wait_for_alerts,
)

pytestmark = pytest.mark.broker

COLLEGEMSG = COLLEGEMSG_FIXTURE
MAX_RECORD_BYTES = 4096

GARBAGE: list[tuple[bytes, str]] = [
    (b"not json {", "not_json"),
    (b"\xff\xfe\xfa", "not_utf8"),
    (b"[1, 2, 3]", "not_object"),
    (b'{"id": "g1", "type": "mention", "actor_id": "a", "ts": 1082040961000}', "missing_field"),
    (b'{"id": "g2", "type": "poke", "actor_id": "a", "target_id": "b", "ts": 1082040961000}', "unknown_type"),
    (b'{"id": "g3", "type": "like", "actor_id": "a", "target_id": "b", "ts": "1082040961000"}', "wrong_type"),
    (
        b'{"id": "'
        + b"x" * 129
        + b'", "type": "like", "actor_id": "a", "target_id": "b", "ts": 1082040961000}',
        "bad_length",
    ),
    (
        b'{"id": "g4", "type": "reply", "actor_id": "a", "target_id": "b", "ts": 100000000000000000000}',
        "ts_out_of_range",
    ),
    (
        b'{"id": "g5", "type": "reply", "actor_id": "a", "target_id": "b", "ts": 1082040961000, "pad": "'
        + b"p" * MAX_RECORD_BYTES
        + b'"}',
        "too_large",
    ),
]


def collegemsg_with_noise() -> tuple[list[bytes], int, int]:
    """CollegeMsg events (SNAP; Panzarasa et al. 2009) with garbage, duplicates and self-interactions mixed in."""
    lines: list[bytes] = []
    duplicates = self_interactions = 0
    garbage = iter(GARBAGE)
    for number, event in enumerate(collegemsg_events(COLLEGEMSG), start=1):
        line = orjson.dumps(event)
        lines.append(line)
        if number % 997 == 0:
            lines.append(line)  # an exact duplicate, right behind its original
            duplicates += 1
        if number % 1499 == 0:
            self_event = {**event, "id": f"self{number}", "target_id": event["actor_id"]}
            lines.append(orjson.dumps(self_event))
            self_interactions += 1
        if number % 5003 == 0:
            bad = next(garbage, None)
            if bad is not None:
                lines.append(bad[0])
    return lines, duplicates, self_interactions


@pytest.fixture(scope="module")
def noisy_input() -> tuple[list[bytes], int, int]:
    """The input every test here produces."""
    return collegemsg_with_noise()


@pytest.fixture(scope="module")
def expected(noisy_input: tuple[list[bytes], int, int]) -> tuple[dict[str, dict[str, Any]], ReplaySummary]:
    """What `streams replay` says about the same lines (with the service's record-size limit)."""
    settings = Settings(**REPLAY_DEFAULTS, max_record_bytes=MAX_RECORD_BYTES)
    summary = ReplaySummary()
    alerts = list(replay(noisy_input[0], settings, summary))
    return deterministic(alerts), summary


def metric(worker: Worker, name: str, labels: str = "") -> float:
    """One sample from the worker's /metrics (it must be there)."""
    samples = metric_samples(worker)
    assert f"{name}{labels}" in samples, f"{name}{labels} not in /metrics"
    return samples[f"{name}{labels}"]


def assert_same_alerts(
    topic_set: TopicSet, want: dict[str, dict[str, Any]], workers: Sequence[Worker] = ()
) -> None:
    got = deterministic(wait_for_alerts(topic_set, len(want)))
    late = "; ".join(f"{w.name}: {event_time_state(w)}" for w in workers)
    missing = sorted(want.keys() - got.keys())[:5]
    extra = sorted(got.keys() - want.keys())[:5]
    assert not missing, f"missing {missing} ({late})"
    assert not extra, f"unexpected {extra} ({late})"
    different = [k for k in want if want[k] != got[k]]
    assert not different, (
        f"{len(different)} alerts differ ({late}), e.g. replay {want[different[0]]} vs service {got[different[0]]}"
    )


@pytest.mark.parametrize("partitions", [1, 6])
def test_service_matches_replay_and_dead_letters_garbage(
    partitions: int,
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    noisy_input: tuple[list[bytes], int, int],
    expected: tuple[dict[str, dict[str, Any]], ReplaySummary],
) -> None:
    want, summary = expected
    lines, duplicates, self_interactions = noisy_input
    assert summary.alerts["dormant"] > 1000
    assert summary.alerts["revived"] > 100
    topic_set = topic_factory(partitions, max_record_bytes=MAX_RECORD_BYTES)
    worker = worker_factory(topic_set)
    produce_lines(topic_set, lines)
    assert_same_alerts(topic_set, want)

    letters = read_topic(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"])
    reasons = Counter(orjson.loads(r.value)["reason"] for r in letters)
    assert reasons == Counter(reason for _, reason in GARBAGE)
    originals = {raw for raw, _ in GARBAGE}
    for record in letters:
        envelope = orjson.loads(record.value)
        assert base64.b64decode(envelope["value_b64"]) in originals
        assert envelope["source"]["topic"].startswith(topic_set.app_id)
        headers = dict(record.headers)
        assert headers["streams.error.reason"].decode() == envelope["reason"]
        assert int(headers["streams.source.offset"]) == envelope["source"]["offset"]

    assert metric(worker, "relationships_duplicate_events_total") == duplicates
    assert metric(worker, "relationships_self_interactions_total") == self_interactions
    assert metric(worker, "relationships_dead_letters_total") == len(GARBAGE)
    assert metric(worker, "relationships_events_applied_total") == summary.applied


def test_two_workers_share_the_work(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    noisy_input: tuple[list[bytes], int, int],
    expected: tuple[dict[str, dict[str, Any]], ReplaySummary],
) -> None:
    # Input partitions idle when the data comes would let the first records read move the watermark
    # past the others: idle_timeout outlasts the wait for both workers to join.
    topic_set = topic_factory(6, max_record_bytes=MAX_RECORD_BYTES, idle_timeout_ms=20_000)
    first = worker_factory(topic_set, "w1")
    second = worker_factory(topic_set, "w2")
    time.sleep(8)
    produce_lines(topic_set, noisy_input[0])
    assert_same_alerts(topic_set, expected[0], [first, second])
    applied = metric(first, "relationships_events_applied_total") + metric(
        second, "relationships_events_applied_total"
    )
    assert applied >= expected[1].applied
    assert metric(first, "relationships_events_applied_total") > 0
    assert metric(second, "relationships_events_applied_total") > 0


def test_sigkill_halfway_then_restart_gives_the_same_alerts(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    noisy_input: tuple[list[bytes], int, int],
    expected: tuple[dict[str, dict[str, Any]], ReplaySummary],
    tmp_path: Path,
) -> None:
    want = expected[0]
    topic_set = topic_factory(6, max_record_bytes=MAX_RECORD_BYTES)
    data_dir = tmp_path / "kept"
    worker = worker_factory(topic_set, "before", data_dir=data_dir)
    produce_lines(topic_set, noisy_input[0])
    wait_for_alerts(topic_set, len(want) // 2, settle_s=0)
    worker.kill()
    worker_factory(topic_set, "after", data_dir=data_dir)
    assert_same_alerts(topic_set, want)


def test_hybrid_clock_makes_a_relationship_dormant_without_new_events(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    topic_set = topic_factory(
        1,
        clock="hybrid",
        allowed_lateness_ms=0,
        touch_merge_ms=1,
        min_touches=3,
        min_silence_ms=6000,
        max_silence_ms=6000,
        idle_timeout_ms=600_000,
    )
    worker_factory(topic_set)
    time.sleep(6)
    start = int(time.time() * 1000)
    lines = [
        orjson.dumps({"id": f"h{i}", "type": "reply", "actor_id": a, "target_id": b, "ts": start + 10 * i})
        for i, (a, b) in enumerate([("ann", "bob"), ("bob", "ann"), ("ann", "bob")])
    ]
    produce_lines(topic_set, lines)
    alerts = wait_for_alerts(topic_set, 2, timeout_s=60)
    dormant = sorted((a["owner_id"], a["kind"], a["dormant_since"]) for a in alerts)
    assert dormant == [("ann", "dormant", start + 20 + 6000), ("bob", "dormant", start + 20 + 6000)]
    for alert in alerts:
        assert alert["detected_at"] >= alert["dormant_since"]
        assert alert["detected_at"] <= int(time.time() * 1000)
