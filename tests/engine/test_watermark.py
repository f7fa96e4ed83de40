"""The owner-partition watermark tracker: minimum over input partitions, idleness claims and their lapse."""

from __future__ import annotations

from streams.engine.watermark import WatermarkTracker

CLAIM_MS = 2_000


def tracker() -> WatermarkTracker:
    return WatermarkTracker(["a:0", "b:0"], lateness_ms=0, hybrid=False, claim_ms=CLAIM_MS)


def test_a_repeated_idleness_claim_keeps_the_partition_out_of_the_minimum() -> None:
    marks = tracker()
    marks.observe("a:0", 100, idle=False, at_ms=0)
    marks.observe("b:0", 900, idle=False, at_ms=0)
    marks.observe("a:0", None, idle=True, at_ms=1_000)
    for at_ms in range(1_500, 10_000, 500):  # heartbeats renew the claim every 500 ms
        marks.observe("a:0", None, idle=True, at_ms=at_ms)
        assert marks.watermark(now_ms=0, at_ms=at_ms) == (900, False)


def test_a_claim_its_reader_stopped_repeating_lapses_and_holds_the_watermark_again() -> None:
    marks = tracker()
    marks.observe("a:0", 100, idle=True, at_ms=1_000)  # then its reader is killed
    marks.observe("b:0", 900, idle=False, at_ms=1_000)
    assert marks.watermark(now_ms=0, at_ms=1_000 + CLAIM_MS) == (900, False)
    marks.observe("b:0", 5_000, idle=False, at_ms=1_001 + CLAIM_MS)
    assert marks.watermark(now_ms=0, at_ms=1_001 + CLAIM_MS) == (100, False)


def test_a_non_idle_marker_ends_a_claim_at_once() -> None:
    marks = tracker()
    marks.observe("a:0", 100, idle=True, at_ms=0)
    marks.observe("b:0", 900, idle=False, at_ms=0)
    marks.observe("a:0", 100, idle=False, at_ms=10)  # a retraction, or its reader read again
    assert marks.watermark(now_ms=0, at_ms=10) == (100, False)


def test_all_idle_needs_every_claim_current() -> None:
    marks = tracker()
    marks.observe("a:0", 100, idle=True, at_ms=0)
    marks.observe("b:0", 900, idle=True, at_ms=1_500)
    assert marks.watermark(now_ms=0, at_ms=1_500) == (900, True)
    assert marks.watermark(now_ms=0, at_ms=2_500) == (
        100,
        False,
    )  # a:0 lapsed: held again (the engine never goes back)


def test_a_request_source_holds_the_watermark_back_but_never_moves_it_past_the_events() -> None:
    """Feedback (or an erasure) read while every event source is idle must not make the events that follow late:
    tests/service/test_feedback.py saw 2,277 late events and 28 alerts lost before this rule."""
    tracker = WatermarkTracker(
        ["t:0", "t:1", "fb:0"], 60, hybrid=False, claim_ms=1000, control_sources=["fb:0"]
    )
    tracker.observe("t:0", None, idle=True, at_ms=0)
    tracker.observe("t:1", None, idle=True, at_ms=0)
    tracker.observe("fb:0", 9_000, idle=False, at_ms=0)
    assert tracker.watermark(now_ms=0, at_ms=0) == (None, False), "no event seen: no watermark"
    tracker.observe("t:0", 1_000, idle=True, at_ms=0)
    assert tracker.watermark(now_ms=0, at_ms=0) == (1_000, False), "the largest event time, not the request's"
    tracker.observe("t:0", 1_000, idle=False, at_ms=0)
    assert tracker.watermark(now_ms=0, at_ms=0) == (940, False), "an active event source: min - lateness"
