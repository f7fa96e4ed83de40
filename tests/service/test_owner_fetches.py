"""The owner-stream offsets fetched and not handled yet: what makes a gap under exactly_once a loss, not markers."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from aiokafka.structs import TopicPartition

from streams.service.owner_fetches import UnhandledFetches
from streams.service.owner_partition import OwnerPartition
from streams.service.partition_reader import Fetched
from streams.service.records import OwnerRecord, decode_owner_record, encode_owner_record
from streams.service.relationships import OwnerPartitions
from streams.settings import Settings

OWNERS = "app-owner-updates"
SOURCE = "app.mentions:0"
T0 = 1_600_000_000_000


def fetch(partition: int, *offsets: int, topic: str = OWNERS) -> dict[TopicPartition, list[SimpleNamespace]]:
    return {TopicPartition(topic, partition): [SimpleNamespace(offset=o) for o in offsets]}


def test_a_fetched_record_counts_until_it_is_handled() -> None:
    fetches = UnhandledFetches(OWNERS)
    fetches.fetched(fetch(0, 11, 12, 13))
    assert fetches.between(0, 11, 14)
    fetches.handled(0, 11)
    fetches.handled(0, 13)
    assert fetches.between(0, 11, 13), "12 never reached the agent"
    assert not fetches.between(0, 13, 20)
    assert not fetches.between(1, 0, 100), "another partition"
    fetches.handled(0, 12)
    assert not fetches.between(0, 0, 100)


def test_other_topics_are_not_tracked() -> None:
    fetches = UnhandledFetches(OWNERS)
    fetches.fetched(fetch(0, 5, topic="app.mentions"))
    assert len(fetches) == 0


def test_offsets_below_the_next_expected_one_are_forgotten_at_a_checkpoint() -> None:
    fetches = UnhandledFetches(OWNERS)
    fetches.fetched(fetch(0, 3, 4, 9))
    fetches.forget_below(0, 5)
    assert not fetches.between(0, 0, 9)
    assert fetches.between(0, 9, 10)


def test_a_revocation_forgets_everything() -> None:
    fetches = UnhandledFetches(OWNERS)
    fetches.fetched({**fetch(0, 1), **fetch(1, 2)})
    fetches.clear()
    assert len(fetches) == 0


def test_catch_up_reads_records_fetched_and_dropped_before_the_agent_as_a_ci_run_lost_them() -> None:
    """A traced local run (2026-12-01) of the join/leave test under exactly_once: owner partition 1, loaded with no
    checkpoint, handled offset 0, then 37. Records 1..36 had been fetched twice in that consumer generation (after
    seeks to 0) and never reached the agent. The seek target (0) is outside the gap, so before, the gap was taken
    for transaction markers and the updates of 1..36 were lost: 26 dormant alerts missing, 25 of this partition."""
    settings = Settings(allowed_lateness_ms=0, clock="event", processing_guarantee="exactly_once")
    part: OwnerPartition[str] = OwnerPartition(1, settings, {}, [SOURCE])
    fetches = UnhandledFetches(OWNERS)
    fetches.fetched(fetch(1, *range(0, 38), 40, 41))  # 38, 39: transaction markers
    read: list[tuple[int, int, int]] = []
    in_the_gap = {offset: encode_owner_record([SOURCE], [], {SOURCE: (T0, False)}) for offset in (1, 20, 36)}

    async def read_skipped(partition: int, start: int, end: int) -> list[Fetched]:
        read.append((partition, start, end))
        return [Fetched(o, 0, None, value) for o, value in in_the_gap.items() if start <= o < end]

    async def without_poison(raw: bytes) -> OwnerRecord:
        return decode_owner_record(raw)

    async def publish(part: Any, alerts: list[Any]) -> None:
        return None

    partitions: Any = SimpleNamespace(
        seeked={(OWNERS, 1): 0},
        owner_topic=OWNERS,
        delivery=SimpleNamespace(transactional=True),
        fetches=fetches,
        read_skipped=read_skipped,
        without_poison=without_poison,
        publish=publish,
    )

    async def main() -> None:
        fetches.handled(1, 0)
        part.handle(OwnerRecord([], [], {SOURCE: (T0, False)}), "r0", offset=0, now_ms=0, record_ms=0)
        fetches.handled(1, 37)
        await OwnerPartitions.catch_up(partitions, part, 37)

    asyncio.run(main())
    assert read == [(1, 1, 37)]
    assert part.next_offset == 37, "1, 20 and 36 handled: 37 comes next"
    assert not fetches.between(1, 0, 37)
    part.handle(OwnerRecord([], [], {SOURCE: (T0, False)}), "r37", offset=37, now_ms=0, record_ms=0)
    read.clear()
    asyncio.run(OwnerPartitions.catch_up(partitions, part, 40))  # 38, 39: markers, never fetched
    assert read == []


def test_a_range_read_from_the_broker_is_handled_whole() -> None:
    fetches = UnhandledFetches(OWNERS)
    fetches.fetched(fetch(0, 4, 5, 6, 9))
    fetches.read(0, 4, 7)
    assert not fetches.between(0, 0, 9)
    assert fetches.between(0, 9, 10)
