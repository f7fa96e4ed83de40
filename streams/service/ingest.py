"""Ingest agent: validate input records, dead-letter the bad ones, re-key good ones by owner, emit markers."""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence, Set
from functools import partial
from typing import Any, NamedTuple

import faust
from faust.types import TP

from streams.engine.erasures import decode_erasure
from streams.engine.events import IN, INTERACTION_TYPES, OUT, TS_MAX, InvalidEvent, Reason, decode_event
from streams.engine.feedback import decode_feedback
from streams.service.agent_errors import CrashingSupervisor, stops_the_worker_on_error
from streams.service.broker_offsets import broker_offsets
from streams.service.cloudevents import event_source
from streams.service.consumer_lag import committed_offsets
from streams.service.dead_letter import dead_letter
from streams.service.delivery import Delivery
from streams.service.faust_internals import ack_offsets
from streams.service.input_alignment import InputAlignment
from streams.service.input_batches import InputBatches, InputRecord, acked_runs
from streams.service.input_gate import InputGate, Sorted, seeked_offsets
from streams.service.metrics import Metrics
from streams.service.partition_reader import read_range
from streams.service.partitioning import owner_partition
from streams.service.poison_records import PoisonRecords
from streams.service.records import (
    NOTHING,
    ErasureFields,
    FeedbackFields,
    Marker,
    Split,
    UpdateFields,
    source_name,
    source_topic,
)
from streams.service.topology import Topology
from streams.settings import Settings

__all__ = ["Rebalances", "Rekeyer", "faust_rebalances", "register_ingest", "wall_clock_ms", "with_missing"]

log = logging.getLogger(__name__)


def wall_clock_ms() -> int:
    """The wall clock, epoch ms."""
    return int(time.time() * 1000)


class Rebalances(NamedTuple):
    """Faust's rebalances, as the ingest checks them before acking a batch (`Rekeyer.acks_stand`)."""

    begun: int
    """Rebalances begun so far: Faust counts one as it begins, before it drops the pending acks."""
    under_way: bool
    """One is under way: from its beginning until its partitions are recovered."""


def faust_rebalances(app: faust.App) -> Rebalances:
    """`app`'s rebalances (`App.rebalancing_count`, `App.rebalancing`: set on the consumer's thread)."""
    return Rebalances(app.rebalancing_count, bool(app.rebalancing))


