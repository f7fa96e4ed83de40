"""Faults on the real broker (SIGKILL, rebalances, broker restart, lost local state, duplicates): alerts equal the replay."""

from __future__ import annotations

import math
import re
import shutil
import subprocess
import threading
import time
import urllib.request
from collections import Counter
from collections.abc import Callable, Iterator
from functools import lru_cache
from itertools import islice
from pathlib import Path
from typing import Any

import orjson
import pytest
from kafka import KafkaConsumer, TopicPartition

from streams.datasets.collegemsg import COLLEGEMSG as COLLEGEMSG_FIXTURE
from streams.datasets.collegemsg import collegemsg_events
from streams.engine.row import Row
from streams.kafka_admin import bootstrap_servers
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.service.owner_partition import OwnerPartition
from streams.service.records import OwnerRecord
from streams.settings import DAY_MS, Settings
from tests.service.conftest import BROKER, REPO, WORKER_MODULE, TopicSet, Worker, produce_lines

pytestmark = pytest.mark.broker

COLLEGEMSG = COLLEGEMSG_FIXTURE
# Shorter silences than the defaults, so that a prefix of CollegeMsg (a few weeks) has
# plenty of dormant and revived episodes: ~900 alerts in 20k events, ~1.8k in 25k.
FAST: dict[str, Any] = {"min_touches": 3, "min_silence_ms": DAY_MS, "max_silence_ms": 7 * DAY_MS}
KAFKA_SH = REPO / "deploy" / "kafka" / "kafka.sh"

# --- helpers shared by the broker tests of this directory ---------------------------


@lru_cache(maxsize=4)
def _collegemsg(count: int | None) -> tuple[bytes, ...]:
    events = collegemsg_events(COLLEGEMSG)
    return tuple(orjson.dumps(event) for event in islice(events, count))


def collegemsg_lines(count: int | None = None) -> list[bytes]:
    """The first `count` CollegeMsg events (SNAP; Panzarasa et al. 2009) as JSON lines, all when None."""
    return list(_collegemsg(count))


def replay_alerts(lines: list[bytes], **overrides: Any) -> tuple[dict[str, dict[str, Any]], ReplaySummary]:
    """What `streams replay` says about `lines`: alerts by id (without `detected_at`) and its summary."""
    summary = ReplaySummary()
    alerts = list(replay(lines, Settings(**REPLAY_DEFAULTS, **overrides), summary))
    return by_alert_id(alerts), summary


def same_alert(left: dict[str, Any], right: dict[str, Any]) -> bool:
    """Equal in every field but `detected_at`; `strength` within the relative 1e-9 SPEC §4 allows."""
    keys = (left.keys() | right.keys()) - {"detected_at", "strength"}
    return all(left.get(k) == right.get(k) for k in keys) and math.isclose(
        left["strength"], right["strength"], rel_tol=1e-9
    )


