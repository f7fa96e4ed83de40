"""An agent that raises stops its worker with exit status 1, forced if shutdown outlasts a grace period."""

from __future__ import annotations

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


def stops_the_worker_on_error(
    grace_s: float, force_exit: Callable[[int], object] = os._exit
) -> Callable[[AgentFun], AgentFun]:
    """Wrap an agent function: on an exception, log its type (never a payload) and arm a forced exit.

    Used with `supervisor_strategy=CrashingSupervisor`: Faust's default supervisor restarts a
    crashed agent in-process, past the record it failed on; this one stops the whole worker and
    its successor resumes from the committed offsets. A graceful stop can hang in Faust's
    consumer thread, so after `grace_s` the process exits regardless: what it had not
    committed is read again.
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
                timer = threading.Timer(grace_s, force_exit, args=(EXIT_AGENT_ERROR,))
                timer.daemon = True
                timer.start()
                raise

        return guarded

    return wrap
