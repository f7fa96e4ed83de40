"""The hand-off of fetched input records to the ingest: batches, bounds, generations, and the consumer's side of it."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace

from aiokafka.structs import ConsumerRecord, TopicPartition

from streams.service.faust_internals import input_in_batches
from streams.service.input_batches import InputBatches, InputRecord, acked_runs
from streams.service.owner_fetches import UnhandledFetches
from tests.service.fetching_consumer import fetching_consumer

TOPIC = "mentions"


def records(partition: int, offsets: range) -> list[ConsumerRecord[bytes, bytes]]:
    return [
        ConsumerRecord(TOPIC, partition, offset, 0, 0, None, b"%d" % offset, None, 0, 0, ())
        for offset in offsets
    ]


def positions(batch: list[InputRecord]) -> list[tuple[int, int]]:
    return [(record.message.partition, record.message.offset) for record in batch]


class Generation:
    def __init__(self) -> None:
        self.now = 1

    def __call__(self) -> int:
        return self.now


def test_a_batch_takes_fetches_in_order_up_to_its_size_and_leaves_the_rest() -> None:
    async def main() -> None:
        batches = InputBatches({TOPIC}, 100, Generation())
        fetch = {
            TopicPartition(TOPIC, 0): records(0, range(3)),
            TopicPartition(TOPIC, 1): records(1, range(4)),
        }
        await batches.put(fetch, 1, asyncio.Event())
        first = await batches.take(5, within=0.01)
        assert positions(first) == [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]
        assert first[0].value == b"0"
        assert batches.pending == 2
        assert positions(await batches.take(5, within=0.01)) == [(1, 2), (1, 3)]
        assert batches.pending == 0

    asyncio.run(main())


def test_a_batch_short_of_its_size_waits_within_for_more() -> None:
    async def main() -> None:
        batches = InputBatches({TOPIC}, 100, Generation())
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(2))}, 1, asyncio.Event())

        async def later() -> None:
            await asyncio.sleep(0.05)
            await batches.put({TopicPartition(TOPIC, 0): records(0, range(2, 4))}, 1, asyncio.Event())

        task = asyncio.create_task(later())
        assert positions(await batches.take(10, within=1.0)) == [(0, 0), (0, 1), (0, 2), (0, 3)]
        await task
        started = asyncio.get_running_loop().time()
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(4, 5))}, 1, asyncio.Event())
        assert positions(await batches.take(10, within=0.1)) == [(0, 4)]
        assert asyncio.get_running_loop().time() - started >= 0.1

    asyncio.run(main())


def test_records_fetched_before_a_rebalance_are_dropped() -> None:
    async def main() -> None:
        generation = Generation()
        batches = InputBatches({TOPIC}, 100, generation)
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(3))}, 1, asyncio.Event())
        generation.now = 2
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(7, 8))}, 2, asyncio.Event())
        assert positions(await batches.take(10, within=0.01)) == [(0, 7)]
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(8, 9))}, 2, asyncio.Event())
        batches.clear()
        assert batches.pending == 0
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(9, 10))}, 2, asyncio.Event())
        assert positions(await batches.take(10, within=0.01)) == [(0, 9)]

    asyncio.run(main())


def test_the_fetch_loop_waits_while_the_bound_is_reached_unless_the_flow_stops() -> None:
    async def main() -> None:
        batches = InputBatches({TOPIC}, 3, Generation())
        flow = asyncio.Event()
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(3))}, 1, flow)
        blocked = asyncio.create_task(
            batches.put({TopicPartition(TOPIC, 0): records(0, range(3, 4))}, 1, flow)
        )
        await asyncio.sleep(0.05)
        assert not blocked.done()
        assert positions(await batches.take(2, within=0.01)) == [(0, 0), (0, 1)]
        await asyncio.wait_for(blocked, 1)
        assert batches.pending == 2
        await batches.put({TopicPartition(TOPIC, 0): records(0, range(4, 5))}, 1, flow)
        stopped = asyncio.create_task(
            batches.put({TopicPartition(TOPIC, 0): records(0, range(5, 6))}, 1, flow)
        )
        await asyncio.sleep(0.05)
        assert not stopped.done()
        flow.set()  # a rebalance stops the flow: the fetch loop must not stay stuck here
        await asyncio.wait_for(stopped, 1)

    asyncio.run(main())


def test_acked_runs_are_the_offsets_of_each_partition_as_consecutive_ranges() -> None:
    batch = [InputRecord.of(TOPIC, 0, offset, None, None) for offset in (7, 5, 6, 9, 9, 12)]
    batch.append(InputRecord.of("likes", 0, 3, None, None))
    assert acked_runs(batch) == {
        (TOPIC, 0): [range(5, 8), range(9, 10), range(12, 13)],
        ("likes", 0): [range(3, 4)],
    }


def test_a_hole_read_from_the_broker_is_acked_whole_even_where_no_record_was_found() -> None:
    # 10..12 were not delivered; reading them found only 11 (10 and 12: transaction markers, compacted records).
    batch = [InputRecord.of(TOPIC, 0, offset, None, None) for offset in (8, 9, 11, 13)]
    assert acked_runs(batch, {(TOPIC, 0): [(10, 13)]}) == {(TOPIC, 0): [range(8, 14)]}
    assert acked_runs(batch) == {(TOPIC, 0): [range(8, 10), range(11, 12), range(13, 14)]}


def test_the_consumer_hands_input_records_off_and_gives_faust_the_rest() -> None:
    input_in_batches()
    owner = TopicPartition("relationships.owner-updates", 0)
    fetched = {TopicPartition(TOPIC, 0): records(0, range(2)), owner: ["owner record"]}

    async def main() -> None:
        monitor = SimpleNamespace(stream_inbound_time={})
        app = SimpleNamespace(consumer_generation_id=4, rebalances_while_fetching=0, monitor=monitor)
        batches = InputBatches({TOPIC}, 100, lambda: app.consumer_generation_id)
        consumer = fetching_consumer(fetched, app, batches)
        assert await consumer._getmany(None, 1.0) == {owner: ["owner record"]}
        assert positions(await batches.take(10, within=0.01)) == [(0, 0), (0, 1)]
        # Faust's monitor hears of it as of records reaching a stream (else: "Stream has not started processing")
        assert set(monitor.stream_inbound_time) == {TopicPartition(TOPIC, 0)}
        app.rebalances_while_fetching = 1  # fetched across a rebalance: dropped, read again after the seek
        assert await consumer._getmany(None, 1.0) == {owner: ["owner record"]}
        assert batches.pending == 0
        plain = fetching_consumer(
            fetched, SimpleNamespace(consumer_generation_id=0, rebalances_while_fetching=0)
        )
        assert await plain._getmany(None, 1.0) == fetched  # an app without a hand-off: Faust's path as it was

    asyncio.run(main())


def test_the_owner_streams_fetches_are_told_to_the_relationship_agents_tracker() -> None:
    input_in_batches()
    owner_topic = "relationships.owner-updates"
    owner = TopicPartition(owner_topic, 2)
    owner_records = [
        ConsumerRecord(owner_topic, 2, offset, 0, 0, None, b"", None, 0, 0, ()) for offset in (11, 12, 14)
    ]
    fetched = {TopicPartition(TOPIC, 0): records(0, range(2)), owner: owner_records}

    async def main() -> None:
        app = SimpleNamespace(
            consumer_generation_id=4, rebalances_while_fetching=0, monitor=None, streams_fetches=None
        )
        app.streams_fetches = UnhandledFetches(owner_topic)
        consumer = fetching_consumer(fetched, app, InputBatches({TOPIC}, 100, lambda: 4))
        assert await consumer._getmany(None, 1.0) == {owner: owner_records}
        assert len(app.streams_fetches) == 3  # the owner stream's only
        assert app.streams_fetches.between(2, 13, 14) is False  # 13: a transaction marker
        assert app.streams_fetches.between(2, 12, 14) is True
        app.streams_fetches.clear()
        app.rebalances_while_fetching = 1  # fetched across a rebalance: Faust drops them, nothing to track
        await consumer._getmany(None, 1.0)
        assert len(app.streams_fetches) == 0

    asyncio.run(main())
