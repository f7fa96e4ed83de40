"""One relationship row (owner, contact): counts, touches, gaps, strength, status; compact versioned bytes."""

from __future__ import annotations

import math
import struct
from collections.abc import Iterable
from typing import Any

import orjson

__all__ = ["ROW_FORMAT_VERSION", "Row"]

ROW_FORMAT_VERSION = 1
"""The leading byte `Row.to_bytes` writes. Version 0 is the JSON array written before it (starts with `[`)."""

_JSON_ARRAY = ord("[")
_HAS_LAST_OUT = 1
_HAS_LAST_IN = 2
_HAS_DORMANT = 4
_STRENGTH_IS_INT = 8
_HAS_RECENT = 16
_KNOWN_FLAGS = _HAS_LAST_OUT | _HAS_LAST_IN | _HAS_DORMANT | _STRENGTH_IS_INT | _HAS_RECENT
_COUNTS = 6
_MAX_EXACT_INT = float(2**53)
_HEAD = struct.Struct("<BBBq")  # version, flags, non-zero counts mask, last_at
_DOUBLE = struct.Struct("<d")
_POSITION = struct.Struct("<Q")
_SET_BITS = tuple(tuple(i for i in range(_COUNTS) if mask >> i & 1) for mask in range(1 << _COUNTS))
"""Counts mask -> the indices of its non-zero counts."""


def _varints(values: Iterable[int]) -> bytes:
    """`values` (each >= 0) as LEB128 varints: 7 bits a byte, low first, the high bit set on all but the last."""
    out = bytearray()
    append = out.append
    for value in values:
        if value < 0x80:
            append(value)  # ValueError if negative
            continue
        while value >= 0x80:
            append(value & 0x7F | 0x80)
            value >>= 7  # noqa: PLW2901 - the rest of this value
        append(value)
    return bytes(out)


def _from_varints(section: bytes) -> list[int]:
    """Every varint of `section`, which must end with a whole one."""
    if section.isascii():
        return list(section)  # every varint is one byte
    values: list[int] = []
    append = values.append
    value = shift = 0
    for byte in section:
        if byte < 0x80:
            append(value | byte << shift)
            value = shift = 0
        else:
            value |= (byte & 0x7F) << shift
            shift += 7
    if shift:
        raise ValueError("row bytes (version 1) end inside a varint")
    return values


def _varint_at(data: bytes, i: int) -> tuple[int, int]:
    """The varint starting at `data[i]`, and the index after it."""
    value = shift = 0
    while True:
        byte = data[i]
        i += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, i
        shift += 7


