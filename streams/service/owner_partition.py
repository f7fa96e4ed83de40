"""One owner partition's live state: engine, watermark tracker, rows to persist, records safe to ack."""

from __future__ import annotations

from collections.abc import Iterable, MutableMapping
from typing import Generic, NamedTuple, TypeVar

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.events import RowUpdate
from streams.engine.row import Row
from streams.engine.watermark import WatermarkTracker
from streams.service.records import OwnerRecord
from streams.settings import Settings

__all__ = ["Checkpoint", "OwnerPartition"]

Handle = TypeVar("Handle")
RowKey = tuple[str, str]


class Checkpoint(NamedTuple, Generic[Handle]):
    """What must reach the changelog before `acks` may be acked."""

    rows: list[tuple[RowKey, Row]]
    """Rows changed since the last checkpoint."""
    progress: bytes
    """The watermark tracker's state."""
    acks: list[Handle]
    """Records whose every update is applied and covered by `rows`."""


class OwnerPartition(Generic[Handle]):
    """Feeds one partition's records to its engine and decides when their offsets may be committed.

    A record is acked only when all its updates are applied *and* the rows
    they changed are written (a checkpoint). Held updates keep the committed
    offset behind them, so a crash re-delivers them; updates applied before
    the crash come back as duplicates of their row and change nothing.

    >>> part = OwnerPartition(0, Settings(), {}, ["t:0"])
    >>> part.handle(OwnerRecord([[1_000_000_000_000, "e1", "a", "b", 0, 0]], {"t:0": (1_000_000_000_000, False)}), "r1", 0)
    []
    >>> part.checkpoint().acks, len(part.engine.held)
    ([], 1)
    """

    def __init__(
        self,
        partition: int,
        settings: Settings,
        rows: MutableMapping[RowKey, Row],
        sources: Iterable[str],
        progress: bytes | None = None,
    ) -> None:
        self.partition = partition
        self._pending: dict[int, tuple[Handle, list[int]]] = {}
        self._ready: list[Handle] = []
        self._dirty: set[RowKey] = set()
        self._next_tag = 0
        self.engine = RelationshipEngine(
            settings, rows, on_row_changed=self._changed, on_applied=self._applied
        )
        self.tracker = WatermarkTracker(sources, settings.allowed_lateness_ms, settings.clock == "hybrid")
        if progress is not None:
            self.tracker.restore(progress)

    def handle(self, record: OwnerRecord, handle: Handle, now_ms: int) -> list[Alert]:
        """Offer the record's updates, take its markers, advance the watermark; return alerts."""
        alerts: list[Alert] = []
        if record.updates:
            tag = self._next_tag
            self._next_tag += 1
            self._pending[tag] = (handle, [len(record.updates)])
            offer = self.engine.offer
            for ts, event_id, owner, contact, direction, kind in record.updates:
                alerts += offer(RowUpdate(ts, event_id, owner, contact, direction, kind, tag))
        else:
            self._ready.append(handle)
        for source, (max_ts, idle) in record.markers.items():
            self.tracker.observe(source, max_ts, idle)
        mark, all_idle = self.tracker.watermark(now_ms)
        if mark is not None:
            alerts += self.engine.advance(mark, inclusive=all_idle)
        return alerts

    def checkpoint(self) -> Checkpoint[Handle]:
        """Changed rows, progress, and the records that become safe to ack once those are written."""
        rows = self.engine.rows
        changed = [(key, rows[key]) for key in self._dirty]
        self._dirty = set()
        acks, self._ready = self._ready, []
        return Checkpoint(changed, self.tracker.to_bytes(), acks)

    def dirty(self) -> int:
        """Rows changed since the last checkpoint."""
        return len(self._dirty)

    def unacked(self) -> int:
        """Records still waiting for held updates."""
        return len(self._pending)

    def _changed(self, key: RowKey, row: Row) -> None:
        self._dirty.add(key)

    def _applied(self, tag: int) -> None:
        handle, remaining = self._pending[tag]
        remaining[0] -= 1
        if remaining[0] == 0:
            del self._pending[tag]
            self._ready.append(handle)
