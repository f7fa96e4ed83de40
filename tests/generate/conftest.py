"""Shared fixtures of the generator tests: one small stream generated once per module."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

from streams.generate import GeneratedStream, GeneratorConfig, generate

SMALL = GeneratorConfig(users=150, days=150, seed=1)
"""About 63 000 events and 150 planted dormancies: big enough for statistics, quick to replay."""


@pytest.fixture(autouse=True, scope="module")
def _no_streams_environment() -> Iterator[None]:
    """Settings read `STREAMS_*`: keep the caller's environment out of these tests."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("STREAMS_")]:
            patch.delenv(name)
        yield


@pytest.fixture(scope="module")
def small() -> GeneratedStream:
    """The stream of `SMALL`."""
    return generate(SMALL)