class Rekeyer:
    """Splits input batches into owner partitions and tracks what each input partition has sent."""

    def __init__(
        self,
        settings: Settings,
        metrics: Metrics,
        wall_clock: Callable[[], int] = wall_clock_ms,
        rebalances: Callable[[], Rebalances] = lambda: Rebalances(0, False),
    ) -> None:
        self.settings = settings
        self.metrics = metrics
        self.wall_clock = wall_clock
        """Epoch ms now: with the hybrid clock, events more than `max_future_ms` ahead of it are dead letters."""
        self.rebalances = rebalances
        """Faust's count of rebalances begun, and whether one is under way (`faust_rebalances`)."""
        self.revoked_in = 0
        """The count of the rebalance whose revocation was handled last (`retract_idle`)."""
        self._seen: dict[str, int] = {}
        self._consumed: dict[tuple[str, str], Any] = {}
        self.sent: dict[str, int] = {}
        """Max event time per input partition whose updates are already queued for sending."""
        self.last_record_at: dict[str, float] = {}
        """Monotonic time of each input partition's last record."""
        self.next_offset: dict[str, int] = {}
        """Per input partition, the offset after the last record whose updates are queued for sending."""
        self._batch_next: dict[str, int] = {}
        self.rebalancing = False
        """Between a revocation and the next assignment: nothing is reported idle."""
        self.revocations = 0
        """Revocations so far: a heartbeat sent across one takes its idleness back again (`overtaken`)."""
        self._reported_idle: set[str] = set()
        self._claiming: frozenset[str] = frozenset()  # claimed by the heartbeat on its way
        self._claims_lapse_at: dict[str, int] = {}  # source -> wall ms when its last claim lapses everywhere
        self._judged_idle: dict[str, int] = {}  # source -> its next offset when judged idle
        self._judged_at = -float("inf")  # monotonic time the last judgement's end offsets were asked for
        self.poisoned: Mapping[tuple[str, int, int], InvalidEvent] = {}
        """Input records (topic, partition, offset) to reject whole: poison records (`PoisonRecords.records`)."""

    def split(self, events: Sequence[InputRecord], dead: list[tuple[InputRecord, InvalidEvent]]) -> Split:
        """Row updates per owner partition, erasures, and the input partitions the batch touched.

        Invalid records, and with the hybrid clock records from the future
        (SPEC v1.1 §1: `ts` more than `max_future_ms` ahead of the wall clock
        as the batch is split), go to `dead` instead; neither moves the max
        event time the markers carry. Records of the erasures topic are
        erasure requests; their markers carry the largest erasure `ts` read,
        so no owner partition's watermark passes an erasure still on its way.
        Records of the feedback topic go to their owner's partition, their
        `ts` in the markers alike.
        """
        partitions = self.settings.partitions
        max_bytes = self.settings.max_record_bytes
        max_future = self.settings.max_future_ms
        hybrid = self.settings.clock == "hybrid"
        now_ms = self.wall_clock() if hybrid else 0
        latest_ts = now_ms + max_future if hybrid else TS_MAX  # no valid ts reaches TS_MAX
        consumed, seen, self_count = self._consumed_counter, self._seen, 0
        poisoned = self.poisoned
        erasure_topic = self.settings.topic_erasures
        feedback_topic = self.settings.topic_feedback
        erasures: list[ErasureFields] = []
        feedback: dict[int, list[FeedbackFields]] = {}
        by_partition: dict[int, list[UpdateFields]] = {}
        touched: dict[str, int] = {}
        batch_next = self._batch_next = {}
        now = time.monotonic()
        for event in events:
            message = event.message
            source = source_name(message.topic, message.partition)
            index = touched.setdefault(source, len(touched))
            self.last_record_at[source] = now
            if message.offset >= batch_next.get(source, 0):
                batch_next[source] = message.offset + 1
            rejected = poisoned.get((message.topic, message.partition, message.offset)) if poisoned else None
            if rejected is not None:
                dead.append((event, rejected))
                consumed(message.topic, "invalid").inc()
                continue
            try:
                erasure = decode_erasure(event.value or b"") if message.topic == erasure_topic else None
                request = decode_feedback(event.value or b"") if message.topic == feedback_topic else None
                if erasure is not None:
                    ts, kind = erasure.ts, "erasure"
                elif request is not None:
                    ts, kind = request.ts, "feedback"
                else:
                    interaction = decode_event(event.value or b"", max_bytes)
                    ts, kind = interaction.ts, INTERACTION_TYPES[interaction.type]
            except InvalidEvent as exc:
                dead.append((event, exc))
                consumed(message.topic, "invalid").inc()
                continue
            if ts > latest_ts:
                detail = f"{ts - now_ms} ms ahead of the wall clock (max_future_ms {max_future})"
                dead.append((event, InvalidEvent(Reason.TS_IN_FUTURE, "ts", detail)))
                consumed(message.topic, "invalid").inc()
                continue
            consumed(message.topic, kind).inc()
            if ts > seen.get(source, ts - 1):
                seen[source] = ts  # an erasure's too: no owner watermark passes it before it arrives
            if erasure is not None:
                erasures.append([erasure.user, ts, index, message.offset])
                continue
            if request is not None:
                feedback.setdefault(owner_partition(request.owner, partitions), []).append(
                    [
                        ts,
                        request.owner,
                        request.contact,
                        int(request.action),
                        request.until or 0,
                        index,
                        message.offset,
                    ]
                )
                continue
            actor, target = interaction.actor, interaction.target
            if actor == target:
                self_count += 1
                continue
            offset = message.offset
            by_partition.setdefault(owner_partition(actor, partitions), []).append(
                [ts, interaction.id, actor, target, OUT, interaction.type, index, offset]
            )
            by_partition.setdefault(owner_partition(target, partitions), []).append(
                [ts, interaction.id, target, actor, IN, interaction.type, index, offset]
            )
        if self_count:
            self.metrics.self_interactions.inc(self_count)
        return Split(by_partition, list(touched), erasures, feedback)

    def _consumed_counter(self, topic: str, kind: str) -> Any:
        """The `events_consumed_total{topic, type}` child, looked up once per label pair."""
        child = self._consumed.get((topic, kind))
        if child is None:
            child = self._consumed[(topic, kind)] = self.metrics.consumed.labels(topic=topic, type=kind)
        return child

    def batch_markers(self, sources: list[str]) -> dict[str, Marker]:
        """The (non-idle) markers that follow a batch from `sources`."""
        return {source: (self._seen.get(source), False) for source in sources}

    def mark_sent(
        self, markers: dict[str, Marker], revocations: int | None = None, taken_in: int | None = None
    ) -> bool:
        """The batch these markers cover is queued: heartbeats may now report its progress, and it may be acked.

        `revocations` is `self.revocations` when the batch was taken. If a
        revocation came since, nothing is recorded and False is returned: its
        sends went with the aborted transactions (exactly_once) and its
        partitions are read again from their committed offsets. Recording it
        anyway (after `retract_idle` cleared what was read) left the input gate
        believing the batch sent when the partition came back, and its records
        were acked without their updates: lost.

        `taken_in` is Faust's rebalance count when the batch was taken. A
        rebalance begins (Faust drops the pending acks) well before its
        revocation reaches `retract_idle` (and the transactions are aborted):
        a batch that a rebalance began under, or that was taken between the
        beginning and the revocation, is not acked either. Its acks would
        outlive the abort, and Faust commits the first run of acked offsets
        wherever it starts: `likes:3` was committed from 366 to 572 past
        records whose updates were aborted (docs/guarantees.md §4).
        """
        if not self.acks_stand(revocations, taken_in):
            self._batch_next = {}
            return False
        for source, (max_ts, _idle) in markers.items():
            if max_ts is not None:
                self.sent[source] = max_ts
        for source, offset in self._batch_next.items():
            if offset > self.next_offset.get(source, 0):
                self.next_offset[source] = offset
        self._batch_next = {}
        return True

    def acks_stand(self, revocations: int | None, taken_in: int | None) -> bool:
        """No rebalance since a batch was taken aborts its sends (`mark_sent`): its records may be acked."""
        if revocations is not None and revocations != self.revocations:
            return False
        if taken_in is None:
            return True
        now = self.rebalances()
        return now.begun == taken_in and (not now.under_way or self.revoked_in == now.begun)

    def queued_to(self, source: str, committed: int | None) -> int:
        """The offset below which every record of `source` is queued (read here, or committed by whoever read it)."""
        return max(self.next_offset.get(source, 0), committed or 0)

    def caught_up(self, source: str, committed: int | None, end_offset: int | None) -> bool:
        """Every record of `source` below its end offset is queued (read here, or committed by whoever read it)."""
        return end_offset is not None and self.queued_to(source, committed) >= end_offset

    def quiet(self, source: str) -> bool:
        """No record from `source` for `idle_timeout` (the clock starts when it is first asked about).

        A control partition (erasures, feedback) is always quiet: caught up is enough for it to stop holding the
        watermark back. Its requests are rare, so waiting `idle_timeout` after every start and
        rebalance would only delay alerts (with the event clock) and guard against nothing.
        """
        if source_topic(source) in self.settings.control_topics():
            return True
        now = time.monotonic()
        last = self.last_record_at.setdefault(source, now)
        return now - last >= self.settings.idle_timeout_ms / 1000

    def heartbeat(self, idle: dict[str, bool]) -> dict[str, Marker]:
        """Markers for the assigned input partitions, each idle or not: a claim of idleness counts from now."""
        if self._claiming:  # the last heartbeat's send never returned: its claims may be out
            self._claims_sent(self._claiming)
        claims = frozenset(source for source, is_idle in idle.items() if is_idle)
        self._reported_idle |= claims
        self._claiming = claims
        return {source: (self.sent.get(source), is_idle) for source, is_idle in idle.items()}

    def heartbeat_sent(self) -> None:
        """The last heartbeat's markers are queued to every owner partition: its claims lapse `idle_claim_ms`
        from now."""
        self._claims_sent(self._claiming)
        self._claiming = frozenset()

    def _claims_sent(self, claims: Set[str]) -> None:
        lapse_at = self.wall_clock() + self.settings.idle_claim_ms()
        for source in claims:
            self._claims_lapse_at[source] = lapse_at

    @property
    def claimed_idle(self) -> frozenset[str]:
        """The input partitions owner partitions may take for idle, letting the watermark pass them.

        Those claimed by the heartbeat on its way, and those of a claim sent
        less than `idle_claim_ms` ago. An owner partition trusts a claim for
        `idle_claim_ms` of record time (a record's timestamp is when it was
        queued), so a record queued later finds it lapsed whatever it read
        before, and whichever producer (transaction) queued it. A later
        heartbeat claiming nothing is no sooner proof: its records may queue
        behind a broker outage (21 s in a CI run, 2026-12-03), or, under
        exactly_once, commit after another partition's records.
        """
        now = self.wall_clock()
        return self._claiming | {
            source for source, lapse_at in self._claims_lapse_at.items() if lapse_at >= now
        }

    def source_markers(self, markers: dict[str, Marker], source: str) -> dict[str, Marker]:
        """exactly_once: the markers a record of `source` carries: its own, and the batch's idleness taken back.

        Each input partition's updates and marker go in a record of their own
        (its transaction), so an owner partition reads a batch one input
        partition at a time. One they may take for idle (`claimed_idle`) stays idle
        there until its own record comes (a claim holds four heartbeats): the
        markers of the others, read first, moved the watermark past its
        updates, which arrived late (docs/guarantees.md, "Broker outage").
        Every record of the batch takes those claims back, claiming no progress.
        """
        claimed = self.claimed_idle
        found: dict[str, Marker] = {
            other: (None, False)
            for other, (_max_ts, idle) in markers.items()
            if not idle and other in claimed
        }
        if source in markers:
            found[source] = markers[source]
        return found

    def judge_idle(self, idle: dict[str, bool], asked_at: float) -> None:
        """Remember which input partitions `_idle_sources` found idle, how far they had been read then, and when
        (`time.monotonic()`) their end offsets were asked for."""
        self._judged_idle = {
            source: self.next_offset.get(source, 0) for source, is_idle in idle.items() if is_idle
        }
        self._judged_at = asked_at

    def idle_now(self, sources: list[str], unfetched: Set[str] = frozenset()) -> dict[str, bool]:
        """Idle as last judged, and still: nothing read since, quiet, no rebalance (no broker call: heartbeats stay fast).

        A partition in `unfetched` (held back by `InputAlignment`) is never idle: records reaching it would be
        read only after the others' had moved the watermark past them. Nothing is idle on end offsets asked for
        more than `idle_judgement_max_age_ms` ago: records produced since are not in them. After a broker outage
        the answer took 5.5 s; the heartbeat then claimed two partitions idle whose records, produced meanwhile,
        were read after the others' had moved the watermark past them (994 late events, one run in nine).
        """
        judged = self._judged_idle
        if time.monotonic() - self._judged_at > self.settings.idle_judgement_max_age_ms() / 1000:
            judged = {}
        return {
            source: not self.rebalancing
            and source in judged
            and source not in unfetched
            and self.next_offset.get(source, 0) == judged[source]
            and self.quiet(source)
            for source in sources
        }

    def retract_idle(self) -> dict[str, Marker]:
        """On revocation: markers taking back every idleness reported, which the partition's next reader must judge.

        What was read is forgotten too: every input partition is read again
        from its committed offset (here or elsewhere), and under exactly_once
        the records sent since that offset were aborted with their
        transaction, so progress claimed from them (max event time, offsets
        queued) would let markers run ahead of what the owner partitions see.
        So is when each was last heard from: records may reach a partition
        while another worker reads it, and a clock kept from before would
        call it quiet at once when it comes back, before `idle_timeout`.
        """
        self.rebalancing = True
        self.revocations += 1
        self.revoked_in = self.rebalances().begun
        self._judged_idle = {}
        retracted, self._reported_idle = self._reported_idle, set()
        self._claiming = frozenset()
        self._claims_lapse_at = {}
        markers = {source: (self.sent.get(source), False) for source in sorted(retracted)}
        self._seen.clear()
        self.sent.clear()
        self.next_offset.clear()
        self.last_record_at.clear()
        return markers

    def overtaken(self, markers: dict[str, Marker], revocations: int) -> dict[str, Marker]:
        """If a revocation came while heartbeat `markers` were being sent, markers taking their idleness back.

        The revocation's own retraction may have reached some owner partitions
        before the heartbeat did; sent after both, these have the last word.
        """
        if self.revocations == revocations:
            return {}
        return {source: (max_ts, False) for source, (max_ts, idle) in markers.items() if idle}


