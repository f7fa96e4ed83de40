"""Daily digests in the service (`STREAMS_DIGESTS`): the replay's digests through a SIGKILL between two halves of
the input (digests waiting for their day in the checkpoint), both guarantees."""

from __future__ import annotations

import math
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from streams.engine.digests import digests_of
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.service.partition_store import DIGESTS_KEY
from streams.settings import Settings
from tests.service.conftest import TopicSet, Worker, produce_lines
from tests.service.test_faults import (
    FAST,
    assert_like_the_replay,
    by_alert_id,
    collegemsg_lines,
    read_to_end,
    serving_worker,
    wait_until,
)

pytestmark = pytest.mark.broker


def digests_on_the_topic(topic_set: TopicSet) -> list[dict[str, Any]]:
    """Every digest published (read committed under exactly_once)."""
    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    return [orjson.loads(r.value) for r in read_to_end(topic_set.settings.topic_digests, isolation)]


def same_digest(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Equal, each listed strength within the relative 1e-9 SPEC §4 allows (as `same_alert`)."""

    def without_strength(digest: dict[str, Any]) -> dict[str, Any]:
        return {**digest, "dormant": [{**e, "strength": None} for e in digest["dormant"]]}

    return without_strength(left) == without_strength(right) and all(
        math.isclose(a["strength"], b["strength"], rel_tol=1e-9)
        for a, b in zip(left["dormant"], right["dormant"], strict=True)
    )


def pending_digests_checkpointed(topic_set: TopicSet) -> bool:
    """A checkpoint carried digests still waiting for their day (committed ones only under exactly_once)."""
    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    topic = f"{topic_set.app_id}-rows-changelog"
    return any(r.key == DIGESTS_KEY and len(r.value or b"") > 40 for r in read_to_end(topic, isolation))


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_the_service_publishes_the_replays_digests_through_a_sigkill(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines = collegemsg_lines(20_000)
    settings = Settings(**REPLAY_DEFAULTS, **FAST, digest_top=3)
    summary = ReplaySummary()
    alerts = list(replay(lines, settings, summary))
    want_alerts = by_alert_id(alerts)
    want = {d["digest_id"]: d for d in digests_of(alerts, summary.watermark, settings.digest_top)}
    assert len(want) > 300
    assert any(d["more"] for d in want.values()), "the cap is exercised"

    data_dir = tmp_path / "state"
    topic_set, worker = serving_worker(
        topic_factory, worker_factory, data_dir, "first", guarantee, digests=True, digest_top=3
    )
    half = len(lines) // 2
    produce_lines(topic_set, lines[:half])
    wait_until(
        lambda: pending_digests_checkpointed(topic_set) and len(digests_on_the_topic(topic_set)) > 0,
        90,
        "digests out and others waiting for their day in a checkpoint",
    )
    worker.kill()
    before_kill = len(digests_on_the_topic(topic_set))
    produce_lines(topic_set, lines[half:])
    second = worker_factory(topic_set, "second", data_dir=data_dir)
    assert_like_the_replay(topic_set, want_alerts, [second])

    published = digests_on_the_topic(topic_set)
    got = {d["digest_id"]: d for d in published}
    assert 0 < before_kill < len(want), "the kill came between digests"
    assert sorted(got) == sorted(want), (
        f"missing {sorted(want.keys() - got.keys())[:3]}, not in the replay {sorted(got.keys() - want.keys())[:3]}"
    )
    for digest in published:
        assert same_digest(digest, want[digest["digest_id"]]), (digest, want[digest["digest_id"]])
    if topic_set.settings.exactly_once:
        repeats = {i: n for i, n in Counter(d["digest_id"] for d in published).items() if n > 1}
        assert not repeats, f"under exactly_once no digest twice: {list(repeats.items())[:3]}"
