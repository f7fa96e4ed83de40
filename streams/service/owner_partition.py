"""One owner partition's live state: engine, watermark tracker, rows to persist, records safe to ack."""

from __future__ import annotations

import struct
from collections import deque
from collections.abc import Callable, Iterable, MutableMapping, Sequence
from typing import Any, Generic, NamedTuple, TypeVar

import orjson

from streams.engine.alerts import Alert
from streams.engine.digests import Digest, Digests
from streams.engine.engine import RelationshipEngine, RowCounts
from streams.engine.events import RowUpdate
from streams.engine.feedback import HeldFeedback, RowFeedback, feedback_state_to_bytes
from streams.engine.row import Row
from streams.engine.watermark import WatermarkTracker
from streams.service.deadline_store import StoredDeadlines
from streams.service.erasure_log import ErasureLog
from streams.service.records import OwnerRecord, input_position, source_topic
from streams.service.row_store import StoredRows
from streams.settings import Settings

__all__ = ["Checkpoint", "OwnerPartition", "Resume"]

Handle = TypeVar("Handle")
RowKey = tuple[str, str]

RESUME_FORMAT_VERSION = 2
"""The leading byte `Resume.to_bytes` writes: 2 adds the row counts; 1 had none; version 0 is the JSON object
of `to_json` (starts with `{`)."""
_RESUME_HEAD = struct.Struct("<BBqqqI")  # version, flags, last_offset, watermark, replay_from, sources
_RESUME_SOURCE = struct.Struct("<qH")  # highest offset received, UTF-8 length of the name that follows
_RESUME_COUNTS = struct.Struct("<QQQ")  # rows, established, dormant (version 2, flag _RESUME_HAS_COUNTS)
_RESUME_CLOSED = 1
_RESUME_HAS_REPLAY_FROM = 2
_RESUME_HAS_COUNTS = 4


class Resume(NamedTuple):
    """Where a checkpoint left the partition; written after its rows, read back on restart."""

    last_offset: int
    """Offset of the last owner-stream record handled before the checkpoint."""
    watermark: int
    """The engine's watermark: every update handled so far below it was applied, none above it."""
    closed: bool
    """Updates exactly at `watermark` were applied too."""
    received: dict[str, int]
    """Per input partition, the highest input offset received."""
    replay_from: int | None = None
    """Offset of the oldest record not acked (held updates): a restart must handle it and every later one."""
    counts: RowCounts | None = None
    """The engine's row counts at the checkpoint, so a restart need not scan the rows (None: before version 2)."""

    def to_json(self) -> dict[str, Any]:
        """JSON-ready form."""
        return {
            "q": self.last_offset,
            "w": self.watermark,
            "c": self.closed,
            "r": self.received,
            "f": self.replay_from,
        }

    @classmethod
    def from_json(cls, obj: dict[str, Any]) -> Resume:
        """Inverse of `to_json`."""
        return cls(obj["q"], obj["w"], obj["c"], obj["r"], obj.get("f"))

    def to_bytes(self) -> bytes:
        """Version 2: `_RESUME_HEAD`, per input partition its offset, name length and UTF-8 name, then the counts.

        >>> Resume.from_bytes(Resume(7, 1_000, True, {"in:0": 41}, counts=RowCounts(3, 2, 1)).to_bytes())
        Resume(last_offset=7, watermark=1000, closed=True, received={'in:0': 41}, replay_from=None, counts=RowCounts(rows=3, established=2, dormant=1))
        """
        flags = (
            (_RESUME_CLOSED if self.closed else 0)
            | (0 if self.replay_from is None else _RESUME_HAS_REPLAY_FROM)
            | (0 if self.counts is None else _RESUME_HAS_COUNTS)
        )
        try:
            parts = [
                _RESUME_HEAD.pack(
                    RESUME_FORMAT_VERSION,
                    flags,
                    self.last_offset,
                    self.watermark,
                    self.replay_from or 0,
                    len(self.received),
                )
            ]
            for source, offset in self.received.items():
                name = source.encode()
                parts += [_RESUME_SOURCE.pack(offset, len(name)), name]
            if self.counts is not None:
                parts.append(_RESUME_COUNTS.pack(*self.counts))
        except struct.error as exc:
            raise ValueError(f"resume field out of range: {exc}") from exc
        return b"".join(parts)

    @classmethod
    def from_bytes(cls, data: bytes) -> Resume:
        """Decode any version `to_bytes` wrote (also the JSON object written before version 1)."""
        if not data:
            raise ValueError("empty resume bytes")
        version = data[0]
        if version == ord("{"):
            return cls.from_json(orjson.loads(data))
        if version not in (1, RESUME_FORMAT_VERSION):
            raise ValueError(f"unknown resume format version byte 0x{version:02x}")
        try:
            _, flags, last_offset, watermark, replay_from, sources = _RESUME_HEAD.unpack_from(data)
            i = _RESUME_HEAD.size
            received: dict[str, int] = {}
            for _ in range(sources):
                offset, size = _RESUME_SOURCE.unpack_from(data, i)
                i += _RESUME_SOURCE.size
                received[data[i : i + size].decode()] = offset
                i += size
            counts = None
            if flags & _RESUME_HAS_COUNTS:
                counts = RowCounts(*_RESUME_COUNTS.unpack_from(data, i))
                i += _RESUME_COUNTS.size
        except struct.error as exc:
            raise ValueError(f"truncated resume bytes ({len(data)} bytes)") from exc
        if i != len(data):
            raise ValueError(f"resume bytes do not end where their fields do ({i} of {len(data)} bytes)")
        return cls(
            last_offset,
            watermark,
            bool(flags & _RESUME_CLOSED),
            received,
            replay_from if flags & _RESUME_HAS_REPLAY_FROM else None,
            counts,
        )