async def with_missing(batch: Sorted, settings: Settings) -> list[Any]:
    """The batch's events to send, with the offsets the consumer did not deliver read from the broker
    and put in their place: each input partition's records stay in offset order."""
    if not batch.missing:
        return batch.send
    found: list[Any] = []
    for (topic, partition), ranges in sorted(batch.missing.items()):
        for start, end in ranges:
            records = await asyncio.to_thread(read_range, settings, topic, partition, start, end)
            found += [InputRecord.of(topic, partition, r.offset, r.key, r.value) for r in records]
            log.warning(
                "input %s[%d]: offsets %d..%d were not delivered before offset %d; read %d from the broker",
                topic,
                partition,
                start,
                end - 1,
                end,
                len(records),
                extra={"topic": topic, "partition": partition, "offset": start},
            )
    return sorted([*found, *batch.send], key=_input_position)


def _input_position(event: Any) -> tuple[str, int, int]:
    """Where an input record is: topic, partition, offset."""
    message = event.message
    return message.topic, message.partition, message.offset


def _highwater(app: faust.App, tp: TP) -> int | None:
    """The end offset the consumer last saw of `tp` (None: not known, or no longer assigned)."""
    try:
        found: int | None = app.consumer.highwater(tp)
    except Exception:  # revoked meanwhile (aiokafka asserts the assignment)
        return None
    return found


