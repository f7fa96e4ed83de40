"""Records of the owner-keyed stream: row updates with the watermark markers that cover them."""

from __future__ import annotations

from typing import Any, NamedTuple

import orjson

__all__ = ["Marker", "OwnerRecord", "decode_owner_record", "encode_owner_record"]

UpdateFields = list[Any]  # [ts, event_id, owner, contact, direction, type]
Marker = tuple[int | None, bool]  # (max event time sent, idle)


class OwnerRecord(NamedTuple):
    """One record of the owner-keyed stream."""

    updates: list[UpdateFields]
    """Row updates for this partition, in input order."""
    markers: dict[str, Marker]
    """Input partition (`topic:partition`) -> (max event time sent, idle); covers `updates`."""


def encode_owner_record(updates: list[UpdateFields], markers: dict[str, Marker]) -> bytes:
    """Row updates followed (logically) by the markers that cover them; no updates = a heartbeat."""
    return orjson.dumps({"u": updates, "wm": markers})


def decode_owner_record(raw: bytes) -> OwnerRecord:
    """Inverse of `encode_owner_record`."""
    obj = orjson.loads(raw)
    return OwnerRecord(obj.get("u", []), {s: (m[0], m[1]) for s, m in obj.get("wm", {}).items()})
