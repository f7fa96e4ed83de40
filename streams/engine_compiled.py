"""Offline replay through the compiled core (`core/`, module `streams_core`), one call per batch of lines."""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any

from streams.engine.alerts import Alert
from streams.engine.erasures import Erasure
from streams.engine.events import InvalidEvent, decode_event
from streams.engine.feedback import Feedback, RowFeedback
from streams.engine.row import Row
from streams.replay import ReplaySummary
from streams.settings import Settings

__all__ = ["BATCH_LINES", "CompiledReplayRun", "core_settings", "replay_compiled"]

BATCH_LINES = 1024
RowKey = tuple[str, str]


def core_settings(settings: Settings) -> tuple[Any, ...]:
    """The settings tuple `streams_core.CompiledReplay` takes."""
    return (
        settings.weights(),
        settings.half_life_ms,
        settings.touch_merge_ms,
        settings.gap_window,
        settings.min_touches,
        settings.require_mutual,
        settings.k,
        settings.min_silence_ms,
        settings.max_silence_ms,
        settings.dedup_window_ms,
        settings.allowed_lateness_ms,
        settings.max_record_bytes,
        settings.row_ttl_ms,
        settings.rule == "adaptive",
    )


def reference_decoder(max_bytes: int) -> Callable[[bytes], tuple[str, int, str, str, int] | str]:
    """`decode_event` for the lines the core's fast path leaves to Python: the event, or the reason code."""

    def decode(raw: bytes) -> tuple[str, int, str, str, int] | str:
        try:
            event = decode_event(raw, max_bytes)
        except InvalidEvent as exc:
            return exc.reason.value
        return event.id, event.type, event.actor, event.target, event.ts

    return decode


class CompiledReplayRun:
    """One replay in the compiled core: `feed` batches of lines, then `finish`.

    >>> run = CompiledReplayRun(Settings(allowed_lateness_ms=0, clock="event"))
    >>> run.feed([b'{"id":"e1","type":"like","actor_id":"a","target_id":"b","ts":1600000000000}\\n', b"x"])
    []
    >>> run.finish(), run.counts()["read"], run.counts()["invalid"]
    ([], 2, {'not_json': 1})
    """

    def __init__(self, settings: Settings) -> None:
        import streams_core  # noqa: PLC0415 - only this engine needs the compiled module

        self._core = streams_core.CompiledReplay(
            core_settings(settings), reference_decoder(settings.max_record_bytes)
        )

    def feed(self, lines: list[bytes]) -> list[Alert]:
        """Replay a batch of lines; the alerts emitted meanwhile, in order."""
        return self._core.feed(lines)

    def erase(self, user: str, ts: int) -> list[Alert]:
        """Forget `user` as of event time `ts`, as `RelationshipEngine.erase` (docs/semantics.md §9)."""
        return self._core.erase(user, ts)

    def give_feedback(self, feedback: Feedback) -> list[Alert]:
        """Mute, unmute or snooze a row as of `feedback.ts`, as `RelationshipEngine.give_feedback` (§11)."""
        return self._core.give_feedback(
            feedback.owner, feedback.contact, int(feedback.action), feedback.until or 0, feedback.ts
        )

    def finish(self) -> list[Alert]:
        """End of input: the last alerts (the erasures still waiting apply last)."""
        return self._core.finish()

    def counts(self) -> dict[str, Any]:
        """Summary counts and engine counters (read, applied, invalid, duplicates, ...)."""
        return self._core.summary()

    def rows(self) -> dict[RowKey, Row]:
        """Every row, as the reference engine's `Row` objects (comparable with `==`)."""
        rows: dict[RowKey, Row] = {}
        for owner, contact, fields in self._core.rows():
            counts, first_at, last_at, last_out_at, last_in_at, touch_at, touches, gaps, strength = fields[:9]
            dormant_since, recent = fields[9:]
            rows[owner, contact] = Row(
                counts,
                first_at,
                last_at,
                last_out_at,
                last_in_at,
                touch_at,
                touches,
                gaps,
                strength,
                dormant_since,
                {event_id: [ts, pos] for event_id, ts, pos in recent},
            )
        return rows

    def deadlines(self) -> dict[RowKey, int]:
        """Live deadlines by row (the reference's `DeadlineIndex` content)."""
        return {(owner, contact): deadline for owner, contact, deadline in self._core.deadlines()}

    def feedback(self) -> dict[RowKey, RowFeedback]:
        """What applied feedback says about each row it named (the reference's `feedback`)."""
        return {
            (owner, contact): RowFeedback.from_json(list(fields))
            for owner, contact, fields in self._core.feedback_state()
        }

    def expiries(self) -> dict[RowKey, int]:
        """When each row not established may be reclaimed (the reference's `expiries`; `row_ttl` only)."""
        return {(owner, contact): expiry for owner, contact, expiry in self._core.expiries()}


def replay_compiled(
    lines: Iterable[bytes],
    settings: Settings,
    summary: ReplaySummary | None = None,
    batch_lines: int = BATCH_LINES,
    run: CompiledReplayRun | None = None,
    erasures: Iterable[Erasure] = (),
    feedback: Iterable[Feedback] = (),
) -> Iterator[Alert]:
    """What `streams.replay.replay` yields, computed by the compiled core `batch_lines` lines at a time.

    `summary` is filled at the end, as the reference fills it; pass `run` to
    keep the core (its rows and deadlines) after the replay. `erasures`, then
    `feedback`, are given to the core before the first line, as the reference does.
    """
    run = run if run is not None else CompiledReplayRun(settings)
    erasures = list(erasures)
    feedback = list(feedback)
    for erasure in erasures:
        yield from run.erase(erasure.user, erasure.ts)
    for item in feedback:
        yield from run.give_feedback(item)
    started = time.perf_counter()
    source = iter(lines)
    while batch := list(itertools.islice(source, batch_lines)):
        yield from run.feed(batch)
    yield from run.finish()
    if summary is not None:
        counts = run.counts()
        summary.seconds = time.perf_counter() - started
        summary.read += counts["read"]
        summary.invalid.update(counts["invalid"])
        summary.self_interactions += counts["self_interactions"]
        summary.applied, summary.duplicates, summary.late = (
            counts["applied"],
            counts["duplicates"],
            counts["late"],
        )
        summary.watermark_max_jump_ms = counts["watermark_max_jump_ms"]
        summary.watermark = counts["watermark"]
        summary.rows_reset, summary.rows_reclaimed = counts["rows_reset"], counts["rows_reclaimed"]
        summary.erasures = len(erasures)
        summary.rows_erased, summary.erased_events = counts["rows_erased"], counts["erased_events"]
        summary.feedback, summary.withheld = len(feedback), counts["withheld"]
        summary.alerts.update(dormant=counts["dormant"], revived=counts["revived"])
