"""Drain a backlog with worker processes and time it until every replay alert is out and the changelog is still."""

from __future__ import annotations

import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaConsumer, TopicPartition

from bench.harness import free_port, metric, settings_for, start_worker, stop
from streams.kafka_admin import bootstrap_servers
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings

SETTLE_S = 3.0
"""The rows are out once no row record has reached the changelog for this long (> checkpoint + commit interval)."""
RESUME_KEY = b"__resume__"
"""The checkpoint marker: rewritten at every checkpoint, even idle (watermark heartbeats), so it never settles."""


@dataclass(frozen=True, slots=True)
class Expected:
    """What a complete run publishes: the replay's alert ids and applied event count."""

    alert_ids: frozenset[str]
    applied: int


@dataclass(frozen=True, slots=True)
class Drained:
    """Times of one drain, in seconds from the worker processes' start."""

    events: int
    alerts: int
    first_applied_s: float
    applied_at_first: int
    all_applied_s: float
    alerts_out_s: float
    last_row_write_s: float
    row_records: int
    unexpected_alerts: int

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


def expected_output(lines: list[bytes], env: dict[str, str]) -> Expected:
    """`streams replay` of `lines` with the deployment's settings."""
    settings = Settings(**{**settings_for(env).model_dump(), **REPLAY_DEFAULTS})
    summary = ReplaySummary()
    alerts = {alert["alert_id"] for alert in replay(lines, settings, summary)}
    return Expected(frozenset(alerts), summary.applied)


def _consumer(settings: Settings) -> KafkaConsumer:
    return KafkaConsumer(
        bootstrap_servers=bootstrap_servers(settings.broker),
        isolation_level="read_committed",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        fetch_max_wait_ms=100,
    )


def _partitions(consumer: KafkaConsumer, topic: str) -> list[TopicPartition]:
    consumer.topics()  # refresh metadata: the changelog topic appears once a worker creates it
    return [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]


class _Reader:
    """A read_committed consumer of one topic from its beginning, assigned once the topic exists."""

    def __init__(self, settings: Settings, topic: str) -> None:
        self.consumer, self.topic, self.assigned = _consumer(settings), topic, False

    def poll(self) -> list[Any]:
        if not self.assigned:
            partitions = _partitions(self.consumer, self.topic)
            if not partitions:
                return []
            self.consumer.assign(partitions)
            self.consumer.seek_to_beginning()
            self.assigned = True
        return [r for records in self.consumer.poll(timeout_ms=100).values() for r in records]


def drain(
    env: dict[str, str],
    workers: int,
    expected: Expected,
    data_root: Path,
    stall_s: float = 300.0,
    kill: bool = False,
) -> Drained:
    """Start `workers` workers on a produced backlog; time them until the stop condition holds.

    The workers are then stopped (SIGTERM), or killed (SIGKILL) when `kill` is set.
    """
    settings = settings_for(env)
    alerts_reader = _Reader(settings, settings.topic_alerts)
    changelog_reader = _Reader(settings, f"{settings.app_id}-rows-changelog")
    ports = [free_port() for _ in range(workers)]
    started = time.perf_counter()
    processes = [start_worker(env, data_root / f"w{n}", port) for n, port in enumerate(ports)]
    seen: set[str] = set()
    first: tuple[float, int] | None = None
    alerts_out = all_applied = None
    row_records = 0
    last_row_write = last_progress = 0.0
    progress: tuple[int, ...] = ()
    try:
        while True:
            seen.update(orjson.loads(record.value)["alert_id"] for record in alerts_reader.poll())
            rows = sum(1 for record in changelog_reader.poll() if record.key != RESUME_KEY)
            now = time.perf_counter() - started
            if rows:
                row_records, last_row_write = row_records + rows, now
            if alerts_out is None and expected.alert_ids <= seen:
                alerts_out = now
            applied = int(sum(metric(port, "relationships_events_applied_total") for port in ports))
            if first is None and applied > 0:
                first = (now, applied)
            if all_applied is None and applied >= expected.applied:
                all_applied = now
            if (progress_now := (applied, len(seen), row_records)) != progress:
                progress, last_progress = progress_now, now
            if (
                first
                and alerts_out is not None
                and all_applied is not None
                and now - last_row_write >= SETTLE_S
            ):
                return Drained(
                    events=expected.applied, alerts=len(expected.alert_ids), first_applied_s=round(first[0], 2),
                    applied_at_first=first[1], all_applied_s=round(all_applied, 2),
                    alerts_out_s=round(alerts_out, 2), last_row_write_s=round(last_row_write, 2),
                    row_records=row_records, unexpected_alerts=len(seen - expected.alert_ids),
                )  # fmt: skip
            if now - last_progress > stall_s:
                missing = len(expected.alert_ids - seen)
                raise TimeoutError(
                    f"no progress for {stall_s} s: {applied} of {expected.applied} events applied, "
                    f"{missing} of {len(expected.alert_ids)} alerts missing, {len(seen - expected.alert_ids)} unexpected"
                )
    finally:
        for process in processes:
            if kill:
                process.kill()
                process.wait()
            else:
                stop(process)
        alerts_reader.consumer.close()
        changelog_reader.consumer.close()
