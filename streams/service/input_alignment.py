"""Event-time alignment of the input: partitions read too far ahead of the slowest one are not fetched meanwhile."""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping, Set
from typing import TYPE_CHECKING, Any

from streams.service.records import source_name

if TYPE_CHECKING:
    from streams.service.ingest import Rekeyer

__all__ = ["InputAlignment"]


class InputAlignment:
    """Which assigned input partitions the consumer leaves unfetched, so the input advances together in event time.

    An owner partition applies an update only once the watermark, the
    slowest input partition's progress, has passed it; until then the update
    waits in memory (`relationships_held_updates`). Reading a backlog, the
    consumer takes every partition at about the same rate of bytes, not of
    event time: a small topic's partitions run days ahead of a large one's,
    and every update they carry waits. A worker draining 11.5M events held
    4.6M updates at once, most of its 3 GB (docs/benchmarks.md).

    So, as Flink's watermark alignment (`maxAllowedWatermarkDrift`) and Kafka
    Streams' choice of the partition with the oldest record do, a partition
    whose event time (`Rekeyer.sent`, the largest `ts` it has queued) is more
    than `max_drift_ms` ahead of the frontier is not fetched until the
    frontier comes within `max_drift_ms` of it. A partition owner partitions
    may still take for idle (`Rekeyer.claimed_idle`) is never held (nor is a
    held one claimed idle, `Rekeyer.idle_now`): owner partitions let the
    watermark pass it, so records reaching it must be read with the others',
    not after them. The frontier is the smallest event time among the
    partitions with records waiting (not queued up to the end offset the
    consumer last saw); one not read since the last assignment has none yet
    and is the frontier until it is read. The frontier's own partition is
    never held back, so the input always moves;
    one that shows records waiting but moves no further for `stall_s`
    (a transaction marker at its end, say) stops counting. Control topics
    (erasures, feedback) are never held and never the frontier. Each worker
    aligns the partitions assigned to it. Only the order of reading changes,
    never what is computed: the alerts do not depend on it.
    """

    def __init__(
        self,
        rekeyer: Rekeyer,
        topics: Set[str],
        max_drift_ms: int,
        stall_s: float,
        highwater: Callable[[Any], int | None],
        committed: Callable[[list[Any]], Mapping[Any, int | None]],
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rekeyer = rekeyer
        self.topics = frozenset(topics)
        """The input topics aligned (the interaction topics)."""
        self.max_drift_ms = max_drift_ms
        """How far in event time a partition may run ahead of the frontier; 0 turns alignment off."""
        self.stall_s = stall_s
        self.highwater = highwater
        """The end offset the consumer last saw of a topic partition (None: not known yet)."""
        self.committed = committed
        """The offsets last committed of topic partitions (`consumer_lag.committed_offsets`)."""
        self.clock = clock
        self.held: frozenset[Any] = frozenset()
        """The partitions held back at the last call of `to_fetch`."""
        self._progress: dict[Any, tuple[int, float]] = {}  # tp -> (offset queued up to, since when)

    def to_fetch(self, partitions: Set[Any]) -> Set[Any]:
        """`partitions` (Faust's active ones) without the input partitions to hold back now."""
        held = self.holding(partitions)
        return partitions - held if held else partitions

    def holding(self, partitions: Set[Any]) -> frozenset[Any]:
        """The input partitions among `partitions` more than `max_drift_ms` ahead of the frontier."""
        inputs = [tp for tp in partitions if tp.topic in self.topics]
        if self.max_drift_ms <= 0 or len(inputs) < 2:
            self.held = frozenset()
            return self.held
        sources = {tp: source_name(tp.topic, tp.partition) for tp in inputs}
        sent = self.rekeyer.sent
        times = {tp: sent.get(source) for tp, source in sources.items()}
        waiting = self._waiting(sources)
        if not waiting:
            self.held = frozenset()
            return self.held
        if any(times[tp] is None for tp in waiting):
            frontier = None  # one not read yet: everything read waits for it
        else:
            frontier = min(ts for tp in waiting if (ts := times[tp]) is not None)
        limit = None if frontier is None else frontier + self.max_drift_ms
        claimed_idle = self.rekeyer.claimed_idle
        self.held = frozenset(
            tp
            for tp, ts in times.items()
            if ts is not None and (limit is None or ts > limit) and sources[tp] not in claimed_idle
        )
        return self.held

    def _waiting(self, sources: Mapping[Any, str]) -> list[Any]:
        """Of `sources` (topic partition -> source name), those with records not queued yet that moved in the
        last `stall_s` or were held back."""
        now = self.clock()
        committed = self.committed(list(sources))
        queued_to = self.rekeyer.queued_to
        progress, held = self._progress, self.held
        waiting: list[Any] = []
        for tp, source in sources.items():
            done = queued_to(source, committed.get(tp))
            end = self.highwater(tp)
            if end is not None and done >= end:
                progress.pop(tp, None)
                continue
            last = progress.get(tp)
            if last is None or last[0] != done or tp in held:
                progress[tp] = (done, now)
            elif now - last[1] >= self.stall_s:
                continue
            waiting.append(tp)
        if len(progress) > 2 * len(sources):
            self._progress = {tp: last for tp, last in progress.items() if tp in sources}
        return waiting
