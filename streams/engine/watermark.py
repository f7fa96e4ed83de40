"""Watermark of one owner partition: min over input partitions, idleness, all-idle, hybrid clock (SPEC §3)."""

from __future__ import annotations

from collections.abc import Iterable

import orjson

__all__ = ["SourceProgress", "WatermarkTracker"]

NONE_SEEN = None


class SourceProgress:
    """What one input partition has shown: its max event time and when it last spoke."""

    __slots__ = ("heard_at", "max_ts")

    def __init__(self, max_ts: int | None, heard_at: int) -> None:
        self.max_ts = max_ts
        """Max event time seen on the input partition (ms), None before its first event."""
        self.heard_at = heard_at
        """Wall time (ms) of its last marker, or when tracking began."""


class WatermarkTracker:
    """Turns watermark markers from input partitions into one owner partition's watermark.

    Sources it was told about up front count as "nothing seen yet" (holding
    the watermark back) until they speak or go idle.

    >>> tracker = WatermarkTracker(["t:0", "t:1"], lateness_ms=10, idle_timeout_ms=1000, hybrid=False, now_ms=0)
    >>> tracker.observe("t:0", 500, now_ms=1); tracker.watermark(now_ms=2)
    (None, False)
    >>> tracker.observe("t:1", 300, now_ms=3); tracker.watermark(now_ms=4)
    (290, False)
    >>> tracker.watermark(now_ms=5000)
    (500, True)
    """

    def __init__(
        self,
        sources: Iterable[str],
        lateness_ms: int,
        idle_timeout_ms: int,
        hybrid: bool,
        now_ms: int,
    ) -> None:
        self.lateness = lateness_ms
        self.idle_timeout = idle_timeout_ms
        self.hybrid = hybrid
        self.sources: dict[str, SourceProgress] = {s: SourceProgress(NONE_SEEN, now_ms) for s in sources}

    def observe(self, source: str, max_ts: int, now_ms: int) -> None:
        """A marker: `source` has sent everything up to event time `max_ts`."""
        progress = self.sources.get(source)
        if progress is None:
            self.sources[source] = SourceProgress(max_ts, now_ms)
            return
        if progress.max_ts is None or max_ts > progress.max_ts:
            progress.max_ts = max_ts
        progress.heard_at = now_ms

    def watermark(self, now_ms: int) -> tuple[int | None, bool]:
        """`(watermark, all_idle)`; the watermark is None while an active source has shown nothing."""
        low: int | None = None
        high: int | None = None
        blocked = False
        all_idle = True
        for progress in self.sources.values():
            if progress.max_ts is not None and (high is None or progress.max_ts > high):
                high = progress.max_ts
            if now_ms - progress.heard_at >= self.idle_timeout:
                continue
            all_idle = False
            if progress.max_ts is None:
                blocked = True
            elif low is None or progress.max_ts < low:
                low = progress.max_ts
        if all_idle:
            mark = high
        else:
            mark = None if blocked or low is None else low - self.lateness
        if self.hybrid:
            wall = now_ms - self.lateness
            mark = wall if mark is None else max(mark, wall)
        return mark, all_idle and high is not None

    def to_bytes(self) -> bytes:
        """Persistable progress (max event time per source)."""
        return orjson.dumps({s: p.max_ts for s, p in self.sources.items()})

    def restore(self, data: bytes, now_ms: int) -> None:
        """Merge progress written by `to_bytes` (never moves a source back)."""
        for source, max_ts in orjson.loads(data).items():
            if max_ts is not None:
                self.observe(source, max_ts, now_ms)
