"""Issue 15's figures over events and dormant alerts: false-alarm share, fades, fades caught, delay."""

from __future__ import annotations

import bisect
import statistics
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from streams.backtest.digest import DormantAlert
from streams.engine.events import Interaction
from streams.settings import DAY_MS, Settings

__all__ = [
    "FALSE_ALARM_WINDOW_MS",
    "YEAR_MS",
    "Fade",
    "RowHistory",
    "fade_figures",
    "fade_silence_ms",
    "find_fades",
    "is_false_alarm",
    "row_histories",
]

RowKey = tuple[str, str]

FALSE_ALARM_WINDOW_MS = 90 * DAY_MS
"""A dormant alert whose row gets an event this soon after its `dormant_since` (inclusive) is a false alarm."""
YEAR_MS = 365 * DAY_MS
"""Data spanning less than this use the short fade silence."""
_LONG_FADE_MS = 180 * DAY_MS
_SHORT_FADE_MS = 90 * DAY_MS


@dataclass(slots=True)
class RowHistory:
    """One directed row: its event times in order, and when it became established (None: never)."""

    times: list[int] = field(default_factory=list)
    established_at: int | None = None
    touches: int = 0
    touch_at: int = 0
    out_events: int = 0
    in_events: int = 0


class Fade(NamedTuple):
    """A row that went silent for good after its event at `last_at`."""

    owner: str
    contact: str
    last_at: int


def row_histories(events: Iterable[Interaction], settings: Settings) -> dict[RowKey, RowHistory]:
    """Both rows of every event, applied in `(ts, id)` order; `established_at` per SPEC §2 under `settings`.

    Self-interactions are skipped, as the replay does. An id applied again within
    `settings.dedup_window_ms` of its first time is a duplicate and skipped too.
    Rows are never reset (`row_ttl_ms` = 0, the replay default).
    """
    seen: dict[str, int] = {}
    rows: dict[RowKey, RowHistory] = {}
    for event in sorted(events, key=lambda e: (e.ts, e.id)):
        if event.actor == event.target:
            continue
        first = seen.get(event.id)
        if first is not None and abs(event.ts - first) < settings.dedup_window_ms:
            continue
        seen[event.id] = event.ts
        for owner, contact, outgoing in (
            (event.actor, event.target, True),
            (event.target, event.actor, False),
        ):
            row = rows.get((owner, contact))
            if row is None:
                row = rows[(owner, contact)] = RowHistory()
            _apply(row, event.ts, outgoing, settings)
    return rows


def _apply(row: RowHistory, ts: int, outgoing: bool, settings: Settings) -> None:
    row.times.append(ts)
    if outgoing:
        row.out_events += 1
    else:
        row.in_events += 1
    if row.touches == 0:
        row.touches, row.touch_at = 1, ts
    elif ts >= row.touch_at + settings.touch_merge_ms:
        row.touches, row.touch_at = row.touches + 1, ts
    mutual = not settings.require_mutual or (row.out_events > 0 and row.in_events > 0)
    if row.established_at is None and row.touches >= settings.min_touches and mutual:
        row.established_at = ts


def fade_silence_ms(first_ts: int, last_ts: int) -> int:
    """F: 180 days, or 90 days when the data span less than a year (365 days)."""
    return _SHORT_FADE_MS if last_ts - first_ts < YEAR_MS else _LONG_FADE_MS


def find_fades(rows: dict[RowKey, RowHistory], last_ts: int, silence_ms: int) -> list[Fade]:
    """Established rows whose last event leaves at least `silence_ms` of data (and so of silence) after it."""
    found = []
    for (owner, contact), row in rows.items():
        last_at = row.times[-1]
        if row.established_at is not None and last_ts - last_at >= silence_ms:
            found.append(Fade(owner, contact, last_at))
    return found


def is_false_alarm(alert: DormantAlert, times: Sequence[int]) -> bool:
    """The alert's row has an event at `dormant_since` up to `dormant_since + 90 days`, both inclusive."""
    index = bisect.bisect_left(times, alert.dormant_since)
    return index < len(times) and times[index] <= alert.dormant_since + FALSE_ALARM_WINDOW_MS


def fade_figures(
    rows: dict[RowKey, RowHistory], alerts: Sequence[DormantAlert], first_ts: int, last_ts: int
) -> dict[str, Any]:
    """Dormant alerts, false-alarm share, fades, fades caught (count and share), median delay in days."""
    false_alarms = sum(
        1 for alert in alerts if is_false_alarm(alert, rows[(alert.owner, alert.contact)].times)
    )
    silence_ms = fade_silence_ms(first_ts, last_ts)
    fades = find_fades(rows, last_ts, silence_ms)
    alert_by_episode = {(a.owner, a.contact, a.last_interaction_at): a for a in alerts}
    delays = []
    for fade in fades:
        alert = alert_by_episode.get((fade.owner, fade.contact, fade.last_at))
        if alert is not None:
            delays.append(alert.dormant_since - alert.last_interaction_at)
    count = len(alerts)
    return {
        "false_alarms": false_alarms,
        "false_alarm_share": round(false_alarms / count, 4) if count else None,
        "fade_days": silence_ms // DAY_MS,
        "fades": len(fades),
        "fades_caught": len(delays),
        "fades_caught_share": round(len(delays) / len(fades), 4) if fades else None,
        "median_delay_days": round(statistics.median(delays) / DAY_MS, 2) if delays else None,
    }
