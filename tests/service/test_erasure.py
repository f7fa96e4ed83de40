"""Erasure in the service (issue 17): `streams erase`, fanned out to every owner partition, through a SIGKILL."""

from __future__ import annotations

import os
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka.admin import ConfigResource, ConfigResourceType, KafkaAdminClient

from streams.engine.engine import RelationshipEngine
from streams.engine.erasures import Erasure
from streams.kafka_admin import bootstrap_servers
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.service.partition_store import ERASURES_KEY
from streams.settings import Settings
from tests.service.conftest import BROKER, REPO, TopicSet, Worker, produce_lines, wait_for_alerts
from tests.service.test_faults import (
    FAST,
    ROWS_ON_DISK,
    assert_like_the_replay,
    by_alert_id,
    collegemsg_lines,
    read_alerts,
    read_to_end,
    wait_until,
)
from tests.service.test_web import get, owner_path, ready

pytestmark = pytest.mark.broker

TOKEN = "a-token-for-the-erasure-tests-only"


class Expected:
    """What the replay says with the erasures: alerts, and who each erased user talked to before."""

    def __init__(self, lines: list[bytes]) -> None:
        events = [orjson.loads(line) for line in lines]
        busiest = Counter(u for e in events for u in (e["actor_id"], e["target_id"])).most_common(2)
        # The busiest user forgotten at 40 % of the stream, the next at 70 %: both have rows
        # before and events after, on several owner partitions.
        self.erasures = [
            Erasure(busiest[0][0], events[len(events) * 4 // 10]["ts"]),
            Erasure(busiest[1][0], events[len(events) * 7 // 10]["ts"]),
        ]
        settings = Settings(**REPLAY_DEFAULTS, **FAST)
        self.summary = ReplaySummary()
        engine = RelationshipEngine(settings)
        self.alerts = by_alert_id(
            list(replay(lines, settings, self.summary, engine=engine, erasures=self.erasures))
        )
        self.without = by_alert_id(list(replay(lines, settings)))
        self.rows = engine.rows
        self.contacts = {
            erasure.user: sorted(
                {e["target_id"] for e in events if e["actor_id"] == erasure.user}
                | {e["actor_id"] for e in events if e["target_id"] == erasure.user}
            )
            for erasure in self.erasures
        }


@pytest.fixture(scope="module")
def expected() -> tuple[list[bytes], Expected]:
    lines = collegemsg_lines(20_000)
    return lines, Expected(lines)


def test_the_erasures_matter_on_this_data(expected: tuple[list[bytes], Expected]) -> None:
    """The precondition of the service test: both erasures delete rows and change the alerts."""
    _, want = expected
    assert want.summary.rows_erased > 20
    assert want.alerts.keys() != want.without.keys()
    for erasure in want.erasures:
        named = [a for a in want.without.values() if erasure.user in (a["owner_id"], a["contact_id"])]
        assert [a for a in named if alert_time(a) >= erasure.ts], (
            f"{erasure.user}: no alert after the erasure"
        )
        assert len(want.contacts[erasure.user]) > 5


def alert_time(alert: dict[str, Any]) -> int:
    """When an alert happened in event time: a dormant one at `dormant_since`, a revived one at its event."""
    return int(alert["dormant_since"] if alert["kind"] == "dormant" else alert["last_interaction_at"])


def erase(topic_set: TopicSet, erasure: Erasure) -> dict[str, Any]:
    """`python -m streams erase USER --ts MS`, as an operator runs it; what it printed."""
    done = subprocess.run(
        [sys.executable, "-m", "streams", "erase", erasure.user, "--ts", str(erasure.ts)],
        cwd=REPO,
        env={**os.environ, **topic_set.env},
        capture_output=True,
        timeout=60,
        check=True,
    )
    printed: dict[str, Any] = orjson.loads(done.stdout)
    return printed


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_an_erased_user_leaves_every_worker_the_changelog_and_later_alerts(
    guarantee: str,
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    expected: tuple[list[bytes], Expected],
    tmp_path: Path,
) -> None:
    lines, want = expected
    topic_set = topic_factory(3, **FAST, **ROWS_ON_DISK, processing_guarantee=guarantee, web_token=TOKEN)
    for erasure in want.erasures:
        printed = erase(topic_set, erasure)
        assert (printed["user_id"], printed["ts"], printed["topic"]) == (
            erasure.user,
            erasure.ts,
            topic_set.env["STREAMS_TOPIC_ERASURES"],
        )
    data_dir = tmp_path / "kept"
    first = worker_factory(topic_set, "before", data_dir=data_dir)
    produce_lines(topic_set, lines)
    wait_for_alerts(topic_set, len(want.alerts) // 2, settle_s=0)
    first.kill()
    workers = [worker_factory(topic_set, "after", data_dir=data_dir), worker_factory(topic_set, "second")]
    assert_like_the_replay(topic_set, want.alerts, workers)

    # An alert naming an erased user after the erasure counts only the events since (docs/semantics.md §9).
    events = [orjson.loads(line) for line in lines]
    for alert in read_alerts(topic_set):
        for erasure in want.erasures:
            pair = {alert["owner_id"], alert["contact_id"]}
            if erasure.user in pair and alert_time(alert) >= erasure.ts:
                since = [
                    e
                    for e in events
                    if {e["actor_id"], e["target_id"]} == pair
                    and erasure.ts <= e["ts"] <= alert["last_interaction_at"]
                ]
                counted = sum(alert["counts"]["out"].values()) + sum(alert["counts"]["in"].values())
                assert counted == len(since), alert

    # Queries: the erased users are unknown owners, and no one else lists them, on either worker.
    wait_until(lambda: all(ready(w) for w in workers), 60, "both workers ready")
    for erasure in want.erasures:
        for worker in workers:
            answer = get(worker, owner_path(erasure.user))
            assert (answer.status, answer.json["error"]) == (404, "unknown_owner")
        for contact in want.contacts[erasure.user][:8]:
            kept = sorted(c for (owner, c) in want.rows if owner == contact)
            wait_until(
                lambda contact=contact, kept=kept: listed(workers[0], contact) == kept,
                30,
                f"{contact}: the contacts of the replay",
            )
            assert erasure.user not in listed(workers[1], contact)

    # The changelog as compaction leaves it (the last record per key): no row names an erased user.
    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    latest: dict[bytes, bytes | None] = {}

    def changelog_holds_the_replays_rows() -> bool:
        latest.clear()
        for record in read_to_end(f"{topic_set.app_id}-rows-changelog", isolation):
            latest[record.key] = record.value
        live = [key for key in rows_named(latest) if latest[key] is not None]
        return len(live) == len(want.rows)

    wait_until(changelog_holds_the_replays_rows, 60, f"{len(want.rows)} live rows in the changelog")
    for erasure in want.erasures:
        named = [key for key in rows_named(latest) if erasure.user in orjson.loads(key)]
        assert named, f"no tombstone for {erasure.user}'s rows"
        assert all(latest[key] is None for key in named), f"{erasure.user} still has rows in the changelog"
    assert latest.get(ERASURES_KEY), "each owner partition keeps its erasures"

    # Compaction for real (the broker's cleaner; once, it does not depend on the guarantee): with
    # short segments and no tombstone retention, no record naming an erased user is left at all.
    if guarantee == "at_least_once":
        changelog = f"{topic_set.app_id}-rows-changelog"
        compact_soon(changelog)
        erased = {erasure.user for erasure in want.erasures}

        def nothing_names_them() -> bool:
            keys = rows_named({r.key: r.value for r in read_to_end(changelog, isolation)})
            return not [key for key in keys if erased & set(orjson.loads(key))]

        wait_until(nothing_names_them, 240, "the log cleaner to compact the erased users away", every_s=5)


def compact_soon(topic: str) -> None:
    """Make the broker's cleaner compact `topic` within seconds: short segments, no tombstone retention."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        configs = {
            "cleanup.policy": "compact",
            "segment.ms": "1000",
            "min.cleanable.dirty.ratio": "0.01",
            "min.compaction.lag.ms": "0",
            "delete.retention.ms": "0",
        }
        admin.alter_configs([ConfigResource(ConfigResourceType.TOPIC, topic, configs=configs)])
    finally:
        admin.close()


def listed(worker: Worker, owner: str) -> list[str]:
    """The contacts a worker's state query lists for `owner` (none: 404)."""
    answer = get(worker, owner_path(owner, limit=1000))
    if answer.status == 404:
        return []
    assert answer.status == 200, answer.json
    return sorted(c["contact_id"] for c in answer.json["contacts"])


def rows_named(changelog: dict[bytes, bytes | None]) -> list[bytes]:
    """The row keys (`[owner, contact]`) among a changelog's keys: not the resume and erasure records."""
    return [key for key in changelog if key and key.startswith(b"[")]
