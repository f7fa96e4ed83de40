"""Counting records the producer failed to deliver, on Faust's send path and on the transactional one."""

from __future__ import annotations

import asyncio
from typing import Any

import faust
from prometheus_client import Counter

__all__ = ["SendErrorSensor", "count_failed_delivery"]


class SendErrorSensor(faust.Sensor):
    """Faust calls `on_send_error` when a record sent through a topic fails to be delivered."""

    def __init__(self, send_errors: Counter, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.send_errors = send_errors

    def on_send_error(self, producer: Any, exc: BaseException, state: Any) -> None:
        """One more record not delivered."""
        self.send_errors.inc()


def count_failed_delivery(send_errors: Counter, delivery: Any, records: int = 1) -> None:
    """Count the `records` of `delivery` (an aiokafka delivery future) in `send_errors` if it ends in an error."""
    if not isinstance(delivery, asyncio.Future):
        return

    def done(future: asyncio.Future[Any]) -> None:
        if not future.cancelled() and future.exception() is not None:
            send_errors.inc(records)

    delivery.add_done_callback(done)