def _assigned_sources(app: faust.App, topics: set[str]) -> dict[TP, str]:
    """The input partitions assigned to this worker, by topic partition."""
    return {tp: source_name(tp.topic, tp.partition) for tp in app.consumer.assignment() if tp.topic in topics}


async def _idle_sources(
    app: faust.App,
    topics: set[str],
    rekeyer: Rekeyer,
    end_offsets: Callable[[list[TP]], Awaitable[Mapping[TP, int]]] | None = None,
) -> dict[str, bool]:
    """Assigned input partitions -> idle: quiet for `idle_timeout` and every record up to the end offset queued.

    "Queued" is judged by what this agent has re-keyed, not by the consumer's
    fetch position (records fetched but still buffered are not sent yet), and
    the end offset is asked of the broker, not taken from the last fetch
    (stale while fetching is paused, e.g. during a rebalance): a source
    declared idle too early lets the watermark pass records still on their
    way, which would then arrive late. `end_offsets` asks the broker
    (`BrokerOffsets.ends`); by default the consumer's `highwaters`.
    """
    sources = _assigned_sources(app, topics)
    idle = dict.fromkeys(sources.values(), False)
    if rekeyer.rebalancing:
        return idle
    quiet = [tp for tp, source in sources.items() if rekeyer.quiet(source)]
    if not quiet:
        return idle
    try:
        ends = await end_offsets(quiet) if end_offsets is not None else await app.consumer.highwaters(*quiet)
    except Exception as exc:  # the broker or a rebalance: not idle this time
        log.debug("end offsets unavailable: %s", type(exc).__name__)
        return idle
    committed = committed_offsets(app, quiet)
    for tp in quiet:
        idle[sources[tp]] = rekeyer.caught_up(sources[tp], committed.get(tp), ends.get(tp))
    return idle


