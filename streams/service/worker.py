"""Assemble and run one worker: app, topology, agents, web views."""

from __future__ import annotations

import logging
from collections.abc import Mapping

import faust
from prometheus_client import CollectorRegistry

from streams.kafka_admin import follow_the_broker
from streams.service.app import create_app
from streams.service.consumer_lag import ConsumerLagMonitor, register_consumer_lag
from streams.service.delivery import Delivery, delivery_for
from streams.service.faust_internals import check_faust_internals
from streams.service.ingest import register_ingest
from streams.service.logs import logging_config, setup_logging
from streams.service.metrics import Metrics
from streams.service.relationships import OwnerPartitions, register_relationships
from streams.service.send_errors import SendErrorSensor
from streams.service.topology import Topology, declare_topology
from streams.settings import Settings

__all__ = ["Service", "build_service", "make_worker", "run_worker"]


class Service:
    """A configured worker: the Faust app and what its web views need."""

    def __init__(
        self,
        settings: Settings,
        registry: CollectorRegistry | None = None,
        input_partitions: Mapping[str, int] | None = None,
    ) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.app: faust.App = create_app(settings)
        self.app.sensors.add(SendErrorSensor(self.metrics.send_errors))
        self.topology: Topology = declare_topology(self.app, settings, input_partitions)
        self.delivery: Delivery = delivery_for(self.app, self.topology, settings, self.metrics)
        register_ingest(self.app, self.topology, settings, self.metrics, self.delivery)
        self.owner_partitions: OwnerPartitions = register_relationships(
            self.app, self.topology, settings, self.metrics, self.delivery
        )
        self.consumer_lag: ConsumerLagMonitor = register_consumer_lag(
            self.app, self.topology, settings, self.metrics
        )


def build_service(settings: Settings, input_partitions: Mapping[str, int] | None = None) -> Service:
    """Everything a worker runs, not yet started."""
    from streams.service.web import register_web  # noqa: PLC0415  (web imports the service)

    service = Service(settings, input_partitions=input_partitions)
    register_web(service)
    return service


def make_worker(service: Service) -> faust.Worker:
    """The Faust worker that runs `service`, its loggers quiet where Faust's defaults cost CPU."""
    settings = service.settings
    worker = faust.Worker(
        service.app,
        loglevel=settings.log_level.upper(),
        quiet=True,
        logging_config=logging_config(settings),
    )
    # At level warning and above Faust's terminal spinner sets the root logger to DEBUG,
    # so every debug call in the send path builds a record: 14 % of a busy worker's CPU.
    worker.spinner = None
    # Faust warns on every full producer buffer, which is routine under load.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    return worker


def run_worker(settings: Settings) -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM, on the broker's partition counts.

    Raises `kafka_admin.PartitionMismatch` before anything is consumed if the topics contradict each other,
    and `faust_internals.FrameworkMismatch` (before asking the broker) if Faust's internals are not as expected.
    """
    setup_logging(settings)
    check_faust_internals()
    followed = follow_the_broker(settings)
    settings = followed.settings
    worker = make_worker(build_service(settings, followed.input_partitions))
    logging.getLogger(__name__).info(
        "worker %s: broker=%s web=http://%s:%d",
        settings.app_id,
        settings.broker,
        settings.web_host,
        settings.web_port,
    )
    worker.execute_from_commandline()
