"""A worker whose processing raises on every attempt at one event: `python -m tests.service.poison_worker STAGE EVENT_ID`."""

from __future__ import annotations

import sys
from typing import Any

import streams.service.ingest
from streams.__main__ import main
from streams.engine.engine import RelationshipEngine
from streams.engine.events import Interaction


class PoisonFault(RuntimeError):
    """What processing the poison event raises, every time."""


def poison_decode(event_id: str) -> None:
    """Ingest stage: decoding the event `event_id` raises (every other event decodes as usual)."""
    original = streams.service.ingest.decode_event

    def decode_event(raw: bytes, max_bytes: int) -> Interaction:
        interaction = original(raw, max_bytes)
        if interaction.id == event_id:
            raise PoisonFault(f"cannot decode {event_id}")
        return interaction

    streams.service.ingest.decode_event = decode_event  # type: ignore[assignment]


def poison_rows(event_id: str) -> None:
    """Relationship stage: applying either row update of the event `event_id` raises, in the engine."""
    original = RelationshipEngine._remember

    def remember(self: RelationshipEngine, row: Any, applied_id: str, ts: int, pos: int) -> None:
        if applied_id == event_id:
            raise PoisonFault(f"cannot apply {event_id}")
        original(self, row, applied_id, ts, pos)

    RelationshipEngine._remember = remember  # type: ignore[method-assign]


STAGES = {"ingest": poison_decode, "relationships": poison_rows}

if __name__ == "__main__":
    stage, poison_id = sys.argv[1], sys.argv[2]
    STAGES[stage](poison_id)
    sys.exit(main(["worker"]))
