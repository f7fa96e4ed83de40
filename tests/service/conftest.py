"""Fixtures for tests against the real broker: unique topic sets, worker processes, produce/consume helpers."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaAdminClient, KafkaConsumer, KafkaProducer, TopicPartition
from kafka.errors import KafkaError

from streams.kafka_admin import bootstrap_servers, create_topics
from streams.service.topology import owner_updates_topic_name
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


@pytest.fixture(autouse=True)
def broker(request: pytest.FixtureRequest) -> str | None:
    """The real broker for a test marked `broker` (`make test` and CI start it); missing is a failure, not a skip.

    A test without the mark gets None: it needs no broker, and `make test-unit` runs it with none.
    """
    if request.node.get_closest_marker("broker") is None:
        return None
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
        """SIGTERM and wait for a clean exit; after 60 s, SIGUSR1 (the stacks of every task, to the log), then SIGKILL."""
        if self.process is None or self.process.poll() is not None:
            return
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=60)
        except subprocess.TimeoutExpired:
            self.process.send_signal(signal.SIGUSR1)
            with contextlib.suppress(subprocess.TimeoutExpired):
                self.process.wait(timeout=5)
            self.process.kill()
            self.process.wait(timeout=30)

    def log_text(self) -> str:
        """The worker's log so far."""
        return self.log_path.read_text(errors="replace")

    def trouble(self, tail: int = 30) -> str:
        """What a failed assertion on this worker should show: its error lines and tracebacks, then its last lines."""
        lines = self.log_text().splitlines()
        flagged = [
            line for line in lines if "[ERROR]" in line or "[CRITICAL]" in line or not line.startswith("[")
        ]
        return "\n".join(
            [f"--- {self.name}: errors and tracebacks", *flagged[-80:], "--- last lines", *lines[-tail:]]
        )


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


SETTLE_S = 5.0
"""Quiet time after which output counts as settled: several commits (1 s apart), each ending a transaction
under exactly_once, and the checkpoints (`checkpoint_interval_ms`) between them."""


@dataclass(frozen=True)
class GroupProgress:
    """Where the deployment's consumer group stands, asked of the broker (whichever worker committed it)."""

    input_behind: int
    """Input records not committed by the group (end offset minus committed, summed)."""
    owner_committed: dict[int, int]
    """Committed offset of each owner-updates partition (0 when none)."""
    owner_ends: dict[int, int]
    """End offset of each owner-updates partition (heartbeats keep it moving)."""
    alert_ends: int
    """Records on the alert topic (end offsets summed; transaction markers included)."""

    def owner_past(self, ends: dict[int, int]) -> bool:
        """The group committed every owner-updates partition at least up to `ends`."""
        return all(self.owner_committed.get(p, 0) >= end for p, end in ends.items())


