"""A slow, self-contained reference of the contract (docs/semantics.md §1-5, §8; no engine code): the oracle."""

from __future__ import annotations

import heapq
import itertools
import math
import statistics
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from streams.settings import Settings

__all__ = ["Reference", "ReferenceReplay"]

TYPES = ("mention", "reply", "like")
OUT, IN = "out", "in"
RowKey = tuple[str, str]


class ReferenceRow:
    """Everything a row has applied, kept in full; derived values are recomputed on demand."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, str, str]] = []  # (ts, direction, type), in application order
        self.ids: dict[str, list[int]] = {}  # id -> every event time it was applied at
        self.touch_starts: list[int] = []
        self.last_at: int | None = None
        self.dormant_since: int | None = None


@dataclass
class ReferenceReplay:
    """What a replay of the events must give: its alerts (emission order per row) and its counters."""

    alerts: list[dict[str, Any]] = field(default_factory=list)
    applied: int = 0
    duplicates: int = 0
    late: int = 0
    self_interactions: int = 0
    rows_reset: int = 0
    rows_erased: int = 0
    erased_events: int = 0


class Reference:
    """The contract run literally over valid events in arrival order, as `python -m streams replay` reads them.

    - The watermark is the largest `ts` read so far (self-interactions and
      duplicates included) minus `allowed_lateness`; it moves after each event.
    - An update at or above the watermark is held; when the watermark moves,
      held updates with `ts < watermark` are applied in `(ts, id)` order, each
      after firing every row whose `deadline <= ts`, then rows with
      `deadline <= watermark` fire.
    - An update below the watermark on arrival is late: applied at once, after
      its own row fires if that row's `deadline <= ts` (rule 1 of §5 for the row
      the event lands on; the watermark has not moved, so no other row is
      touched, and the result cannot depend on how rows are partitioned).
    - A duplicate is judged when its update is applied: the row has applied the
      same id at some `ts_then` with `|ts - ts_then| < window` and
      `last_at - ts_then < window`. Every applied id is kept: the contract lets
      a row forget only ids older than `last_at - window`, which can no longer match.
    - With `row_ttl`, a row not established whose `last_at <= ts - row_ttl`
      is replaced by a new, empty row before an update at `ts` is applied (after
      the duplicate check). With `reclaim` (docs/semantics.md's choice), once the
      watermark reaches `last_at + row_ttl + dedup_window` such a row is forgotten
      whole, as if it never existed.
    - Erasures (docs/semantics.md §9) are all known before the first event.
      An erasure of user U at `t` applies once the watermark reaches `t`, after
      every held update with `ts < t` and the deadlines before `t`, before any
      update at or after `t`: every row naming U is deleted. Every update
      naming U applied after that, late or held, whatever its `ts`, is dropped.
      End of input applies the erasures still waiting, last.
    - End of input: the watermark becomes the largest `ts` read, inclusive.

    Counters count events once (on the actor's `out` row); a late event is
    counted late only when applied, not when it is a duplicate.
    """

    def __init__(self, config: Settings, reclaim: bool = True) -> None:
        self.config = config
        self.reclaim = reclaim and config.row_ttl_ms > 0
        self.weights = {
            "mention": config.weight_mention,
            "reply": config.weight_reply,
            "like": config.weight_like,
        }

    # --- one row: SPEC §2-3 ------------------------------------------------------------

    def gaps(self, row: ReferenceRow) -> list[int]:
        starts = row.touch_starts
        return [b - a for a, b in itertools.pairwise(starts)][-self.config.gap_window :]

    def established(self, row: ReferenceRow) -> bool:
        directions = {direction for _, direction, _ in row.applied}
        mutual = directions == {OUT, IN}
        return len(row.touch_starts) >= self.config.min_touches and (mutual or not self.config.require_mutual)

    def typical_gap(self, row: ReferenceRow) -> float:
        gaps = self.gaps(row)
        return statistics.median(gaps) if gaps else 0

    def threshold(self, row: ReferenceRow) -> int:
        c = self.config
        return math.floor(min(max(c.k * self.typical_gap(row), c.min_silence_ms), c.max_silence_ms))

    def deadline(self, row: ReferenceRow) -> int | None:
        """`last_at + threshold` of an established row, else None."""
        if row.last_at is None or not self.established(row):
            return None
        return row.last_at + self.threshold(row)

    def strength(self, row: ReferenceRow) -> float:
        assert row.last_at is not None
        last, half_life = row.last_at, self.config.half_life_ms
        return math.fsum(self.weights[t] * 2 ** (-(last - ts) / half_life) for ts, _, t in row.applied)

    def alert(self, kind: str, key: RowKey, row: ReferenceRow) -> dict[str, Any]:
        tally = Counter((direction, t) for _, direction, t in row.applied)
        outs = [ts for ts, direction, _ in row.applied if direction == OUT]
        ins = [ts for ts, direction, _ in row.applied if direction == IN]
        owner, contact = key
        return {
            "alert_id": f"{kind}:{owner}:{contact}:{row.last_at}",
            "kind": kind,
            "owner_id": owner,
            "contact_id": contact,
            "last_interaction_at": row.last_at,
            "dormant_since": row.dormant_since,
            "typical_gap_ms": math.floor(self.typical_gap(row)),
            "threshold_ms": self.threshold(row),
            "touches": len(row.touch_starts),
            "counts": {d: {t: tally[(d, t)] for t in TYPES} for d in (OUT, IN)},
            "last_out_at": max(outs) if outs else None,
            "last_in_at": max(ins) if ins else None,
            "strength": self.strength(row),
            "schema_version": 1,
        }

    def expired(self, row: ReferenceRow, ts: int) -> bool:
        """SPEC v1.1 §2: with `row_ttl`, a row not established and silent `row_ttl` before `ts` starts afresh."""
        ttl = self.config.row_ttl_ms
        assert row.last_at is not None
        return ttl > 0 and row.last_at <= ts - ttl and not self.established(row)

    def is_duplicate(self, row: ReferenceRow, event_id: str, ts: int) -> bool:
        """§1 and §8: the row applied `event_id` less than a window away, and not a window before its last event."""
        window = self.config.dedup_window_ms
        assert row.last_at is not None
        return any(
            abs(ts - then) < window and row.last_at - then < window for then in row.ids.get(event_id, ())
        )

    # --- the replay: SPEC §4-5 ---------------------------------------------------------

    def replay(
        self, events: Iterable[dict[str, Any]], erasures: Iterable[tuple[str, int]] = ()
    ) -> ReferenceReplay:
        """Alerts and counters of replaying valid `events` (JSON objects of §1) in arrival order.

        `erasures`: `(user, ts)` pairs, known before the first event.
        """
        result = ReferenceReplay()
        waiting = sorted((ts, user) for user, ts in erasures)
        erased: dict[str, int] = {}
        rows: dict[RowKey, ReferenceRow] = {}
        due: list[tuple[int, RowKey]] = []  # (deadline, row), pushed on every change; stale ones are skipped
        held: list[tuple[int, str, int, RowKey, str, str]] = []  # (ts, id, arrival, row, direction, type)
        lateness = self.config.allowed_lateness_ms

        def fire_row(key: RowKey, limit: int) -> None:
            row = rows[key]
            deadline = self.deadline(row)
            if row.dormant_since is None and deadline is not None and deadline <= limit:
                row.dormant_since = deadline
                result.alerts.append(self.alert("dormant", key, row))

        def fire(limit: int) -> None:
            while due and due[0][0] <= limit:
                deadline, key = heapq.heappop(due)
                if key in rows and self.deadline(rows[key]) == deadline:
                    fire_row(key, limit)

        def erase_until(limit: int, end: bool = False) -> None:
            """Apply the waiting erasures with `ts <= limit`, each after the deadlines before it (not at the end)."""
            while waiting and waiting[0][0] <= limit:
                ts, user = waiting.pop(0)
                if not end:
                    fire(ts - 1)
                erased.setdefault(user, ts)
                for key in [k for k in rows if user in k]:
                    del rows[key]
                    result.rows_erased += 1

        def names_erased(actor: str, target: str) -> bool:
            return actor in erased or target in erased

        def apply(key: RowKey, event_id: str, ts: int, direction: str, kind: str) -> bool:
            """Apply one row update; False when it is a duplicate (nothing changes)."""
            row = rows.get(key)
            if row is None:
                row = rows[key] = ReferenceRow()
            elif self.is_duplicate(row, event_id, ts):
                return False
            elif self.expired(row, ts):
                row = rows[key] = ReferenceRow()
                result.rows_reset += 1
            older = row.last_at is not None and ts < row.last_at
            if not older:
                if row.dormant_since is not None:
                    result.alerts.append(self.alert("revived", key, row))
                    row.dormant_since = None
                if not row.touch_starts or ts >= row.touch_starts[-1] + self.config.touch_merge_ms:
                    row.touch_starts.append(ts)
                row.last_at = ts
            row.applied.append((ts, direction, kind))
            row.ids.setdefault(event_id, []).append(ts)
            deadline = self.deadline(row)
            if deadline is not None:
                heapq.heappush(due, (deadline, key))
            return True

        def count(applied: bool, late: bool) -> None:
            if applied:
                result.applied += 1
                result.late += late
            else:
                result.duplicates += 1

        def release(watermark: int, inclusive: bool) -> None:
            while held and (held[0][0] < watermark or (inclusive and held[0][0] == watermark)):
                ts, event_id, _, key, direction, kind = heapq.heappop(held)
                erase_until(ts)
                fire(ts)
                if names_erased(*key):
                    result.erased_events += direction == OUT
                    continue
                applied = apply(key, event_id, ts, direction, kind)
                if direction == OUT:
                    count(applied, late=False)
            erase_until(watermark)
            fire(watermark)
            if self.reclaim:
                horizon = watermark - self.config.row_ttl_ms - self.config.dedup_window_ms
                for key in [
                    k for k, row in rows.items() if row.last_at is not None and row.last_at <= horizon
                ]:
                    if not self.established(rows[key]):
                        del rows[key]

        watermark: int | None = None
        largest: int | None = None
        for arrival, e in enumerate(events):
            ts, event_id, actor, target, kind = e["ts"], e["id"], e["actor_id"], e["target_id"], e["type"]
            largest = ts if largest is None else max(largest, ts)
            if actor == target:
                result.self_interactions += 1
            elif watermark is not None and ts < watermark and names_erased(actor, target):
                result.erased_events += 1
            elif watermark is not None and ts < watermark:
                for key, direction in (((actor, target), OUT), ((target, actor), IN)):
                    if key in rows:
                        fire_row(key, ts)
                    applied = apply(key, event_id, ts, direction, kind)
                    if direction == OUT:
                        count(applied, late=True)
            else:
                heapq.heappush(held, (ts, event_id, arrival, (actor, target), OUT, kind))
                heapq.heappush(held, (ts, event_id, arrival, (target, actor), IN, kind))
            if watermark is None or largest - lateness > watermark:
                watermark = largest - lateness
                release(watermark, inclusive=False)
        if largest is not None:
            release(largest, inclusive=True)
        erase_until(max((ts for ts, _ in waiting), default=0), end=True)
        return result

    def run(
        self, events: Iterable[dict[str, Any]], erasures: Iterable[tuple[str, int]] = ()
    ) -> list[dict[str, Any]]:
        """The alerts of `replay(events, erasures)`."""
        return self.replay(events, erasures).alerts
