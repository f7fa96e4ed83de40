"""The compiled row codec (core/src/rowcodec.rs) against the reference `Row.to_bytes` / `Row.from_bytes`."""

from __future__ import annotations

import sys

import pytest
import streams_core
from hypothesis import given
from hypothesis import strategies as st

from streams.engine.row import Row
from streams.engine.row_codec import CompiledCoreMissing, CompiledRowCodec, RowCodec, row_codec
from tests.engine.test_row import (
    BUSY_ROW_VERSION_0,
    BUSY_ROW_VERSION_1,
    ONE_EVENT_ROW_VERSION_1,
    OUT_OF_RANGE,
    TS,
    fields,
    row_strategy,
    rows,
)

COMPILED = row_codec(compiled=True)
REFERENCE = RowCodec()

rows63 = row_strategy(counts=st.integers(0, 2**63 - 1), gaps=st.integers(-(2**61), 2**61)).filter(
    lambda row: (
        all(abs(t) < 2**60 for t in (row.first_at, row.last_at, row.touch_at))
        and all(t is None or abs(t) < 2**60 for t in (row.last_out_at, row.last_in_at, row.dormant_since))
        and all(abs(ts) < 2**60 and p < 2**61 for ts, p in row.recent.values())
    )
)
"""Rows whose every varint (differences zig-zagged) fits the core's 63 bits: every row the service makes."""


def reference_decode(data: bytes) -> Row | type[ValueError]:
    try:
        return Row.from_bytes(data)
    except ValueError:
        return ValueError


@given(rows)
def test_the_codec_writes_the_reference_bytes_for_any_row(row: Row) -> None:
    assert COMPILED.encode([row]) == [row.to_bytes()]


@given(st.lists(rows63, max_size=8))
def test_the_core_itself_writes_the_reference_bytes_for_rows_within_64_bits(batch: list[Row]) -> None:
    # the core, not the codec's fallback, must handle every row the service makes
    assert streams_core.encode_rows(batch) == [row.to_bytes() for row in batch]


@given(rows63)
def test_the_core_decodes_rows_within_64_bits_to_the_reference_row(row: Row) -> None:
    data = row.to_bytes()
    decoded = streams_core.decode_row(Row, data)
    assert decoded is not None
    assert fields(decoded) == fields(Row.from_bytes(data))
    assert type(decoded.strength) is float
    assert all(type(pair) is list for pair in decoded.recent.values())
    assert COMPILED.decode(data) == row


@given(rows)
def test_the_codec_decodes_any_row_as_the_reference_does(row: Row) -> None:
    data = row.to_bytes()
    decoded = streams_core.decode_row(Row, data)
    if decoded is not None:  # else the codec hands the bytes to the reference
        assert fields(decoded) == fields(Row.from_bytes(data))
    assert fields(COMPILED.decode(data)) == fields(row)


def mutations(data: bytes) -> st.SearchStrategy[bytes]:
    """`data` truncated, extended, or with bytes overwritten."""
    return st.one_of(
        st.integers(0, len(data)).map(lambda n: data[:n]),
        st.binary(min_size=1, max_size=4).map(lambda tail: data + tail),
        st.lists(st.tuples(st.integers(0, len(data) - 1), st.integers(0, 255)), min_size=1, max_size=4).map(
            lambda changes: _overwrite(data, changes)
        ),
    )


def _overwrite(data: bytes, changes: list[tuple[int, int]]) -> bytes:
    out = bytearray(data)
    for at, value in changes:
        out[at] = value
    return bytes(out)


@given(rows.map(Row.to_bytes).flatmap(mutations) | st.binary(max_size=64))
def test_corrupt_bytes_are_the_references_to_judge(data: bytes) -> None:
    decoded = streams_core.decode_row(Row, data)
    expected = reference_decode(data)
    if decoded is not None:
        assert expected is not ValueError, "the core read bytes the reference refuses"
        assert fields(decoded) == fields(expected)  # type: ignore[arg-type]
    got: Row | type[ValueError]
    try:
        got = COMPILED.decode(data)
    except ValueError:
        got = ValueError
    assert got is expected or fields(got) == fields(expected)  # type: ignore[arg-type]


@pytest.mark.parametrize("data", [BUSY_ROW_VERSION_1, ONE_EVENT_ROW_VERSION_1, BUSY_ROW_VERSION_0])
def test_every_format_version_decodes_through_the_codec(data: bytes) -> None:
    assert fields(COMPILED.decode(data)) == fields(Row.from_bytes(data))


def test_a_repeated_recent_id_is_left_to_the_reference() -> None:
    one = Row([0, 0, 1, 0, 0, 0], TS, TS, TS, None, TS, 1, [], 1.0, None, {"a": [TS, 5], "b": [TS + 1, 6]})
    data = one.to_bytes().replace(b"ab", b"aa")
    assert streams_core.decode_row(Row, data) is None
    assert COMPILED.decode(data).recent == {"a": [TS + 1, 6]}


@OUT_OF_RANGE
def test_rows_out_of_the_format_range_raise_the_references_error(row: Row, message: str) -> None:
    good = Row.first(TS)
    with pytest.raises(ValueError, match=message):
        COMPILED.encode([good, row])
    with pytest.raises(ValueError, match=r"row|position"):  # the core's own message
        streams_core.encode_rows([row])


def test_the_setting_picks_the_codec_and_a_missing_core_fails_loudly(monkeypatch: pytest.MonkeyPatch) -> None:
    assert type(row_codec(compiled=True)) is CompiledRowCodec
    assert type(row_codec(compiled=False)) is RowCodec
    monkeypatch.setitem(sys.modules, "streams_core", None)  # import fails
    with pytest.raises(CompiledCoreMissing, match="make install"):
        row_codec(compiled=True)
    assert type(row_codec(compiled=False)) is RowCodec
