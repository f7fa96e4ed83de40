"""Web views on the worker's port: Prometheus metrics and health."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest

if TYPE_CHECKING:
    from streams.service.worker import Service

__all__ = ["register_web"]


def register_web(service: Service) -> None:
    """Register `/metrics`, `/healthz` and `/readyz`."""
    app = service.app

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body = generate_latest(service.registry)
            return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return self.json({"status": "ok"})

    @app.page("/readyz")
    class ReadyView(View):
        async def get(self, request: Request) -> Any:
            ready = app.rebalancing is False and app.tables.recovery.completed.is_set()
            return self.json({"ready": ready}, status=200 if ready else 503)
