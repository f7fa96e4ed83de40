"""Row bytes (format version 1) through the compiled core, or the reference `Row.to_bytes` / `Row.from_bytes`."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from streams.engine.row import Row

__all__ = ["CompiledCoreMissing", "RowCodec", "row_codec"]


class CompiledCoreMissing(RuntimeError):
    """`STREAMS_COMPILED_CORE` is on but the compiled module `streams_core` is not installed."""


class RowCodec:
    """The reference: `Row.to_bytes` and `Row.from_bytes`, one row at a time."""

    def encode(self, rows: Sequence[Row]) -> list[bytes]:
        """`[row.to_bytes() for row in rows]`."""
        return [row.to_bytes() for row in rows]

    def decode(self, data: bytes) -> Row:
        """`Row.from_bytes(data)`."""
        return Row.from_bytes(data)


class CompiledRowCodec(RowCodec):
    """The compiled core's codec, the same bytes and rows as the reference.

    The core decodes clean version-1 rows whose varints fit 63 bits and hands
    anything else back (`None`): those bytes, and a batch of rows the core
    refuses to encode, go through the reference, so every error raised is the
    reference's own.
    """

    def __init__(self, core: Any) -> None:
        self._encode_rows = core.encode_rows
        self._decode_row = core.decode_row

    def encode(self, rows: Sequence[Row]) -> list[bytes]:
        """`[row.to_bytes() for row in rows]`, in one call of the core."""
        try:
            found: list[bytes] = self._encode_rows(rows if isinstance(rows, list) else list(rows))
        except Exception:
            return super().encode(rows)
        return found

    def decode(self, data: bytes) -> Row:
        """`Row.from_bytes(data)`: by the core when it is sure of the bytes."""
        row: Row | None = self._decode_row(Row, data)
        return Row.from_bytes(data) if row is None else row


def row_codec(compiled: bool) -> RowCodec:
    """The compiled codec (`STREAMS_COMPILED_CORE`, the default) or the reference; fails loudly when the core is missing."""
    if not compiled:
        return RowCodec()
    try:
        import streams_core  # noqa: PLC0415 - optional until asked for
    except ImportError as exc:
        raise CompiledCoreMissing(
            "STREAMS_COMPILED_CORE is on but the compiled core `streams_core` is not installed: "
            "run `make install` (builds core/ with maturin), or set STREAMS_COMPILED_CORE=false"
        ) from exc
    return CompiledRowCodec(streams_core)
