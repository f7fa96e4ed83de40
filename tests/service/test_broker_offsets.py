"""Against the broker: offsets asked over the worker's own connection, and an idle worker that stays quiet."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections.abc import Callable
from pathlib import Path

import pytest
from faust.types import TP
from kafka import KafkaAdminClient, KafkaProducer

from streams.kafka_admin import bootstrap_servers
from streams.service.app import create_app
from streams.service.broker_offsets import BrokerOffsets
from streams.settings import Settings
from tests.service.conftest import BROKER, TopicSet, Worker
from tests.service.test_faults import alive, wait_until

pytestmark = pytest.mark.broker

IDLE_S = 20.0
"""How long the idle worker is watched after it is ready: its input is quiet (and judged idle) after 2 s."""


def test_end_and_beginning_offsets_are_the_brokers(tmp_path: Path) -> None:
    topic = f"offsets{uuid.uuid4().hex[:10]}"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        admin.create_topics({topic: {"num_partitions": 2, "replication_factor": 1}})
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        for n in range(7):
            producer.send(topic, value=b"%d" % n, partition=1)
        producer.flush()
    finally:
        producer.close()
    settings = Settings(broker=BROKER, app_id=f"offsets-test-{uuid.uuid4().hex[:6]}", data_dir=tmp_path)

    async def ask() -> tuple[dict[TP, int], dict[TP, int]]:
        offsets = BrokerOffsets(create_app(settings), settings)
        try:
            tps = [TP(topic, 0), TP(topic, 1)]
            return await offsets.ends(tps), await offsets.beginnings(tps)
        finally:
            await offsets.stop()

    ends, beginnings = asyncio.run(ask())
    assert ends == {TP(topic, 0): 0, TP(topic, 1): 7}
    assert beginnings == {TP(topic, 0): 0, TP(topic, 1): 0}


def test_an_idle_worker_logs_no_warning(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    """`make run`'s settings but a 2 s idle timeout: before, judging idleness every 250 ms tick waited for end
    offsets behind the consumer's fetch long poll, and mode logged `Timer ... judge_idleness is overlapping`
    at WARNING about twice a second."""
    default_tick_ms = Settings.model_fields["tick_interval_ms"].default
    topic_set = topic_factory(3, clock="hybrid", tick_interval_ms=default_tick_ms)
    worker = worker_factory(topic_set)
    wait_until(lambda: "Worker ready" in worker.log_text(), 90, "the worker to be ready")
    time.sleep(IDLE_S)
    assert alive(worker), worker.trouble()
    after_ready = worker.log_text().split("Worker ready", 1)[1]
    warnings = [line for line in after_ready.splitlines() if re.search(r"\[(WARNING|ERROR|CRITICAL)\]", line)]
    assert not warnings, f"{len(warnings)} lines at WARNING or above, e.g. {warnings[:3]}"
