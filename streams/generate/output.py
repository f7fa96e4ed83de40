"""Where a generated stream goes: JSON lines to a file or stdout, truth as JSON lines, or Kafka topics."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable
from typing import Any, BinaryIO, Protocol

import orjson

from streams.settings import Settings

__all__ = ["Sender", "Throttle", "send_lines", "write_lines", "write_truth"]


class Sender(Protocol):
    """The part of a Kafka producer that `send_lines` uses."""

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> Any:
        """Queue one record."""

    def flush(self) -> Any:
        """Wait until queued records are sent."""


def write_lines(lines: Iterable[bytes], out: BinaryIO) -> int:
    """Write each line plus a newline; return how many."""
    count = 0
    for line in lines:
        out.write(line + b"\n")
        count += 1
    return count


def write_truth(truth: Iterable[dict[str, Any]], out: BinaryIO) -> None:
    """One planted dormancy per line, keys in generation order."""
    for row in truth:
        out.write(orjson.dumps(row, option=orjson.OPT_APPEND_NEWLINE))


class Throttle:
    """Keeps a sender at or below `rate` records per second (0: unthrottled)."""

    def __init__(
        self,
        rate: float,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], None] = time.sleep,
    ) -> None:
        self.rate, self.clock, self.sleep = rate, clock, sleep
        self.started = clock()

    def wait(self, sent: int) -> None:
        """Sleep until `sent` records are allowed since the start."""
        if self.rate <= 0:
            return
        ahead = self.started + sent / self.rate - self.clock()
        if ahead > 0:
            self.sleep(ahead)


def send_lines(
    lines: Iterable[bytes],
    client: Sender,
    settings: Settings,
    route: Callable[[bytes, Settings], tuple[str, bytes | None]],
    throttle: Throttle,
) -> int:
    """Send each line to its topic (by `type`, keyed by `actor_id`) at the throttle's pace; flush."""
    sent = 0
    for line in lines:
        throttle.wait(sent)
        topic, key = route(line, settings)
        client.send(topic, key=key, value=line)
        sent += 1
    client.flush()
    return sent
