"""An agent that raises stops its worker with exit status 1, forced if shutdown outlasts a grace period."""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Awaitable, Callable
from typing import Any

from mode import CrashingSupervisor

__all__ = ["EXIT_AGENT_ERROR", "CrashingSupervisor", "stops_the_worker_on_error"]

EXIT_AGENT_ERROR = 1
"""The worker's exit status after an agent raised (its supervisor restarts it from committed offsets)."""

log = logging.getLogger(__name__)

AgentFun = Callable[[Any], Awaitable[None]]
OnError = Callable[[BaseException], Awaitable[None]]


def stops_the_worker_on_error(
    grace_s: float, force_exit: Callable[[int], object] = os._exit, on_error: OnError | None = None
) -> Callable[[AgentFun], AgentFun]:
    """Wrap an agent function: on an exception, log its type (never a payload) and arm a forced exit.

    Used with `supervisor_strategy=CrashingSupervisor`: Faust's default supervisor restarts a
    crashed agent in-process, past the record it failed on; this one stops the whole worker and
    its successor resumes from the committed offsets. A graceful stop can hang in Faust's
    consumer thread, so after `grace_s` the process exits regardless: what it had not
    committed is read again. `on_error` runs first, for at most `grace_s` (its own errors
    are logged): it counts the failure of the record at fault (streams/service/poison_records.py),
    so that the successor skips a record that failed too often instead of crash-looping on it.
    """

    def wrap(agent: AgentFun) -> AgentFun:
        @functools.wraps(agent)
        async def guarded(stream: Any) -> None:
            try:
                await agent(stream)
            except Exception as exc:
                log.error(
                    "agent %s raised %s; stopping the worker (exit status %d, forced in %.0f s)",
                    agent.__name__,
                    type(exc).__name__,
                    EXIT_AGENT_ERROR,
                    grace_s,
                    extra={"agent": agent.__name__, "error": type(exc).__name__},
                )
                if on_error is not None:
                    await _run_on_error(on_error, exc, grace_s, agent.__name__)
                timer = threading.Timer(grace_s, force_exit, args=(EXIT_AGENT_ERROR,))
                timer.daemon = True
                timer.start()
                raise

        return guarded

    return wrap


async def _run_on_error(on_error: OnError, exc: BaseException, timeout_s: float, agent: str) -> None:
    """`on_error(exc)` within `timeout_s`; whatever it raises is logged, never instead of `exc`."""
    try:
        await asyncio.wait_for(on_error(exc), timeout_s)
    except Exception as error:
        log.error(
            "agent %s: handling its %s failed: %s",
            agent,
            type(exc).__name__,
            type(error).__name__,
            extra={"agent": agent, "error": type(error).__name__},
        )
