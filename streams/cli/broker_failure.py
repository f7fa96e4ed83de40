"""A command that gave up connecting to the broker ends with one line saying so and what the connections met."""

from __future__ import annotations

import logging
import sys

__all__ = ["EXIT_NO_BROKER", "ConnectionErrors", "gave_up_on_the_broker"]

EXIT_NO_BROKER = 1
"""A command gave up connecting to the broker (unreachable, or it refused the TLS certificate or SASL login)."""
KEPT = 5
"""Distinct connection errors kept (the first ones: later attempts often meet a consequence, not the cause)."""


class ConnectionErrors(logging.Handler):
    """The distinct errors kafka-python logs while connecting, kept for the last line (a worker's log does not
    show kafka-python's WARNING lines before Faust starts)."""

    def __init__(self) -> None:
        super().__init__(logging.WARNING)
        self.seen: dict[str, None] = {}

    def emit(self, record: logging.LogRecord) -> None:
        """Keep the exceptions among the record's arguments."""
        args = record.args if isinstance(record.args, tuple) else ()
        for arg in args:
            if isinstance(arg, Exception) and len(self.seen) < KEPT:
                self.seen.setdefault(str(arg), None)

    def explain(self, command: str, exc: Exception) -> str:
        """`command: gave up on the Kafka broker: <exc>; connection errors: <first distinct ones>`."""
        seen = [error for error in self.seen if error != str(exc)]
        errors = f"; connection errors: {' | '.join(seen)}" if seen else ""
        return f"{command}: gave up on the Kafka broker: {exc}{errors}"


def gave_up_on_the_broker(exc: Exception) -> bool:
    """kafka-python gave up: no broker connection within its timeout (only commands that talk to the broker
    load it)."""
    errors = sys.modules.get("kafka.errors")
    return errors is not None and isinstance(exc, errors.KafkaTimeoutError)
