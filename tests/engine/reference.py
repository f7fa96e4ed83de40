"""A slow, self-contained reference of SPEC §2-3 (no engine code): the oracle of the golden and property tests."""

from __future__ import annotations

import itertools
import math
import statistics
from collections import Counter, defaultdict
from collections.abc import Iterable
from typing import Any

from streams.settings import Settings

__all__ = ["Reference"]

TYPES = ("mention", "reply", "like")
OUT, IN = "out", "in"


# --- the reference: SPEC §2-3 written out plainly, per row, no engine code ------------


class ReferenceRow:
    """Everything a row has applied, kept in full; derived values are recomputed on demand."""

    def __init__(self) -> None:
        self.applied: list[tuple[int, str, str]] = []  # (ts, direction, type)
        self.ids: defaultdict[str, list[int]] = defaultdict(list)
        self.touch_starts: list[int] = []
        self.dormant_since: int | None = None


class Reference:
    """The SPEC reference loop for in-order input: no watermark, no held events, no late events."""

    def __init__(self, config: Settings) -> None:
        self.config = config
        self.weights = {
            "mention": config.weight_mention,
            "reply": config.weight_reply,
            "like": config.weight_like,
        }

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

    def last_at(self, row: ReferenceRow) -> int:
        return max(ts for ts, _, _ in row.applied)

    def deadline(self, row: ReferenceRow) -> int | None:
        if not self.established(row):
            return None
        return self.last_at(row) + self.threshold(row)

    def strength(self, row: ReferenceRow) -> float:
        last = self.last_at(row)
        half_life = self.config.half_life_ms
        return math.fsum(self.weights[t] * 2 ** (-(last - ts) / half_life) for ts, _, t in row.applied)

    def alert(self, kind: str, owner: str, contact: str, row: ReferenceRow) -> dict[str, Any]:
        tally = Counter((direction, t) for _, direction, t in row.applied)
        last = self.last_at(row)
        outs = [ts for ts, direction, _ in row.applied if direction == OUT]
        ins = [ts for ts, direction, _ in row.applied if direction == IN]
        return {
            "alert_id": f"{kind}:{owner}:{contact}:{last}",
            "kind": kind,
            "owner_id": owner,
            "contact_id": contact,
            "last_interaction_at": last,
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

    def run(self, events: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """All alerts of the events (any order: each row sorts its own by (ts, id))."""
        per_row: defaultdict[tuple[str, str], list[tuple[int, str, str, str]]] = defaultdict(list)
        end: int | None = None
        for e in events:
            end = e["ts"] if end is None else max(end, e["ts"])
            if e["actor_id"] == e["target_id"]:
                continue
            per_row[(e["actor_id"], e["target_id"])].append((e["ts"], e["id"], OUT, e["type"]))
            per_row[(e["target_id"], e["actor_id"])].append((e["ts"], e["id"], IN, e["type"]))
        alerts: list[dict[str, Any]] = []
        window = self.config.dedup_window_ms
        merge = self.config.touch_merge_ms
        for (owner, contact), updates in per_row.items():
            row = ReferenceRow()
            for ts, event_id, direction, kind in sorted(updates):
                deadline = self.deadline(row) if row.applied else None
                if row.dormant_since is None and deadline is not None and deadline <= ts:
                    row.dormant_since = deadline
                    alerts.append(self.alert("dormant", owner, contact, row))
                if any(abs(ts - seen) < window for seen in row.ids[event_id]):
                    continue  # a duplicate changes nothing
                if row.dormant_since is not None:
                    alerts.append(self.alert("revived", owner, contact, row))
                    row.dormant_since = None
                if not row.touch_starts or ts >= row.touch_starts[-1] + merge:
                    row.touch_starts.append(ts)
                row.applied.append((ts, direction, kind))
                row.ids[event_id].append(ts)
            deadline = self.deadline(row)
            assert end is not None
            if row.dormant_since is None and deadline is not None and deadline <= end:
                row.dormant_since = deadline
                alerts.append(self.alert("dormant", owner, contact, row))
        return alerts
