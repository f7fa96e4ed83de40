"""Events fetched before a revocation: their partitions are read again from the committed offsets, so they are dropped."""

from __future__ import annotations

from typing import Any

import faust
from faust.types import EventT

__all__ = ["StaleEvents"]


class StaleEvents:
    """Tells events of a revoked consumer generation (or an earlier one) from events of the current one.

    After a revocation Faust seeks every partition to its committed offset
    once the next assignment's recovery is done, but until then records
    fetched from the old positions can still reach an agent: faust-streaming
    0.15.3 resumes the flow when a recovery that a new rebalance overtook
    completes. The relationship agent drops such records (its owner
    partitions read in offset order from `replay_from` in any case). The
    ingest needs more than this, because records of the *new* generation can
    come from the old position too: `InputGate`.
    """

    def __init__(self, app: faust.App) -> None:
        self.app = app
        self.revoked_generation = -1
        """Consumer generation of the last revocation (-1: none yet)."""

    def revoked(self) -> None:
        """A revocation: events fetched in the current generation (or before) are stale from now on."""
        self.revoked_generation = self.app.consumer_generation_id

    def stale(self, event: EventT[Any]) -> bool:
        """The event was fetched in a generation whose partitions were revoked since."""
        generation = event.message.generation_id
        return generation is not None and generation <= self.revoked_generation
