"""Issue 15's definitions on hand-worked histories, and the issue's v1 row on CollegeMsg."""

from __future__ import annotations

import orjson

from streams.backtest.digest import AlertDigest, DormantAlert
from streams.backtest.fades import (
    YEAR_MS,
    fade_figures,
    fade_silence_ms,
    find_fades,
    is_false_alarm,
    row_histories,
)
from streams.backtest.profile import profile_events, valid_events
from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.events import Interaction
from streams.replay import REPLAY_DEFAULTS, replay
from streams.settings import DAY_MS, Settings

T0 = 1_700_000_000_000
V1 = Settings(**REPLAY_DEFAULTS)


def _chat(a: str, b: str, days: list[float], prefix: str = "e") -> list[Interaction]:
    """One event per day offset, alternating a -> b and b -> a (so the row is mutual)."""
    return [
        Interaction(f"{prefix}{i}", 1, *((a, b) if i % 2 == 0 else (b, a)), T0 + round(day * DAY_MS))
        for i, day in enumerate(days)
    ]


def _alert(owner: str, contact: str, last_at: int, threshold_ms: int = 14 * DAY_MS) -> DormantAlert:
    return DormantAlert(owner, contact, last_at, last_at + threshold_ms, threshold_ms, threshold_ms // 3)


def test_established_at_fifth_touch_and_both_ways() -> None:
    """Events within 6 h join a touch; the row is established at its fifth touch once both sides acted."""
    events = _chat("a", "b", [0, 0.1, 1, 2, 3, 4, 5])
    rows = row_histories(events, V1)
    assert rows[("a", "b")].touches == 6
    assert rows[("a", "b")].established_at == T0 + 4 * DAY_MS
    assert rows[("b", "a")].established_at == T0 + 4 * DAY_MS
    one_way = [e._replace(actor="a", target="b") for e in events]
    assert row_histories(one_way, V1)[("a", "b")].established_at is None
    assert row_histories(one_way, Settings(**REPLAY_DEFAULTS, require_mutual=False))[
        ("a", "b")
    ].established_at == (T0 + 4 * DAY_MS)


def test_histories_skip_duplicates_and_self_interactions() -> None:
    """An id seen again within the de-duplication window adds nothing; actor == target is skipped."""
    events = _chat("a", "b", [0, 1, 2])
    duplicate = events[1]._replace(ts=events[1].ts + 3_600_000)
    late_reuse = events[1]._replace(ts=events[1].ts + DAY_MS)
    rows = row_histories([*events, duplicate, Interaction("s", 0, "a", "a", T0)], V1)
    assert rows[("a", "b")].times == [e.ts for e in events]
    assert ("a", "a") not in rows
    assert len(row_histories([*events, late_reuse], V1)[("a", "b")].times) == 4


def test_false_alarm_window_is_inclusive_at_90_days() -> None:
    """An event exactly 90 d after dormant_since (or at it) makes a false alarm; 1 ms later does not."""
    alert = _alert("a", "b", T0)
    since = alert.dormant_since
    assert is_false_alarm(alert, [T0, since + 90 * DAY_MS])
    assert is_false_alarm(alert, [T0, since])
    assert not is_false_alarm(alert, [T0, since + 90 * DAY_MS + 1])
    assert not is_false_alarm(alert, [T0])


def test_fade_needs_f_days_of_data_after_the_last_event() -> None:
    """With F = 90 d, a last event 90 d before the end of data is a fade; 1 ms less is not."""
    rows = row_histories(_chat("a", "b", [0, 1, 2, 3, 4, 5]), V1)
    last = T0 + 5 * DAY_MS
    assert find_fades(rows, last + 90 * DAY_MS, 90 * DAY_MS) == [("a", "b", last), ("b", "a", last)]
    assert find_fades(rows, last + 90 * DAY_MS - 1, 90 * DAY_MS) == []
    not_established = row_histories(_chat("c", "d", [0, 1, 2, 3]), V1)
    assert find_fades(not_established, last + 200 * DAY_MS, 90 * DAY_MS) == []


def test_f_switches_at_one_year_of_data() -> None:
    """F is 90 d on data spanning under 365 d, 180 d from 365 d on; fade_figures uses it."""
    assert fade_silence_ms(T0, T0 + YEAR_MS - 1) == 90 * DAY_MS
    assert fade_silence_ms(T0, T0 + YEAR_MS) == 180 * DAY_MS
    events = _chat("a", "b", [0, 1, 2, 3, 4, 5])
    rows = row_histories(events, V1)
    last = events[-1].ts
    # the data end 100 d after the row's last event: a fade only while F is 90 d
    short = fade_figures(rows, [], last + 100 * DAY_MS - YEAR_MS + 1, last + 100 * DAY_MS)
    long = fade_figures(rows, [], last + 100 * DAY_MS - YEAR_MS, last + 100 * DAY_MS)
    assert (short["fade_days"], short["fades"]) == (90, 2)
    assert (long["fade_days"], long["fades"]) == (180, 0)


def test_alert_for_an_earlier_event_does_not_catch_the_fade() -> None:
    """The row revived after its first alert; only an alert for its last event catches the fade."""
    events = _chat("a", "b", [0, 1, 2, 3, 4, 30, 31])
    rows = row_histories(events, V1)
    first_ts, end = T0, T0 + 200 * DAY_MS
    earlier = _alert("a", "b", T0 + 4 * DAY_MS)
    figures = fade_figures(rows, [earlier], first_ts, end)
    assert figures["fades"] == 2
    assert figures["fades_caught"] == 0
    assert figures["fades_caught_share"] == 0.0
    assert figures["median_delay_days"] is None
    assert figures["false_alarms"] == 1  # a -> b has an event on day 30, 12 d after the alert's day 18
    assert figures["false_alarm_share"] == 1.0


def test_caught_fades_and_median_delay() -> None:
    """Caught share over fades; delay is dormant_since - last_interaction_at; the median of an even count."""
    events = _chat("a", "b", [0, 1, 2, 3, 4]) + _chat("c", "d", [0, 1, 2, 3, 4], prefix="f")
    rows = row_histories(events, V1)
    last = T0 + 4 * DAY_MS
    alerts = [_alert("a", "b", last, 14 * DAY_MS), _alert("c", "d", last, 20 * DAY_MS)]
    figures = fade_figures(rows, alerts, T0, T0 + 150 * DAY_MS)
    assert figures["fades"] == 4
    assert figures["fades_caught"] == 2
    assert figures["fades_caught_share"] == 0.5
    assert figures["median_delay_days"] == 17.0
    assert figures["false_alarms"] == 0
    assert figures["false_alarm_share"] == 0.0


def test_collegemsg_v1_reproduces_the_issue_row() -> None:
    """SPEC v1 defaults on CollegeMsg: 2,416 dormant alerts, false-alarm share 0.189, 1,464 fades, all
    caught, median delay 14.0 d (issue 15)."""
    lines = [orjson.dumps(event) for event in collegemsg_events(COLLEGEMSG)]
    events = list(valid_events(lines))
    profile = profile_events(events)
    digest = AlertDigest.collect(replay(lines, V1))
    figures = fade_figures(row_histories(events, V1), digest.dormant, profile.first_ts, profile.last_ts)
    assert len(digest.dormant) == 2_416
    assert figures["false_alarms"] == 456
    assert round(figures["false_alarm_share"], 3) == 0.189
    assert figures["fade_days"] == 90
    assert figures["fades"] == 1_464
    assert figures["fades_caught"] == 1_464
    assert figures["median_delay_days"] == 14.0
