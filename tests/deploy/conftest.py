"""Fixtures of the deploy tests: no `STREAMS_*` from the caller's environment."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest


@pytest.fixture(autouse=True, scope="module")
def _no_streams_environment() -> Iterator[None]:
    """Settings read `STREAMS_*`: only the manifests under test may set them."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("STREAMS_")]:
            patch.delenv(name)
        yield
