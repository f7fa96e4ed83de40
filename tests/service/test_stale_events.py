"""Events of a revoked consumer generation are told apart from the current generation's."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from streams.service.stale_events import StaleEvents


def event(generation_id: int | None) -> Any:
    return SimpleNamespace(message=SimpleNamespace(generation_id=generation_id))


def test_events_of_a_revoked_generation_are_stale_until_the_next_one() -> None:
    app: Any = SimpleNamespace(consumer_generation_id=3)
    stale = StaleEvents(app)
    assert not stale.stale(event(3))  # no revocation yet
    stale.revoked()  # generation 3's partitions are revoked
    assert stale.stale(event(3))
    assert stale.stale(event(2))
    app.consumer_generation_id = 4  # assigned again: fetched from the committed offsets
    assert not stale.stale(event(4))
    assert not stale.stale(event(None))  # no generation recorded: not judged
