"""SPEC §2-3 arithmetic, hand-computed: median gap, threshold clamps, established, deadline."""

from __future__ import annotations

import math

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.row import Row
from streams.engine.rules import Rules
from tests.engine.support import DAY, HOUR, T0, ReplayFactory, RulesFactory, make_settings


def row_with(
    touches: int,
    gaps: list[int],
    out: int = 1,
    in_: int = 1,
    last_at: int = T0,
) -> Row:
    """A row with `out` mentions by the owner and `in_` likes by the contact."""
    return Row(
        counts=[out, 0, 0, 0, 0, in_],
        first_at=T0 - 30 * DAY,
        last_at=last_at,
        last_out_at=last_at if out else None,
        last_in_at=last_at if in_ else None,
        touch_at=last_at,
        touches=touches,
        gaps=gaps,
        strength=1.0,
        dormant_since=None,
        recent={},
    )


def test_defaults_are_spec_section_5(make_rules: RulesFactory) -> None:
    rules = make_rules()
    assert rules.weights == (2.0, 3.0, 1.0)
    assert rules.half_life == 30 * DAY
    assert rules.touch_merge == 6 * HOUR
    assert (rules.gap_window, rules.min_touches, rules.require_mutual) == (8, 5, True)
    assert rules.k == 3.0
    assert (rules.min_silence, rules.max_silence) == (14 * DAY, 90 * DAY)
    assert rules.dedup_window == DAY


@pytest.mark.parametrize(
    ("gaps", "median"),
    [
        ([DAY, 2 * DAY, 3 * DAY, 4 * DAY], 2.5 * DAY),
        ([4 * DAY, DAY, 3 * DAY, 2 * DAY], 2.5 * DAY),
        ([5 * DAY, DAY, 3 * DAY], 3 * DAY),
        ([7], 7),
        ([1, 2], 1.5),
        ([10, 10, 1, 1000], 10),
        ([3, 1, 2, 8, 5, 13, 21, 34], 6.5),
    ],
)
def test_typical_gap_is_the_median(make_rules: RulesFactory, gaps: list[int], median: float) -> None:
    assert make_rules().typical_gap(gaps) == median


def test_typical_gap_of_no_gaps_is_zero(make_rules: RulesFactory) -> None:
    rules = make_rules(min_touches=1)
    assert rules.typical_gap([]) == 0
    assert rules.threshold([]) == 14 * DAY


def test_typical_gap_ms_is_floored() -> None:
    # the alert reports floor(typical_gap): 1.5 ms -> 1, 2.5 days stays whole
    assert math.floor(Rules.typical_gap([1, 2])) == 1
    assert math.floor(Rules.typical_gap([DAY, 2 * DAY, 3 * DAY, 4 * DAY])) == 216_000_000


def test_threshold_below_min_silence_clamps_to_min(make_rules: RulesFactory) -> None:
    # 3 x 1 day = 3 days < 14 days
    assert make_rules().threshold([DAY] * 4) == 14 * DAY


def test_threshold_above_max_silence_clamps_to_max(make_rules: RulesFactory) -> None:
    # 3 x 40 days = 120 days > 90 days
    assert make_rules().threshold([40 * DAY, 40 * DAY, 41 * DAY]) == 90 * DAY


def test_threshold_in_between_is_k_times_median(make_rules: RulesFactory) -> None:
    # median of [1, 2, 3, 4] x 5 days = 12.5 days; x 3 = 37.5 days
    gaps = [5 * DAY, 10 * DAY, 15 * DAY, 20 * DAY]
    assert make_rules().threshold(gaps) == 3_240_000_000
    assert 37.5 * DAY == 3_240_000_000


def test_threshold_at_the_clamps_exactly(make_rules: RulesFactory) -> None:
    rules = make_rules(k=2.0, min_silence_ms=10 * DAY, max_silence_ms=20 * DAY)
    assert rules.threshold([5 * DAY]) == 10 * DAY
    assert rules.threshold([5 * DAY + 1]) == 10 * DAY + 2
    assert rules.threshold([10 * DAY]) == 20 * DAY
    assert rules.threshold([10 * DAY + 1]) == 20 * DAY


def test_threshold_is_floored_to_whole_ms(make_rules: RulesFactory) -> None:
    rules = make_rules(k=2.5, min_silence_ms=0, max_silence_ms=DAY)
    assert rules.threshold([3]) == 7  # 7.5
    assert rules.threshold([1, 2]) == 3  # 2.5 x 1.5 = 3.75
    rules = make_rules(k=3.0, min_silence_ms=0, max_silence_ms=DAY)
    assert rules.threshold([1000, 1001]) == 3001  # 3 x 1000.5 = 3001.5
    assert rules.threshold([HOUR + 1, HOUR + 2]) == 3 * HOUR + 4  # 3 x (HOUR + 1.5)


def test_threshold_is_an_int(make_rules: RulesFactory) -> None:
    value = make_rules(k=1.5, min_silence_ms=0).threshold([DAY + 1])
    assert type(value) is int
    assert value == 129_600_001  # 1.5 x 86_400_001 = 129_600_001.5


def test_max_silence_wins_when_below_min_silence(make_rules: RulesFactory) -> None:
    # floor(min(max(k*g, min), max)): the max clamp is applied last
    assert make_rules(min_silence_ms=10 * DAY, max_silence_ms=5 * DAY).threshold([DAY]) == 5 * DAY


