"""The Faust worker a service runs in: loggers that cost no CPU on paths they do not print."""

from __future__ import annotations

import logging
from collections.abc import Iterator
from pathlib import Path

import pytest

from streams.service.worker import build_service, make_worker
from streams.settings import Settings


@pytest.fixture
def root_logger() -> Iterator[logging.Logger]:
    root = logging.getLogger()
    level, handlers = root.level, list(root.handlers)
    yield root
    root.setLevel(level)
    root.handlers[:] = handlers


@pytest.mark.parametrize("level", ["warning", "error"])
def test_a_quiet_log_level_leaves_the_root_logger_at_that_level(
    level: str, root_logger: logging.Logger, tmp_path: Path
) -> None:
    service = build_service(Settings(log_level=level, data_dir=tmp_path, broker="kafka://127.0.0.1:1"))
    worker = make_worker(service)
    assert worker.spinner is None
    root_logger.handlers[:] = [logging.NullHandler()]
    numeric = logging.getLevelName(level.upper())
    root_logger.setLevel(numeric)
    worker.on_setup_root_logger(root_logger, numeric)  # what Faust calls as it configures logging
    assert root_logger.level == numeric
    assert not root_logger.isEnabledFor(logging.DEBUG)
