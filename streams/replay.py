"""Offline replay: JSON-lines events in, alerts out, through the same engine as the service."""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any, Literal

import orjson

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.erasures import Erasure
from streams.engine.events import IN, OUT, InvalidEvent, RowUpdate, decode_event
from streams.engine.feedback import Feedback, HeldFeedback
from streams.settings import Settings

__all__ = ["ENGINES", "REPLAY_DEFAULTS", "ReplaySummary", "replay"]

REPLAY_DEFAULTS: dict[str, Any] = {"allowed_lateness_ms": 0, "clock": "event"}
EngineName = Literal["python", "compiled"]
ENGINES: tuple[EngineName, ...] = ("python", "compiled")
NO_EVENT = -(2**63)


@dataclass(slots=True)
class ReplaySummary:
    """What a replay read and did."""

    read: int = 0
    """Lines read (blank lines excluded)."""
    applied: int = 0
    """Events applied to rows."""
    invalid: Counter[str] = field(default_factory=Counter)
    """Invalid lines by reason code."""
    duplicates: int = 0
    """Events ignored as duplicates."""
    self_interactions: int = 0
    """Events with `actor_id == target_id`, skipped."""
    late: int = 0
    """Events below the watermark on arrival, applied at once."""
    watermark_max_jump_ms: int = 0
    """Largest rise of the max `ts` by one valid event over the valid events before it (0: none): shows an outlier."""
    rows_reset: int = 0
    """Rows that started afresh after `row_ttl` of silence, not established (SPEC v1.1 §2)."""
    rows_reclaimed: int = 0
    """Rows forgotten once `row_ttl` and a de-duplication window had passed (docs/semantics.md)."""
    erasures: int = 0
    """Erasure requests given (`--erasures`)."""
    rows_erased: int = 0
    """Rows deleted by erasures (docs/semantics.md §9)."""
    erased_events: int = 0
    """Events dropped: they name an erased user and predate the erasure, and arrived after it."""
    feedback: int = 0
    """Feedback records given (`--feedback`)."""
    withheld: int = 0
    """Alerts feedback kept back: the row was muted or snoozed (docs/semantics.md §11)."""
    alerts: Counter[str] = field(default_factory=Counter)
    """Alerts emitted by kind."""
    watermark: int = NO_EVENT
    """The watermark at the end: every deadline at or below it has fired (digests are due up to it)."""
    seconds: float = 0.0
    """Wall time of the replay."""

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready form, with events/s."""
        return {
            "events_read": self.read,
            "events_applied": self.applied,
            "invalid": dict(sorted(self.invalid.items())),
            "invalid_total": sum(self.invalid.values()),
            "duplicates": self.duplicates,
            "self_interactions": self.self_interactions,
            "late": self.late,
            "watermark_max_jump_ms": self.watermark_max_jump_ms,
            "rows_reset": self.rows_reset,
            "rows_reclaimed": self.rows_reclaimed,
            "erasures": self.erasures,
            "rows_erased": self.rows_erased,
            "erased_events": self.erased_events,
            "feedback": self.feedback,
            "withheld": self.withheld,
            "alerts": {"dormant": self.alerts["dormant"], "revived": self.alerts["revived"]},
            "seconds": round(self.seconds, 3),
            "events_per_second": round(self.read / self.seconds) if self.seconds > 0 else None,
        }


def replay(
    lines: Iterable[bytes],
    settings: Settings,
    summary: ReplaySummary | None = None,
    engine_name: EngineName = "python",
    engine: RelationshipEngine | None = None,
    erasures: Iterable[Erasure] = (),
    feedback: Iterable[Feedback] = (),
) -> Iterator[Alert]:
    """Yield the alerts of `lines` (one JSON event each) in emission order.

    The watermark is the max `ts` seen minus `allowed_lateness_ms`; the wall
    clock is never read for semantics (`clock` is ignored: replay is event time).
    `engine_name="compiled"` runs the same replay in the compiled core (`core/`);
    pass a fresh `engine` (Python) to keep its rows and timers after the replay.
    `erasures` are known before the first event (docs/semantics.md §9), and
    so is `feedback` (§11), in either engine.
    """
    summary = summary if summary is not None else ReplaySummary()
    erasures = list(erasures)
    feedback = list(feedback)
    if engine_name == "compiled":
        from streams.engine_compiled import replay_compiled  # noqa: PLC0415 - needs the built core

        yield from replay_compiled(lines, settings, summary, erasures=erasures, feedback=feedback)
        return
    engine = engine if engine is not None else RelationshipEngine(settings)
    for erasure in erasures:
        engine.erase(erasure.user, erasure.ts)
    summary.erasures = len(erasures)
    for item in feedback:
        engine.give_feedback(HeldFeedback(item.ts, item.owner, item.contact, item.action, item.until or 0))
    summary.feedback = len(feedback)
    lateness = settings.allowed_lateness_ms
    max_bytes = settings.max_record_bytes
    offer, advance = engine.offer, engine.advance
    max_ts = NO_EVENT
    max_jump = 0
    started = time.perf_counter()
    for line in lines:
        if not line.strip():
            continue
        summary.read += 1
        try:
            event = decode_event(line.rstrip(b"\r\n"), max_bytes)
        except InvalidEvent as exc:
            summary.invalid[exc.reason.value] += 1
            continue
        ts, actor, target = event.ts, event.actor, event.target
        if ts > max_ts:
            if ts - max_ts > max_jump and max_ts != NO_EVENT:
                max_jump = ts - max_ts
            max_ts = ts
        if actor == target:
            summary.self_interactions += 1
        else:
            position = summary.read
            yield from offer(RowUpdate(ts, event.id, actor, target, OUT, event.type, 0, position))
            yield from offer(RowUpdate(ts, event.id, target, actor, IN, event.type, 0, position))
        if max_ts - lateness > engine.watermark:
            yield from advance(max_ts - lateness)
    yield from advance(max(max_ts, engine.max_ts), inclusive=True)  # self-interactions count: SPEC §4
    yield from engine.finish()  # then the erasures still waiting
    summary.seconds = time.perf_counter() - started
    summary.watermark = engine.watermark
    summary.watermark_max_jump_ms = max_jump
    stats = engine.stats
    summary.applied, summary.duplicates, summary.late = stats.applied, stats.duplicates, stats.late
    summary.rows_reset, summary.rows_reclaimed = stats.rows_reset, stats.rows_reclaimed
    summary.rows_erased, summary.erased_events = stats.rows_erased, stats.erased_events
    summary.withheld = stats.withheld
    summary.alerts.update(dormant=stats.dormant, revived=stats.revived)


def dump_alert(alert: Alert) -> bytes:
    """One alert as a JSON line with sorted keys."""
    return orjson.dumps(alert, option=orjson.OPT_SORT_KEYS | orjson.OPT_APPEND_NEWLINE)
