"""Poison records: input records whose processing keeps raising are counted across restarts, then dead-lettered and skipped."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, TypeVar

import orjson
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka.errors import TopicAlreadyExistsError

from streams.engine.engine import RelationshipEngine
from streams.engine.events import IN, OUT, InvalidEvent, Reason, RowUpdate
from streams.kafka_admin import client_options
from streams.service.cloudevents import event_source
from streams.service.dead_letter import DeadLetter, ProcessingError, dead_letter
from streams.service.metrics import Metrics
from streams.service.partition_reader import read_range
from streams.service.records import (
    OwnerRecord,
    UpdateFields,
    input_position,
    source_name,
    source_partition,
    source_topic,
)
from streams.settings import Settings

__all__ = [
    "Failure",
    "FailureLog",
    "PoisonRecords",
    "Site",
    "failures_topic_name",
    "first_failing",
    "rejection",
    "update_in_flight",
]

log = logging.getLogger(__name__)

RECORD, OUT_HALF, IN_HALF = "record", "out", "in"
"""What failed of an input record: all of it (ingest stage), or its actor's / target's row update (relationship stage)."""
RELATIONSHIPS = "relationships"
RETRY_READ_S = 5.0
"""After the failures topic could not be read, how long before the next attempt."""
MAX_MESSAGE_CHARS = 1000
OFFSET_BITS = 40
OFFSET_MASK = (1 << OFFSET_BITS) - 1
Event = TypeVar("Event")
Result = TypeVar("Result")


def _now_ms() -> int:
    return int(time.time() * 1000)


def failures_topic_name(settings: Settings) -> str:
    """The compacted topic holding each failing input record's count, keyed by its source position."""
    return f"{settings.app_id}-record-failures"


class Site(NamedTuple):
    """A piece of work that raised: an input record (topic, partition, offset), all of it or one half."""

    topic: str
    partition: int
    offset: int
    part: str
    """`record` (the ingest stage decodes and splits it), `out` or `in` (the relationship stage applies that half)."""

    def key(self) -> bytes:
        """Its key in the failures topic."""
        return f"{self.topic}:{self.partition}:{self.offset}:{self.part}".encode()


class Failure(NamedTuple):
    """How often a site failed, and the last exception (one record of the failures topic)."""

    site: Site
    stage: str
    """`ingest` or `relationships`."""
    failures: int
    error_type: str
    error_message: str
    failed_at: int
    """Epoch ms of the last failure."""

    def to_bytes(self) -> bytes:
        """JSON value of the failures topic.

        >>> f = Failure(Site("t", 0, 7, "out"), "relationships", 2, "KeyError", "'x'", 5)
        >>> Failure.from_bytes(f.to_bytes()) == f
        True
        """
        topic, partition, offset, part = self.site
        return orjson.dumps(
            {
                "source": {"topic": topic, "partition": partition, "offset": offset},
                "part": part,
                "stage": self.stage,
                "failures": self.failures,
                "error_type": self.error_type,
                "error_message": self.error_message,
                "failed_at": self.failed_at,
            }
        )

    @classmethod
    def from_bytes(cls, raw: bytes) -> Failure:
        """Inverse of `to_bytes`."""
        obj = orjson.loads(raw)
        source = obj["source"]
        site = Site(source["topic"], source["partition"], source["offset"], obj["part"])
        return cls(
            site, obj["stage"], obj["failures"], obj["error_type"], obj["error_message"], obj["failed_at"]
        )


def rejection(failure: Failure) -> ProcessingError:
    """What a poison record's dead letter says about its failure."""
    return ProcessingError(
        failure.error_type, failure.error_message, failure.stage, failure.site.part, failure.failures
    )


def first_failing(items: Sequence[Event], process: Callable[[Event], object]) -> Event | None:
    """Isolate a failure: the first item that raises when processed alone, None when none does.

    >>> first_failing([1, 2, 0, 4], lambda n: 1 / n)
    0
    >>> first_failing([1, 2], lambda n: 1 / n) is None
    True
    """
    for item in items:
        try:
            process(item)
        except Exception:
            return item
    return None


_APPLY_CODE = RelationshipEngine._apply.__code__


def update_in_flight(exc: BaseException) -> RowUpdate | None:
    """The row update the engine was applying when `exc` was raised (its `_apply` frame), None if none was.

    The engine holds updates until the watermark passes them, so the update
    that raised usually came with an earlier owner record than the one being
    handled; the innermost `_apply` frame of the traceback knows which.
    Anything raised outside an update's application (a timer firing, a
    checkpoint) is no record's fault and gives None.
    """
    found: RowUpdate | None = None
    tb = exc.__traceback__
    while tb is not None:
        frame = tb.tb_frame
        if frame.f_code is _APPLY_CODE:
            update = frame.f_locals.get("update")
            if isinstance(update, RowUpdate):
                found = update
        tb = tb.tb_next
    return found


