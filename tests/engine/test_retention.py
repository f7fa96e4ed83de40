"""Retention (SPEC v1.1 §2, `row_ttl`): rows not established start afresh, and their storage is reclaimed."""

from __future__ import annotations

import pydantic
import pytest

from streams.engine.engine import RelationshipEngine
from streams.engine.events import Interaction, row_updates
from streams.engine.row import Row
from tests.engine.support import (
    DAY,
    HOUR,
    SMALL,
    T0,
    EngineFactory,
    drive,
    interaction,
    make_settings,
)

TTL = 3 * DAY
# the default de-duplication window (1 day): storage goes at last_at + TTL + 1 day
RECLAIM = TTL + DAY


def offer(engine: RelationshipEngine, item: Interaction, position: int) -> None:
    for update in row_updates(item, pos=position):
        assert engine.offer(update) == []


def test_a_row_not_established_silent_for_row_ttl_starts_afresh_at_its_next_event(
    make_engine: EngineFactory,
) -> None:
    engine = make_engine(**SMALL, row_ttl_ms=TTL)
    offer(engine, interaction("e1", "mention", "a", "b", T0), 1)
    offer(engine, interaction("e2", "reply", "a", "b", T0 + TTL), 2)
    engine.advance(T0 + TTL, inclusive=True)
    row = engine.rows["a", "b"]
    assert (row.first_at, row.last_at, row.touches, row.gaps) == (T0 + TTL, T0 + TTL, 1, [])
    assert row.counts == [0, 1, 0, 0, 0, 0]
    assert row.strength == 3.0
    assert engine.stats.rows_reset == 2  # both halves of e2
    assert engine.stats.rows_reclaimed == 0


def test_a_row_silent_one_ms_less_than_row_ttl_keeps_its_history(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL, row_ttl_ms=TTL)
    offer(engine, interaction("e1", "mention", "a", "b", T0), 1)
    offer(engine, interaction("e2", "reply", "a", "b", T0 + TTL - 1), 2)
    engine.advance(T0 + TTL, inclusive=True)
    row = engine.rows["a", "b"]
    assert (row.first_at, row.touches, row.gaps, row.counts) == (T0, 2, [TTL - 1], [1, 1, 0, 0, 0, 0])
    assert engine.stats.rows_reset == 0


def test_an_established_row_is_never_reset_nor_reclaimed(make_engine: EngineFactory) -> None:
    engine = make_engine(**{**SMALL, "max_silence_ms": 20 * DAY}, row_ttl_ms=TTL)
    offer(engine, interaction("e1", "mention", "a", "b", T0), 1)
    offer(engine, interaction("e2", "reply", "b", "a", T0 + 12 * HOUR), 2)
    engine.advance(T0 + 12 * HOUR, inclusive=True)
    assert engine.established_rows == 2
    engine.advance(T0 + 30 * DAY)
    assert engine.stats.rows_reclaimed == 0
    offer(engine, interaction("e3", "like", "a", "b", T0 + 30 * DAY), 3)
    alerts = engine.advance(T0 + 30 * DAY, inclusive=True)
    assert [a["kind"] for a in alerts] == ["revived", "revived"]
    assert engine.rows["a", "b"].touches == 3
    assert engine.stats.rows_reset == 0


def test_storage_is_reclaimed_once_the_watermark_reaches_last_at_plus_row_ttl_and_a_dedup_window() -> None:
    removed: list[tuple[str, str]] = []
    engine = RelationshipEngine(make_settings(**SMALL, row_ttl_ms=TTL), on_row_removed=removed.append)
    offer(engine, interaction("e1", "mention", "a", "b", T0), 1)
    offer(engine, interaction("e2", "mention", "a", "c", T0 + DAY), 2)
    engine.advance(T0 + RECLAIM - 1)
    assert set(engine.rows) == {("a", "b"), ("b", "a"), ("a", "c"), ("c", "a")}
    engine.advance(T0 + RECLAIM)
    assert sorted(removed) == [("a", "b"), ("b", "a")]
    assert set(engine.rows) == {("a", "c"), ("c", "a")}
    assert len(engine.expiries) == 2
    assert engine.stats.rows_reclaimed == 2


