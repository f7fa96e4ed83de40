"""Consumer lag per assigned partition (end offset - committed) and detection of a stalled consumer."""

from __future__ import annotations

import logging
import time
from collections import Counter
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import NamedTuple, cast

import faust
from faust.tables.manager import TableManager
from faust.types import TP

from streams.service.broker_offsets import BrokerOffsets, broker_offsets
from streams.service.faust_internals import consumer_committed_offsets
from streams.service.metrics import Metrics
from streams.service.topology import Topology
from streams.settings import Settings

__all__ = [
    "LAG_INTERVAL_S",
    "STALL_AFTER_S",
    "ConsumerLagMonitor",
    "ProgressTracker",
    "Stall",
    "committed_offsets",
    "register_consumer_lag",
    "stall_after_s",
]

log = logging.getLogger(__name__)

LAG_INTERVAL_S = 5.0
"""How often each worker refreshes consumer lag (and so how often a stall can be noticed)."""
STALL_AFTER_S = 120.0
"""Least time a partition's committed offset may stand still, records waiting, before it counts as stalled."""

Clock = Callable[[], float]


def stall_after_s(settings: Settings) -> float:
    """The stall window: `STALL_AFTER_S`, widened to cover the service's legitimate hold-backs.

    Records whose updates wait for the watermark are acked (and so committed)
    late: up to an idle timeout when an input partition goes quiet, plus the
    allowed lateness under the hybrid clock. Four idle timeouts plus twice the
    lateness keeps those from reading as a stall.

    >>> stall_after_s(Settings())
    240.0
    """
    hold_back = 4 * settings.idle_timeout_ms / 1000
    if settings.clock == "hybrid":
        hold_back += 2 * settings.allowed_lateness_ms / 1000
    return max(STALL_AFTER_S, hold_back)


class Stall(NamedTuple):
    """A partition whose committed offset has not moved for `unchanged_s` while records wait."""

    topic: str
    partition: int
    lag: int
    committed: int | None
    unchanged_s: float


@dataclass(slots=True)
class _Progress:
    committed: int | None
    lag: int
    since: float
    """Clock time the committed offset last changed (or was first seen)."""


class ProgressTracker:
    """Remembers since when each partition's committed offset has been unchanged.

    >>> now = [0.0]
    >>> tracker = ProgressTracker(stall_after_s=60, clock=lambda: now[0])
    >>> tracker.observe(TP("t", 0), committed=10, lag=5)
    >>> now[0] = 61.0
    >>> tracker.observe(TP("t", 0), committed=10, lag=7)
    >>> [(s.topic, s.partition, s.lag) for s in tracker.stalled()]
    [('t', 0, 7)]
    >>> tracker.observe(TP("t", 0), committed=11, lag=6)
    >>> tracker.stalled()
    []
    """

    def __init__(self, stall_after_s: float, clock: Clock = time.monotonic) -> None:
        self.stall_after_s = stall_after_s
        self._clock = clock
        self._progress: dict[TP, _Progress] = {}

    def observe(self, tp: TP, committed: int | None, lag: int) -> None:
        """Record a partition's committed offset and lag as just read."""
        now = self._clock()
        progress = self._progress.get(tp)
        if progress is None or progress.committed != committed:
            self._progress[tp] = _Progress(committed, lag, now)
        else:
            progress.lag = lag

    def keep_only(self, tps: Iterable[TP]) -> None:
        """Forget partitions not in `tps` (no longer assigned)."""
        keep = set(tps)
        for tp in [tp for tp in self._progress if tp not in keep]:
            del self._progress[tp]

    def stalled(self) -> list[Stall]:
        """Partitions with records waiting whose committed offset has stood still for the stall window."""
        now = self._clock()
        found = []
        for tp, progress in sorted(self._progress.items()):
            unchanged = now - progress.since
            if progress.lag > 0 and unchanged >= self.stall_after_s:
                found.append(
                    Stall(tp.topic, tp.partition, progress.lag, progress.committed, round(unchanged, 1))
                )
        return found


class ConsumerLagMonitor:
    """Reads end and committed offsets of the assigned input and owner-update partitions; sets the lag gauge."""

    def __init__(
        self,
        app: faust.App,
        topics: Iterable[str],
        metrics: Metrics,
        tracker: ProgressTracker,
        offsets: BrokerOffsets,
    ) -> None:
        self.app = app
        self.offsets = offsets
        self.topics = frozenset(topics)
        self.metrics = metrics
        self.tracker = tracker
        self._series: set[tuple[str, str]] = set()

    def assigned(self) -> list[TP]:
        """This worker's assigned partitions of the monitored topics (changelogs excluded)."""
        return sorted(tp for tp in self.app.consumer.assignment() if tp.topic in self.topics)

    async def refresh(self) -> None:
        """Read offsets and update the gauge and the tracker; a no-op while the group rebalances.

        While tables recover, stream partitions are paused by design: the
        tracker forgets them and starts afresh once recovery completes.
        """
        if self.app.rebalancing:
            return
        tps = self.assigned()
        lags: dict[TP, tuple[int | None, int]] = {}
        if tps:
            ends = await self.offsets.ends(tps)
            committed = committed_offsets(self.app, tps)
            never = [tp for tp in tps if committed.get(tp) is None]
            earliest = await self.offsets.beginnings(never)
            for tp in tps:
                end = ends.get(tp)
                if end is None:
                    continue
                done = committed.get(tp)
                start = done if done is not None else earliest.get(tp, 0)
                lags[tp] = (done, max(0, end - start))
        self._publish(lags, recovering=cast(TableManager, self.app.tables).recovery.in_recovery)

    def _publish(self, lags: Mapping[TP, tuple[int | None, int]], recovering: bool) -> None:
        gauge = self.metrics.consumer_lag
        series = set()
        for tp, (committed, lag) in lags.items():
            labels = (tp.topic, str(tp.partition))
            gauge.labels(*labels).set(lag)
            series.add(labels)
            if not recovering:
                self.tracker.observe(tp, committed, lag)
        for labels in self._series - series:
            gauge.remove(*labels)
        self._series = series
        self.tracker.keep_only(() if recovering else lags)
        stalled = Counter(stall.topic for stall in self.tracker.stalled())
        for topic in self.topics:
            self.metrics.stalled_partitions.labels(topic=topic).set(stalled[topic])


def committed_offsets(app: faust.App, tps: Iterable[TP]) -> dict[TP, int | None]:
    """The offsets this consumer last committed (or found committed on assignment); None if none yet.

    Faust keeps them (updated on every commit and on the seek after each
    assignment), which saves a broker round trip (`consumer_committed_offsets`).
    """
    known = consumer_committed_offsets(app.consumer)
    return {tp: known.get(tp) for tp in tps}


def register_consumer_lag(
    app: faust.App, topology: Topology, settings: Settings, metrics: Metrics
) -> ConsumerLagMonitor:
    """Register the lag timer on `app`; the monitor also feeds `/readyz`."""
    topics = [*settings.input_topics(), topology.owner_updates.get_topic_name()]
    monitor = ConsumerLagMonitor(
        app, topics, metrics, ProgressTracker(stall_after_s(settings)), broker_offsets(app, settings)
    )

    @app.timer(interval=LAG_INTERVAL_S)
    async def consumer_lag() -> None:
        try:
            await monitor.refresh()
        except Exception as exc:  # offsets unavailable for a moment (broker or rebalance): next tick
            log.warning("consumer lag not refreshed: %s", type(exc).__name__)

    return monitor
