"""Owner-stream records: today's version and the bare JSON written before it decode, any record round-trips."""

from __future__ import annotations

import orjson
import pytest
from hypothesis import given
from hypothesis import strategies as st

from streams.service.records import (
    OWNER_RECORD_FORMAT_VERSION,
    OWNER_RECORD_WITH_ERASURES_VERSION,
    OwnerRecord,
    decode_owner_record,
    encode_owner_record,
)

# Written by `encode_owner_record` before version 1 (commit 88b1f9b), byte for byte: a JSON object.
RECORD_VERSION_0 = (
    b'{"s":["interactions:0","interactions:3"],"u":[[1704067214252,"t1-000000000","u04831","u21866",0,0,0,'
    b'16570143474384],[1704067214252,"t1-000000000","u21866","u04831",1,0,1,7]],'
    b'"wm":{"interactions:0":[1704067214252,false],"interactions:3":[null,true]}}'
)
HEARTBEAT_VERSION_0 = b'{"s":[],"u":[],"wm":{"interactions:1":[null,false]}}'


def assert_record(record: OwnerRecord) -> None:
    assert record.sources == ["interactions:0", "interactions:3"]
    assert record.updates == [
        [1704067214252, "t1-000000000", "u04831", "u21866", 0, 0, 0, 16570143474384],
        [1704067214252, "t1-000000000", "u21866", "u04831", 1, 0, 1, 7],
    ]
    assert record.markers == {"interactions:0": (1704067214252, False), "interactions:3": (None, True)}


def test_records_written_before_version_1_decode_field_by_field() -> None:
    assert_record(decode_owner_record(RECORD_VERSION_0))
    heartbeat = decode_owner_record(HEARTBEAT_VERSION_0)
    assert heartbeat == OwnerRecord([], [], {"interactions:1": (None, False)})


def test_version_1_is_the_version_byte_then_the_same_json() -> None:
    record = decode_owner_record(RECORD_VERSION_0)
    encoded = encode_owner_record(record.sources, record.updates, record.markers)
    assert encoded == bytes((OWNER_RECORD_FORMAT_VERSION,)) + RECORD_VERSION_0
    assert_record(decode_owner_record(encoded))


def test_the_release_before_version_1_cannot_read_it() -> None:
    """It decoded records with `orjson.loads`: every worker of a deployment must run the same release."""
    with pytest.raises(orjson.JSONDecodeError):
        orjson.loads(encode_owner_record([], [], {"interactions:1": (None, False)}))


@pytest.mark.parametrize("first", [0x00, 0x04, 0x5B, 0xFF])
def test_an_unknown_version_byte_is_a_value_error_naming_it(first: int) -> None:
    with pytest.raises(ValueError, match=f"unknown owner record format version byte 0x{first:02x}"):
        decode_owner_record(bytes((first,)) + RECORD_VERSION_0[1:])


def test_a_record_with_erasures_is_version_2_which_a_version_1_reader_refuses() -> None:
    """Version 1 readers raise on any byte but 0x01 and `{`: a rolling upgrade stops rather than drop an erasure."""
    erasures = [["bob", 1704067214252, 0, 12]]
    encoded = encode_owner_record(["erasures:0"], [], {}, erasures)
    assert encoded[0] == OWNER_RECORD_WITH_ERASURES_VERSION == 2
    assert decode_owner_record(encoded) == OwnerRecord(["erasures:0"], [], {}, erasures)
    assert encode_owner_record(["erasures:0"], [], {}, [])[0] == OWNER_RECORD_FORMAT_VERSION


def test_an_empty_record_is_a_value_error() -> None:
    with pytest.raises(ValueError, match="empty owner record"):
        decode_owner_record(b"")


sources = st.lists(st.text(min_size=1, max_size=30), max_size=4, unique=True)
updates = st.lists(
    st.tuples(
        st.integers(946_684_800_000, 4_102_444_799_999),
        st.text(max_size=40),
        st.text(max_size=20),
        st.text(max_size=20),
        st.integers(0, 1),
        st.integers(0, 2),
        st.integers(0, 3),
        st.integers(0, 2**64 - 1),
    ).map(list),
    max_size=50,
)
markers = st.dictionaries(
    st.text(min_size=1, max_size=30), st.tuples(st.none() | st.integers(0, 2**62), st.booleans())
)


@given(sources, updates, markers)
def test_any_record_round_trips(
    sources: list[str], updates: list[list[object]], markers: dict[str, tuple[int | None, bool]]
) -> None:
    encoded = encode_owner_record(sources, updates, markers)
    assert encoded[0] == OWNER_RECORD_FORMAT_VERSION
    assert decode_owner_record(encoded) == OwnerRecord(sources, updates, markers)
