"""Drain a backlog with worker processes and time it until every replay alert is out and the changelog is still.

Times are seconds from just before the worker processes start, and each is when
the broker made the output readable (read_committed), not when this process
read it: the reader's speed moves when `drain` returns, never a figure. The last
stable offsets of the alert topic and the rows changelog are polled every
`END_POLL_S`; a record is readable from the end of the first poll that showed
its partition's offset past it (or from its read, if earlier).

- `alerts_out_s`: the last expected alert (first copy of each id) became readable;
- `last_row_write_s`: the last row record (a changelog key starting with `ROW_KEY_PREFIX`) became readable;
- `first_applied_s`, `all_applied_s`: the end of the first /metrics poll showing any, and every, event applied;
- `last_row_sent_s`, `last_alert_sent_s`: the latest producer timestamps of those records (when the
  worker sent them; under exactly_once they turn readable at the commit after).

The clock stops at `done_s` = max(`alerts_out_s`, `last_row_write_s`, `all_applied_s`). `drain`
returns once every expected alert has been read and the changelog, read up to the last stable
offsets of a poll sent `SETTLE_S` or more after `last_row_write_s`, holds no later row record.
"""

from __future__ import annotations

import asyncio
import subprocess
import time
from bisect import bisect_right
from collections import deque
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import orjson
from aiokafka import AIOKafkaConsumer, TopicPartition
from kafka import KafkaConsumer

from bench.harness import free_port, metric, start_worker, stop
from streams.kafka_admin import bootstrap_servers
from streams.replay import REPLAY_DEFAULTS, EngineName, ReplaySummary, replay
from streams.service.row_store import ROW_KEY_PREFIX
from streams.settings import Settings, settings_from_env

SETTLE_S = 3.0
"""The rows are out once no row record has reached the changelog for this long (> checkpoint + commit interval).
Markers (`__resume__`, rewritten at every checkpoint, even idle) and deadline entries do not count: only rows."""
END_POLL_S = 0.1
"""How often the topics' last stable offsets are asked for: the resolution of the readable moments."""
METRICS_POLL_S = 0.25
"""How often the workers' applied-event counters are read."""
FETCH_MAX_RECORDS = 20_000
"""Records handled per read, so that a backlog never holds up the offset polls for long."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What a complete run publishes: the replay's alert ids and applied event count."""

    alert_ids: frozenset[str]
    applied: int


@dataclass(frozen=True, slots=True)
class Drained:
    """Times of one drain, in seconds from the worker processes' start (see the module docstring)."""

    events: int
    alerts: int
    first_applied_s: float
    applied_at_first: int
    all_applied_s: float
    alerts_out_s: float
    last_row_write_s: float
    row_records: int
    unexpected_alerts: int
    last_row_sent_s: float
    last_alert_sent_s: float

    @property
    def done_s(self) -> float:
        """The stop condition: every alert and the last row write in the changelog readable (read_committed)."""
        return max(self.alerts_out_s, self.last_row_write_s, self.all_applied_s)

    def figures(self) -> dict[str, Any]:
        """The times and the rates they give: from the worker start, and after the first applied event."""
        return {
            **asdict(self),
            "done_s": round(self.done_s, 2),
            "eps_from_start": round(self.events / self.done_s),
            "eps_after_first_applied": round(
                (self.events - self.applied_at_first) / (self.done_s - self.first_applied_s)
            ),
        }


def expected_output(lines: list[bytes], env: dict[str, str], engine_name: EngineName = "python") -> Expected:
    """`streams replay` of `lines` with the deployment's settings (`engine_name="compiled"` for many rows:
    the Python engine holds about 1 KB of heap per row)."""
    settings = Settings(**{**settings_from_env(env).model_dump(), **REPLAY_DEFAULTS})
    summary = ReplaySummary()
    alerts = {alert["alert_id"] for alert in replay(lines, settings, summary, engine_name)}
    return Expected(frozenset(alerts), summary.applied)


@dataclass(frozen=True, slots=True)
class _Read:
    """Where a record sits, and when it was read and sent (seconds on the drain's clock)."""

    partition: int
    offset: int
    read_s: float
    sent_s: float


@dataclass(slots=True)
class _Ends:
    """One partition's last stable offsets as polled: each growth and the end of the poll that first saw it."""

    seen_s: list[float] = field(default_factory=list)
    ends: list[int] = field(default_factory=list)

    def add(self, seen_s: float, end: int) -> None:
        if not self.ends or end > self.ends[-1]:
            self.seen_s.append(seen_s)
            self.ends.append(end)

    def readable_s(self, offset: int) -> float:
        """The end of the first poll that showed `offset` readable (inf if none has yet)."""
        at = bisect_right(self.ends, offset)
        return self.seen_s[at] if at < len(self.seen_s) else float("inf")


