"""SNAP CollegeMsg (Panzarasa, Opsahl & Carley 2009; Leskovec & Krevl 2014) as interaction events."""

from __future__ import annotations

import gzip
import zlib
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from streams.engine.events import INTERACTION_TYPES

__all__ = ["COLLEGEMSG", "collegemsg_events", "event_type_of_row", "read_rows"]

COLLEGEMSG = Path(__file__).resolve().parents[2] / "data" / "CollegeMsg.txt.gz"
"""The copy the repository carries (provenance and citation in `data/README.md`)."""


def event_type_of_row(row_number: int) -> str:
    """The data set has no types: derive one from a CRC-32 of the 1-based row number."""
    return INTERACTION_TYPES[zlib.crc32(str(row_number).encode()) % 3]


def read_rows(path: Path) -> list[list[str]]:
    """The `SRC DST UNIXTIME` rows of the file, plain or gzip-compressed (by its `.gz` suffix)."""
    text = gzip.decompress(path.read_bytes()).decode() if path.suffix == ".gz" else path.read_text()
    return [line.split() for line in text.splitlines() if line.strip()]


def collegemsg_events(path: Path, repeat: int = 1) -> Iterator[dict[str, Any]]:
    """Yield `{"id", "type", "actor_id", "target_id", "ts"}` per `SRC DST UNIXTIME` row, in file order.

    With `repeat > 1` the file is played again with ids suffixed `-r<N>` and
    times shifted past the previous copy (for benchmarks on larger inputs).
    """
    rows = read_rows(path)
    span_ms = (int(rows[-1][2]) - int(rows[0][2])) * 1000 + 86_400_000
    for copy in range(repeat):
        shift = copy * span_ms
        suffix = f"-r{copy}" if copy else ""
        for number, (src, dst, unixtime) in enumerate(rows, start=1):
            yield {
                "id": f"cm{number}{suffix}",
                "type": event_type_of_row(number),
                "actor_id": src,
                "target_id": dst,
                "ts": int(unixtime) * 1000 + shift,
            }
