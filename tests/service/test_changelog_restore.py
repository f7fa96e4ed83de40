"""Changelog records written to their table a fetch at a time: Faust's store, the recovery's offsets, its end."""

from __future__ import annotations

import asyncio
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import faust
import pytest
from aiokafka.structs import ConsumerRecord
from faust.types import TP
from prometheus_client import CollectorRegistry

from streams.service.changelog_restore import ChangelogBatches
from streams.service.faust_internals import input_in_batches, restore_changelog_batches
from streams.service.metrics import Metrics
from tests.service.fetching_consumer import fetching_consumer


@pytest.fixture
def app(tmp_path: Path) -> faust.App:
    app = faust.App("restore-test", store="rocksdb://", datadir=str(tmp_path))
    app.Table("rows", partitions=2, key_type=bytes, value_type=bytes)
    return app


def changelog(app: faust.App, partition: int) -> TP:
    return TP(app.tables["rows"].changelog_topic.get_topic_name(), partition)


def records(tp: TP, values: dict[int, tuple[bytes, bytes | None]]) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(tp.topic, tp.partition, offset, 0, 0, key, value, None, 0, 0, ())
        for offset, (key, value) in values.items()
    ]


def batches(app: faust.App) -> tuple[ChangelogBatches, Metrics]:
    metrics = Metrics(CollectorRegistry())
    topics = frozenset({app.tables["rows"].changelog_topic.get_topic_name()})
    return ChangelogBatches(topics, metrics.changelog_restored), metrics


def recovering(app: faust.App, active: dict[TP, int], standby: dict[TP, int] | None = None) -> Any:
    """The app's recovery as Faust leaves it when it starts reading: high waters, offsets applied so far."""
    recovery = app.tables.recovery
    table = app.tables["rows"]
    for tp, highwater in active.items():
        recovery.active_tps.add(tp)
        recovery.tp_to_table[tp] = table
        recovery.active_highwaters[tp] = highwater
        recovery.active_offsets[tp] = -1
    for tp, highwater in (standby or {}).items():
        recovery.standby_tps.add(tp)
        recovery.tp_to_table[tp] = table
        recovery.standby_highwaters[tp] = highwater
        recovery.standby_offsets[tp] = -1
    recovery._set_recovery_started()
    return recovery


def stored(app: faust.App, partition: int, *keys: bytes) -> list[bytes | None]:
    db = app.tables["rows"].data._db_for_partition(partition)
    return [db.get(key) for key in keys]


def test_a_fetch_is_written_in_offset_order_and_recovery_ends_at_the_high_water(app: faust.App) -> None:
    async def main() -> None:
        tp = changelog(app, 0)
        recovery = recovering(app, {tp: 5})
        restore, metrics = batches(app)
        first = {0: (b"a", b"a0"), 1: (b"b", b"b1"), 2: (b"a", b"a2")}
        restore_changelog_batches(app, {tp: records(tp, first)}, restore)
        assert stored(app, 0, b"a", b"b") == [b"a2", b"b1"]  # the later record of a key wins
        assert recovery.active_offsets[tp] == 2
        assert recovery.in_recovery
        assert not recovery.signal_recovery_end.is_set()
        # a re-fetch of records already applied changes nothing (a stale a0 must not come back)
        rest = {1: (b"b", b"b1"), 2: (b"a", b"a0"), 3: (b"b", None), 4: (b"c", b"c4"), 5: (b"c", b"c5")}
        restore_changelog_batches(app, {tp: records(tp, rest)}, restore)
        assert stored(app, 0, b"a", b"b", b"c") == [b"a2", None, b"c5"]  # a tombstone deletes
        assert app.tables["rows"].data.persisted_offset(tp) == 5  # a restart reads on from here
        assert metrics.changelog_restored._value.get() == 6
        assert not recovery.in_recovery
        assert recovery.signal_recovery_end.is_set()

    asyncio.run(main())


def test_standby_partitions_are_written_too_and_unknown_ones_are_dropped(app: faust.App) -> None:
    async def main() -> None:
        active, standby, foreign = changelog(app, 0), changelog(app, 1), changelog(app, 7)
        recovery = recovering(app, {active: 0}, {standby: 1})
        restore, metrics = batches(app)
        fetched = {
            standby: records(standby, {0: (b"s", b"s0"), 1: (b"s", b"s1")}),
            foreign: records(foreign, {0: (b"x", b"x0")}),
        }
        restore_changelog_batches(app, fetched, restore)
        assert stored(app, 1, b"s") == [b"s1"]
        assert recovery.standby_offsets[standby] == 1
        assert app.tables.standbys_ready
        assert recovery.in_recovery, "the active partition has a record left"
        assert metrics.changelog_restored._value.get() == 2

    asyncio.run(main())


def test_the_consumer_writes_changelog_fetches_and_gives_faust_the_rest_unless_the_flow_is_stopped(
    app: faust.App,
) -> None:
    input_in_batches()

    async def main() -> None:
        tp, owner = changelog(app, 0), TP("relationships.owner-updates", 0)
        recovering(app, {tp: 9})
        restore, metrics = batches(app)
        view = SimpleNamespace(
            consumer_generation_id=1,
            rebalances_while_fetching=0,
            monitor=None,
            tables=app.tables,
            streams_changelogs=restore,
        )
        fetched = {tp: records(tp, {0: (b"a", b"a0")}), owner: ["owner record"]}
        consumer = fetching_consumer(fetched, view)
        consumer.flow_active = False  # a rebalance stopped the flow: Faust drops the fetch, recovery restarts
        assert await consumer._getmany(None, 1.0) == {owner: ["owner record"]}
        assert stored(app, 0, b"a") == [None]
        # a fetch that spanned a new generation: Faust takes it (it reads the generation after the fetch),
        # and so must this path, or the partition's recovery waits for records the consumer already read
        view.rebalances_while_fetching = 1
        consumer.flow_active = True
        assert await consumer._getmany(None, 1.0) == {owner: ["owner record"]}
        assert stored(app, 0, b"a") == [b"a0"]
        assert metrics.changelog_restored._value.get() == 1
        view.streams_changelogs = None  # an app without it: Faust's recovery as it was
        assert await consumer._getmany(None, 1.0) == fetched

    asyncio.run(main())
