"""Feedback in the service (issue 15, item 4): `streams feedback`, mute and snooze through a SIGKILL, both
guarantees, with the replay's `--feedback` as the oracle; bad feedback is a dead letter."""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaProducer

from streams.engine.feedback import Action, Feedback
from streams.kafka_admin import bootstrap_servers
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.service.partition_store import FEEDBACK_KEY
from streams.settings import Settings
from tests.service.conftest import BROKER, REPO, TopicSet, Worker, produce_lines, read_topic
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

DAY = 86_400_000


def choose_feedback(lines: list[bytes], alerts: list[dict[str, Any]]) -> list[Feedback]:
    """Mutes, snoozes and unmutes of rows the replay alerts about, each one changing what goes out."""
    start = orjson.loads(lines[0])["ts"]
    dormant = [a for a in alerts if a["kind"] == "dormant"]
    revived = {a["alert_id"].replace("revived:", "dormant:"): a for a in alerts if a["kind"] == "revived"}
    came_back = [a for a in dormant if a["alert_id"] in revived]
    stayed = [a for a in dormant if a["alert_id"] not in revived]
    rows: set[tuple[str, str]] = set()
    chosen: list[Feedback] = []

    def fresh(alert: dict[str, Any]) -> bool:
        key = (alert["owner_id"], alert["contact_id"])
        if key in rows:
            return False
        rows.add(key)
        return True

    for alert in islice(
        (a for a in came_back if fresh(a)), 4
    ):  # muted from the start: neither alert goes out
        chosen.append(Feedback(alert["owner_id"], alert["contact_id"], Action.MUTE, None, start))
    for alert in islice(
        (a for a in stayed if fresh(a)), 4
    ):  # snoozed past the deadline: the alert goes out later
        until = alert["dormant_since"] + 2 * DAY
        chosen.append(Feedback(alert["owner_id"], alert["contact_id"], Action.SNOOZE, until, start))
    for alert in islice((a for a in stayed if fresh(a)), 3):  # muted, then unmuted while dormant
        owner, contact = alert["owner_id"], alert["contact_id"]
        chosen.append(Feedback(owner, contact, Action.MUTE, None, start))
        chosen.append(Feedback(owner, contact, Action.UNMUTE, None, alert["dormant_since"] + DAY))
    return chosen


def send_feedback(topic_set: TopicSet, item: Feedback) -> dict[str, Any]:
    """`python -m streams feedback`, as a client app's backend would run it; what it printed."""
    command = [
        sys.executable,
        "-m",
        "streams",
        "feedback",
        item.owner,
        item.contact,
        item.action.name.lower(),
    ]
    command += ["--ts", str(item.ts)] + ([] if item.until is None else ["--until", str(item.until)])
    done = subprocess.run(
        command, cwd=REPO, env={**os.environ, **topic_set.env}, capture_output=True, timeout=60, check=True
    )
    printed: dict[str, Any] = orjson.loads(done.stdout)
    return printed


def feedback_checkpointed(topic_set: TopicSet) -> bool:
    """A checkpoint wrote some owner partition's feedback state (committed ones only under exactly_once)."""
    isolation = "read_committed" if topic_set.settings.exactly_once else "read_uncommitted"
    topic = f"{topic_set.app_id}-rows-changelog"
    return any(r.key == FEEDBACK_KEY and len(r.value or b"") > 10 for r in read_to_end(topic, isolation))


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_muted_and_snoozed_rows_give_the_replays_alerts_through_a_sigkill(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines = collegemsg_lines(20_000)
    settings = Settings(**REPLAY_DEFAULTS, **FAST)
    plain = list(replay(lines, settings))
    feedback = choose_feedback(lines, plain)
    summary = ReplaySummary()
    want = by_alert_id(list(replay(lines, settings, summary, feedback=feedback)))
    released = [a for a in want.values() if "released_at" in a]
    assert len(feedback) == 14
    assert summary.withheld >= 12, "every mute and snooze holds something back"
    assert len(released) >= 5, "snoozes ended and unmutes came while rows were dormant"
    assert len(want) < len(plain)

    data_dir = tmp_path / "state"
    topic_set, worker = serving_worker(topic_factory, worker_factory, data_dir, "first", guarantee)
    printed = send_feedback(topic_set, feedback[0])
    assert (printed["owner_id"], printed["action"], printed["topic"]) == (
        feedback[0].owner,
        "mute",
        topic_set.env["STREAMS_TOPIC_FEEDBACK"],
    )
    for item in feedback[1:]:
        send_feedback(topic_set, item)
    bad = {"owner_id": "1", "contact_id": "2", "action": "block", "ts": feedback[0].ts}
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER))
    producer.send(topic_set.env["STREAMS_TOPIC_FEEDBACK"], key=b"1", value=orjson.dumps(bad)).get(timeout=30)
    producer.close()

    half = len(lines) // 2
    produce_lines(topic_set, lines[:half])
    wait_until(lambda: feedback_checkpointed(topic_set), 90, "feedback state in a checkpoint")
    worker.kill()
    produce_lines(topic_set, lines[half:])
    second = worker_factory(topic_set, "second", data_dir=data_dir)
    assert_like_the_replay(topic_set, want, [second])

    letters = [orjson.loads(r.value) for r in read_topic(topic_set.env["STREAMS_TOPIC_DEAD_LETTER"])]
    assert [(letter["reason"], letter["field"]) for letter in letters] == [("unknown_action", "action")]
    assert letters[0]["source"]["topic"] == topic_set.env["STREAMS_TOPIC_FEEDBACK"]