class Checkpoint(NamedTuple, Generic[Handle]):
    """What must reach the changelog before `acks` may be acked."""

    rows: list[tuple[RowKey, Row | None]]
    """Rows changed since the last checkpoint (None: reclaimed, delete it)."""
    resume: Resume
    """Written after the rows."""
    acks: list[Handle]
    """Records whose every update is applied and covered by `rows`."""
    erasures: ErasureLog | None = None
    """The engine's erasures, when they changed since the last checkpoint (written with the rows)."""
    digests: bytes | None = None
    """The digests waiting for their day (`Digests.to_bytes`), when they changed since the last checkpoint."""
    feedback: bytes | None = None
    """What feedback says about rows (`feedback_state_to_bytes`), when it changed since the last checkpoint."""
    deadlines: Sequence[tuple[bytes, bytes | None]] = ()
    """Deadline entries set since the last checkpoint (`StoredDeadlines`): written before the rows."""
    dropped_deadlines: Sequence[tuple[bytes, bytes | None]] = ()
    """Deadline entries popped or found stale since: deleted after the rows."""
    replaying: bool = False
    """The partition re-handles what its loaded checkpoint covered: that checkpoint stands (`resume` is it)."""


class OwnerPartition(Generic[Handle]):
    """Feeds one partition's records to its engine and decides when their offsets may be committed.

    A record is acked only when all its updates are applied *and* the rows
    they changed are written (a checkpoint), so held updates keep the
    committed offset behind them and a crash re-delivers them. Acks go out in
    offset order (a record waits for every earlier one): faust-streaming
    0.15.3 commits past a single unacked record at the head of a partition
    (`Consumer._new_offset` treats `min(acked) - committed == 1` as no gap),
    which would lose that record's held updates on restart. On restart the
    last checkpoint's `Resume` tells which re-delivered updates were already
    applied (those below its watermark); updates re-sent by a re-read of the
    input are recognised by input offset (an input partition's updates arrive
    in offset order); and each row remembers the input positions it applied
    recently, which covers rows written by a checkpoint cut short.

    Records are expected in offset order without gaps, from the checkpoint's
    `replay_from` on (without a checkpoint, from the partition's start):
    `missing_before` tells the caller which offsets the consumer skipped
    (read them from the topic and handle them first), and a
    record below the next expected offset was handled already (acked, not
    applied again). This does not trust the consumer's committed offset,
    which faust-streaming 0.15.3 can move past records never acked.

    >>> part = OwnerPartition(0, Settings(), {}, ["t:0"])
    >>> record = OwnerRecord(["t:0"], [[1_000_000_000_000, "e1", "a", "b", 0, 0, 0, 7]], {"t:0": (1_000_000_000_000, False)})
    >>> part.handle(record, "r1", offset=0, now_ms=0, record_ms=0)
    []
    >>> part.checkpoint().acks, len(part.engine.held)
    ([], 1)
    """

    def __init__(
        self,
        partition: int,
        settings: Settings,
        rows: MutableMapping[RowKey, Row],
        sources: Iterable[str],
        resume: Resume | None = None,
        erasures: ErasureLog | None = None,
        digests: Digests | None = None,
        feedback: dict[RowKey, RowFeedback] | None = None,
        deadlines: tuple[StoredDeadlines, StoredDeadlines] | None = None,
        counts: RowCounts | None = None,
    ) -> None:
        self.partition = partition
        self.revoked = False
        """Set when a rebalance took the partition away: nothing more may be written for it."""
        self._pending: dict[int, list[Any]] = {}
        self._unacked: deque[list[Any]] = deque()  # [handle, updates not applied yet, offset]
        self._dirty: set[RowKey] = set()
        self._next_tag = 0
        self._last_offset = -1
        self.skipped = 0
        """Updates skipped because they were applied before a restart or re-sent by the input."""
        self.next_offset: int | None = 0
        """The owner-stream offset expected next (None: whatever comes first, after a checkpoint written before
        `replay_from` existed). Without a checkpoint nothing was acked: every record from the partition's start."""
        self.handled_before = 0
        """Records delivered again after being handled (below `next_offset`)."""
        self.deadlines = deadlines
        """The dormancy and reclaim deadlines in the partition's store (None: the engine's in memory)."""
        timers, expiries = (None, None) if deadlines is None else deadlines
        self.engine = RelationshipEngine(
            settings,
            rows,
            on_row_changed=self._changed,
            on_applied=self._applied,
            protect_unwritten=True,
            on_row_removed=self._removed,
            timers=timers,
            expiries=expiries,
            counts=None if deadlines is None else counts,
        )
        if timers is not None and expiries is not None:
            timers.bind(self.engine.deadline_of)
            expiries.bind(self.engine.expiry_of)
        # The tracker starts afresh: re-delivered markers rebuild it.
        sources = list(sources)
        self.tracker = WatermarkTracker(
            sources,
            settings.allowed_lateness_ms,
            settings.clock == "hybrid",
            settings.idle_claim_ms(),
            control_sources=[s for s in sources if source_topic(s) in settings.control_topics()],
        )
        self.resume = resume
        self.received: dict[str, int] = {}
        if resume is not None:
            self.received = dict(resume.received)
            self.engine.watermark = resume.watermark
            self.engine.closed = resume.closed
            self.next_offset = resume.replay_from
        if erasures is not None:
            erasures.restore(self.engine)
        if feedback is not None:
            self.engine.restore_feedback(feedback)
        self._erasures_written = ErasureLog.of(self.engine)
        self.digests: Digests | None = None
        """Dormant alerts waiting for their day's digest (`settings.digests`), checkpointed with the rows."""
        if settings.digests:
            self.digests = digests if digests is not None else Digests(settings.digest_top)
        self._digests_written = None if self.digests is None else self.digests.to_bytes()

    def last_offset(self) -> int:
        """Offset of the last record handled since loading (-1: none yet)."""
        return self._last_offset

    def missing_before(
        self,
        offset: int,
        markers: bool = False,
        seeked_to: int | None = None,
        fetched_between: Callable[[int, int], bool] | None = None,
    ) -> int | None:
        """The first offset the consumer skipped before `offset`, or None when nothing is missing.

        With `markers` (exactly_once) transaction markers leave offsets out of
        the stream, so past the first record handled a gap counts only when
        the consumer was seeked into it (`seeked_to` in `(next, offset]`),
        where it was seeked is not known yet (None): records fetched before a
        seek can come first, and the seek then skips the records between; or
        when the consumer fetched a record in it that never arrived
        (`fetched_between(next, offset)`: Faust dropped it on the way).
        """
        expected = self.next_offset
        if expected is None or offset <= expected:
            return None
        if (
            markers
            and self._last_offset >= 0
            and seeked_to is not None
            and not expected < seeked_to <= offset
            and not (fetched_between is not None and fetched_between(expected, offset))
        ):
            return None
        return expected

    def handle(
        self, record: OwnerRecord, handle: Handle | None, offset: int, now_ms: int, record_ms: int
    ) -> list[Alert]:
        """Offer the record's new updates, take its markers, advance the watermark; return alerts.

        `handle` is what to ack once the record is done (None: read from the
        topic directly, nothing to ack); `record_ms` is the record's timestamp,
        which idleness claims are dated by.
        """
        if self.next_offset is not None and offset < self.next_offset:
            self.handled_before += 1
            self._unacked.append([handle, 0, offset])
            return []
        self.next_offset = offset + 1
        self._last_offset = offset
        alerts: list[Alert] = []
        tag = self._next_tag
        fresh = self._fresh_updates(record, offset, tag)
        feedback = self._fresh_feedback(record, offset, tag) if record.feedback else []
        entry = [handle, len(fresh) + len(feedback), offset]
        self._unacked.append(entry)
        if entry[1]:
            self._next_tag += 1
            self._pending[tag] = entry
            offer = self.engine.offer
            for update in fresh:
                alerts += offer(update)
            for item in feedback:
                alerts += self.engine.give_feedback(item)
        digests = self.digests
        for user, ts, _index, _input_offset in record.erasures:
            alerts += self.engine.erase(user, ts)  # one delivered again changes nothing
            if digests is not None:
                digests.erase(user, ts)
        for source, (max_ts, idle) in record.markers.items():
            self.tracker.observe(source, max_ts, idle, record_ms)
        mark, all_idle = self.tracker.watermark(now_ms, record_ms)
        if mark is not None:
            alerts += self.engine.advance(mark, inclusive=all_idle)
        if digests is not None:
            for alert in alerts:
                digests.add(alert)
        return alerts

    def due_digests(self) -> list[Digest]:
        """The digests of the days the watermark has passed (none without `settings.digests`); forgotten here,
        so they go out before the next checkpoint (`docs/semantics.md` §10)."""
        return [] if self.digests is None else self.digests.due(self.engine.watermark)

    def _fresh_updates(self, record: OwnerRecord, offset: int, tag: int) -> list[RowUpdate]:
        """The record's updates not applied before: see the class docstring."""
        names = record.sources
        received = self.received
        resume = self.resume
        seen_before = resume is not None and offset <= resume.last_offset
        floor = [received.get(name, -1) for name in names]
        top = list(floor)
        base = [input_position(name, 0) for name in names]
        fresh: list[RowUpdate] = []
        for ts, event_id, owner, contact, direction, kind, index, input_offset in record.updates:
            if input_offset > top[index]:
                top[index] = input_offset
            if seen_before:
                assert resume is not None
                if ts < resume.watermark or (resume.closed and ts == resume.watermark):
                    self.skipped += 1
                    continue
            elif input_offset <= floor[index]:
                self.skipped += 1
                continue
            position = base[index] | input_offset
            fresh.append(RowUpdate(ts, event_id, owner, contact, direction, kind, tag, position))
        for index, name in enumerate(names):
            if top[index] > floor[index]:
                received[name] = top[index]
        return fresh

    def _fresh_feedback(self, record: OwnerRecord, offset: int, tag: int) -> list[HeldFeedback]:
        """The record's feedback not applied before, by the rules of `_fresh_updates`: applied at once when
        at or below the watermark, so a checkpoint's watermark covers feedback up to and including it."""
        names = record.sources
        received = self.received
        resume = self.resume
        seen_before = resume is not None and offset <= resume.last_offset
        fresh: list[HeldFeedback] = []
        for ts, owner, contact, action, until, index, input_offset in record.feedback:
            name = names[index]
            if seen_before:
                assert resume is not None
                if ts <= resume.watermark:
                    self.skipped += 1
                    continue
            elif input_offset <= received.get(name, -1):
                self.skipped += 1
                continue
            fresh.append(HeldFeedback(ts, owner, contact, action, until, tag))
        for *_, index, input_offset in record.feedback:
            if input_offset > received.get(names[index], -1):
                received[names[index]] = input_offset
        return fresh

    def replaying(self) -> bool:
        """Records up to the loaded checkpoint's last one are not all handled again yet."""
        return self.resume is not None and self._last_offset < self.resume.last_offset

    def checkpoint(self) -> Checkpoint[Handle]:
        """Changed rows, where to resume, and the records that become safe to ack once both are written.

        While `replaying`, nothing: the loaded checkpoint stands. A new one
        would say fewer records were handled, and a restart from it would take
        the held updates of the records between for re-sends of updates
        received before (by input offset) and drop them.
        """
        if self.replaying():
            assert self.resume is not None
            return Checkpoint([], self.resume, [], replaying=True)
        rows = self.engine.rows
        changed = [(key, rows.get(key)) for key in self._dirty]
        for _, row in changed:
            if row is not None:
                row.unwritten = 0
        self._dirty = set()
        acks: list[Handle] = []
        unacked = self._unacked
        while unacked and unacked[0][1] == 0:
            handle = unacked.popleft()[0]
            if handle is not None:
                acks.append(handle)
        engine = self.engine
        replay_from = min((entry[2] for entry in unacked), default=self.next_offset)
        resume = Resume(
            self._last_offset,
            engine.watermark,
            engine.closed,
            dict(self.received),
            replay_from,
            engine.counts(),
        )
        erasures: ErasureLog | None = None
        if engine.pending_erasures or engine.erased:
            erasures = ErasureLog.of(engine)
            if erasures == self._erasures_written:
                erasures = None
            else:
                self._erasures_written = erasures
        digests: bytes | None = None
        if self.digests is not None:
            digests = self.digests.to_bytes()
            if digests == self._digests_written:
                digests = None
            else:
                self._digests_written = digests
        feedback: bytes | None = None
        if engine.feedback_changed:
            feedback = feedback_state_to_bytes(engine.feedback)
            engine.feedback_changed = False
        deadlines: list[tuple[bytes, bytes | None]] = []
        dropped: list[tuple[bytes, bytes | None]] = []
        for index in self.deadlines or ():
            puts, deletions = index.checkpoint_records()
            deadlines += puts
            dropped += deletions
        return Checkpoint(changed, resume, acks, erasures, digests, feedback, deadlines, dropped)

    def written(self, done: Checkpoint[Handle]) -> None:
        """The checkpoint `done` is written: stored rows and deadlines beyond their capacity may leave memory."""
        rows = self.engine.rows
        if isinstance(rows, StoredRows):
            rows.written([key for key, _ in done.rows], keep=self._dirty)
        for index in self.deadlines or ():
            index.written()

    def dirty(self) -> int:
        """Rows changed since the last checkpoint."""
        return len(self._dirty)

    def unacked(self) -> int:
        """Records not acked yet (waiting for held updates, their own or an earlier record's)."""
        return len(self._unacked)

    def _changed(self, key: RowKey, row: Row) -> None:
        self._dirty.add(key)

    def _removed(self, key: RowKey) -> None:
        self._dirty.add(key)

    def _applied(self, tag: int) -> None:
        entry = self._pending[tag]
        entry[1] -= 1
        if entry[1] == 0:
            del self._pending[tag]