class _Topic:
    """A read_committed reader of one topic from its beginning, with the history of its last stable offsets."""

    def __init__(self, settings: Settings, topic: str, clock: _Clock) -> None:
        self.topic, self.clock = topic, clock
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap_servers(settings.broker),
            isolation_level="read_committed",
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            fetch_max_wait_ms=100,
            max_partition_fetch_bytes=8 * 1024 * 1024,
        )
        self.partitions: list[TopicPartition] = []
        self.history: dict[int, _Ends] = {}
        self.polls: deque[tuple[float, dict[TopicPartition, int]]] = deque()
        """Polls not yet known to be read up to: the moment each was sent and the offsets it gave."""
        self.read_up_to: float | None = None
        """When the latest poll whose offsets this consumer has read up to was sent."""

    async def assign(self, metadata: KafkaConsumer) -> bool:
        """Assign every partition from the beginning once the topic exists (the changelog: once a worker made it)."""
        if not self.partitions:
            found = await asyncio.to_thread(_partitions, metadata, self.topic)
            if found:
                self.partitions = [TopicPartition(self.topic, p) for p in found]
                self.history = {p: _Ends() for p in found}
                self.consumer.assign(self.partitions)
                await self.consumer.seek_to_beginning(*self.partitions)
        return bool(self.partitions)

    async def poll_ends(self) -> None:
        """Ask for the last stable offsets; note where they grew."""
        if not self.partitions:
            return
        sent = self.clock.now()
        ends = await self.consumer.end_offsets(self.partitions)
        received = self.clock.now()
        for tp, end in ends.items():
            self.history[tp.partition].add(received, end)
        self.polls.append((sent, ends))

    def readable_s(self, read: _Read) -> float:
        """When the record became readable: the first poll that showed it, or its read if that came first."""
        return min(read.read_s, self.history[read.partition].readable_s(read.offset))

    async def read(self) -> dict[TopicPartition, list[Any]]:
        """The next records (empty while the topic does not exist yet)."""
        if not self.partitions:
            await asyncio.sleep(END_POLL_S)
            return {}
        batches: dict[TopicPartition, list[Any]] = await self.consumer.getmany(
            timeout_ms=100, max_records=FETCH_MAX_RECORDS
        )
        return batches

    async def read_up_to_s(self) -> float | None:
        """When the latest poll whose offsets this consumer has read up to was sent (None: none yet)."""
        positions = {tp: await self.consumer.position(tp) for tp in self.partitions}
        while self.polls and all(positions[tp] >= end for tp, end in self.polls[0][1].items()):
            self.read_up_to = self.polls.popleft()[0]
        return self.read_up_to


@dataclass(slots=True)
class _Clock:
    """Seconds since the worker processes' start, and record timestamps (epoch ms) on the same scale."""

    started: float = 0.0
    started_epoch: float = 0.0

    def start(self) -> None:
        self.started, self.started_epoch = time.perf_counter(), time.time()

    def now(self) -> float:
        return time.perf_counter() - self.started

    def of_timestamp(self, epoch_ms: int) -> float:
        return epoch_ms / 1000 - self.started_epoch


def _partitions(metadata: KafkaConsumer, topic: str) -> list[int]:
    metadata.topics()  # refresh metadata; it lists existing topics only and never creates one
    return sorted(metadata.partitions_for_topic(topic) or ())


def _applied(ports: list[int]) -> int:
    return int(sum(metric(port, "relationships_events_applied_total") for port in ports))


@dataclass(slots=True)
class _Progress:
    """What the drain has seen so far."""

    first: tuple[float, int] | None = None
    all_applied_s: float | None = None
    applied: int = 0
    alerts: dict[str, _Read] = field(default_factory=dict)
    last_row: dict[int, _Read] = field(default_factory=dict)
    row_records: int = 0

    def on_applied(self, applied: int, at_s: float, expected: int) -> None:
        self.applied = applied
        if self.first is None and applied > 0:
            self.first = (at_s, applied)
        if self.all_applied_s is None and applied >= expected:
            self.all_applied_s = at_s


async def _poll_ends(topics: list[_Topic]) -> None:
    while True:
        await asyncio.gather(*(topic.poll_ends() for topic in topics))
        await asyncio.sleep(END_POLL_S)


async def _poll_metrics(ports: list[int], progress: _Progress, expected: int, clock: _Clock) -> None:
    while True:
        applied = await asyncio.to_thread(_applied, ports)
        progress.on_applied(applied, clock.now(), expected)
        await asyncio.sleep(METRICS_POLL_S)


async def _read_alerts(alerts: _Topic, progress: _Progress, clock: _Clock) -> None:
    for tp, records in (await alerts.read()).items():
        read_s = clock.now()
        for record in records:
            alert_id = orjson.loads(record.value)["alert_id"]
            if alert_id not in progress.alerts:
                progress.alerts[alert_id] = _Read(
                    tp.partition, record.offset, read_s, clock.of_timestamp(record.timestamp)
                )


