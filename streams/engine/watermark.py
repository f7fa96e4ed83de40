"""Watermark of one owner partition: min over input partitions, idleness, all-idle, hybrid clock (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable

__all__ = ["SourceProgress", "WatermarkTracker"]


class SourceProgress:
    """What one input partition has reported: its max event time and whether it is idle."""

    __slots__ = ("idle", "max_ts")

    def __init__(self, max_ts: int | None, idle: bool) -> None:
        self.max_ts = max_ts
        """Max event time sent from the input partition (ms), None before its first event."""
        self.idle = idle
        """True when its reader reported it caught up and silent for `idle_timeout`."""


class WatermarkTracker:
    """Turns watermark markers from input partitions into one owner partition's watermark.

    Input partitions known up front count as "nothing seen yet", holding the
    watermark back, until their reader reports progress or idleness. Idleness
    is judged where the input partition is read (it alone knows whether the
    partition is caught up), and travels in the markers.

    >>> tracker = WatermarkTracker(["t:0", "t:1"], lateness_ms=10, hybrid=False)
    >>> tracker.observe("t:0", 500, idle=False); tracker.watermark(now_ms=0)
    (None, False)
    >>> tracker.observe("t:1", 300, idle=False); tracker.watermark(now_ms=0)
    (290, False)
    >>> tracker.observe("t:1", None, idle=True); tracker.watermark(now_ms=0)
    (490, False)
    >>> tracker.observe("t:0", None, idle=True); tracker.watermark(now_ms=0)
    (500, True)
    """

    def __init__(self, sources: Iterable[str], lateness_ms: int, hybrid: bool) -> None:
        self.lateness = lateness_ms
        self.hybrid = hybrid
        self.sources: dict[str, SourceProgress] = {s: SourceProgress(None, False) for s in sources}

    def observe(self, source: str, max_ts: int | None, idle: bool) -> None:
        """A marker: `source` has sent everything up to `max_ts`, and is or is not idle."""
        progress = self.sources.get(source)
        if progress is None:
            self.sources[source] = SourceProgress(max_ts, idle)
            return
        if max_ts is not None and (progress.max_ts is None or max_ts > progress.max_ts):
            progress.max_ts = max_ts
        progress.idle = idle

    def watermark(self, now_ms: int) -> tuple[int | None, bool]:
        """`(watermark, all_idle)`; None while an active input partition has shown nothing."""
        low: int | None = None
        high: int | None = None
        blocked = False
        all_idle = True
        for progress in self.sources.values():
            max_ts = progress.max_ts
            if max_ts is not None and (high is None or max_ts > high):
                high = max_ts
            if progress.idle:
                continue
            all_idle = False
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
        if self.hybrid:
            wall = now_ms - self.lateness
            mark = wall if mark is None else max(mark, wall)
        return mark, all_idle and high is not None
