"""Backtests: replay history under a grid of settings and measure alert volume, revivals and accuracy."""

from __future__ import annotations

from streams.backtest.evaluate import SettingResult, evaluate
from streams.backtest.grid import GridPoint, make_grid
from streams.backtest.runner import BacktestResult, run_backtest

__all__ = ["BacktestResult", "GridPoint", "SettingResult", "evaluate", "make_grid", "run_backtest"]
