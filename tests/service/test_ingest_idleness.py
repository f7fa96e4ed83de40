"""exactly_once: a batch's records, read one input partition at a time, take back the idleness claimed meanwhile."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from streams.service.delivery import source_records
from streams.service.ingest import Rekeyer
from streams.service.metrics import Metrics
from streams.service.owner_partition import OwnerPartition
from streams.service.records import Marker, Split, decode_owner_record
from streams.settings import Settings

SETTINGS = Settings(clock="event", partitions=1, tick_interval_ms=500)
MENTIONS, REPLIES, LIKES = "mentions:0", "replies:0", "likes:0"
SOURCES = [MENTIONS, REPLIES, LIKES]
T0 = 1_083_744_000_000
MINUTE = 60_000
RECORD_MS = 1_796_046_936_000
"""Owner-stream record time: every record here is well within a claim's four heartbeats (2 s)."""


def event(source: str, offset: int, ts: int) -> Any:
    """What `Rekeyer.split` reads of a Faust event of `source` stamped `ts`."""
    topic, partition = source.rsplit(":", 1)
    kind = {"mentions": "mention", "replies": "reply", "likes": "like"}[topic]
    value = orjson.dumps(
        {"id": f"{topic}{offset}", "type": kind, "actor_id": "a", "target_id": "b", "ts": ts}
    )
    return SimpleNamespace(
        message=SimpleNamespace(topic=topic, partition=int(partition), offset=offset), value=value, key=None
    )


def records_per_source(
    rekeyer: Rekeyer, split: Split, markers: dict[str, Marker], order: list[str]
) -> list[bytes]:
    """The owner-partition-0 records the exactly_once ingest sends for a batch (`ExactlyOnce.send_updates`), in `order`."""
    return [source_records(split, source, rekeyer.source_markers(markers, source), 1)[0] for source in order]


def send_batch(rekeyer: Rekeyer, events: list[Any], order: list[str]) -> list[bytes]:
    """Split a batch, mark it sent: its records, each input partition's in `order`."""
    split = rekeyer.split(events, [])
    markers = rekeyer.batch_markers(split.sources)
    assert rekeyer.mark_sent(markers)
    return records_per_source(rekeyer, split, markers, order)


def heartbeat(rekeyer: Rekeyer, idle: dict[str, bool]) -> list[bytes]:
    """A heartbeat's records: one per input partition, each with its marker."""
    markers = rekeyer.heartbeat(idle)
    return records_per_source(rekeyer, Split({}, [], []), markers, sorted(idle))


def handle_all(part: OwnerPartition[Any], records: list[bytes], offset: int) -> int:
    """Handle records in order from `offset`; the next offset."""
    for raw in records:
        part.handle(decode_owner_record(raw), None, offset, now_ms=0, record_ms=RECORD_MS + offset)
        offset += 1
    return offset


def all_idle_then_a_batch_from_two(order: list[str]) -> OwnerPartition[Any]:
    """Every input partition read and claimed idle, then a batch from mentions and replies, read in `order`."""
    rekeyer = Rekeyer(SETTINGS, Metrics(CollectorRegistry()))
    part: OwnerPartition[Any] = OwnerPartition(0, SETTINGS, {}, SOURCES)
    first = [event(MENTIONS, 0, T0), event(REPLIES, 0, T0 + 1_000), event(LIKES, 0, T0 + 2_000)]
    offset = handle_all(part, send_batch(rekeyer, first, SOURCES), 0)
    offset = handle_all(part, heartbeat(rekeyer, dict.fromkeys(SOURCES, True)), offset)
    assert part.engine.watermark == T0 + 2_000  # all idle: the largest ts seen
    # The input resumes: replies run 30 minutes ahead of the mentions in one batch (produced together).
    second = [event(MENTIONS, 1, T0 + 5 * MINUTE), event(REPLIES, 1, T0 + 35 * MINUTE)]
    handle_all(part, send_batch(rekeyer, second, order), offset)
    return part


def test_a_partition_claimed_idle_is_taken_back_by_the_records_of_its_batch_read_before_its_own() -> None:
    """The broker-outage failure (docs/guarantees.md): updates of a partition still claimed idle came late."""
    part = all_idle_then_a_batch_from_two([REPLIES, MENTIONS])
    assert part.engine.stats.late == 0
    # likes, not in the batch, stays idle; mentions holds the watermark where its own marker puts it
    assert part.engine.watermark == T0 + 5 * MINUTE - SETTINGS.allowed_lateness_ms
    assert len(part.engine.held) == 4  # both halves of the mention and of the reply wait for the watermark


def test_the_order_records_are_read_in_does_not_change_the_outcome() -> None:
    ahead_first = all_idle_then_a_batch_from_two([REPLIES, MENTIONS])
    own_first = all_idle_then_a_batch_from_two([MENTIONS, REPLIES])
    assert ahead_first.engine.stats.late == own_first.engine.stats.late == 0
    assert ahead_first.engine.watermark == own_first.engine.watermark
    assert dict(ahead_first.engine.rows) == dict(own_first.engine.rows)


def test_idleness_is_taken_back_only_for_the_batch_and_only_while_a_claim_may_stand() -> None:
    now = [RECORD_MS]
    rekeyer = Rekeyer(SETTINGS, Metrics(CollectorRegistry()), lambda: now[0])
    rekeyer.heartbeat(dict.fromkeys(SOURCES, True))
    rekeyer.heartbeat_sent()
    markers = {MENTIONS: (T0, False), REPLIES: (T0 + 1, False)}
    # a partition not in the batch (likes) keeps its claim: it must not hold the watermark back
    assert rekeyer.source_markers(markers, REPLIES) == {MENTIONS: (None, False), REPLIES: (T0 + 1, False)}
    rekeyer.heartbeat({MENTIONS: False, REPLIES: False, LIKES: True})
    rekeyer.heartbeat_sent()
    # owner partitions may read this record before the heartbeat's: the claim stands until it lapses
    assert rekeyer.source_markers(markers, REPLIES) == {MENTIONS: (None, False), REPLIES: (T0 + 1, False)}
    now[0] += SETTINGS.idle_claim_ms() + 1
    assert rekeyer.source_markers(markers, REPLIES) == {REPLIES: (T0 + 1, False)}
    # idle markers (a heartbeat's) never take anything back
    rekeyer.heartbeat(dict.fromkeys(SOURCES, True))
    idle_markers = {MENTIONS: (T0, True), REPLIES: (T0 + 1, True)}
    assert rekeyer.source_markers(idle_markers, REPLIES) == {REPLIES: (T0 + 1, True)}


def test_a_revocation_forgets_the_claims_its_retraction_takes_back() -> None:
    rekeyer = Rekeyer(SETTINGS, Metrics(CollectorRegistry()))
    rekeyer.heartbeat(dict.fromkeys(SOURCES, True))
    rekeyer.retract_idle()
    assert rekeyer.source_markers({MENTIONS: (T0, False), REPLIES: (T0, False)}, REPLIES) == {
        REPLIES: (T0, False)
    }