def by_alert_id(alerts: list[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Alerts by id without `detected_at`; a repeated id must repeat the same alert."""
    found: dict[str, dict[str, Any]] = {}
    for published in alerts:
        alert = {k: v for k, v in published.items() if k != "detected_at"}
        previous = found.setdefault(alert["alert_id"], alert)
        assert same_alert(previous, alert), (
            f"{alert['alert_id']} repeated with other fields: {previous} vs {alert}"
        )
    return found


def read_to_end(topic: str, isolation_level: str = "read_uncommitted", timeout_s: float = 60.0) -> list[Any]:
    """Every record of `topic` up to its end offsets as of now (the last stable offsets when read_committed)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(BROKER),
        isolation_level=isolation_level,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        records: list[Any] = []
        deadline = time.monotonic() + timeout_s
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, f"could not read {topic} to its end"
            for batch in consumer.poll(timeout_ms=500).values():
                records.extend(batch)
        return records
    finally:
        consumer.close()


def read_alerts(topic_set: TopicSet, isolation_level: str = "read_uncommitted") -> list[dict[str, Any]]:
    """Every record of the alert topic so far, decoded."""
    topic = topic_set.env["STREAMS_TOPIC_ALERTS"]
    return [orjson.loads(r.value) for r in read_to_end(topic, isolation_level)]


def wait_for_ids(
    topic_set: TopicSet,
    want: dict[str, Any],
    timeout_s: float = 180.0,
    stall_s: float = 30.0,
    read: Callable[[TopicSet], list[dict[str, Any]]] = read_alerts,
) -> list[dict[str, Any]]:
    """Poll the alert topic until every wanted id is there, `stall_s` pass without news, or time runs out."""
    deadline = time.monotonic() + timeout_s
    alerts = read(topic_set)
    last_news = time.monotonic()
    while time.monotonic() < deadline and time.monotonic() - last_news < stall_s:
        if want.keys() <= {a["alert_id"] for a in alerts}:
            break
        time.sleep(1.5)
        count = len(alerts)
        alerts = read(topic_set)
        if len(alerts) > count:
            last_news = time.monotonic()
    return alerts


def read_committed_alerts(topic_set: TopicSet) -> list[dict[str, Any]]:
    """Every committed record of the alert topic (isolation_level=read_committed), decoded."""
    return read_alerts(topic_set, "read_committed")


def repeated_ids(alerts: list[dict[str, Any]]) -> dict[str, int]:
    """Alert ids published more than once, with their counts."""
    return {alert_id: n for alert_id, n in Counter(a["alert_id"] for a in alerts).items() if n > 1}


def assert_like_the_replay(topic_set: TopicSet, want: dict[str, dict[str, Any]]) -> None:
    """Once all are there: the replay's alerts; under exactly_once read committed, and no id twice."""
    exactly_once = topic_set.settings.exactly_once
    alerts = wait_for_ids(topic_set, want, read=read_committed_alerts if exactly_once else read_alerts)
    if exactly_once:
        repeats = repeated_ids(alerts)
        assert not repeats, f"{len(repeats)} alert ids published more than once, e.g. {sorted(repeats)[:3]}"
    assert_same_alerts(alerts, want)


def assert_same_alerts(got: list[dict[str, Any]], want: dict[str, dict[str, Any]]) -> None:
    """Deduplicated by id, the published alerts are exactly the replay's."""
    found = by_alert_id(got)
    missing = sorted(want.keys() - found.keys())
    extra = sorted(found.keys() - want.keys())
    summary = f"{len(missing)} missing {missing[:4]}, {len(extra)} unexpected {extra[:4]}"
    assert not missing, summary
    assert not extra, summary
    different = [k for k in want if not same_alert(want[k], found[k])]
    assert not different, f"{len(different)} differ, e.g. {want[different[0]]} vs {found[different[0]]}"


def metric(worker: Worker, name: str, labels: str = "", timeout_s: float = 5.0) -> float:
    """One sample of the worker's /metrics (0 when the series does not exist yet)."""
    url = f"http://127.0.0.1:{worker.web_port}/metrics"
    body = urllib.request.urlopen(url, timeout=timeout_s).read().decode()
    for line in body.splitlines():
        if line.startswith(f"{name}{labels} "):
            return float(line.rsplit(" ", 1)[1])
    return 0.0


def wait_until(predicate: Callable[[], bool], timeout_s: float, what: str, every_s: float = 0.2) -> None:
    """Poll `predicate` (exceptions count as False) until true; fail with `what` after `timeout_s`."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        try:
            if predicate():
                return
        except Exception:
            pass
        time.sleep(every_s)
    pytest.fail(f"timed out after {timeout_s:.0f}s waiting for {what}")


def consumed(worker: Worker) -> float:
    """Input records the worker's ingest stage has read (valid and invalid)."""
    body = urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=5).read().decode()
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith("relationships_events_consumed_total{")
    )


def serving(worker: Worker) -> bool:
    """The worker's web port answers."""
    urllib.request.urlopen(f"http://127.0.0.1:{worker.web_port}/metrics", timeout=2).read()
    return True


def alive(worker: Worker) -> bool:
    """The worker process has not exited."""
    return worker.process is not None and worker.process.poll() is None


class BackgroundProducer:
    """Produces lines in chunks from a thread, pausing between chunks, while the test acts on workers."""

    def __init__(self, topic_set: TopicSet, lines: list[bytes], chunks: int, pause_s: float) -> None:
        self.topic_set = topic_set
        self.lines = lines
        self.chunks = chunks
        self.pause_s = pause_s
        self.sent = 0
        self.error: BaseException | None = None
        self._thread = threading.Thread(target=self._run, name="producer", daemon=True)

    def _run(self) -> None:
        try:
            size = math.ceil(len(self.lines) / self.chunks)
            for start in range(0, len(self.lines), size):
                produce_lines(self.topic_set, self.lines[start : start + size])
                self.sent = min(start + size, len(self.lines))
                time.sleep(self.pause_s)
        except BaseException as exc:
            self.error = exc

    def start(self) -> BackgroundProducer:
        """Start producing."""
        self._thread.start()
        return self

    def join(self, timeout_s: float = 120.0) -> None:
        """Wait until everything is sent; re-raise the thread's error."""
        self._thread.join(timeout_s)
        assert not self._thread.is_alive(), "producer thread still running"
        if self.error is not None:
            raise self.error


