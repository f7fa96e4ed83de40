"""Every generated line is a valid SPEC §1 event, sorted by (ts, id), inside the configured span."""

from __future__ import annotations

from streams.generate import GeneratedStream
from tests.generate.conftest import SMALL
from tests.generate.support import decoded


def test_every_line_validates(small: GeneratedStream) -> None:
    """`decode_event` accepts every line and no event is a self-interaction."""
    events = decoded(small.lines)
    assert len(events) == len(small.lines) > 10_000
    assert all(event.actor != event.target for event in events)


def test_sorted_by_ts_then_id(small: GeneratedStream) -> None:
    """The output order is ascending `(ts, id)`."""
    keys = [(event.ts, event.id) for event in decoded(small.lines)]
    assert keys == sorted(keys)


def test_times_within_span(small: GeneratedStream) -> None:
    """Event times lie in [start, start + days)."""
    times = [event.ts for event in decoded(small.lines)]
    assert min(times) >= SMALL.start_ms
    assert max(times) < SMALL.end_ms


def test_all_three_types_appear(small: GeneratedStream) -> None:
    """Mentions, replies and likes are all generated, none below 10 %."""
    events = decoded(small.lines)
    for kind in range(3):
        assert sum(1 for event in events if event.type == kind) > 0.1 * len(events)
