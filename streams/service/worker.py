"""Assemble and run one worker: app, topology, agents, web views."""

from __future__ import annotations

import logging

import faust
from prometheus_client import CollectorRegistry

from streams.service.app import create_app
from streams.service.consumer_lag import ConsumerLagMonitor, register_consumer_lag
from streams.service.ingest import register_ingest
from streams.service.logs import setup_logging
from streams.service.metrics import Metrics
from streams.service.relationships import OwnerPartitions, register_relationships
from streams.service.send_errors import SendErrorSensor
from streams.service.topology import Topology, declare_topology
from streams.settings import Settings

__all__ = ["Service", "build_service", "run_worker"]


class Service:
    """A configured worker: the Faust app and what its web views need."""

    def __init__(self, settings: Settings, registry: CollectorRegistry | None = None) -> None:
        self.settings = settings
        self.registry = registry if registry is not None else CollectorRegistry()
        self.metrics = Metrics(self.registry)
        self.app: faust.App = create_app(settings)
        self.app.sensors.add(SendErrorSensor(self.metrics.send_errors))
        self.topology: Topology = declare_topology(self.app, settings)
        register_ingest(self.app, self.topology, settings, self.metrics)
        self.owner_partitions: OwnerPartitions = register_relationships(
            self.app, self.topology, settings, self.metrics
        )
        self.consumer_lag: ConsumerLagMonitor = register_consumer_lag(
            self.app, self.topology, settings, self.metrics
        )


def build_service(settings: Settings) -> Service:
    """Everything a worker runs, not yet started."""
    from streams.service.web import register_web  # noqa: PLC0415  (web imports the service)

    service = Service(settings)
    register_web(service)
    return service


def run_worker(settings: Settings) -> None:
    """Run a worker in the foreground until SIGINT/SIGTERM."""
    logging_config = setup_logging(settings)
    service = build_service(settings)
    worker = faust.Worker(
        service.app, loglevel=settings.log_level.upper(), quiet=True, logging_config=logging_config
    )
    # Faust warns on every full producer buffer, which is routine under load.
    logging.getLogger("faust.transport.producer").setLevel(logging.ERROR)
    logging.getLogger("kafka").setLevel(logging.WARNING)
    logging.getLogger(__name__).info(
        "worker %s: broker=%s web=http://%s:%d",
        settings.app_id,
        settings.broker,
        settings.web_host,
        settings.web_port,
    )
    worker.execute_from_commandline()
