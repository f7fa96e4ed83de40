"""Fixtures for tests against the real broker: unique topic sets, worker processes, produce/consume helpers."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition

from streams.kafka_admin import bootstrap_servers, create_topics
from streams.settings import Settings, deployment_env, settings_from_env

REPO = Path(__file__).resolve().parents[2]
WORKER_MODULE = ("streams", "worker")
BROKER = os.environ.get("STREAMS_BROKER", "kafka://127.0.0.1:9092")


def _broker_answers() -> bool:
    host, port = bootstrap_servers(BROKER)[0].rsplit(":", 1)
    try:
        with socket.create_connection((host, int(port)), timeout=2):
            return True
    except OSError:
        return False


@pytest.fixture(scope="session", autouse=True)
def broker() -> str:
    """The real broker; `make test` and CI start it. Missing is a failure, not a skip."""
    if not _broker_answers():
        pytest.fail(f"no Kafka broker at {BROKER}: run `make kafka` (make test does)")
    return BROKER


@dataclass
class TopicSet:
    """A unique deployment: app id, topic names and the environment a worker gets."""

    app_id: str
    partitions: int
    env: dict[str, str]

    @property
    def settings(self) -> Settings:
        """Settings as a worker with `env` would read them."""
        return settings_from_env(self.env)


@pytest.fixture
def topic_factory(tmp_path: Path) -> Callable[..., TopicSet]:
    """Make a unique set of topics (created on the broker) and the worker environment for it."""

    def make(partitions: int = 1, **overrides: Any) -> TopicSet:
        app_id = f"t{uuid.uuid4().hex[:10]}"
        defaults = {"broker": BROKER, "idle_timeout_ms": 2000, "tick_interval_ms": 500, "log_level": "info"}
        env = deployment_env(app_id, partitions, **{**defaults, **overrides})
        topic_set = TopicSet(app_id, partitions, env)
        create_topics(topic_set.settings, partitions)
        return topic_set

    return make


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Worker:
    """A `python -m streams worker` subprocess."""

    name: str
    env: dict[str, str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None
    web_port: int = field(default_factory=_free_port)
    module: tuple[str, ...] = WORKER_MODULE
    """What `python -m` runs: the worker, or a test's variant of it."""

    def start(self) -> Worker:
        """Start the process (stdout/stderr to its log file)."""
        env = {**os.environ, **self.env, "STREAMS_WEB_PORT": str(self.web_port)}
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [sys.executable, "-m", *self.module], cwd=REPO, env=env, stdout=log, stderr=log
            )
        return self

    def kill(self) -> None:
        """SIGKILL: no shutdown, no final commit."""
        assert self.process is not None
        self.process.send_signal(signal.SIGKILL)
        self.process.wait(timeout=30)

    def stop(self) -> None:
        """SIGTERM and wait for a clean exit (SIGKILL after 60 s)."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait(timeout=30)

    def log_text(self) -> str:
        """The worker's log so far."""
        return self.log_path.read_text(errors="replace")


@pytest.fixture
def worker_factory(tmp_path: Path) -> Iterator[Callable[..., Worker]]:
    """Start workers for a topic set; all are stopped at teardown (logs kept under tmp_path)."""
    workers: list[Worker] = []

    def make(
        topic_set: TopicSet,
        name: str = "w1",
        data_dir: Path | None = None,
        module: tuple[str, ...] = WORKER_MODULE,
    ) -> Worker:
        env = dict(topic_set.env)
        env["STREAMS_DATA_DIR"] = str(data_dir or tmp_path / f"data-{name}")
        worker = Worker(name, env, tmp_path / f"{name}.log", module=module).start()
        workers.append(worker)
        return worker

    yield make
    for worker in workers:
        worker.stop()


def produce_lines(topic_set: TopicSet, lines: list[bytes]) -> None:
    """Send lines the way `python -m streams produce` does (topic by type, key = actor_id)."""
    from streams.cli.produce import route  # noqa: PLC0415

    settings = topic_set.settings
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER), acks="all", linger_ms=5)
    try:
        for line in lines:
            topic, key = route(line, settings)
            producer.send(topic, key=key, value=line)
        producer.flush()
    finally:
        producer.close()


def read_topic(topic: str, idle_s: float = 3.0, timeout_s: float = 120.0) -> list[Any]:
    """Every record of `topic` from the beginning, stopping after `idle_s` without news."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(BROKER), auto_offset_reset="earliest", enable_auto_commit=False
    )
    try:
        partitions = consumer.partitions_for_topic(topic) or set()
        consumer.assign([TopicPartition(topic, p) for p in partitions])
        consumer.seek_to_beginning()
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        last_news = time.monotonic()
        while time.monotonic() < deadline and time.monotonic() - last_news < idle_s:
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
                last_news = time.monotonic()
        return records
    finally:
        consumer.close()


def wait_for_alerts(topic_set: TopicSet, expected: int, timeout_s: float = 240.0) -> list[dict[str, Any]]:
    """Poll the alert topic until `expected` distinct alert ids arrived (or time runs out)."""
    deadline = time.monotonic() + timeout_s
    alerts: list[dict[str, Any]] = []
    while time.monotonic() < deadline:
        alerts = [
            orjson.loads(r.value) for r in read_topic(topic_set.env["STREAMS_TOPIC_ALERTS"], idle_s=1.0)
        ]
        if len({a["alert_id"] for a in alerts}) >= expected:
            break
        time.sleep(2)
    return alerts


def deterministic(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alerts by id without `detected_at`; a repeated id must repeat the same alert."""
    by_id: dict[str, dict[str, Any]] = {}
    for published in alerts:
        alert = {k: v for k, v in published.items() if k != "detected_at"}
        previous = by_id.setdefault(alert["alert_id"], alert)
        assert previous == alert, f"alert {alert['alert_id']} repeated with different fields"
    return by_id
