"""Output helpers: the throttle paces sends, the sender routes by type and keys by actor."""

from __future__ import annotations

from typing import Any

import orjson

from streams.cli.produce import route
from streams.generate.output import Throttle, send_lines
from streams.settings import Settings


class FakeClock:
    """A clock that only moves when the throttle sleeps."""

    def __init__(self) -> None:
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        """Record the sleep and advance."""
        self.slept.append(seconds)
        self.now += seconds


class FakeProducer:
    """Records what would be sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes | None, bytes | None]] = []
        self.flushed = False

    def send(self, topic: str, key: bytes | None = None, value: bytes | None = None) -> Any:
        """Record one record."""
        self.sent.append((topic, key, value))

    def flush(self) -> Any:
        """Record the flush."""
        self.flushed = True


def test_throttle_paces_to_rate() -> None:
    """At 10 records/s, sending 50 records takes 4.9 s of (fake) sleep: the first goes at once."""
    clock = FakeClock()
    throttle = Throttle(10.0, clock=clock, sleep=clock.sleep)
    for sent in range(50):
        throttle.wait(sent)
    assert abs(sum(clock.slept) - 4.9) < 1e-9


def test_throttle_zero_rate_never_sleeps() -> None:
    """Rate 0 means as fast as possible."""
    clock = FakeClock()
    throttle = Throttle(0.0, clock=clock, sleep=clock.sleep)
    for sent in range(100):
        throttle.wait(sent)
    assert clock.slept == []


def test_send_lines_routes_and_keys() -> None:
    """Each event goes to its type's topic, keyed by its actor, unchanged; the producer is flushed."""
    settings = Settings()
    lines = [
        orjson.dumps({"id": f"e{i}", "type": kind, "actor_id": f"u{i}", "target_id": "x", "ts": 10**12})
        for i, kind in enumerate(("mention", "reply", "like"))
    ]
    client = FakeProducer()
    sent = send_lines(lines, client, settings, route, Throttle(0.0))
    assert sent == 3
    assert client.flushed
    assert [topic for topic, _, _ in client.sent] == list(settings.input_topics())
    assert [key for _, key, _ in client.sent] == [b"u0", b"u1", b"u2"]
    assert [value for _, _, value in client.sent] == lines
