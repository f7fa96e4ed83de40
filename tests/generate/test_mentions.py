"""The heavy-tailed mention profile: Twitter-like shape (most pairs once, Zipf-like users), seeded, valid."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson
import pytest

from streams.__main__ import main
from streams.generate.mentions import MentionConfig, mention_lines
from tests.generate.support import decoded, pair_times

SMALL = MentionConfig(events=20_000, users=10_000, seed=3)


@pytest.fixture(scope="module")
def small_lines() -> list[bytes]:
    """The stream of `SMALL`."""
    return mention_lines(SMALL)


def test_every_event_is_valid_and_in_time_order(small_lines: list[bytes]) -> None:
    events = decoded(small_lines)
    assert len(events) == SMALL.events
    assert len({event.id for event in events}) == SMALL.events
    times = [event.ts for event in events]
    assert times == sorted(times)
    assert SMALL.start_ms <= times[0]
    assert times[-1] < SMALL.end_ms
    assert all(event.actor != event.target for event in events)


def test_most_pairs_interact_once(small_lines: list[bytes]) -> None:
    """As in the Twitter sample of issue 12 (904,404 rows from 563,069 events: 1.6 rows per event)."""
    pairs = pair_times(decoded(small_lines))
    once = sum(1 for times in pairs.values() if len(times) == 1) / len(pairs)
    rows_per_event = 2 * len(pairs) / SMALL.events  # a row is one direction of a pair
    assert once > 0.75
    assert 1.4 < rows_per_event < 1.9


def test_activity_is_heavy_tailed(small_lines: list[bytes]) -> None:
    """A few users take part in a large share of the events; the median user in one or two."""
    involvement: Counter[str] = Counter()
    for event in decoded(small_lines):
        involvement[event.actor] += 1
        involvement[event.target] += 1
    counts = sorted(involvement.values(), reverse=True)
    top_percent = counts[: len(counts) // 100]
    assert sum(top_percent) / sum(counts) > 0.2
    assert counts[len(counts) // 2] <= 3
    assert counts[0] > 200 * counts[len(counts) // 2]


def test_same_seed_same_bytes_other_seed_other_stream(small_lines: list[bytes]) -> None:
    assert mention_lines(SMALL) == small_lines
    other = mention_lines(MentionConfig(events=SMALL.events, users=SMALL.users, seed=SMALL.seed + 1))
    assert other != small_lines


def test_the_default_size_matches_the_twitter_sample() -> None:
    """The defaults: >= 500k events over 7 days among 300k users (the shape is tested on `SMALL`)."""
    config = MentionConfig()
    assert config.events >= 500_000
    assert (config.users, config.days) == (300_000, 7)


def test_bad_config_is_rejected() -> None:
    with pytest.raises(ValueError, match="repeat"):
        MentionConfig(repeat=1.5).validate()
    with pytest.raises(ValueError, match="event"):
        MentionConfig(events=0).validate()


def test_cli_profile_writes_the_stream(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """`generate --profile mentions` writes exactly `mention_lines` of the flags, and reports the count."""
    out = tmp_path / "mentions.jsonl"
    flags = ["generate", "--profile", "mentions", "--events", "3000", "--users", "2000", "--seed", "9"]
    assert main([*flags, "--out", str(out)]) == 0
    expected = mention_lines(MentionConfig(events=3000, users=2000, seed=9))
    assert out.read_bytes().splitlines() == expected
    assert orjson.loads(capsysbinary.readouterr().err)["events"] == 3000


def test_cli_profile_has_no_truth(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    flags = ["generate", "--profile", "mentions", "--events", "100", "--truth", str(tmp_path / "t.jsonl")]
    assert main(flags) == 2
    assert b"truth" in capsysbinary.readouterr().err
