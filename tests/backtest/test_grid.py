"""The settings grid and how the CLI builds it from flags."""

from __future__ import annotations

import argparse

import pytest

import streams.cli.backtest as backtest_cli
from streams.backtest.grid import make_grid, parse_numbers
from streams.cli.options import settings_from_args
from streams.replay import REPLAY_DEFAULTS
from streams.settings import DAY_MS, Settings


def _parse(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    backtest_cli.add_parser(parser.add_subparsers())
    return parser.parse_args(argv)


def test_grid_is_the_product() -> None:
    """k outer, min silence inner; other settings kept from the base."""
    base = Settings(**REPLAY_DEFAULTS, min_touches=3)
    points = make_grid(base, (2.0, 3.5), (7.0, 14.0, 21.0))
    assert [p.label for p in points][:4] == ["k=2 min=7d", "k=2 min=14d", "k=2 min=21d", "k=3.5 min=7d"]
    assert points[4].settings.k == 3.5
    assert points[4].settings.min_silence_ms == 14 * DAY_MS
    assert all(p.settings.min_touches == 3 for p in points)


def test_parse_numbers_rejects_bad_lists() -> None:
    """Values must be positive numbers."""
    assert parse_numbers("2, 3,4") == (2.0, 3.0, 4.0)
    for bad in ("", "0", "2,-1", "x"):
        with pytest.raises(ValueError):  # noqa: PT011 - the message varies
            parse_numbers(bad)


def test_cli_grid_flags_and_setting_flags() -> None:
    """`--k` takes a list, other semantic flags still reach the base settings."""
    args = _parse(["backtest", "f.jsonl", "--k", "2,5", "--min-silence-days", "10", "--min-touches", "4"])
    assert args.grid_k == (2.0, 5.0)
    assert args.grid_min_silence_days == (10.0,)
    base = settings_from_args(args, REPLAY_DEFAULTS)
    assert base.min_touches == 4
    assert base.k == 3.0
    assert base.allowed_lateness_ms == 0


def test_cli_defaults_are_the_documented_grid() -> None:
    """Without grid flags: k 2,3,4 and 7,14,21 days."""
    args = _parse(["backtest", "f.jsonl"])
    assert args.grid_k == (2.0, 3.0, 4.0)
    assert args.grid_min_silence_days == (7.0, 14.0, 21.0)