async def _read_changelog(changelog: _Topic, progress: _Progress, clock: _Clock) -> None:
    for tp, records in (await changelog.read()).items():
        rows = [record for record in records if record.key.startswith(ROW_KEY_PREFIX)]
        if rows:
            progress.row_records += len(rows)
            progress.last_row[tp.partition] = _Read(
                tp.partition, rows[-1].offset, clock.now(), clock.of_timestamp(rows[-1].timestamp)
            )


async def _watch(
    settings: Settings,
    ports: list[int],
    expected: Expected,
    stall_s: float,
    launch: Callable[[], list[subprocess.Popen[bytes]]],
) -> Drained:
    clock = _Clock()
    alerts = _Topic(settings, settings.topic_alerts, clock)
    changelog = _Topic(settings, f"{settings.app_id}-rows-changelog", clock)
    metadata = KafkaConsumer(bootstrap_servers=bootstrap_servers(settings.broker))
    await alerts.consumer.start()
    await changelog.consumer.start()
    await alerts.assign(metadata)
    clock.start()
    processes = launch()
    progress = _Progress()
    pollers = [
        asyncio.create_task(_poll_ends([alerts, changelog])),
        asyncio.create_task(_poll_metrics(ports, progress, expected.applied, clock)),
    ]
    last_progress, seen = 0.0, (0, 0, 0)
    try:
        while True:
            for poller in pollers:
                if poller.done():
                    poller.result()  # re-raise what stopped it
            if exited := [process.returncode for process in processes if process.poll() is not None]:
                raise RuntimeError(f"a worker exited (codes {exited}) before the drain was done")
            await alerts.assign(metadata)
            await changelog.assign(metadata)
            await asyncio.gather(
                _read_alerts(alerts, progress, clock), _read_changelog(changelog, progress, clock)
            )
            now = clock.now()
            first, all_applied = progress.first, progress.all_applied_s
            missing = expected.alert_ids - progress.alerts.keys()
            if first and all_applied is not None and not missing and changelog.partitions:
                last_row = max(
                    (changelog.readable_s(read) for read in progress.last_row.values()), default=0.0
                )
                read_up_to = await changelog.read_up_to_s()
                if read_up_to is not None and read_up_to - last_row >= SETTLE_S:
                    wanted = [progress.alerts[a] for a in expected.alert_ids]
                    sent_row = max((read.sent_s for read in progress.last_row.values()), default=0.0)
                    return Drained(
                        events=expected.applied, alerts=len(expected.alert_ids),
                        first_applied_s=round(first[0], 2), applied_at_first=first[1],
                        all_applied_s=round(all_applied, 2),
                        alerts_out_s=round(max((alerts.readable_s(read) for read in wanted), default=0.0), 2),
                        last_row_write_s=round(last_row, 2), row_records=progress.row_records,
                        unexpected_alerts=len(progress.alerts.keys() - expected.alert_ids),
                        last_row_sent_s=round(sent_row, 2),
                        last_alert_sent_s=round(max((read.sent_s for read in wanted), default=0.0), 2),
                    )  # fmt: skip
            if (now_seen := (progress.applied, len(progress.alerts), progress.row_records)) != seen:
                seen, last_progress = now_seen, now
            if now - last_progress > stall_s:
                raise TimeoutError(
                    f"no progress for {stall_s} s: {progress.applied} of {expected.applied} events applied, "
                    f"{len(missing)} of {len(expected.alert_ids)} alerts missing, "
                    f"{len(progress.alerts.keys() - expected.alert_ids)} unexpected"
                )
    finally:
        for poller in pollers:
            poller.cancel()
        await asyncio.gather(*pollers, return_exceptions=True)
        await alerts.consumer.stop()
        await changelog.consumer.stop()
        metadata.close()


def drain(
    env: dict[str, str],
    workers: int,
    expected: Expected,
    data_root: Path,
    stall_s: float = 300.0,
    kill: bool = False,
    before_stop: Callable[[list[subprocess.Popen[bytes]], list[int]], None] | None = None,
    after_start: Callable[[list[subprocess.Popen[bytes]], list[int]], None] | None = None,
) -> Drained:
    """Start `workers` workers on a produced backlog; time them until the stop condition holds.

    The workers are shown to `after_start` with their web ports once started, then to `before_stop` (while they
    still run), and stopped (SIGTERM), or killed (SIGKILL) when `kill` is set.
    """
    settings = settings_from_env(env)
    ports = [free_port() for _ in range(workers)]
    processes: list[subprocess.Popen[bytes]] = []

    def launch() -> list[subprocess.Popen[bytes]]:
        processes.extend(start_worker(env, data_root / f"w{n}", port) for n, port in enumerate(ports))
        if after_start is not None:
            after_start(processes, ports)
        return processes

    try:
        return asyncio.run(_watch(settings, ports, expected, stall_s, launch))
    finally:
        if before_stop is not None:
            before_stop(processes, ports)
        for process in processes:
            if kill:
                process.kill()
                process.wait()
            else:
                stop(process)
