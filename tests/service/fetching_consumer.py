"""Faust's aiokafka consumer with only what the patched `_getmany` touches: its thread's fetch, its flow, the app."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from types import SimpleNamespace
from typing import Any

from faust.transport.drivers import aiokafka as faust_aiokafka


def fetching_consumer(fetched: Mapping[Any, list[Any]], app: Any, batches: Any = None) -> Any:
    """A consumer whose every fetch returns `fetched` (`app.rebalances_while_fetching` moves the generation
    meanwhile); `batches`, when given, becomes the app's input hand-off."""

    async def getmany(active_partitions: Any, timeout: float) -> dict[Any, list[Any]]:  # noqa: ASYNC109
        app.consumer_generation_id += app.rebalances_while_fetching
        return dict(fetched)

    consumer: Any = object.__new__(faust_aiokafka.Consumer)
    consumer._thread = SimpleNamespace(getmany=getmany)
    consumer.app = app
    consumer.suspend_flow = asyncio.Event()
    consumer.flow_active = True
    if batches is not None:
        app.streams_input = batches
    return consumer
