"""Synthetic interaction streams with planted dormancies (ground truth) for demos and backtests."""

from __future__ import annotations

from streams.generate.config import GeneratorConfig
from streams.generate.stream import GeneratedStream, generate

__all__ = ["GeneratedStream", "GeneratorConfig", "generate"]
