"""Watermark of one owner partition: min over input partitions, idleness, all-idle, hybrid clock (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SourceProgress", "WatermarkTracker"]


class SourceProgress:
    """What one input partition has reported: its max event time and whether it is idle."""

    __slots__ = ("idle", "idle_at", "max_ts")

    def __init__(self, max_ts: int | None, idle: bool, idle_at: int) -> None:
        self.max_ts = max_ts
        """Max event time sent from the input partition (ms), None before its first event."""
        self.idle = idle
        """True when its reader reported it caught up and silent for `idle_timeout`."""
        self.idle_at = idle_at
        """Record time (ms) of the marker that last reported it idle: the claim lapses `claim_ms` later."""


class WatermarkTracker:
    """Turns watermark markers from input partitions into one owner partition's watermark.

    Input partitions known up front count as "nothing seen yet", holding the
    watermark back, until their reader reports progress or idleness. Idleness
    is judged where the input partition is read (it alone knows whether the
    partition is caught up), and travels in the markers. Its reader repeats
    the claim with every heartbeat; a claim not repeated within `claim_ms` of
    record time (the owner stream's record timestamps) lapses, so a reader
    that died without taking its claim back holds the watermark again, as a
    partition with unread records must.

    >>> tracker = WatermarkTracker(["t:0", "t:1"], lateness_ms=10, hybrid=False, claim_ms=1000)
    >>> tracker.observe("t:0", 500, idle=False, at_ms=0); tracker.watermark(now_ms=0, at_ms=0)
    (None, False)
    >>> tracker.observe("t:1", 300, idle=False, at_ms=0); tracker.watermark(now_ms=0, at_ms=0)
    (290, False)
    >>> tracker.observe("t:1", None, idle=True, at_ms=0); tracker.watermark(now_ms=0, at_ms=0)
    (490, False)
    >>> tracker.observe("t:0", None, idle=True, at_ms=0); tracker.watermark(now_ms=0, at_ms=0)
    (500, True)
    >>> tracker.watermark(now_ms=0, at_ms=1001)  # no claim repeated for more than claim_ms
    (290, False)
    >>> erasing = WatermarkTracker(["t:0", "x:0"], 0, hybrid=False, claim_ms=1000, control_sources=["x:0"])
    >>> erasing.observe("t:0", 500, idle=True, at_ms=0); erasing.observe("x:0", 400, idle=False, at_ms=0)
    >>> erasing.watermark(now_ms=0, at_ms=0)  # a request at 400 on its way holds the watermark
    (400, False)
    >>> erasing.observe("x:0", 900, idle=True, at_ms=0); erasing.watermark(now_ms=0, at_ms=0)
    (500, True)
    >>> erasing.observe("x:0", 900, idle=False, at_ms=0); erasing.watermark(now_ms=0, at_ms=0)  # events idle
    (500, False)
    """

    def __init__(
        self,
        sources: Iterable[str],
        lateness_ms: int,
        hybrid: bool,
        claim_ms: int,
        control_sources: Iterable[str] = (),
    ) -> None:
        self.lateness = lateness_ms
        self.hybrid = hybrid
        self.claim_ms = claim_ms
        self.sources: dict[str, SourceProgress] = {s: SourceProgress(None, False, 0) for s in sources}
        self.control_sources = frozenset(control_sources)
        """Sources of requests, not events (erasures, feedback): they hold the watermark back like any
        source, but never move it past the largest *event* time: when every event source is idle, the
        watermark goes no further than that."""

    def observe(self, source: str, max_ts: int | None, idle: bool, at_ms: int) -> None:
        """A marker in a record of time `at_ms`: `source` has sent everything up to `max_ts`, is or is not idle."""
        progress = self.sources.get(source)
        if progress is None:
            self.sources[source] = SourceProgress(max_ts, idle, at_ms)
            return
        if max_ts is not None and (progress.max_ts is None or max_ts > progress.max_ts):
            progress.max_ts = max_ts
        progress.idle = idle
        if idle:
            progress.idle_at = at_ms

    def watermark(self, now_ms: int, at_ms: int) -> tuple[int | None, bool]:
        """`(watermark, all_idle)` at record time `at_ms`; None while an active input partition has shown nothing."""
        low: int | None = None
        high: int | None = None
        blocked = False
        all_idle = True
        events_active = False
        claimed_since = at_ms - self.claim_ms
        control = self.control_sources
        for source, progress in self.sources.items():
            max_ts = progress.max_ts
            if max_ts is not None and (high is None or max_ts > high) and source not in control:
                high = max_ts
            if progress.idle and progress.idle_at >= claimed_since:
                continue
            all_idle = False
            if source not in control:
                events_active = True
            if max_ts is None:
                blocked = True
            elif low is None or max_ts < low:
                low = max_ts
        if all_idle:
            mark = high
        elif blocked or low is None:
            mark = None
        else:
            mark = low - self.lateness
            if not events_active:  # requests hold the watermark back; they never move it past the events
                mark = None if high is None else min(mark, high)
        if self.hybrid:
            wall = now_ms - self.lateness
            mark = wall if mark is None else max(mark, wall)
        return mark, all_idle and high is not None