def register_ingest(
    app: faust.App, topology: Topology, settings: Settings, metrics: Metrics, delivery: Delivery
) -> Rekeyer:
    """Register the ingest agent on the three input topics and its heartbeat timer."""
    rekeyer = Rekeyer(settings, metrics, rebalances=partial(faust_rebalances, app))
    poison = PoisonRecords(settings, "ingest", topology.input_partitions)
    within = settings.ingest_batch_within_ms / 1000
    input_topics = set(settings.source_topics())
    gate = InputGate(seeked_offsets(app), rekeyer.next_offset)
    offsets = broker_offsets(app, settings)

    # Faust subscribes to the input topics for this agent (group, assignment, seeks,
    # commits, transactions), but their records skip its per-record path: the consumer
    # hands each fetch over to `batches` (`faust_internals.input_in_batches`), and the
    # agent acks what it has sent, as ranges of offsets.
    batches = InputBatches(input_topics, 4 * settings.ingest_batch_size, lambda: app.consumer_generation_id)
    app.streams_input = batches  # type: ignore[attr-defined]
    alignment = InputAlignment(
        rekeyer,
        set(settings.input_topics()),
        settings.input_max_drift_ms,
        settings.idle_timeout_ms / 1000,
        partial(_highwater, app),
        partial(committed_offsets, app),
    )
    app.streams_alignment = alignment  # type: ignore[attr-defined]  # read by faust_internals.input_in_batches

    def ack(
        records: Sequence[InputRecord], holes: Mapping[tuple[str, int], list[tuple[int, int]]] | None = None
    ) -> None:
        for (topic, partition), runs in acked_runs(records, holes).items():
            for run in runs:
                ack_offsets(app.consumer, topic, partition, run)

    @app.agent(topology.interactions, name="ingest", concurrency=1, supervisor_strategy=CrashingSupervisor)
    @stops_the_worker_on_error(settings.shutdown_timeout_ms / 1000, on_error=poison.agent_failed)
    async def ingest(stream: faust.StreamT[bytes]) -> None:
        # Iterating the stream's topic is what subscribes Faust's consumer to it; the
        # records come through `batches`. A batch is acked below, after its updates are
        # queued; a batch cut short (SIGTERM, a crash) is not acked, so it is read again.
        aiter(stream.channel)
        while True:
            fetched = await batches.take(settings.ingest_batch_size, within)
            started = time.perf_counter()
            revocations, taken_in = rekeyer.revocations, rekeyer.rebalances().begun
            batch = gate.sort(fetched)
            if rekeyer.acks_stand(revocations, taken_in):
                ack(batch.ack_only)
            events = await with_missing(batch, settings)
            if not events:
                continue
            dead: list[tuple[InputRecord, InvalidEvent]] = []
            await poison.refresh()
            rekeyer.poisoned = poison.records
            split = poison.split(rekeyer.split, events, dead)
            now_ms = int(time.time() * 1000)
            for event, error in dead:
                message = event.message
                letter = dead_letter(
                    error,
                    message.topic,
                    message.partition,
                    message.offset,
                    event.key,
                    event.value or b"",
                    now_ms,
                    event_source(settings.app_id),
                )
                await delivery.send_dead_letter(message.topic, message.partition, letter)
                metrics.invalid.labels(reason=error.reason.value).inc()
                metrics.dead_letters.inc()
                log.info(
                    "dead letter %s[%d]@%d reason=%s",
                    message.topic,
                    message.partition,
                    message.offset,
                    error.reason.value,
                    extra={
                        "topic": message.topic,
                        "partition": message.partition,
                        "offset": message.offset,
                        "reason": error.reason.value,
                    },
                )
            markers = rekeyer.batch_markers(split.sources)
            if (split.by_partition or split.erasures or split.feedback) and not await delivery.send_updates(
                split, markers, rekeyer.source_markers
            ):
                continue  # its partitions moved (exactly_once): not acked, their next reader sends it
            if not rekeyer.mark_sent(markers, revocations, taken_in):
                continue  # a rebalance came meanwhile: not acked, read again from the committed offsets
            ack(events, batch.missing)
            metrics.processing.labels(stage="ingest").observe(time.perf_counter() - started)

    # Judging idleness asks the broker for end offsets (over a connection of its own: through the
    # consumer's, behind its fetch long poll, that took up to 1.5 s); heartbeats carry the last
    # judgement, checked against what was read since, so they keep their pace.
    @app.timer(interval=settings.tick_interval_ms / 1000)
    async def judge_idleness() -> None:
        asked_at = time.monotonic()
        rekeyer.judge_idle(await _idle_sources(app, input_topics, rekeyer, offsets.ends), asked_at)

    @app.timer(interval=settings.tick_interval_ms / 1000)
    async def heartbeat() -> None:
        metrics.input_partitions_held.set(len(alignment.held))
        revocations = rekeyer.revocations
        assigned = sorted(_assigned_sources(app, input_topics).values())
        held = {source_name(tp.topic, tp.partition) for tp in alignment.held}
        markers = rekeyer.heartbeat(rekeyer.idle_now(assigned, held))
        await delivery.send_updates(NOTHING, markers, rekeyer.source_markers)
        rekeyer.heartbeat_sent()
        retraction = rekeyer.overtaken(markers, revocations)
        if retraction:
            await delivery.send_updates(NOTHING, retraction, rekeyer.source_markers)

    # An idle marker outlives its writer: when input partitions move, the new reader may
    # not have read the records produced meanwhile. Take idleness back before letting go,
    # so no owner partition lets its watermark run past those records.
    @app.on_partitions_revoked.connect  # type: ignore[arg-type]
    async def retract_idleness(sender: Any, revoked: set[TP], **kwargs: Any) -> None:
        gate.revoked()
        batches.clear()
        markers = rekeyer.retract_idle()
        if markers:
            await delivery.retract_idleness(markers)

    @app.on_partitions_assigned.connect  # type: ignore[arg-type]
    async def assigned(sender: Any, assigned: set[TP], **kwargs: Any) -> None:
        rekeyer.rebalancing = False
        poison.reload_later()

    return rekeyer
