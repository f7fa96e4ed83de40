"""Alert records (SPEC §4): deterministic ids and the fields that explain them."""

from __future__ import annotations

import math
from typing import Any

from streams.engine.events import INTERACTION_TYPES
from streams.engine.row import Row
from streams.engine.rules import Rules

__all__ = ["SCHEMA_VERSION", "Alert", "make_alert"]

SCHEMA_VERSION = 1
Alert = dict[str, Any]


def make_alert(kind: str, owner: str, contact: str, row: Row, rules: Rules, detected_at: int) -> Alert:
    """A `dormant` or `revived` alert from the row's state before the alert changes it."""
    counts = row.counts
    assert row.dormant_since is not None
    return {
        "alert_id": f"{kind}:{owner}:{contact}:{row.last_at}",
        "kind": kind,
        "owner_id": owner,
        "contact_id": contact,
        "last_interaction_at": row.last_at,
        "dormant_since": row.dormant_since,
        "detected_at": detected_at,
        "typical_gap_ms": math.floor(rules.typical_gap(row.gaps)),
        "threshold_ms": rules.threshold(row.gaps),
        "touches": row.touches,
        "counts": {
            "out": dict(zip(INTERACTION_TYPES, counts[0:3], strict=True)),
            "in": dict(zip(INTERACTION_TYPES, counts[3:6], strict=True)),
        },
        "last_out_at": row.last_out_at,
        "last_in_at": row.last_in_at,
        "strength": row.strength,
        "schema_version": SCHEMA_VERSION,
    }
