"""What an owner partition keeps of erasures, waiting and applied, as versioned bytes in its rows table."""

from __future__ import annotations

import heapq
import struct
from typing import NamedTuple

from streams.engine.engine import RelationshipEngine

__all__ = ["ERASURE_LOG_FORMAT_VERSION", "ErasureLog"]

ERASURE_LOG_FORMAT_VERSION = 1
"""The leading byte `ErasureLog.to_bytes` writes."""
_HEAD = struct.Struct("<BII")  # version, erasures waiting, erasures applied
_ENTRY = struct.Struct("<qH")  # ts, UTF-8 length of the user id that follows


class ErasureLog(NamedTuple):
    """An engine's erasures: a restart must still apply the waiting ones and drop late events of the applied."""

    waiting: list[tuple[int, str]]
    """`(ts, user)` erasures the watermark has not reached yet (`RelationshipEngine.pending_erasures`)."""
    applied: dict[str, int]
    """User -> the latest erasure applied (`RelationshipEngine.erased`): their older events are dropped."""

    @classmethod
    def of(cls, engine: RelationshipEngine) -> ErasureLog:
        """The engine's erasures as they stand."""
        return cls(sorted(engine.pending_erasures), dict(engine.erased))

    def restore(self, engine: RelationshipEngine) -> None:
        """Give a freshly loaded engine these erasures."""
        engine.pending_erasures = list(self.waiting)
        heapq.heapify(engine.pending_erasures)
        engine.erased = dict(self.applied)

    def to_bytes(self) -> bytes:
        """Version 1: `_HEAD`, then each waiting and each applied erasure as its ts, length and user id.

        >>> ErasureLog.from_bytes(ErasureLog([(5, "ann")], {"bob": 3}).to_bytes())
        ErasureLog(waiting=[(5, 'ann')], applied={'bob': 3})
        """
        parts = [_HEAD.pack(ERASURE_LOG_FORMAT_VERSION, len(self.waiting), len(self.applied))]
        for ts, user in [*self.waiting, *((ts, user) for user, ts in self.applied.items())]:
            name = user.encode()
            parts += [_ENTRY.pack(ts, len(name)), name]
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> ErasureLog:
        """Inverse of `to_bytes`; raises `ValueError` on an unknown version or truncated bytes."""
        if not data:
            raise ValueError("empty erasure log bytes")
        if data[0] != ERASURE_LOG_FORMAT_VERSION:
            raise ValueError(f"unknown erasure log format version byte 0x{data[0]:02x}")
        try:
            _, waiting_count, applied_count = _HEAD.unpack_from(data)
            i = _HEAD.size
            entries: list[tuple[int, str]] = []
            for _ in range(waiting_count + applied_count):
                ts, size = _ENTRY.unpack_from(data, i)
                i += _ENTRY.size
                entries.append((ts, data[i : i + size].decode()))
                i += size
        except struct.error as exc:
            raise ValueError(f"truncated erasure log bytes ({len(data)} bytes)") from exc
        if i != len(data):
            raise ValueError(f"erasure log bytes do not end where their fields do ({i} of {len(data)} bytes)")
        return cls(entries[:waiting_count], {user: ts for ts, user in entries[waiting_count:]})
