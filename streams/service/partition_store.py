"""One owner partition's state in its table: opening it from the stored keys, and the records a checkpoint writes."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from streams.engine.digests import Digests
from streams.engine.feedback import feedback_state_from_bytes
from streams.engine.row_codec import RowCodec
from streams.engine.rules import Rules
from streams.service.deadline_store import EXPIRY_PREFIX, TIMER_PREFIX, StoredDeadlines
from streams.service.erasure_log import ErasureLog
from streams.service.owner_partition import Checkpoint, OwnerPartition, Resume
from streams.service.row_store import PendingWrites, RowTable, StoredRows, row_key
from streams.settings import Settings

__all__ = [
    "BEGUN_KEY",
    "DIGESTS_KEY",
    "ERASURES_KEY",
    "FEEDBACK_KEY",
    "RESUME_KEY",
    "checkpoint_records",
    "open_partition",
]

RESUME_KEY = b"__resume__"
"""Where a checkpoint left the partition (`Resume`): written last."""
BEGUN_KEY = b"__begun__"
"""Written first in a checkpoint, with the bytes of the `RESUME_KEY` written last: a restart that finds the two
equal knows no checkpoint was cut short, so its saved row counts match the rows."""
ERASURES_KEY = b"__erasures__"
DIGESTS_KEY = b"__digests__"
FEEDBACK_KEY = b"__feedback__"


def open_partition(
    partition: int,
    settings: Settings,
    table: RowTable,
    codec: RowCodec,
    sources: Iterable[str],
    capacity: int,
    pending: PendingWrites,
) -> tuple[OwnerPartition[Any], bool]:
    """The partition as its last checkpoint left it, and whether that checkpoint's counts spared a row scan.

    Its rows and deadlines stay in `table`, at most `capacity` of each in
    memory. When the last checkpoint was written whole, nothing else is read:
    the resume record carries the row counts and the deadlines are read as
    they come due. Otherwise (an earlier format, a checkpoint cut short) the
    engine scans the rows once and holds every deadline in memory until the
    next checkpoint writes them.
    """
    rows = StoredRows(table, codec, Rules(settings), capacity, pending)
    deadlines = (
        StoredDeadlines(table, TIMER_PREFIX, capacity, pending),
        StoredDeadlines(table, EXPIRY_PREFIX, capacity, pending),
    )
    keys = (RESUME_KEY, BEGUN_KEY, ERASURES_KEY, DIGESTS_KEY, FEEDBACK_KEY)
    stored, begun, erasures, digests, feedback = (table.get(key) for key in keys)
    resume = None if stored is None else Resume.from_bytes(stored)
    counts = None if resume is None or begun != stored else resume.counts
    if counts is not None:
        rows.restore_count(counts.rows)
    part: OwnerPartition[Any] = OwnerPartition(
        partition,
        settings,
        rows,
        sources,
        resume,
        None if erasures is None else ErasureLog.from_bytes(erasures),
        None if digests is None or not settings.digests else Digests.from_bytes(digests, settings.digest_top),
        None if feedback is None else feedback_state_from_bytes(feedback),
        deadlines,
        counts,
    )
    return part, counts is not None


def checkpoint_records(done: Checkpoint[Any], codec: RowCodec) -> list[tuple[bytes, bytes | None]]:
    """The table records of a checkpoint, in the order they must be written.

    `BEGUN_KEY` first and `RESUME_KEY` last (while `done.replaying`, the
    loaded checkpoint stands: no `BEGUN_KEY`). A deadline entry goes before its row
    and its deletion after it, so any prefix of the records (a changelog cut
    short) still holds an entry for the deadline of every row in it.
    """
    resume = done.resume.to_bytes()
    encoded = iter(codec.encode([row for _, row in done.rows if row is not None]))
    records: list[tuple[bytes, bytes | None]] = [] if done.replaying else [(BEGUN_KEY, resume)]
    records += done.deadlines
    records += [(row_key(key), None if row is None else next(encoded)) for key, row in done.rows]
    records += done.dropped_deadlines
    if done.erasures is not None:
        records.append((ERASURES_KEY, done.erasures.to_bytes()))
    if done.digests is not None:
        records.append((DIGESTS_KEY, done.digests))
    if done.feedback is not None:
        records.append((FEEDBACK_KEY, done.feedback))
    records.append((RESUME_KEY, resume))
    return records
