"""The agent error policy: the error's type is logged (not its text) and a forced exit is armed."""

from __future__ import annotations

import asyncio
import logging
import threading

import pytest

from streams.service.agent_errors import EXIT_AGENT_ERROR, stops_the_worker_on_error


def test_an_agent_error_is_reraised_logged_by_type_only_and_forces_exit_status_1_after_the_grace_period(
    caplog: pytest.LogCaptureFixture,
) -> None:
    exited = threading.Event()
    statuses: list[int] = []

    def force_exit(status: int) -> None:
        statuses.append(status)
        exited.set()

    @stops_the_worker_on_error(0.5, force_exit)
    async def relationships(stream: list[str]) -> None:
        raise ValueError(stream[0])

    with caplog.at_level(logging.ERROR), pytest.raises(ValueError, match="ann"):
        asyncio.run(relationships(['{"actor_id": "ann"}']))
    assert not exited.is_set(), "forced before the grace period"
    assert exited.wait(5), "no forced exit after the grace period"
    assert statuses == [EXIT_AGENT_ERROR] == [1]
    assert "agent relationships raised ValueError" in caplog.text
    assert "ann" not in caplog.text


def test_an_agent_that_ends_normally_arms_nothing() -> None:
    @stops_the_worker_on_error(0.01, lambda status: pytest.fail(f"forced exit {status}"))
    async def ingest(stream: list[str]) -> None:
        assert stream == []

    asyncio.run(ingest([]))
    assert not [t for t in threading.enumerate() if isinstance(t, threading.Timer)]


def test_on_error_sees_the_exception_before_the_exit_is_armed_and_its_own_failure_is_only_logged(
    caplog: pytest.LogCaptureFixture,
) -> None:
    seen: list[tuple[str, bool]] = []
    statuses: list[int] = []
    exited = threading.Event()

    def force_exit(status: int) -> None:
        statuses.append(status)
        exited.set()

    async def count_failure(exc: BaseException) -> None:
        armed = any(isinstance(t, threading.Timer) for t in threading.enumerate())
        seen.append((str(exc), armed))
        raise ConnectionError("broker away")

    @stops_the_worker_on_error(0.01, force_exit, on_error=count_failure)
    async def relationships(stream: list[str]) -> None:
        raise KeyError("poison")

    with caplog.at_level(logging.ERROR), pytest.raises(KeyError, match="poison"):
        asyncio.run(relationships([]))
    assert seen == [("'poison'", False)]
    assert "agent relationships: handling its KeyError failed: ConnectionError" in caplog.text
    assert exited.wait(5), "no forced exit after a failing on_error"
    assert statuses == [EXIT_AGENT_ERROR]