class FailureLog:
    """The failures topic (compacted, one partition): read whole, written one record at a time (blocking calls)."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.topic = failures_topic_name(settings)

    def read(self) -> dict[Site, Failure]:
        """The latest failure of every site (empty when the topic does not exist yet)."""
        consumer = KafkaConsumer(**client_options(self.settings), enable_auto_commit=False)
        try:
            if self.topic not in consumer.topics():
                return {}
            tp = TopicPartition(self.topic, 0)
            consumer.assign([tp])
            consumer.seek_to_beginning(tp)
            end = consumer.end_offsets([tp])[tp]
            found: dict[Site, Failure] = {}
            deadline = time.monotonic() + self.settings.session_timeout_ms / 1000
            while consumer.position(tp) < end:
                if time.monotonic() > deadline:
                    raise TimeoutError(f"could not read {self.topic} to offset {end}")
                for records in consumer.poll(timeout_ms=200).values():
                    for record in records:
                        if record.value is not None:
                            failure = Failure.from_bytes(record.value)
                            found[failure.site] = failure
            return found
        finally:
            consumer.close()

    def write(self, failure: Failure, letter: DeadLetter | None = None) -> None:
        """Append `failure` (the topic is created on first use), after `letter` if any, flushed: both outlive
        the process, outside any transaction (an aborted one must not take them along)."""
        self._create()
        producer = KafkaProducer(acks="all", **client_options(self.settings))
        timeout_s = self.settings.session_timeout_ms / 1000
        try:
            if letter is not None:
                dead_letters = self.settings.topic_dead_letter
                producer.send(dead_letters, key=letter.key, value=letter.value, headers=letter.headers).get(
                    timeout_s
                )
            producer.send(self.topic, key=failure.site.key(), value=failure.to_bytes(), partition=0).get(
                timeout_s
            )
        finally:
            producer.close()

    def _create(self) -> None:
        settings = self.settings
        admin = KafkaAdminClient(client_id=f"{settings.app_id}-admin", **client_options(settings))
        try:
            if self.topic in admin.list_topics():
                return
            configs = {"cleanup.policy": "compact", **settings.replication_configs()}
            admin.create_topics([NewTopic(self.topic, 1, settings.replication_factor, topic_configs=configs)])
        except TopicAlreadyExistsError:
            pass
        finally:
            admin.close()


Position = tuple[str, int, int]
"""An input record's (topic, partition, offset)."""


