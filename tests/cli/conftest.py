"""Fixtures of the command tests: unique topic sets and worker processes on the real broker, from the service tests."""

from __future__ import annotations

from tests.service.conftest import broker, topic_factory, worker_factory

__all__ = ["broker", "topic_factory", "worker_factory"]
