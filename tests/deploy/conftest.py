"""Fixtures of the deploy tests: no `STREAMS_*` from the caller's environment; the service's worker fixtures."""

from __future__ import annotations

# The broker check of tests marked `broker`; topic sets and worker processes on the real broker, for tests
# that scrape a running worker.
from tests.service.conftest import broker, topic_factory, worker_factory

__all__ = ["broker", "topic_factory", "worker_factory"]