class PoisonRecords:
    """One stage's view of the failures topic: what to skip, and how to count a failure before the worker stops.

    Loaded before the stage handles its first record and again after every
    assignment (a site's count changes only when a worker fails on it and
    stops, which moves its partitions). A site is skipped once it failed
    `max_record_failures` times; every other failure is counted and the
    worker stops as before.
    """

    def __init__(
        self,
        settings: Settings,
        stage: str,
        input_partitions: Mapping[str, int] | None = None,
        store: Any = None,
        metrics: Metrics | None = None,
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.stage = stage
        self.max_failures = settings.max_record_failures
        self.store: Any = store if store is not None else FailureLog(settings)
        self.records: dict[Position, InvalidEvent] = {}
        """Ingest stage: input records to reject whole."""
        self.halves: dict[tuple[str, int, int], Failure] = {}
        """Relationship stage: (`topic:partition`, input offset, direction) -> the failure of that row update."""
        self.stale = True
        self._retry_at = 0.0
        self._isolated: tuple[BaseException, Site] | None = None
        counts = input_partitions or dict.fromkeys(settings.input_topics(), settings.partitions)
        self._source_by_prefix = {
            input_position(source_name(topic, p), 0) >> OFFSET_BITS: source_name(topic, p)
            for topic, count in counts.items()
            for p in range(count)
        }

    def reload_later(self) -> None:
        """Read the failures topic again before the next record (after an assignment)."""
        self.stale = True

    async def refresh(self) -> None:
        """Reload the failures topic if stale; if the broker does not answer, keep what is known and retry later.

        A record that became poison meanwhile then fails once more (its count
        only grows): nothing is skipped that should not be.
        """
        if not self.stale or time.monotonic() < self._retry_at:
            return
        try:
            failures = await asyncio.to_thread(self.store.read)
        except Exception as exc:
            self._retry_at = time.monotonic() + RETRY_READ_S
            log.warning(
                "%s stage: could not read %s (%s); retrying in %.0f s",
                self.stage,
                failures_topic_name(self.settings),
                type(exc).__name__,
                RETRY_READ_S,
                extra={"stage": self.stage, "error": type(exc).__name__},
            )
            return
        self.stale = False
        self.load(failures.values())

    def load(self, failures: Iterable[Failure]) -> None:
        """Take the sites that failed `max_failures` times as poison."""
        records: dict[Position, InvalidEvent] = {}
        halves: dict[tuple[str, int, int], Failure] = {}
        for failure in failures:
            if failure.failures < self.max_failures:
                continue
            topic, partition, offset, part = failure.site
            if part == RECORD:
                records[(topic, partition, offset)] = rejection(failure)
            elif self.stage == RELATIONSHIPS:
                halves[(source_name(topic, partition), offset, IN if part == IN_HALF else OUT)] = failure
        if self.stage == RELATIONSHIPS:
            records = {}  # rejected whole by the ingest stage: no update of theirs reaches this one
        self.records, self.halves = records, halves
        if records or halves:
            log.warning(
                "%s stage: skipping %d poison input records and %d row updates (failed %d times each)",
                self.stage,
                len(records),
                len(halves),
                self.max_failures,
                extra={"stage": self.stage},
            )

    def split(
        self,
        split: Callable[[Sequence[Event], list[Any]], Result],
        events: Sequence[Event],
        dead: list[Any],
    ) -> Result:
        """Run the ingest stage's `split(events, dead)`; when it raises, find the record at fault.

        The batch is split again record by record (state it changes is
        dropped with the worker, which stops): the first record that raises
        on its own is the one `agent_failed` counts.
        """
        try:
            return split(events, dead)
        except Exception as exc:
            culprit: Any = first_failing(events, lambda event: split([event], []))
            if culprit is not None:
                message = culprit.message
                self._isolated = (exc, Site(message.topic, message.partition, message.offset, RECORD))
            raise

    def without_poison(self, record: OwnerRecord) -> tuple[OwnerRecord, list[tuple[UpdateFields, Failure]]]:
        """The owner record without the row updates to skip, and those updates with their failures."""
        if not self.halves or not record.updates:
            return record, []
        halves, sources = self.halves, record.sources
        kept: list[UpdateFields] = []
        skipped: list[tuple[UpdateFields, Failure]] = []
        for update in record.updates:
            failure = halves.get((sources[update[6]], update[7], update[4]))
            if failure is None:
                kept.append(update)
            else:
                skipped.append((update, failure))
        if not skipped:
            return record, []
        return OwnerRecord(sources, kept, record.markers, record.erasures, record.feedback), skipped

    async def skip_updates(self, record: OwnerRecord) -> OwnerRecord:
        """Relationship stage: `record` without the row updates to skip (their dead letters are written already)."""
        if self.stale:
            await self.refresh()
        kept, skipped = self.without_poison(record)
        for _update, failure in skipped:
            topic, partition, offset, part = failure.site
            if self.metrics is not None:
                self.metrics.invalid.labels(reason=Reason.PROCESSING_ERROR.value).inc()
            log.info(
                "skipped the %s row update of %s[%d]@%d: reason=%s",
                part,
                topic,
                partition,
                offset,
                Reason.PROCESSING_ERROR.value,
                extra={
                    "topic": topic,
                    "partition": partition,
                    "offset": offset,
                    "reason": Reason.PROCESSING_ERROR.value,
                },
            )
        return kept

    def site_of(self, exc: BaseException) -> Site | None:
        """The piece of work `exc` is the fault of, if known."""
        if self._isolated is not None and self._isolated[0] is exc:
            return self._isolated[1]
        update = update_in_flight(exc)
        if update is None:
            return None
        source, offset = self._position(update)
        if source is None:
            return None
        return Site(
            source_topic(source),
            source_partition(source),
            offset,
            IN_HALF if update.direction == IN else OUT_HALF,
        )

    def _position(self, update: RowUpdate) -> tuple[str | None, int]:
        """An update's input partition and offset, from its position (`records.input_position`)."""
        offset = update.pos & OFFSET_MASK
        return self._source_by_prefix.get(update.pos >> OFFSET_BITS), offset

    async def agent_failed(self, exc: BaseException) -> None:
        """Count a failure of the site `exc` is the fault of (if known), before the worker stops."""
        site = self.site_of(exc)
        self._isolated = None
        if site is None:
            log.error(
                "%s stage: %s raised outside any one input record: not counted",
                self.stage,
                type(exc).__name__,
                extra={"stage": self.stage, "error": type(exc).__name__},
            )
            return
        await self.count(site, exc)

    async def count(self, site: Site, exc: BaseException) -> Failure:
        """Add one failure to `site` in the failures topic (broker calls in a thread); the new count.

        At the last failure of a row update its dead letter is written first:
        its input record read back by position.
        """
        before = (await asyncio.to_thread(self.store.read)).get(site)
        failure = Failure(
            site,
            self.stage,
            (before.failures if before is not None else 0) + 1,
            type(exc).__name__,
            str(exc)[:MAX_MESSAGE_CHARS],
            _now_ms(),
        )
        topic, partition, offset, part = site
        letter = None
        if failure.failures >= self.max_failures and part != RECORD:
            found = await asyncio.to_thread(read_range, self.settings, topic, partition, offset, offset + 1)
            key, raw = (found[0].key, found[0].value or b"") if found else (None, b"")
            source = event_source(self.settings.app_id)
            letter = dead_letter(rejection(failure), topic, partition, offset, key, raw, _now_ms(), source)
        await asyncio.to_thread(self.store.write, failure, letter)
        log.error(
            "input record %s[%d]@%d (%s) raised %s in the %s stage: failure %d of %d%s",
            topic,
            partition,
            offset,
            part,
            failure.error_type,
            self.stage,
            failure.failures,
            self.max_failures,
            "; it is a dead letter from the next start" if failure.failures >= self.max_failures else "",
            extra={
                "topic": topic,
                "partition": partition,
                "offset": offset,
                "stage": self.stage,
                "error": failure.error_type,
            },
        )
        return failure
