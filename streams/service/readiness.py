"""Readiness of a worker (`/readyz`): assigned, recovered, owner partitions loaded, consumer not stalled."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from typing import Any, Literal, NamedTuple, cast

import faust
from faust.tables.manager import TableManager

from streams.service.consumer_lag import ConsumerLagMonitor, Stall

__all__ = ["Readiness", "Recovery", "assess", "check_readiness", "recovery_state", "tables_recovered"]

Recovery = Literal["starting", "recovering", "done"]


class Readiness(NamedTuple):
    """The verdict and why; `body()` is the `/readyz` JSON.

    >>> assess(rebalancing=False, recovery="done", loading=[], stalled=[]).body()
    {'ready': True, 'reasons': []}
    """

    ready: bool
    reasons: list[str]
    """Machine-readable codes, in the order checked (empty when ready)."""
    loading: list[int]
    """Assigned owner partitions whose rows are not in memory yet."""
    stalled: list[Stall]
    """Partitions whose committed offset stood still, records waiting, for the stall window."""

    def body(self) -> dict[str, Any]:
        """`{"ready", "reasons"}`, plus `loading_partitions` and `stalled` when they are not empty."""
        body: dict[str, Any] = {"ready": self.ready, "reasons": self.reasons}
        if self.loading:
            body["loading_partitions"] = self.loading
        if self.stalled:
            body["stalled"] = [stall._asdict() for stall in self.stalled]
        return body


def assess(
    rebalancing: bool, recovery: Recovery, loading: Sequence[int], stalled: Sequence[Stall]
) -> Readiness:
    """Ready = not rebalancing, tables recovered, every assigned owner partition loaded, nothing stalled."""
    reasons = []
    if rebalancing:
        reasons.append("rebalancing")
    if recovery != "done":
        reasons.append(recovery)
    if loading:
        reasons.append("loading")
    if stalled:
        reasons.append("stalled")
    return Readiness(not reasons, reasons, sorted(loading), list(stalled))


def recovery_state(app: faust.App) -> Recovery:
    """`starting` before the first assignment's recovery, `recovering` while tables catch up, else `done`."""
    recovery = cast(TableManager, app.tables).recovery
    if not recovery.completed.is_set():
        return "starting"
    return "recovering" if recovery.in_recovery else "done"


def tables_recovered(app: faust.App) -> bool:
    """The tables' changelogs have been read since the last assignment (faust's recovery is done)."""
    return recovery_state(app) == "done"


def check_readiness(
    app: faust.App, owner_topic: str, live: Iterable[int], monitor: ConsumerLagMonitor
) -> Readiness:
    """Assess this worker now; `live` are the owner partitions whose rows are in memory."""
    recovery = recovery_state(app)
    loading: list[int] = []
    if recovery == "done":  # the assignment is only known (and the consumer started) once recovery has run
        assigned = {tp.partition for tp in app.consumer.assignment() if tp.topic == owner_topic}
        loading = sorted(assigned - set(live))
    return assess(bool(app.rebalancing), recovery, loading, monitor.tracker.stalled())
