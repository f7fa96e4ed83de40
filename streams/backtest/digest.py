"""The few alert fields a backtest needs, kept compact so grid points can run in worker processes."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import NamedTuple

from streams.engine.alerts import Alert

__all__ = ["AlertDigest", "DormantAlert"]


class DormantAlert(NamedTuple):
    """A `dormant` alert: the row, the event it is about, its deadline and what set it."""

    owner: str
    contact: str
    last_interaction_at: int
    dormant_since: int
    threshold_ms: int
    typical_gap_ms: int


@dataclass(slots=True)
class AlertDigest:
    """Dormant alerts in emission order, and the episodes `(owner, contact, dormant_since)` that revived."""

    dormant: list[DormantAlert] = field(default_factory=list)
    revived: set[tuple[str, str, int]] = field(default_factory=set)

    @classmethod
    def collect(cls, alerts: Iterable[Alert]) -> AlertDigest:
        """Digest a replay's alerts."""
        digest = cls()
        for alert in alerts:
            owner, contact, since = alert["owner_id"], alert["contact_id"], alert["dormant_since"]
            if alert["kind"] == "dormant":
                digest.dormant.append(
                    DormantAlert(
                        owner,
                        contact,
                        alert["last_interaction_at"],
                        since,
                        alert["threshold_ms"],
                        alert["typical_gap_ms"],
                    )
                )
            else:
                digest.revived.add((owner, contact, since))
        return digest

    def was_revived(self, alert: DormantAlert) -> bool:
        """Whether the episode this alert opened was later closed by a `revived` alert."""
        return (alert.owner, alert.contact, alert.dormant_since) in self.revived