@pytest.mark.parametrize(
    ("touches", "out", "in_", "mutual", "established"),
    [
        (5, 1, 1, True, True),
        (4, 1, 1, True, False),
        (9, 3, 0, True, False),
        (9, 0, 3, True, False),
        (9, 3, 0, False, True),
        (9, 0, 3, False, True),
        (4, 3, 0, False, False),
        (5, 1, 1, False, True),
    ],
)
def test_established(
    make_rules: RulesFactory, touches: int, out: int, in_: int, mutual: bool, established: bool
) -> None:
    rules = make_rules(require_mutual=mutual)
    assert rules.established(row_with(touches, [DAY] * (touches - 1), out=out, in_=in_)) is established


@pytest.mark.parametrize("index", range(6))
def test_established_counts_every_type_of_each_direction(make_rules: RulesFactory, index: int) -> None:
    rules = make_rules(min_touches=1, require_mutual=True)
    row = row_with(3, [DAY, DAY], out=0, in_=0)
    row.counts[index] = 1
    assert not rules.established(row)  # one direction only
    row.counts[(index + 3) % 6] = 2
    assert rules.established(row)


def test_deadline_is_last_at_plus_threshold(make_rules: RulesFactory) -> None:
    rules = make_rules()
    row = row_with(5, [5 * DAY, 6 * DAY, 7 * DAY, 8 * DAY], last_at=T0)
    assert rules.deadline(row) == T0 + 3 * 6.5 * DAY
    assert rules.deadline(row) == T0 + 1_684_800_000
    row.counts[3:6] = [0, 0, 0]
    assert rules.deadline(row) is None
    assert rules.deadline(row_with(4, [DAY] * 3)) is None


def test_decay_halves_per_half_life(make_rules: RulesFactory) -> None:
    rules = make_rules(half_life_ms=DAY)
    assert rules.decay(0) == 1.0
    assert rules.decay(DAY) == 0.5
    assert rules.decay(3 * DAY) == 0.125
    assert rules.decay(DAY // 2) == pytest.approx(2**-0.5, rel=1e-12)


# --- rule adaptive (docs/semantics.md §3) --------------------------------------------------


def test_adaptive_worked_example_of_the_docs(make_rules: RulesFactory) -> None:
    rules = make_rules(rule="adaptive")
    gaps = [DAY, DAY, DAY, 20 * DAY]
    assert make_rules().threshold(gaps) == 14 * DAY  # v1: 3 x 1 day, raised to the floor
    assert rules.threshold(gaps) == (4 * 2 * 20 * DAY + 2 * 14 * DAY) // 6 == 2_707_200_000


def test_adaptive_without_gaps_is_the_floor(make_rules: RulesFactory) -> None:
    assert make_rules(rule="adaptive").threshold([]) == 14 * DAY
    assert make_rules(rule="adaptive", min_silence_ms=DAY, max_silence_ms=DAY // 2).threshold([]) == DAY // 2


def test_adaptive_takes_k_times_the_median_when_it_is_larger(make_rules: RulesFactory) -> None:
    gaps = [10 * DAY] * 8  # spread: (8 x 2 x 10 + 2 x 14) // 10 = 18.8 days; 3 x median: 30 days
    assert make_rules(rule="adaptive").threshold(gaps) == 30 * DAY
    assert make_rules(rule="adaptive", k=1.0).threshold(gaps) == (16 * 10 * DAY + 28 * DAY) // 10


def test_adaptive_is_clamped_like_v1(make_rules: RulesFactory) -> None:
    assert make_rules(rule="adaptive").threshold([DAY, 200 * DAY]) == 90 * DAY
    assert make_rules(rule="adaptive").threshold([2**62]) == 90 * DAY
    assert make_rules(rule="adaptive").threshold([HOUR] * 8) == 14 * DAY


@given(st.lists(st.integers(0, 400 * DAY), max_size=8), st.sampled_from([1.5, 3.0, 4.0]))
def test_adaptive_is_never_below_v1_nor_outside_the_clamps(gaps: list[int], k: float) -> None:
    adaptive = Rules(make_settings(rule="adaptive", k=k)).threshold(gaps)
    assert Rules(make_settings(k=k)).threshold(gaps) <= adaptive
    assert 14 * DAY <= adaptive <= 90 * DAY
    assert type(adaptive) is int


def test_adaptive_dormant_alerts_are_a_subset_of_v1s_on_collegemsg(replay_lines: ReplayFactory) -> None:
    """A later deadline on the same rows: every adaptive alert is a v1 alert for the same last event, no earlier."""
    lines = [orjson.dumps(e) for e in collegemsg_events(COLLEGEMSG)]
    v1 = {
        (a["owner_id"], a["contact_id"], a["last_interaction_at"]): a
        for a in replay_lines(lines)[0]
        if a["kind"] == "dormant"
    }
    adaptive = [a for a in replay_lines(lines, rule="adaptive")[0] if a["kind"] == "dormant"]
    assert len(v1) == 2_416
    assert 0 < len(adaptive) < len(v1)
    for alert in adaptive:
        before = v1[(alert["owner_id"], alert["contact_id"], alert["last_interaction_at"])]
        assert alert["dormant_since"] >= before["dormant_since"]
        assert alert["threshold_ms"] >= before["threshold_ms"]
        assert alert["typical_gap_ms"] == before["typical_gap_ms"]