def test_row_ttl_zero_keeps_every_row(make_engine: EngineFactory) -> None:
    engine = make_engine(**SMALL)
    offer(engine, interaction("e1", "mention", "a", "b", T0), 1)
    offer(engine, interaction("e2", "mention", "a", "b", T0 + 400 * DAY), 2)
    engine.advance(T0 + 800 * DAY, inclusive=True)
    row = engine.rows["a", "b"]
    assert (row.first_at, row.touches) == (T0, 2)
    assert (engine.stats.rows_reset, engine.stats.rows_reclaimed, len(engine.expiries)) == (0, 0, 0)


def test_rows_loaded_after_a_restart_are_reclaimed_on_time(make_engine: EngineFactory) -> None:
    before = make_engine(**SMALL, row_ttl_ms=TTL)
    offer(before, interaction("e1", "mention", "a", "b", T0), 1)
    before.advance(T0, inclusive=True)
    stored = {key: row.to_bytes() for key, row in before.rows.items()}
    after = RelationshipEngine(
        make_settings(**SMALL, row_ttl_ms=TTL), rows={k: Row.from_bytes(v) for k, v in stored.items()}
    )
    after.advance(T0 + RECLAIM - 1)
    assert len(after.rows) == 2
    after.advance(T0 + RECLAIM)
    assert len(after.rows) == 0


def test_a_late_event_within_a_dedup_window_finds_a_reclaimed_row_reset_as_the_spec_says() -> None:
    """Reclaiming is invisible to an event up to a de-duplication window late: it would reset the row anyway."""
    events = [
        interaction("e1", "mention", "a", "b", T0),
        interaction("e2", "mention", "x", "y", T0 + RECLAIM + HOUR),
        interaction("e3", "reply", "a", "b", T0 + TTL + 2 * HOUR),  # 23 h late
        interaction("e4", "reply", "b", "a", T0 + TTL + 4 * HOUR),
    ]
    kept = RelationshipEngine(make_settings(**SMALL, row_ttl_ms=TTL))
    reclaiming = RelationshipEngine(make_settings(**SMALL, row_ttl_ms=TTL))
    kept._reclaim_due = lambda limit: None  # type: ignore[method-assign]
    assert drive([kept], events, 0) == drive([reclaiming], events, 0)
    assert reclaiming.stats.rows_reclaimed == 2
    assert kept.stats.rows_reset == 2
    kept_row, reclaimed_row = kept.rows["a", "b"], reclaiming.rows["a", "b"]
    assert "e1" in kept_row.recent  # kept for re-deliveries only: it can no longer be a duplicate
    kept_row.recent.pop("e1")
    assert kept_row == reclaimed_row


def test_an_event_later_than_a_dedup_window_finds_a_reclaimed_row_fresh_the_documented_limit() -> None:
    events = [
        interaction("e1", "mention", "a", "b", T0),
        interaction("e2", "mention", "x", "y", T0 + RECLAIM + HOUR),
        interaction("e3", "reply", "a", "b", T0 + TTL - HOUR),  # under row_ttl after e1: no reset by the SPEC
    ]
    reclaiming = RelationshipEngine(make_settings(**SMALL, row_ttl_ms=TTL))
    drive([reclaiming], events, 0)
    row = reclaiming.rows["a", "b"]
    assert (row.first_at, row.touches, row.counts) == (T0 + TTL - HOUR, 1, [0, 1, 0, 0, 0, 0])


@pytest.mark.parametrize("ttl", [1, DAY])
def test_row_ttl_must_exceed_the_dedup_window(ttl: int) -> None:
    with pytest.raises(pydantic.ValidationError, match="STREAMS_ROW_TTL_MS"):
        make_settings(row_ttl_ms=ttl)


def test_row_ttl_just_past_the_dedup_window_is_accepted() -> None:
    assert make_settings(row_ttl_ms=DAY + 1).row_ttl_ms == DAY + 1
