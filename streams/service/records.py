"""Records of the owner-keyed stream: row updates with the watermark markers that cover them."""

from __future__ import annotations

import zlib
from typing import Any, NamedTuple

import orjson

__all__ = [
    "NOTHING",
    "OWNER_RECORD_FORMAT_VERSION",
    "ErasureFields",
    "FeedbackFields",
    "Marker",
    "OwnerRecord",
    "Split",
    "decode_owner_record",
    "encode_owner_record",
    "input_position",
    "source_name",
    "source_partition",
    "source_topic",
]

# [ts, event_id, owner, contact, direction, type, source index, input offset]
UpdateFields = list[Any]
# [user, ts, source index, input offset]
ErasureFields = list[Any]
# [ts, owner, contact, action, until (0: none), source index, input offset]
FeedbackFields = list[Any]
Marker = tuple[int | None, bool]  # (max event time sent, idle)


class Split(NamedTuple):
    """One input batch, split for the owner partitions (`Rekeyer.split`)."""

    by_partition: dict[int, list[UpdateFields]]
    """Row updates per owner partition, in input order."""
    sources: list[str]
    """Input partitions the batch touched, erasures' included: updates and erasures index it."""
    erasures: list[ErasureFields]
    """Erasure requests (docs/semantics.md §9): every owner partition gets each one."""
    feedback: dict[int, list[FeedbackFields]] = {}
    """Feedback (docs/semantics.md §11) per owner partition, in input order."""


NOTHING = Split({}, [], [])
"""A split with no updates and no erasures: what markers alone go with."""


OWNER_RECORD_FORMAT_VERSION = 1
"""The leading byte of the records `encode_owner_record` writes without erasures; version 0 is the bare
JSON object (`{`)."""
OWNER_RECORD_WITH_ERASURES_VERSION = 2
"""The leading byte of records that carry erasures: a version-1 reader refuses them rather than drop one."""
OWNER_RECORD_WITH_FEEDBACK_VERSION = 3
"""The leading byte of records that carry feedback: older readers refuse them rather than drop it."""
_VERSION_1 = bytes((OWNER_RECORD_FORMAT_VERSION,))
_VERSION_2 = bytes((OWNER_RECORD_WITH_ERASURES_VERSION,))
_VERSION_3 = bytes((OWNER_RECORD_WITH_FEEDBACK_VERSION,))
_JSON_VERSIONS = (
    OWNER_RECORD_FORMAT_VERSION,
    OWNER_RECORD_WITH_ERASURES_VERSION,
    OWNER_RECORD_WITH_FEEDBACK_VERSION,
)
_JSON_OBJECT = ord("{")


def source_name(topic: str, partition: int) -> str:
    """How records name an input partition."""
    return f"{topic}:{partition}"


def source_topic(source: str) -> str:
    """The topic of an input partition named by `source_name`."""
    return source.rsplit(":", 1)[0]


def source_partition(source: str) -> int:
    """The partition of an input partition named by `source_name`."""
    return int(source.rsplit(":", 1)[1])


def input_position(source: str, offset: int) -> int:
    """An input record's position as one integer: 24 bits of its partition's CRC-32, 40 of offset."""
    return (zlib.crc32(source.encode()) & 0xFFFFFF) << 40 | offset


class OwnerRecord(NamedTuple):
    """One record of the owner-keyed stream."""

    sources: list[str]
    """Input partitions the updates came from (updates refer to them by index)."""
    updates: list[UpdateFields]
    """Row updates for this partition, in input order."""
    markers: dict[str, Marker]
    """Input partition -> (max event time sent, idle); covers `updates`."""
    erasures: list[ErasureFields] = []
    """Erasure requests (docs/semantics.md §9), every owner partition gets each one."""
    feedback: list[FeedbackFields] = []
    """Feedback for owners of this partition (docs/semantics.md §11), in input order."""


def encode_owner_record(
    sources: list[str],
    updates: list[UpdateFields],
    markers: dict[str, Marker],
    erasures: list[ErasureFields] | None = None,
    feedback: list[FeedbackFields] | None = None,
) -> bytes:
    """Row updates and erasures followed (logically) by the markers that cover them; neither = a heartbeat.

    Version 1: the byte 0x01, then the JSON object `{"s": sources, "u": updates,
    "wm": markers}` (orjson). JSON stays inside because orjson encodes and decodes
    it faster than a binary layout built in Python. Version 2, for a record with
    erasures: the byte 0x02, then the same object with `"x": erasures`. Version 3,
    for a record with feedback: the byte 0x03, and `"f": feedback` too.
    """
    if feedback:
        obj = {"s": sources, "u": updates, "wm": markers, "x": erasures or [], "f": feedback}
        return _VERSION_3 + orjson.dumps(obj)
    if erasures:
        return _VERSION_2 + orjson.dumps({"s": sources, "u": updates, "wm": markers, "x": erasures})
    return _VERSION_1 + orjson.dumps({"s": sources, "u": updates, "wm": markers})


def decode_owner_record(raw: bytes) -> OwnerRecord:
    """Inverse of `encode_owner_record`, for every version: also the bare JSON object written before version 1.

    >>> decode_owner_record(encode_owner_record(["t:0"], [], {"t:0": (5, False)})).markers
    {'t:0': (5, False)}
    """
    if not raw:
        raise ValueError("empty owner record")
    version = raw[0]
    if version in _JSON_VERSIONS:
        obj = orjson.loads(memoryview(raw)[1:])
    elif version == _JSON_OBJECT:
        obj = orjson.loads(raw)
    else:
        raise ValueError(f"unknown owner record format version byte 0x{version:02x}")
    markers = {s: (m[0], m[1]) for s, m in obj.get("wm", {}).items()}
    return OwnerRecord(obj.get("s", []), obj.get("u", []), markers, obj.get("x", []), obj.get("f", []))
