"""Fixtures every test shares: no `STREAMS_*` variable from the caller's environment leaks into settings."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="module")
def _no_streams_environment() -> Iterator[None]:
    """Settings read `STREAMS_*`: tests say what they configure, the caller's shell does not."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("STREAMS_")]:
            patch.delenv(name)
        yield
