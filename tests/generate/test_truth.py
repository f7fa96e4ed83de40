"""The truth file lists real silences: nothing between the pair inside [silent_from, silent_until)."""

from __future__ import annotations

import bisect

from streams.generate import GeneratedStream
from tests.generate.support import decoded, pair_times


def test_planted_silences_are_real(small: GeneratedStream) -> None:
    """No event of the pair (either direction) falls inside a planted silence."""
    times = pair_times(decoded(small.lines))
    end = max(max(ts) for ts in times.values()) + 1
    assert len(small.truth) > 50
    for row in small.truth:
        pair = sorted(times[frozenset((row["owner"], row["contact"]))])
        until = row["silent_until"] if row["silent_until"] is not None else end
        inside = bisect.bisect_left(pair, until) - bisect.bisect_left(pair, row["silent_from"])
        assert inside == 0, row


def test_silences_are_bounded_by_interactions(small: GeneratedStream) -> None:
    """The pair interacts at `silent_from - 1` and, when it revives, exactly at `silent_until`."""
    times = pair_times(decoded(small.lines))
    for row in small.truth:
        pair = set(times[frozenset((row["owner"], row["contact"]))])
        assert row["silent_from"] - 1 in pair
        assert row["silent_until"] is None or row["silent_until"] in pair


def test_truth_has_revivals_and_permanent_fades(small: GeneratedStream) -> None:
    """Some planted dormancies revive, some never do, and both tie kinds fade."""
    revived = [row for row in small.truth if row["silent_until"] is not None]
    assert 0 < len(revived) < len(small.truth)
    assert {row["reciprocal"] for row in small.truth} == {True, False}


def test_truth_sorted_and_one_per_pair(small: GeneratedStream) -> None:
    """Rows come in `silent_from` order and a pair is planted at most once."""
    keys = [row["silent_from"] for row in small.truth]
    assert keys == sorted(keys)
    pairs = [frozenset((row["owner"], row["contact"])) for row in small.truth]
    assert len(set(pairs)) == len(pairs)
