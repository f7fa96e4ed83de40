"""The relationship engine: holds updates until the watermark passes, applies them in order, fires timers."""

from __future__ import annotations

import heapq
from collections.abc import Callable, MutableMapping
from dataclasses import dataclass
from typing import NamedTuple

from streams.engine.alerts import Alert, make_alert
from streams.engine.events import OUT, RowUpdate
from streams.engine.feedback import Action, HeldFeedback, RowFeedback
from streams.engine.row import Row
from streams.engine.rules import Rules
from streams.engine.timers import DeadlineIndex, Deadlines
from streams.settings import Settings

__all__ = ["NO_WATERMARK", "EngineStats", "RelationshipEngine", "RowCounts"]

NO_WATERMARK = -(2**63)
# Ids a row remembers beyond the de-duplication window, so a re-delivery after a
# fast crash (many days of event time in a few seconds of backfill) is recognised.
REMEMBER_AT_LEAST = 32
RowKey = tuple[str, str]
RowChanged = Callable[[RowKey, Row], None]
RowRemoved = Callable[[RowKey], None]
UpdateApplied = Callable[[int], None]


class RowCounts(NamedTuple):
    """What an engine counts over its rows, saved so a restart need not scan them."""

    rows: int
    """Rows held."""
    established: int
    """Rows that are established."""
    dormant: int
    """Rows in a dormant episode."""


@dataclass(slots=True)
class EngineStats:
    """Counters of what the engine did; event-level ones count `out` halves only (one per event)."""

    applied: int = 0
    """Events applied (not duplicates)."""
    duplicates: int = 0
    """Events ignored as duplicates."""
    redelivered: int = 0
    """Row updates seen again from the same input position (after a crash or rebalance), ignored."""
    late: int = 0
    """Events that arrived below the watermark and were applied at once."""
    dormant: int = 0
    """Dormant alerts emitted."""
    revived: int = 0
    """Revived alerts emitted."""
    rows_reset: int = 0
    """Rows that started afresh: not established and silent for `row_ttl` (SPEC v1.1 §2)."""
    rows_reclaimed: int = 0
    """Rows whose storage was reclaimed (see `RelationshipEngine._reclaim_due`)."""
    rows_erased: int = 0
    """Rows deleted by erasures (docs/semantics.md §9)."""
    erased_events: int = 0
    """Events dropped because they name a user erased before they were applied."""
    feedback: int = 0
    """Feedback records applied (docs/semantics.md §11)."""
    withheld: int = 0
    """Alerts not emitted because feedback muted or snoozed the row (docs/semantics.md §11)."""