# --- fixtures -----------------------------------------------------------------------


@pytest.fixture(scope="module")
def prefix() -> tuple[list[bytes], dict[str, dict[str, Any]]]:
    """20k CollegeMsg events and their replay alerts (FAST settings)."""
    lines = collegemsg_lines(20_000)
    want, summary = replay_alerts(lines, **FAST)
    assert summary.alerts["dormant"] > 500
    assert summary.alerts["revived"] > 100
    return lines, want


@pytest.fixture(params=["at_least_once", "exactly_once"])
def guarantee(request: pytest.FixtureRequest) -> str:
    """Each fault test runs under both processing guarantees."""
    return str(request.param)


def serving_worker(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    data_dir: Path,
    name: str,
    guarantee: str,
    module: tuple[str, ...] = WORKER_MODULE,
) -> tuple[TopicSet, Worker]:
    """A 3-partition deployment with FAST settings and its first worker, on `data_dir`, serving."""
    topic_set = topic_factory(3, **FAST, processing_guarantee=guarantee)
    worker = worker_factory(topic_set, name, data_dir, module)
    wait_until(lambda: serving(worker), 60, f"worker {name}'s web port")
    return topic_set, worker


# --- SIGKILL ---------------------------------------------------------------------------


def test_sigkill_mid_batch_then_restart(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines, want = prefix
    data_dir = tmp_path / "state"
    topic_set, worker = serving_worker(topic_factory, worker_factory, data_dir, "first", guarantee)
    produce_lines(topic_set, lines)
    wait_until(lambda: consumed(worker) > 0, 60, "the worker to start consuming")
    read_so_far = consumed(worker)
    worker.kill()
    assert read_so_far < len(lines), "the worker had read everything: not a mid-batch kill"
    worker_factory(topic_set, "second", data_dir=data_dir)
    assert_like_the_replay(topic_set, want)


def test_sigkill_during_recovery_then_restart(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines, want = prefix
    data_dir = tmp_path / "state"
    topic_set, first = serving_worker(topic_factory, worker_factory, data_dir, "first", guarantee)
    produce_lines(topic_set, lines)
    wait_for_ids(topic_set, dict(list(want.items())[: len(want) // 3]), timeout_s=120)
    first.kill()
    second = worker_factory(topic_set, "recovering", data_dir=data_dir)
    time.sleep(1.5)  # joining the group / restoring the table from its changelog
    assert alive(second)
    second.kill()
    assert "Worker ready" not in second.log_text(), "killed too late: recovery had finished"
    worker_factory(topic_set, "third", data_dir=data_dir)
    assert_like_the_replay(topic_set, want)


def test_sigkill_during_a_rebalance(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines, want = prefix
    topic_set = topic_factory(6, **FAST, processing_guarantee=guarantee)
    first = worker_factory(topic_set, "first", data_dir=tmp_path / "first")
    wait_until(lambda: "Worker ready" in first.log_text(), 60, "the first worker to be ready")
    producer = BackgroundProducer(topic_set, lines, chunks=10, pause_s=0.5).start()
    wait_until(lambda: consumed(first) > 0, 60, "the first worker to consume")
    second = worker_factory(topic_set, "second", data_dir=tmp_path / "second")
    # The second worker's JoinGroup starts a rebalance: the first revokes its partitions.
    wait_until(
        lambda: "Revoking previously assigned partitions" in first.log_text().split("Worker ready", 1)[-1],
        60,
        "the first worker to start rebalancing",
        every_s=0.05,
    )
    first.kill()
    producer.join()
    assert alive(second)
    worker_factory(topic_set, "first-again", data_dir=tmp_path / "first")
    assert_like_the_replay(topic_set, want)


# --- workers joining and leaving --------------------------------------------------------


def workers_join_and_leave(
    topic_set: TopicSet, worker_factory: Callable[..., Worker], lines: list[bytes]
) -> Worker:
    """Produce `lines` in 16 chunks while a 2nd and a 3rd worker join, then leave (SIGTERM); the 1st stays."""
    first = worker_factory(topic_set, "w1")
    wait_until(lambda: serving(first), 60, "the first worker's web port")
    producer = BackgroundProducer(topic_set, lines, chunks=16, pause_s=1.0).start()
    second = worker_factory(topic_set, "w2")
    wait_until(lambda: producer.sent >= len(lines) // 4, 60, "a quarter of the input")
    third = worker_factory(topic_set, "w3")
    wait_until(lambda: producer.sent >= len(lines) // 2, 60, "half of the input")
    second.stop()
    wait_until(lambda: producer.sent >= 3 * len(lines) // 4, 60, "three quarters of the input")
    third.stop()
    producer.join()
    for leaver in (second, third):
        assert leaver.process is not None
        assert leaver.process.returncode == 0
    assert alive(first)
    return first


def test_workers_join_and_leave_while_data_flows(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    guarantee: str,
) -> None:
    lines, want = prefix
    topic_set = topic_factory(6, **FAST, processing_guarantee=guarantee)
    workers_join_and_leave(topic_set, worker_factory, lines)
    assert_like_the_replay(topic_set, want)


# --- an agent raising -------------------------------------------------------------------


@pytest.mark.parametrize("agent", ["ingest", "relationships"])
def test_an_agent_raising_stops_the_worker_and_a_restart_loses_nothing(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    tmp_path: Path,
    guarantee: str,
    agent: str,
) -> None:
    # Not restarted inside the process (Faust's default): a fresh process resumes from committed offsets.
    lines, want = prefix
    data_dir = tmp_path / "state"
    module = ("tests.service.crashing_worker", agent, "10")
    topic_set, crashing = serving_worker(
        topic_factory, worker_factory, data_dir, "crashing", guarantee, module
    )
    produce_lines(topic_set, lines)
    wait_until(lambda: not alive(crashing), 90, f"the worker to exit after its {agent} agent raised")
    assert crashing.process is not None
    assert crashing.process.returncode == 1, crashing.log_text()[-3000:]
    assert "InjectedFault" in crashing.log_text()
    worker_factory(topic_set, "restarted", data_dir=data_dir)
    assert_like_the_replay(topic_set, want)


# --- the broker goes away ------------------------------------------------------------------


def kafka_sh(command: str) -> float:
    """Run `deploy/kafka/kafka.sh COMMAND`; seconds it took."""
    started = time.monotonic()
    subprocess.run(["bash", str(KAFKA_SH), command], check=True, capture_output=True, timeout=120)
    return time.monotonic() - started


@pytest.fixture
def broker_outage() -> Iterator[Callable[[], float]]:
    """`outage()` stops the shared broker and starts it again (seconds it was down); it is up after the test."""

    def outage() -> float:
        down_at = time.monotonic()
        try:
            kafka_sh("stop")  # ~4 s (SIGTERM, controlled shutdown)
        finally:  # ~12 s until it serves metadata again
            kafka_sh("start")
        return time.monotonic() - down_at

    yield outage
    kafka_sh("start")  # no-op when it answers


def test_broker_stopped_and_restarted_mid_stream(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    broker_outage: Callable[[], float],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines, want = prefix
    data_dir = tmp_path / "state"
    topic_set, worker = serving_worker(topic_factory, worker_factory, data_dir, "before", guarantee)
    half = len(lines) // 2
    produce_lines(topic_set, lines[:half])
    wait_until(lambda: consumed(worker) >= half, 60, "the first half to be read")
    down_s = broker_outage()  # 16-45 s here: the broker's start slows as test topics pile up
    survived = alive(worker)
    if not survived:
        # Documented in docs/guarantees.md: a worker may exit when the broker goes away;
        # restarting it (same data dir) resumes from the committed offsets.
        worker = worker_factory(topic_set, "after", data_dir=data_dir)
    produce_lines(topic_set, lines[half:])
    assert_like_the_replay(topic_set, want)
    print(f"broker down {down_s:.1f}s; worker survived: {survived}")


# --- local state lost ------------------------------------------------------------------


def test_local_state_deleted_before_restart_recovers_from_the_changelog(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    tmp_path: Path,
    guarantee: str,
) -> None:
    lines, want = prefix
    data_dir = tmp_path / "state"
    topic_set, worker = serving_worker(topic_factory, worker_factory, data_dir, "before", guarantee)
    half = len(lines) // 2
    produce_lines(topic_set, lines[:half])
    cutoff = orjson.loads(lines[half - 1])["ts"] - 2 * DAY_MS
    early = {k: v for k, v in want.items() if v["kind"] == "dormant" and v["dormant_since"] < cutoff}
    assert len(early) > 50
    wait_for_ids(topic_set, early, timeout_s=120)
    applied_before = metric(worker, "relationships_events_applied_total")
    worker.stop()
    assert any(data_dir.rglob("*.db")), "no RocksDB files to delete"
    shutil.rmtree(data_dir)
    worker = worker_factory(topic_set, "after", data_dir=data_dir)
    produce_lines(topic_set, lines[half:])
    assert_like_the_replay(topic_set, want)
    assert applied_before > 0
    recovered = re.findall(r"owner partition \d+ ready: (\d+) rows", worker.log_text())
    assert sum(int(n) for n in recovered) > 0, "nothing recovered from the changelog"


# --- duplicates ----------------------------------------------------------------------------


def run_with_a_segment_twice(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    lines: list[bytes],
    start: int,
    end: int,
    guarantee: str = "at_least_once",
) -> None:
    """Produce `lines` with `lines[start:end]` sent again right after itself; compare with the replay of the same."""
    doubled = lines[:end] + lines[start:end] + lines[end:]
    want, summary = replay_alerts(doubled, **FAST)
    # SPEC §1: a duplicate never changes any state or alert.
    assert summary.applied == len(lines), f"the replay applied {summary.applied - len(lines)} copies again"
    assert summary.duplicates == end - start
    topic_set = topic_factory(3, **FAST, processing_guarantee=guarantee)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 60, "the worker's web port")
    produce_lines(topic_set, doubled)
    assert_like_the_replay(topic_set, want)
    wait_until(
        lambda: metric(worker, "relationships_events_applied_total") >= summary.applied,
        60,
        "every event to be applied",
    )
    assert metric(worker, "relationships_duplicate_events_total") == summary.duplicates
    assert metric(worker, "relationships_events_applied_total") == summary.applied


def test_a_segment_delivered_twice_is_ignored_as_the_replay_ignores_it(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
    guarantee: str,
) -> None:
    # A producer retrying a whole batch: 1,000 events (5 h of event time) sent again.
    run_with_a_segment_twice(topic_factory, worker_factory, prefix[0], 8_000, 9_000, guarantee)


@pytest.mark.xfail(
    strict=False,  # the outcome depends on arrival timing
    reason="by the de-duplication rule (docs/semantics.md §8): a copy arriving when its row is >= 24 h past "
    "the original is no duplicate but a late event, applied at once (SPEC §1, §3), so a re-sent segment "
    "spanning more than a day changes counts (replay: 145 of 3,000 copies applied) and, late events being "
    "timing-dependent, the service need not agree with the replay (~90 alerts differed)",
)
def test_a_segment_of_two_days_delivered_twice_is_ignored(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prefix: tuple[list[bytes], dict[str, dict[str, Any]]],
) -> None:
    # 3,000 events (51 h of event time) sent again right after themselves.
    run_with_a_segment_twice(topic_factory, worker_factory, prefix[0], 6_000, 9_000)


# --- a checkpoint cut short (no broker: the state a SIGKILL between its writes leaves) ----------


def test_a_checkpoint_cut_short_applies_nothing_twice() -> None:
    """Rows written by a checkpoint whose __resume__ marker was not (SIGKILL in its write loop) are ahead of
    the marker: every re-delivered update they already hold must be recognised, however many and old."""
    settings = Settings(allowed_lateness_ms=0, clock="event")
    source = "in:0"
    start = 1_600_000_000_000
    # 40 replies between ann and bob, 2 h apart: more than 32 ids, spanning more than 24 h.
    updates = []
    for n in range(40):
        actor, target = ("ann", "bob") if n % 2 else ("bob", "ann")
        ts = start + n * 2 * 3_600_000
        updates += [[ts, f"e{n}", actor, target, 0, 1, 0, n], [ts, f"e{n}", target, actor, 1, 1, 0, n]]
    last = updates[-1][0]
    heartbeat = OwnerRecord([], [], {source: (None, False)})
    batch = OwnerRecord([source], updates, {source: (last, False)})
    all_idle = OwnerRecord([], [], {source: (last, True)})

    before: OwnerPartition[str] = OwnerPartition(0, settings, {}, [source])
    before.handle(heartbeat, "r0", 0, 0, 0)
    complete = before.checkpoint()  # rows and marker written
    before.handle(batch, "r1", 1, 0, 0)
    before.handle(all_idle, "r2", 2, 0, 0)
    cut_short = before.checkpoint()  # its rows written, then SIGKILL before its marker
    assert cut_short.acks == ["r1", "r2"]

    stored = {key: Row.from_bytes(row.to_bytes()) for key, row in cut_short.rows}
    after: OwnerPartition[str] = OwnerPartition(0, settings, stored, [source], complete.resume)
    after.handle(batch, "r1", 1, 0, 0)  # re-delivered from the committed offset
    after.handle(all_idle, "r2", 2, 0, 0)
    assert stored[("ann", "bob")].counts == [0, 20, 0, 0, 20, 0]
