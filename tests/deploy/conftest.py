"""Fixtures of the deploy tests: no `STREAMS_*` from the caller's environment; the service's worker fixtures."""

from __future__ import annotations

# Topic sets and worker processes on the real broker, for tests that scrape a running worker.
from tests.service.conftest import topic_factory, worker_factory

__all__ = ["topic_factory", "worker_factory"]