class Row:
    """Rolling state of one directed relationship row (SPEC §2).

    `counts` is flat: index `direction * 3 + type` (out mention, reply, like,
    then in mention, reply, like). `dormant_since` is the deadline that passed
    while the row is dormant, `None` while it is active. `recent` maps the ids
    applied to `[event time, input position]`: those within the de-duplication
    window, and at least the last 32.

    >>> row = Row.first(1_000)
    >>> Row.from_bytes(row.to_bytes()).last_at
    1000
    >>> row.to_bytes()[0], Row.from_bytes(row.to_json_bytes()) == row
    (1, True)
    """

    __slots__ = (
        "cached_threshold",
        "counts",
        "dormant_since",
        "first_at",
        "gaps",
        "known_established",
        "last_at",
        "last_in_at",
        "last_out_at",
        "recent",
        "strength",
        "touch_at",
        "touches",
        "unwritten",
    )

    def __init__(
        self,
        counts: list[int],
        first_at: int,
        last_at: int,
        last_out_at: int | None,
        last_in_at: int | None,
        touch_at: int,
        touches: int,
        gaps: list[int],
        strength: float,
        dormant_since: int | None,
        recent: dict[str, list[int]],
    ) -> None:
        self.counts = counts
        """Interactions per direction and type, flat (see the class docstring)."""
        self.first_at = first_at
        """Earliest event time applied (ms)."""
        self.last_at = last_at
        """Latest event time applied (ms); the deadline counts from here."""
        self.last_out_at = last_out_at
        """Latest event time the owner acted (ms), or None."""
        self.last_in_at = last_in_at
        """Latest event time the contact acted (ms), or None."""
        self.touch_at = touch_at
        """Start of the current touch (ms)."""
        self.touches = touches
        """Touches so far."""
        self.gaps = gaps
        """Last `gap_window` differences between consecutive touch starts (ms)."""
        self.strength = strength
        """Decayed weighted count as of `last_at`."""
        self.dormant_since = dormant_since
        """Deadline that passed, while dormant; None while active."""
        self.recent = recent
        """Event ids applied recently -> `[event time, input position]`."""
        self.cached_threshold: int | None = None
        """Threshold derived from `gaps` (not serialised; reset when `gaps` change)."""
        self.known_established = False
        """The engine has seen this row established (not serialised; re-derived on load)."""
        self.unwritten = 0
        """Ids applied since the row was last persisted, none of which it forgets (not serialised)."""

    @classmethod
    def first(cls, ts: int) -> Row:
        """An empty row about to receive its first event at `ts`."""
        return cls([0, 0, 0, 0, 0, 0], ts, ts, None, None, ts, 0, [], 0.0, None, {})

    @property
    def dormant(self) -> bool:
        """True while the row is in a dormant episode."""
        return self.dormant_since is not None

    def to_bytes(self) -> bytes:
        """Version 1, the inverse of `from_bytes`: compact binary led by the byte 0x01.

        A header (`_HEAD`: version, flags, a mask of the non-zero counts,
        `last_at` as int64); `strength` as float64 unless it is an integer below
        2**53; the first recent id's input position as uint64; the length of the
        varint section, then the section: the non-zero counts, `first_at`,
        `touch_at` and the optional times as differences from `last_at`,
        `touches`, an integer `strength`, the gaps (how many, then each), then
        per recent id its UTF-8 length, its event time as a difference from the
        previous id's (from `last_at` for the first) and, after the first, its
        position as a difference from the previous one; last, the recent ids'
        UTF-8 bytes one after the other. Signed values are zig-zag encoded
        (0, -1, 1, -2 -> 0, 1, 2, 3), so they cost a byte while below 64.
        """
        values: list[int] = []
        push = values.append
        mask = 0
        c0, c1, c2, c3, c4, c5 = self.counts  # ValueError unless there are six
        if c0:
            mask |= 1
            push(c0)
        if c1:
            mask |= 2
            push(c1)
        if c2:
            mask |= 4
            push(c2)
        if c3:
            mask |= 8
            push(c3)
        if c4:
            mask |= 16
            push(c4)
        if c5:
            mask |= 32
            push(c5)
        last_at = self.last_at
        # zig-zag: d << 1 if d >= 0 else ~(d << 1), inline because this runs for every changed row
        d = last_at - self.first_at
        push(d << 1 if d >= 0 else ~(d << 1))
        d = last_at - self.touch_at
        push(d << 1 if d >= 0 else ~(d << 1))
        flags = 0
        if self.last_out_at is not None:
            flags |= _HAS_LAST_OUT
            d = last_at - self.last_out_at
            push(d << 1 if d >= 0 else ~(d << 1))
        if self.last_in_at is not None:
            flags |= _HAS_LAST_IN
            d = last_at - self.last_in_at
            push(d << 1 if d >= 0 else ~(d << 1))
        if self.dormant_since is not None:
            flags |= _HAS_DORMANT
            d = self.dormant_since - last_at
            push(d << 1 if d >= 0 else ~(d << 1))
        push(self.touches)
        parts = [b""]
        strength = self.strength
        if (
            0.0 <= strength < _MAX_EXACT_INT
            and float(strength).is_integer()
            and (strength or math.copysign(1.0, strength) > 0)
        ):
            flags |= _STRENGTH_IS_INT
            push(int(strength))
        else:
            parts.append(_DOUBLE.pack(strength))
        gaps = self.gaps
        push(len(gaps))
        for d in gaps:
            push(d << 1 if d >= 0 else ~(d << 1))
        ids: list[bytes] = []
        if self.recent:
            flags |= _HAS_RECENT
            recent = iter(self.recent.items())
            event_id, (ts, position) = next(recent)
            if not 0 <= position < 2**64:
                raise ValueError(f"input position {position} out of 0..2**64-1")
            parts.append(_POSITION.pack(position))
            encoded = event_id.encode()
            ids.append(encoded)
            push(len(encoded))
            d = ts - last_at
            push(d << 1 if d >= 0 else ~(d << 1))
            for event_id, (next_ts, next_position) in recent:
                encoded = event_id.encode()
                ids.append(encoded)
                push(len(encoded))
                d = next_ts - ts
                push(d << 1 if d >= 0 else ~(d << 1))
                d = next_position - position
                push(d << 1 if d >= 0 else ~(d << 1))
                ts, position = next_ts, next_position
        try:
            parts[0] = _HEAD.pack(ROW_FORMAT_VERSION, flags, mask, last_at)
            section = bytes(values) if max(values) < 0x80 else _varints(values)
        except struct.error as exc:
            raise ValueError(f"row field out of range: {exc}") from exc
        size = len(section)
        parts.append(bytes((size,)) if size < 0x80 else _varints((size,)))
        parts.append(section)
        parts += ids
        return b"".join(parts)

    def to_json_bytes(self) -> bytes:
        """Version 0, the compact JSON array written before version 1; `from_bytes` still reads it."""
        return orjson.dumps(
            [
                self.counts,
                self.first_at,
                self.last_at,
                self.last_out_at,
                self.last_in_at,
                self.touch_at,
                self.touches,
                self.gaps,
                self.strength,
                self.dormant_since,
                self.recent,
            ]
        )

    @classmethod
    def from_bytes(cls, data: bytes) -> Row:
        """Decode any version `to_bytes` wrote, told by the first byte; ValueError if it is none of them."""
        if not data:
            raise ValueError("empty row bytes")
        version = data[0]
        if version == ROW_FORMAT_VERSION:
            try:
                return cls._from_version_1(data)
            except (IndexError, struct.error, UnicodeDecodeError) as exc:
                raise ValueError(f"truncated or corrupt row bytes (version 1, {len(data)} bytes)") from exc
        if version == _JSON_ARRAY:
            fields: list[Any] = orjson.loads(data)
            return cls(*fields)
        raise ValueError(f"unknown row format version byte 0x{version:02x}")

    @classmethod
    def _from_version_1(cls, data: bytes) -> Row:
        _, flags, mask, last_at = _HEAD.unpack_from(data)
        if flags & ~_KNOWN_FLAGS or mask >> _COUNTS:
            raise ValueError(
                f"row bytes (version 1) with unknown flags 0x{flags:02x} or counts mask 0x{mask:02x}"
            )
        i = _HEAD.size
        strength: float = 0.0
        if not flags & _STRENGTH_IS_INT:
            (strength,) = _DOUBLE.unpack_from(data, i)
            i += _DOUBLE.size
        position = 0
        if flags & _HAS_RECENT:
            (position,) = _POSITION.unpack_from(data, i)
            i += _POSITION.size
        size = data[i]
        i += 1
        if size >= 0x80:
            size, i = _varint_at(data, i - 1)
        end = i + size
        values = _from_varints(data[i:end])
        counts = [0, 0, 0, 0, 0, 0]
        k = 0
        for index in _SET_BITS[mask]:
            counts[index] = values[k]
            k += 1
        # zig-zag back: z >> 1 ^ -(z & 1)
        z = values[k]
        first_at = last_at - (z >> 1 ^ -(z & 1))
        z = values[k + 1]
        touch_at = last_at - (z >> 1 ^ -(z & 1))
        k += 2
        last_out_at = last_in_at = dormant_since = None
        if flags & _HAS_LAST_OUT:
            z = values[k]
            last_out_at = last_at - (z >> 1 ^ -(z & 1))
            k += 1
        if flags & _HAS_LAST_IN:
            z = values[k]
            last_in_at = last_at - (z >> 1 ^ -(z & 1))
            k += 1
        if flags & _HAS_DORMANT:
            z = values[k]
            dormant_since = last_at + (z >> 1 ^ -(z & 1))
            k += 1
        touches = values[k]
        k += 1
        if flags & _STRENGTH_IS_INT:
            strength = float(values[k])
            k += 1
        n_gaps = values[k]
        k += 1
        gaps = [z >> 1 ^ -(z & 1) for z in values[k : k + n_gaps]]
        k += n_gaps
        recent: dict[str, list[int]] = {}
        if flags & _HAS_RECENT:
            start, end = end, end + values[k]
            z = values[k + 1]
            ts = last_at + (z >> 1 ^ -(z & 1))
            recent[data[start:end].decode()] = [ts, position]
            for j in range(k + 2, len(values), 3):
                start, end = end, end + values[j]
                z = values[j + 1]
                ts += z >> 1 ^ -(z & 1)
                z = values[j + 2]
                position += z >> 1 ^ -(z & 1)
                recent[data[start:end].decode()] = [ts, position]
            k = len(values)  # the recent ids take every value left
        if k != len(values) or end != len(data):
            raise ValueError(f"row bytes (version 1) do not end where their fields do ({len(data)} bytes)")
        return cls(
            counts,
            first_at,
            last_at,
            last_out_at,
            last_in_at,
            touch_at,
            touches,
            gaps,
            strength,
            dormant_since,
            recent,
        )

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Row) and self.to_bytes() == other.to_bytes()

    __hash__ = None  # type: ignore[assignment]

    def __repr__(self) -> str:
        return f"Row({self.to_json_bytes().decode()})"
