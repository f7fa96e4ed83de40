"""The replay summary: the largest forward jump of the watermark shows an outlier, next to the late events it made."""

from __future__ import annotations

from typing import Any

import orjson

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings

T0 = 1_700_000_000_000
YEAR_MS = 365 * 86_400_000


def line(event_id: str, ts: Any, actor: str = "ann", target: str = "bob") -> bytes:
    return orjson.dumps({"id": event_id, "type": "reply", "actor_id": actor, "target_id": target, "ts": ts})


def summary_of(lines: list[bytes]) -> ReplaySummary:
    summary = ReplaySummary()
    list(replay(lines, Settings(**REPLAY_DEFAULTS), summary))
    return summary


def test_one_outlier_is_the_largest_jump_and_makes_the_events_after_it_late() -> None:
    lines = [
        line("e1", T0),
        line("e2", T0 + 10),
        line("e3", T0 + 5),  # out of order: late, no jump
        line("bad", T0 + 500 * YEAR_MS),  # ts_out_of_range: not valid, moves nothing
        b"not json",
        line("outlier", T0 + YEAR_MS),
        line("e4", T0 + 20),
        line("e5", T0 + 30, "cat", "dan"),
    ]
    summary = summary_of(lines)
    assert summary.invalid == {"ts_out_of_range": 1, "not_json": 1}
    assert summary.watermark_max_jump_ms == YEAR_MS - 10
    assert summary.late == 3  # e3, then e4 and e5 behind the outlier
    report = summary.as_dict()
    keys = list(report)
    assert keys.index("watermark_max_jump_ms") == keys.index("late") + 1
    assert report["watermark_max_jump_ms"] == YEAR_MS - 10


def test_self_interactions_and_duplicates_move_the_max_ts_too() -> None:
    lines = [line("e1", T0), line("self", T0 + 100, "ann", "ann"), line("e1", T0 + 1_000)]
    summary = summary_of(lines)
    assert (summary.self_interactions, summary.duplicates, summary.applied) == (1, 1, 1)
    assert summary.watermark_max_jump_ms == 900


def test_no_jump_without_a_valid_event_before() -> None:
    assert summary_of([line("e1", T0)]).watermark_max_jump_ms == 0
    assert summary_of([]).watermark_max_jump_ms == 0
    assert summary_of([b"[]", line("e1", T0), line("e2", T0 - 5), line("e3", T0)]).watermark_max_jump_ms == 0
    assert summary_of([b"[]", line("e1", T0)]).as_dict()["watermark_max_jump_ms"] == 0


def test_collegemsg_with_one_event_a_year_ahead_shows_the_jump() -> None:
    lines = [orjson.dumps(event) for event in collegemsg_events(COLLEGEMSG)]
    clean = summary_of(lines)
    assert 0 < clean.watermark_max_jump_ms < 7 * 86_400_000  # the quietest stretch: days
    middle = len(lines) // 2
    before = max(orjson.loads(raw)["ts"] for raw in lines[:middle])
    outlier = {**orjson.loads(lines[middle]), "id": "outlier"}
    outlier["ts"] += YEAR_MS
    dirty = summary_of([*lines[:middle], orjson.dumps(outlier), *lines[middle:]])
    assert dirty.watermark_max_jump_ms == outlier["ts"] - before
    assert dirty.late == len(lines) - middle  # every event after it
    assert clean.late == 0
