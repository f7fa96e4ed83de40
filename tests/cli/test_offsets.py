"""`streams offsets reset`: refused while the group has live members; else moves the committed input offsets."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from kafka import KafkaAdminClient, KafkaProducer
from kafka.admin import OffsetSpec, OffsetTimestamp

from streams.cli.offsets import EXIT_REFUSED, reset_target
from streams.kafka_admin import bootstrap_servers
from tests.service.conftest import BROKER, REPO, TopicSet, Worker
from tests.service.test_faults import wait_until

T0 = 1_700_000_000_000
RECORDS = 10  # per partition of the mentions topic, one second apart


def an_hour_ago_ms() -> int:
    """A whole second an hour ago: record times the broker's 7-day retention keeps.

    Records at T0 (2023) were deleted by the broker's retention check when it ran
    between producing them and the worker reading them (a CI run: 180 s waiting
    for commits of records that were gone).
    """
    return (time.time_ns() // 1_000_000_000 - 3_600) * 1_000


def test_targets_are_earliest_latest_or_a_zoned_iso_time() -> None:
    assert reset_target("earliest") == OffsetSpec.EARLIEST
    assert reset_target("latest") == OffsetSpec.LATEST
    assert reset_target("2023-11-14T22:13:23.500Z") == OffsetTimestamp(T0 + 3500)
    assert reset_target("2023-11-14T23:13:23.5+01:00") == OffsetTimestamp(T0 + 3500)
    with pytest.raises(argparse.ArgumentTypeError, match="UTC offset"):
        reset_target("2023-11-14T22:13:23")
    with pytest.raises(argparse.ArgumentTypeError, match="ISO 8601"):
        reset_target("yesterday")


def reset(topic_set: TopicSet, target: str) -> subprocess.CompletedProcess[str]:
    """Run the command as an operator would, with the deployment's `STREAMS_*` variables."""
    return subprocess.run(
        [sys.executable, "-m", "streams", "offsets", "reset", "--to", target],
        cwd=REPO,
        env={**os.environ, **topic_set.env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def committed(topic_set: TopicSet) -> dict[tuple[str, int], int]:
    """The workers' group's committed offsets on the input topics."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        offsets = admin.list_group_offsets({topic_set.app_id: None})[topic_set.app_id]
    finally:
        admin.close()
    inputs = set(topic_set.settings.input_topics())
    return {(tp.topic, tp.partition): meta.offset for tp, meta in offsets.items() if tp.topic in inputs}


@pytest.mark.broker
def test_reset_is_refused_with_live_members_then_moves_offsets_as_asked(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    topic_set = topic_factory(2)
    settings = topic_set.settings
    mentions = settings.topic_mentions
    start = an_hour_ago_ms()
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER), acks="all")
    for partition in range(2):
        for i in range(RECORDS):
            value = b'{"not": "an event"}'  # dead letters: what the records hold does not matter here
            producer.send(mentions, value=value, partition=partition, timestamp_ms=start + i * 1000)
    producer.flush()
    producer.close()

    worker = worker_factory(topic_set)  # the workers' group is the one the command resets
    wait_until(
        lambda: committed(topic_set) == {(mentions, 0): RECORDS, (mentions, 1): RECORDS},
        180,
        "the worker to commit every record it read",
        every_s=1,
    )
    refused = reset(topic_set, "earliest")
    assert refused.returncode == EXIT_REFUSED, refused.stderr
    assert "1 live member" in refused.stderr
    assert "Nothing changed" in refused.stderr
    assert committed(topic_set) == {(mentions, 0): RECORDS, (mentions, 1): RECORDS}
    worker.stop()  # SIGTERM: it leaves the group

    inputs = [(topic, p) for topic in settings.input_topics() for p in range(2)]
    earliest = reset(topic_set, "earliest")
    assert earliest.returncode == 0, earliest.stderr
    assert committed(topic_set) == dict.fromkeys(inputs, 0)
    assert f"{topic_set.app_id} {mentions}[1]: {RECORDS} -> 0" in earliest.stdout
    assert f"{topic_set.app_id} {settings.topic_likes}[0]: none -> 0" in earliest.stdout
    assert "6 of 6 input partitions reset to earliest" in earliest.stdout

    latest = reset(topic_set, "latest")
    assert latest.returncode == 0, latest.stderr
    assert committed(topic_set) == {key: RECORDS if key[0] == mentions else 0 for key in inputs}
    assert f"{mentions}[0]: 0 -> {RECORDS}" in latest.stdout

    moment = datetime.fromtimestamp((start + 3500) / 1000, UTC).isoformat()
    at_time = reset(topic_set, moment)
    assert at_time.returncode == 0, at_time.stderr
    # the first record at or after start + 3.5 s is the fifth (offset 4); empty topics stay at their end
    assert committed(topic_set) == {key: 4 if key[0] == mentions else 0 for key in inputs}

    not_a_time = reset(topic_set, "2023-11-14T22:13:23")
    assert not_a_time.returncode == EXIT_REFUSED
    assert "UTC offset" in not_a_time.stderr
    assert committed(topic_set) == {key: 4 if key[0] == mentions else 0 for key in inputs}
