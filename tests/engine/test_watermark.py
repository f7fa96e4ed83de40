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