def committed_offsets(admin: KafkaAdminClient, group: str, timeout_s: float = 60.0) -> dict[Any, Any]:
    """The group's committed offsets; a retriable error (the group's coordinator moving or loading, as after a
    broker of a cluster restarted) is asked again, until `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            found: dict[Any, Any] = admin.list_group_offsets({group: None}).get(group, {})
            return found
        except KafkaError as exc:
            if not exc.retriable or time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def group_progress(topic_set: TopicSet) -> GroupProgress:
    """The consumer group's committed offsets and the end offsets of its topics, from the broker."""
    settings = topic_set.settings
    owner_topic = owner_updates_topic_name(settings)
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    consumer = KafkaConsumer(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        offsets = committed_offsets(admin, topic_set.app_id)
        committed = {tp: max(meta.offset, 0) for tp, meta in offsets.items()}
        topics = [*settings.input_topics(), owner_topic, settings.topic_alerts]
        tps = [TopicPartition(t, p) for t in topics for p in sorted(consumer.partitions_for_topic(t) or ())]
        ends = consumer.end_offsets(tps)
    finally:
        consumer.close()
        admin.close()
    inputs = set(settings.input_topics())
    return GroupProgress(
        input_behind=sum(end - committed.get(tp, 0) for tp, end in ends.items() if tp.topic in inputs),
        owner_committed={tp.partition: committed.get(tp, 0) for tp in ends if tp.topic == owner_topic},
        owner_ends={tp.partition: end for tp, end in ends.items() if tp.topic == owner_topic},
        alert_ends=sum(end for tp, end in ends.items() if tp.topic == settings.topic_alerts),
    )


def metric_samples(worker: Worker, timeout_s: float = 5.0) -> dict[str, float]:
    """Every sample of the worker's /metrics, by its series as exposed: `name` or `name{label="value",...}`."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    with urllib.request.urlopen(url, timeout=timeout_s) as response:
        body = response.read().decode()
    samples: dict[str, float] = {}
    for line in body.splitlines():
        if line and not line.startswith("#"):
            series, _, value = line.rpartition(" ")
            samples[series] = float(value)
    return samples


def stable_members(app_id: str) -> list[dict[str, Any]]:
    """The members of consumer group `app_id` once it is stable (none while it rebalances), as the broker describes them."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        group = admin.describe_groups([app_id])[app_id]
    finally:
        admin.close()
    members: list[dict[str, Any]] = group["members"] if group.get("group_state") == "Stable" else []
    return members


def group_members(topic_set: TopicSet) -> int:
    """Members of the deployment's consumer group once it is stable (0 while it rebalances)."""
    return len(stable_members(topic_set.app_id))


def event_time_state(worker: Worker) -> str:
    """The worker's late events (an input partition idle while data was still on its way makes them) and
    the updates it holds back for the watermark (still held once the input is done: a watermark stuck)."""
    try:
        samples = metric_samples(worker)
    except OSError:
        return "metrics unavailable"
    late, held = (
        samples.get(name) for name in ("relationships_late_events_total", "relationships_held_updates")
    )
    return f"{'?' if late is None else f'{late:.0f}'} late events, {'?' if held is None else f'{held:.0f}'} updates held"


def describe_progress(
    topic_set: TopicSet, workers: Sequence[Worker], earlier: GroupProgress | None, lost: bool = False
) -> str:
    """Late or lost: which workers are alive (with their `event_time_state`), and whether the group is
    still consuming (vs `earlier`). `lost`: the caller saw the group handle the owner stream past its end
    with every input committed and nothing new (heartbeats keep the owner stream's commits moving)."""
    now = group_progress(topic_set)
    alive = ", ".join(
        f"{w.name} alive ({event_time_state(w)})"
        if w.process is not None and w.process.poll() is None
        else f"{w.name} exited"
        for w in workers
    )
    moving = earlier is not None and (
        now.input_behind < earlier.input_behind or now.owner_committed != earlier.owner_committed
    )
    if lost:
        verdict = "LOST: every input record is committed and the owner stream was handled past its end since"
    elif moving:
        verdict = f"LATE: the group is still consuming ({now.input_behind} input records not committed)"
    elif now.input_behind == 0:
        verdict = "LOST: every input record is committed and the owner stream no longer moves"
    else:
        verdict = f"STUCK: {now.input_behind} input records not committed and nothing moves"
    return f"{verdict}; workers: {alive or 'not given'}"


OWNER_STALL_S = 60.0
"""How long the owner stream may take to be committed past its end before a stalled commit is tolerated."""
STALLED_QUIET_S = 30.0
"""With the owner stream's commit stalled, how long the alert topic must stay quiet (six times `SETTLE_S`)."""


def wait_until_settled(
    topic_set: TopicSet,
    workers: Sequence[Worker] = (),
    quiet_s: float = SETTLE_S,
    timeout_s: float = 120.0,
) -> GroupProgress:
    """Wait until the group has committed every input record (for at most `2 * quiet_s`: see below), then
    until it handled the owner stream past where it ended then (every update sent applied and checkpointed:
    the relationship stage acks a record only then), and the alert topic has not grown for `quiet_s`.

    A worker that restarted after a SIGKILL can leave an input partition's committed offset stuck below
    records it read straight from the broker (docs/guarantees.md §1): the wait goes on without it. An owner
    partition's commit can stall the same way after a rebalance: once the owner stream has had
    `OWNER_STALL_S` to pass its target, a quiet alert topic for `STALLED_QUIET_S` ends the wait."""
    started = time.monotonic()
    first = group_progress(topic_set)
    progress = first
    target: dict[int, int] | None = None
    quiet_since = started
    target_at = started
    while True:
        if target is None and (progress.input_behind == 0 or time.monotonic() - started >= 2 * quiet_s):
            target, target_at = progress.owner_ends, time.monotonic()
        done = target is not None and progress.owner_past(target)
        quiet = time.monotonic() - quiet_since
        if done and quiet >= quiet_s:
            return progress
        if target is not None and time.monotonic() - target_at >= OWNER_STALL_S and quiet >= STALLED_QUIET_S:
            return progress  # an owner partition's commit stalled (docs/guarantees.md §1): output stopped
        if time.monotonic() - started > timeout_s:
            pytest.fail(
                f"output did not settle in {timeout_s:.0f}s (owner stream committed {progress.owner_committed},"
                f" to pass {target}; alert topic grew {time.monotonic() - quiet_since:.0f}s ago): "
                f"{describe_progress(topic_set, workers, first)}"
            )
        time.sleep(0.5)
        before = progress.alert_ends
        progress = group_progress(topic_set)
        if progress.alert_ends != before:
            quiet_since = time.monotonic()


def wait_for_alerts(
    topic_set: TopicSet,
    expected: int,
    timeout_s: float = 240.0,
    settle_s: float = SETTLE_S,
    workers: Sequence[Worker] = (),
) -> list[dict[str, Any]]:
    """Poll the alert topic until `expected` distinct alert ids arrived, then (`settle_s` > 0) until the output
    settled (`wait_until_settled`): every alert record, repeats included; fails on timeout, saying why."""
    topic = topic_set.env["STREAMS_TOPIC_ALERTS"]
    deadline = time.monotonic() + timeout_s
    earlier = group_progress(topic_set)
    while True:
        alerts = [orjson.loads(r.value) for r in read_topic(topic, idle_s=1.0)]
        found = len({a["alert_id"] for a in alerts})
        if found >= expected:
            break
        if time.monotonic() > deadline:
            pytest.fail(
                f"{found} of {expected} alert ids after {timeout_s:.0f}s: "
                f"{describe_progress(topic_set, workers, earlier)}"
            )
        time.sleep(2)
    if settle_s <= 0:
        return alerts
    wait_until_settled(topic_set, workers, settle_s)
    return [orjson.loads(r.value) for r in read_topic(topic, idle_s=1.0)]


def deterministic(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alerts by id without `detected_at`; a repeated id must repeat the same alert."""
    by_id: dict[str, dict[str, Any]] = {}
    for published in alerts:
        alert = {k: v for k, v in published.items() if k != "detected_at"}
        previous = by_id.setdefault(alert["alert_id"], alert)
        assert previous == alert, f"alert {alert['alert_id']} repeated with different fields"
    return by_id
