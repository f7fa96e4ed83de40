"""Failed deliveries are counted on both send paths: Faust's topic sends (a sensor) and transactional ones."""

from __future__ import annotations

import asyncio

import faust
from prometheus_client import CollectorRegistry

from streams.service.metrics import Metrics
from streams.service.send_errors import SendErrorSensor, count_failed_delivery

ERRORS = "relationships_producer_send_errors_total"


def _metrics() -> tuple[CollectorRegistry, Metrics]:
    registry = CollectorRegistry()
    return registry, Metrics(registry)


def test_a_failed_delivery_future_counts_once_and_a_delivered_or_cancelled_one_not() -> None:
    registry, metrics = _metrics()

    async def deliveries() -> None:
        loop = asyncio.get_running_loop()
        failed, delivered, cancelled = loop.create_future(), loop.create_future(), loop.create_future()
        for future in (failed, delivered, cancelled):
            count_failed_delivery(metrics.send_errors, future)
        failed.set_exception(ConnectionError("broker gone"))
        delivered.set_result("metadata")
        cancelled.cancel()
        await asyncio.sleep(0)  # done callbacks run on the next loop turn
        failed.exception()  # retrieved: no "never retrieved" warning

    asyncio.run(deliveries())
    assert registry.get_sample_value(ERRORS) == 1.0


def test_faust_reports_a_send_error_to_the_sensor_which_counts_it() -> None:
    registry, metrics = _metrics()
    app = faust.App("send-errors-test", broker="kafka://127.0.0.1:1")
    app.sensors.add(SendErrorSensor(metrics.send_errors))
    for _ in range(2):  # what faust.topics does around a send whose delivery fails
        state = app.sensors.on_send_initiated(app.producer, "alerts", message=None, keysize=0, valsize=1)
        app.sensors.on_send_error(app.producer, RuntimeError("not delivered"), state)
    assert registry.get_sample_value(ERRORS) == 2.0


def test_process_metrics_are_on_the_workers_registry() -> None:
    registry, _ = _metrics()
    resident = registry.get_sample_value("process_resident_memory_bytes")
    assert resident is not None
    assert resident > 0
    assert registry.get_sample_value("python_gc_collections_total", {"generation": "0"}) is not None
    assert any(m.name == "python_info" for m in registry.collect())
