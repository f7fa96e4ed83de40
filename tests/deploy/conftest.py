"""Fixtures of the deploy tests: no `STREAMS_*` from the caller's environment; the service's worker fixtures."""

from __future__ import annotations

import os
from collections.abc import Iterator

import pytest

# Topic sets and worker processes on the real broker, for tests that scrape a running worker.
from tests.service.conftest import topic_factory, worker_factory

__all__ = ["topic_factory", "worker_factory"]


@pytest.fixture(autouse=True, scope="module")
def _no_streams_environment() -> Iterator[None]:
    """Settings read `STREAMS_*`: only the manifests under test may set them."""
    with pytest.MonkeyPatch.context() as patch:
        for name in [n for n in os.environ if n.startswith("STREAMS_")]:
            patch.delenv(name)
        yield
