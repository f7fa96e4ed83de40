"""Garbage-collector thresholds for a process that holds millions of long-lived, acyclic rows."""

from __future__ import annotations

import gc

__all__ = ["ROW_HEAVY_THRESHOLDS", "tune_garbage_collector"]

ROW_HEAVY_THRESHOLDS = (100_000, 50, 100)
"""`gc.set_threshold` values: a young collection per 100,000 net allocations instead of 700.

With CPython's defaults every 70,000 allocations or so walk the whole old
generation, which here is the rows table (about 10 tracked objects per row), so
collecting costs grow with the table: 13 full collections took half the CPU of a
200,000-event replay of the mention profile (`make bench-replay` prints the
replay's rate with these thresholds). Rows hold no reference cycles; reference
counting frees them, and cyclic garbage (Faust's and asyncio's) is still
collected, later.
"""


def tune_garbage_collector() -> None:
    """Apply `ROW_HEAVY_THRESHOLDS` to this process (the replay and the worker call it once at start)."""
    gc.set_threshold(*ROW_HEAVY_THRESHOLDS)
