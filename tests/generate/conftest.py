"""Shared fixtures of the generator tests: one small stream generated once per module."""

from __future__ import annotations

import pytest

from streams.generate import GeneratedStream, GeneratorConfig, generate

SMALL = GeneratorConfig(users=150, days=150, seed=1)
"""About 63 000 events and 150 planted dormancies: big enough for statistics, quick to replay."""


@pytest.fixture(scope="module")
def small() -> GeneratedStream:
    """The stream of `SMALL`."""
    return generate(SMALL)