class RelationshipEngine:
    """Applies row updates in `(ts, id)` order behind a watermark and emits alerts (SPEC §2-4).

    One instance owns a set of rows (all of them in replay, one owner partition
    in the service). `rows` may be any mapping; `on_row_changed` is called after
    every mutation so a caller can persist the row, `on_applied` with each
    update's tag once it has been applied (or ignored as a duplicate),
    `on_row_removed` when a row's storage is reclaimed (`row_ttl`). With
    `protect_unwritten`, a row keeps every id applied since the caller last
    reset its `unwritten` count (when it wrote the row). `timers` and
    `expiries` may be indexes backed by a store (`deadline_of` and `expiry_of`
    say what each row's entry is); with `counts` from a checkpoint, creating
    the engine reads no row, else it scans them all once to schedule them.

    >>> from streams.engine.events import Interaction, row_updates
    >>> engine = RelationshipEngine(Settings(min_touches=1, require_mutual=False))
    >>> for update in row_updates(Interaction("e1", 0, "ann", "bob", 1_000_000_000_000)):
    ...     engine.offer(update)
    []
    []
    >>> [a["kind"] for a in engine.advance(1_000_000_000_000 + 14 * 86_400_000)]
    ['dormant', 'dormant']
    """

    def __init__(
        self,
        settings: Settings,
        rows: MutableMapping[RowKey, Row] | None = None,
        on_row_changed: RowChanged | None = None,
        on_applied: UpdateApplied | None = None,
        protect_unwritten: bool = False,
        on_row_removed: RowRemoved | None = None,
        timers: Deadlines | None = None,
        expiries: Deadlines | None = None,
        counts: RowCounts | None = None,
    ) -> None:
        self.rules = Rules(settings)
        self.row_ttl = settings.row_ttl_ms
        # Reclaimed a de-duplication window after `last_at + row_ttl`: an event up to
        # that late finds the row reset anyway (its ts is past `last_at + row_ttl`).
        self._reclaim_after = settings.row_ttl_ms + settings.dedup_window_ms
        # The service persists rows at checkpoints: ids applied since a row was last
        # written are never forgotten, so a restart after a checkpoint cut short can
        # tell every re-delivered update the row already holds (see Row.unwritten).
        self._protect_unwritten = protect_unwritten
        self.rows: MutableMapping[RowKey, Row] = {} if rows is None else rows
        self.timers: Deadlines = DeadlineIndex() if timers is None else timers
        """Rows established and not dormant, by when they go dormant (`deadline_of`)."""
        self.expiries: Deadlines = DeadlineIndex() if expiries is None else expiries
        """Rows not established, by when their storage may be reclaimed (only with `row_ttl`; `expiry_of`)."""
        self.held: list[RowUpdate] = []
        self.pending_erasures: list[tuple[int, str]] = []
        """`(ts, user)` erasures waiting for the watermark to reach `ts` (a min-heap)."""
        self.erased: dict[str, int] = {}
        """User -> the `ts` of their erasure, once applied: every update naming them is dropped from then on."""
        self.held_feedback: list[HeldFeedback] = []
        """Feedback waiting for the watermark to reach its `ts` (a min-heap)."""
        self.feedback: dict[RowKey, RowFeedback] = {}
        """What applied feedback says about each row it named (docs/semantics.md §11)."""
        self.feedback_changed = False
        """`feedback` changed since the caller last cleared this (the service persists it then)."""
        self.snooze_ends = DeadlineIndex()
        """Rows by when their snooze ends: a dormant alert it withheld goes out then."""
        self.watermark = NO_WATERMARK
        self.closed = False
        """True when updates exactly at the watermark have been applied too (all idle / end of input)."""
        self.max_ts = NO_WATERMARK
        self.stats = EngineStats()
        self._on_row_changed = on_row_changed
        self._on_applied = on_applied
        self._on_row_removed = on_row_removed
        self._alerts: list[Alert] = []
        self.established_rows = 0
        """Rows that are established (they never stop being so)."""
        self.dormant_rows = 0
        """Rows in a dormant episode now."""
        if counts is not None:
            self.established_rows, self.dormant_rows = counts.established, counts.dormant
            return
        for key, row in self.rows.items():
            if (
                row.known_established
            ):  # a store that derives it as it decodes (StoredRows): `_schedule` will not count it
                self.established_rows += 1
            self._schedule(key, row)
            if row.dormant_since is not None:
                self.dormant_rows += 1

    # --- inputs -----------------------------------------------------------
    def offer(self, update: RowUpdate) -> list[Alert]:
        """Hold `update` until the watermark passes it; apply it at once if it is already late."""
        self.max_ts = max(self.max_ts, update.ts)
        if update.ts < self.watermark:
            if self.erased and self._names_erased(update):
                return []
            key = (update.owner, update.contact)
            deadline = self.timers.get(key)
            if deadline is not None and deadline <= update.ts:  # overdue since a late event: fires first
                self.timers.discard(key)
                self._fire(key, deadline)
            self._apply(update, late=True)
            return self._take_alerts()
        heapq.heappush(self.held, update)
        return []

    def erase(self, user: str, ts: int) -> list[Alert]:
        """Forget `user` as of event time `ts` (docs/semantics.md §9); held until the watermark reaches `ts`.

        Applied once every update before `ts` is, and before any at or after
        it: every row naming `user` (as owner or contact) is deleted, and every
        update naming them applied afterwards is dropped, whatever its `ts`.
        Already reached (`ts <= watermark`), it applies at once. An erasure
        already waiting, or of a user already erased, changes nothing: the
        service may deliver one again.
        """
        if user in self.erased or (ts, user) in self.pending_erasures:
            return []
        if ts <= self.watermark:
            self._erase(user, ts)
        else:
            heapq.heappush(self.pending_erasures, (ts, user))
        return self._take_alerts()

    def give_feedback(self, feedback: HeldFeedback) -> list[Alert]:
        """Apply `feedback` once the watermark reaches its `ts` (docs/semantics.md §11); at once if it has.

        Applied after every update before its `ts` and the deadlines before
        it, before the updates and deadlines at or after it. Of two on one row,
        the later `(ts, action, until)` wins, whichever arrives first.
        """
        if feedback.ts <= self.watermark:
            self._apply_feedback(feedback, self.watermark)
        else:
            heapq.heappush(self.held_feedback, feedback)
        return self._take_alerts()

    def restore_feedback(self, state: dict[RowKey, RowFeedback]) -> None:
        """Give a freshly loaded engine the feedback state a checkpoint saved."""
        self.feedback = state
        for key, entry in state.items():
            if entry.snoozed_until is not None:
                self.snooze_ends.set(key, entry.snoozed_until)

    def advance(self, watermark: int, inclusive: bool = False) -> list[Alert]:
        """Move the watermark (never back): apply held updates below it, fire deadlines `<=` it.

        `inclusive` also applies updates exactly at `watermark`: it is the
        all-idle / end-of-input case, where nothing more is expected.
        """
        if watermark > self.watermark:
            self.watermark = watermark
            self.closed = inclusive
        elif watermark == self.watermark:
            self.closed = self.closed or inclusive
        limit = self.watermark
        inclusive = self.closed
        held = self.held
        may_be_due = self._any_timer_due if self.snooze_ends.heap_size() else self.timers.may_be_due
        erasures = self.pending_erasures
        feedback = self.held_feedback
        if (
            not (held and held[0].ts <= limit)
            and not may_be_due(limit)
            and not (erasures and erasures[0][0] <= limit)
            and not (feedback and feedback[0].ts <= limit)
        ):
            if self.row_ttl and self.expiries.may_be_due(limit):
                self._reclaim_due(limit)
            return []
        erased = self.erased
        while held and (held[0].ts < limit or (inclusive and held[0].ts == limit)):
            update = heapq.heappop(held)
            if (erasures and erasures[0][0] <= update.ts) or (feedback and feedback[0].ts <= update.ts):
                self._control_due(update.ts)
                may_be_due = self._any_timer_due if self.snooze_ends.heap_size() else self.timers.may_be_due
            if may_be_due(update.ts):
                self._fire_due(update.ts)
            if erased and self._names_erased(update):
                continue
            self._apply(update, late=False)
        if (erasures and erasures[0][0] <= limit) or (feedback and feedback[0].ts <= limit):
            self._control_due(limit)
            may_be_due = self._any_timer_due if self.snooze_ends.heap_size() else self.timers.may_be_due
        if may_be_due(limit):
            self._fire_due(limit)
        if self.row_ttl:
            self._reclaim_due(limit)
        return self._take_alerts()

    def finish(self) -> list[Alert]:
        """End of input: apply everything held, then every erasure; nothing fires beyond the largest `ts` seen.

        Feedback beyond it stays held: it could only change alerts after the end.
        """
        alerts = self.advance(max(self.max_ts, self.watermark), inclusive=True)
        while self.pending_erasures:
            ts, user = heapq.heappop(self.pending_erasures)
            self._erase(user, ts)
        return alerts

    # --- erasure ----------------------------------------------------------
    def _names_erased(self, update: RowUpdate) -> bool:
        """`update` names a user erased already: dropped (acked, counted once per event)."""
        erased = self.erased
        if update.owner not in erased and update.contact not in erased:
            return False
        if update.direction == OUT:
            self.stats.erased_events += 1
        if self._on_applied is not None:
            self._on_applied(update.tag)
        return True

    def _control_due(self, limit: int) -> None:
        """Apply waiting erasures and feedback with `ts <= limit` in `ts` order (an erasure first on a tie),
        each after the deadlines before it have fired."""
        erasures, feedback = self.pending_erasures, self.held_feedback
        while True:
            erasure_ts = erasures[0][0] if erasures and erasures[0][0] <= limit else None
            feedback_ts = feedback[0].ts if feedback and feedback[0].ts <= limit else None
            if erasure_ts is None and feedback_ts is None:
                return
            erasing = feedback_ts is None or (erasure_ts is not None and erasure_ts <= feedback_ts)
            ts = erasure_ts if erasing else feedback_ts
            assert ts is not None
            if self._any_timer_due(ts - 1):
                self._fire_due(ts - 1)
            if erasing:
                _, user = heapq.heappop(erasures)
                self._erase(user, ts)
            else:
                self._apply_feedback(heapq.heappop(feedback), ts)

    def _any_timer_due(self, limit: int) -> bool:
        return self.timers.may_be_due(limit) or self.snooze_ends.may_be_due(limit)

    def _erase(self, user: str, ts: int) -> None:
        """Delete every row naming `user`; remember the erasure for late updates.

        Rows are found by scanning this engine's keys (no contact index):
        O(rows) per erasure, cheap for rare erasures (docs/semantics.md §9).
        """
        self.erased.setdefault(user, ts)
        rows = self.rows
        for key in [key for key in rows if user in key]:
            row = rows.pop(key)
            self.timers.discard(key)
            self.expiries.discard(key)
            if row.known_established:
                self.established_rows -= 1
            if row.dormant_since is not None:
                self.dormant_rows -= 1
            self.stats.rows_erased += 1
            if self._on_row_removed is not None:
                self._on_row_removed(key)
        if self.feedback:
            for key in [key for key in self.feedback if user in key]:
                del self.feedback[key]
                self.snooze_ends.discard(key)
                self.feedback_changed = True

    # --- feedback ---------------------------------------------------------
    def _apply_feedback(self, feedback: HeldFeedback, at: int) -> None:
        """Apply one feedback record as of event time `at` (its `ts`, or the watermark when it came late)."""
        ts, owner, contact, action, until, tag = feedback
        if self._on_applied is not None:
            self._on_applied(tag)
        if owner in self.erased or contact in self.erased:
            return
        key = (owner, contact)
        entry = self.feedback.get(key)
        if entry is None:
            entry = self.feedback[key] = RowFeedback()
        if action == Action.SNOOZE:
            if (ts, until) <= entry.snooze_key:
                return
            entry.snooze_key = (ts, until)
            if until > at:
                entry.snoozed_until = until
                self.snooze_ends.set(key, until)
            else:
                entry.snoozed_until = None
                self.snooze_ends.discard(key)
        else:
            if (ts, action) <= entry.mute_key:
                return
            entry.mute_key = (ts, action)
            entry.muted = action == Action.MUTE
        self.stats.feedback += 1
        self.feedback_changed = True
        self._release(key, entry, at)

    def _release(self, key: RowKey, entry: RowFeedback, at: int) -> None:
        """The dormant alert `entry` withheld goes out at `at` if the row is no longer silenced and still dormant."""
        if entry.withheld and not entry.silenced(at):
            entry.withheld = False
            self.feedback_changed = True
            row = self.rows.get(key)
            if row is not None and row.dormant_since is not None:
                self._emit("dormant", key, row, released_at=at)
                self.stats.dormant += 1

    def _snooze_ended(self, key: RowKey, until: int) -> None:
        entry = self.feedback.get(key)
        if entry is not None and entry.snoozed_until == until:
            entry.snoozed_until = None
            self.feedback_changed = True
            self._release(key, entry, until)

    # --- core -------------------------------------------------------------
    def _apply(self, update: RowUpdate, late: bool) -> None:
        ts, event_id, owner, contact, direction, kind, tag, pos = update
        key = (owner, contact)
        rules = self.rules
        row = self.rows.get(key)
        if row is None:
            row = Row.first(ts)
            self.rows[key] = row
        else:
            seen = row.recent.get(event_id)
            window = rules.dedup_window
            if seen is not None and (
                seen[1] == pos or (abs(ts - seen[0]) < window and row.last_at - seen[0] < window)
            ):
                if seen[1] == pos:
                    self.stats.redelivered += 1
                elif direction == OUT:
                    self.stats.duplicates += 1
                if self._on_applied is not None:
                    self._on_applied(tag)
                return
            if self.row_ttl and row.last_at <= ts - self.row_ttl and not self._established(row):
                row = self._reset(key, row, ts)
        if direction == OUT:
            self.stats.applied += 1
            if late:
                self.stats.late += 1
        older = ts < row.last_at
        if not older and row.dormant_since is not None:
            entry = self.feedback.get(key) if self.feedback else None
            if entry is None:
                self._emit("revived", key, row)
                self.stats.revived += 1
            else:
                if entry.withheld or entry.muted:
                    self.stats.withheld += 1
                else:
                    self._emit("revived", key, row)
                    self.stats.revived += 1
                if entry.withheld:
                    entry.withheld = False
                    self.feedback_changed = True
            row.dormant_since = None
            self.dormant_rows -= 1
        row.counts[direction * 3 + kind] += 1
        weight = rules.weights[kind]
        if older:
            row.strength += weight * rules.decay(row.last_at - ts)
        else:
            row.strength = row.strength * rules.decay(ts - row.last_at) + weight
            if row.touches == 0:
                row.touches = 1
                row.touch_at = ts
            elif ts >= row.touch_at + rules.touch_merge:
                gaps = row.gaps
                gaps.append(ts - row.touch_at)
                if len(gaps) > rules.gap_window:
                    del gaps[0]
                row.touch_at = ts
                row.touches += 1
                row.cached_threshold = None
            row.last_at = ts
        row.first_at = min(row.first_at, ts)
        if direction == OUT:
            if row.last_out_at is None or ts > row.last_out_at:
                row.last_out_at = ts
        elif row.last_in_at is None or ts > row.last_in_at:
            row.last_in_at = ts
        self._remember(row, event_id, ts, pos)
        self._schedule(key, row)
        if self._on_row_changed is not None:
            self._on_row_changed(key, row)
        if self._on_applied is not None:
            self._on_applied(tag)

    def _remember(self, row: Row, event_id: str, ts: int, pos: int) -> None:
        recent = row.recent
        seen = recent.pop(event_id, None)
        # of several times an id was applied at, only the latest can still make a duplicate
        recent[event_id] = [ts if seen is None else max(ts, seen[0]), pos]
        if self._protect_unwritten:
            row.unwritten += 1
        keep = max(REMEMBER_AT_LEAST, row.unwritten)
        if len(recent) <= keep:
            return
        horizon = row.last_at - self.rules.dedup_window
        while len(recent) > keep:
            oldest = next(iter(recent))
            if recent[oldest][0] > horizon:
                break
            del recent[oldest]

    def _established(self, row: Row) -> bool:
        return row.known_established or self.rules.established(row)

    def _reset(self, key: RowKey, row: Row, ts: int) -> Row:
        """SPEC v1.1 §2: the row starts afresh, as if it did not exist; `ts` is its first event.

        Its remembered ids stay, for re-deliveries only: none can be a
        duplicate any more (applied at or before the old `last_at`, more than
        `row_ttl` > the de-duplication window before the new one).
        """
        fresh = Row.first(ts)
        fresh.recent = row.recent
        fresh.unwritten = row.unwritten
        self.rows[key] = fresh
        self.stats.rows_reset += 1
        return fresh

    def _reclaim_due(self, limit: int) -> None:
        """Forget rows not established whose `last_at + row_ttl + dedup_window <= limit`.

        Never visible in alerts: any later event for such a row either is
        past `last_at + row_ttl` (the row is reset) or is late by more than the
        de-duplication window, beyond which the SPEC no longer recognises an
        id either. The watermark decides when, so a replay reclaims the same
        rows whatever its batch sizes.
        """
        rows = self.rows
        for _, key in self.expiries.pop_due(limit):
            del rows[key]
            self.stats.rows_reclaimed += 1
            if self._on_row_removed is not None:
                self._on_row_removed(key)

    def _schedule(self, key: RowKey, row: Row) -> None:
        if not row.known_established:
            if not self.rules.established(row):
                if self.row_ttl:
                    self.expiries.set(key, row.last_at + self._reclaim_after)
                return
            row.known_established = True  # counts and touches only grow: it stays so
            self.established_rows += 1
            if self.row_ttl:
                self.expiries.discard(key)
        if row.dormant_since is not None:
            self.timers.discard(key)
            return
        self.timers.set(key, self._goes_dormant_at(row))

    def deadline_of(self, key: RowKey) -> int | None:
        """When the row goes dormant: its entry in `timers` (None: it has none). Derived from the row alone."""
        row = self.rows.get(key)
        if row is None or row.dormant_since is not None or not self._established(row):
            return None
        return self._goes_dormant_at(row)

    def _goes_dormant_at(self, row: Row) -> int:
        """The deadline of an established row not dormant: its last event plus its threshold (cached)."""
        threshold = row.cached_threshold
        if threshold is None:
            threshold = row.cached_threshold = self.rules.threshold(row.gaps)
        return row.last_at + threshold

    def expiry_of(self, key: RowKey) -> int | None:
        """When the row's storage may be reclaimed: its entry in `expiries` (None: it has none)."""
        if not self.row_ttl:
            return None
        row = self.rows.get(key)
        if row is None or self._established(row):
            return None
        return row.last_at + self._reclaim_after

    def counts(self) -> RowCounts:
        """Rows, established rows and dormant rows now."""
        return RowCounts(len(self.rows), self.established_rows, self.dormant_rows)

    def _fire_due(self, limit: int) -> None:
        """Fire the deadlines `<= limit`, then end the snoozes `<= limit`.

        Per row this is time order: a snooze end acts only on a dormant alert withheld before it, and
        whether a deadline's alert is withheld is judged at the deadline.
        """
        for deadline, key in self.timers.pop_due(limit):
            self._fire(key, deadline)
        if self.snooze_ends.may_be_due(limit):
            for until, key in self.snooze_ends.pop_due(limit):
                self._snooze_ended(key, until)

    def _fire(self, key: RowKey, deadline: int) -> None:
        row = self.rows[key]
        row.dormant_since = deadline
        entry = self.feedback.get(key) if self.feedback else None
        if entry is not None and entry.silenced(deadline):
            entry.withheld = True
            self.feedback_changed = True
            self.stats.withheld += 1
        else:
            self._emit("dormant", key, row)
            self.stats.dormant += 1
        self.dormant_rows += 1
        if self._on_row_changed is not None:
            self._on_row_changed(key, row)

    def _emit(self, kind: str, key: RowKey, row: Row, released_at: int | None = None) -> None:
        alert = make_alert(kind, key[0], key[1], row, self.rules, self.watermark)
        if released_at is not None:
            alert["released_at"] = released_at
        self._alerts.append(alert)

    def _take_alerts(self) -> list[Alert]:
        alerts, self._alerts = self._alerts, []
        return alerts
