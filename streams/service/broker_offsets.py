"""Earliest and end offsets of topic partitions, asked of the broker over a connection the worker keeps for that."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable, Iterable
from typing import Any

import aiokafka
import faust
from aiokafka.structs import TopicPartition
from faust.transport.drivers.aiokafka import credentials_to_aiokafka_auth
from faust.types import TP

from streams.kafka_admin import bootstrap_servers
from streams.service.topology import owner_updates_topic_name
from streams.settings import Settings

__all__ = ["BrokerOffsets", "broker_offsets"]

log = logging.getLogger(__name__)


class BrokerOffsets:
    """ListOffsets requests from an aiokafka client of its own, on the worker's event loop (never blocking it).

    Asked through Faust's consumer (`highwaters`, `earliest_offsets`), a
    ListOffsets request waits behind the fetch that consumer keeps open on the
    same broker connection: a long poll of up to Faust's 1.5 s
    `fetch_max_wait_ms` while the input is idle. Each idleness judgement then
    took longer than the tick it runs on. This client fetches nothing, so the
    broker answers its requests at once. Under exactly_once it reads
    committed: end offsets are last stable offsets.
    """

    def __init__(self, app: faust.App, settings: Settings) -> None:
        self._app = app
        self._settings = settings
        self._client: aiokafka.AIOKafkaConsumer | None = None
        self._starting = asyncio.Lock()

    async def start(self, topics: Iterable[str]) -> None:
        """Connect, and learn where `topics` live (their first request would otherwise wait for metadata)."""
        await self.ends(TP(topic, 0) for topic in topics)

    async def ends(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The offset after the last record of each partition (the last stable offset under exactly_once)."""
        return await self._ask(tps, lambda client, wanted: client.end_offsets(wanted))

    async def beginnings(self, tps: Iterable[TP]) -> dict[TP, int]:
        """The first offset still on the broker, per partition."""
        return await self._ask(tps, lambda client, wanted: client.beginning_offsets(wanted))

    async def _ask(
        self, tps: Iterable[TP], request: Callable[[Any, list[TopicPartition]], Any]
    ) -> dict[TP, int]:
        wanted = [TopicPartition(tp.topic, tp.partition) for tp in tps]
        if not wanted:
            return {}
        found = await request(await self._started(), wanted)
        return {TP(tp.topic, tp.partition): offset for tp, offset in found.items()}

    async def _started(self) -> aiokafka.AIOKafkaConsumer:
        async with self._starting:
            if self._client is None:
                settings = self._settings
                client = aiokafka.AIOKafkaConsumer(
                    bootstrap_servers=bootstrap_servers(settings.broker),
                    client_id=f"{settings.app_id}-offsets",
                    enable_auto_commit=False,
                    isolation_level="read_committed" if settings.exactly_once else "read_uncommitted",
                    request_timeout_ms=settings.session_timeout_ms,
                    **credentials_to_aiokafka_auth(self._app.conf.broker_credentials),
                )
                try:
                    await client.start()
                except BaseException:
                    await client.stop()
                    raise
                self._client = client
            return self._client

    async def stop(self) -> None:
        """Close the connection (the worker is stopping)."""
        client, self._client = self._client, None
        if client is not None:
            await client.stop()


def broker_offsets(app: faust.App, settings: Settings) -> BrokerOffsets:
    """The app's one `BrokerOffsets` (kept as `app.streams_broker_offsets`), closed when the app shuts down."""
    found: BrokerOffsets | None = getattr(app, "streams_broker_offsets", None)
    if found is None:
        found = BrokerOffsets(app, settings)
        app.streams_broker_offsets = found  # type: ignore[attr-defined]
        offsets = found

        @app.task
        async def start_broker_offsets() -> None:
            try:
                await offsets.start([*settings.source_topics(), owner_updates_topic_name(settings)])
            except Exception as exc:  # the broker away for now: the first request connects
                log.debug("broker offsets not started: %s", type(exc).__name__)

        @app.on_before_shutdown.connect  # type: ignore[arg-type]
        async def close_broker_offsets(sender: Any, **kwargs: Any) -> None:
            await offsets.stop()

    return found
