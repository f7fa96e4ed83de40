"""Web views on the worker's port: metrics, health, readiness and owner state queries (routed to the owner)."""

from __future__ import annotations

import hmac
import ipaddress
import logging
import time
from collections.abc import Mapping
from typing import TYPE_CHECKING, Any, cast

import aiohttp
import faust
import orjson
from faust.assignor import PartitionAssignor
from faust.types import TP
from faust.web import Request, Response, View
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from yarl import URL

from streams.service.partitioning import owner_partition
from streams.service.readiness import check_readiness, tables_recovered
from streams.service.state_query import BadQuery, Query, as_of_ms, parse_query, relationships_body

if TYPE_CHECKING:
    from streams.service.worker import Service

__all__ = [
    "AUTH_REALM",
    "FORWARDED_HEADER",
    "PROXY_TIMEOUT_S",
    "SERVED_BY_HEADER",
    "exposure_warning",
    "partition_url",
    "register_web",
]

log = logging.getLogger(__name__)

SERVED_BY_HEADER = "X-Relationships-Served-By"
"""Response header: the URL of the worker whose memory answered."""
FORWARDED_HEADER = "X-Relationships-Forwarded-By"
"""Request header a worker adds when it forwards a query; a forwarded query is never forwarded again."""
PROXY_TIMEOUT_S = 10.0
UNROUTABLE_HOSTS = frozenset({"", "0.0.0.0", "::"})  # noqa: S104  (compared with, never bound)
JSON = "application/json"
AUTH_REALM = 'Bearer realm="relationships"'
"""`WWW-Authenticate` of a 401: state queries take a bearer token (STREAMS_WEB_TOKEN)."""


def exposure_warning(host: str, token: str | None) -> str | None:
    """What to warn about when the web port binds a non-loopback address with no token; None when safe.

    >>> exposure_warning("127.0.0.1", None) is None, exposure_warning("0.0.0.0", "s3cret") is None
    (True, True)
    """
    if token is not None or host == "localhost":
        return None
    try:
        if ipaddress.ip_address(host).is_loopback:
            return None
    except ValueError:  # a host name: it may resolve anywhere
        pass
    return (
        f"the web port binds {host}, not a loopback address, and STREAMS_WEB_TOKEN is not set: "
        "anyone who can reach it can read every person's relationships at /relationships/{owner}"
    )


def authorised(authorization: str | None, expected: bytes | None) -> bool:
    """The request's `Authorization` header carries the token (compared in constant time); True with no token.

    >>> expected = b"Bearer s3cret"
    >>> authorised("Bearer s3cret", expected), authorised("Bearer s3cre", expected), authorised(None, expected)
    (True, False, False)
    """
    if expected is None:
        return True
    return hmac.compare_digest((authorization or "").encode(), expected)


def partition_url(app: faust.App, topic: str, partition: int) -> str | None:
    """The web URL of the group member assigned `topic[partition]`, from the last assignment; None if unknown."""
    assignor = cast(PartitionAssignor, app.assignor)
    for url, topics in assignor.external_topic_distribution.items():
        if partition in topics.get(topic, ()):
            return str(url)
    return None


def _json(
    view: View, body: Mapping[str, Any], status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    return view.bytes(orjson.dumps(body), content_type=JSON, status=status, headers=headers)


def _error(view: View, status: int, code: str, message: str, **extra: Any) -> Response:
    """A machine-readable error body: `{"error": code, "message": ...}`; 503s say when to retry."""
    headers = {"Retry-After": "1"} if status == 503 else None
    return _json(view, {"error": code, "message": message, **extra}, status, headers)


def register_web(service: Service) -> None:
    """Register `/metrics`, `/healthz`, `/readyz` and `/relationships/{owner}` on the service's app."""
    app = service.app
    settings = service.settings
    owner_topic = service.topology.owner_updates.get_topic_name()
    service.metrics.initialise_label_sets(
        settings.input_topics(), settings.topic_erasures, settings.topic_feedback
    )
    token = settings.resolved_web_token()
    expected_authorization = None if token is None else f"Bearer {token}".encode()
    warning = exposure_warning(settings.web_host, token)
    if warning is not None:
        log.warning("%s", warning)

    def self_url() -> str:
        return str(app.conf.canonical_url)

    @app.page("/metrics")
    class MetricsView(View):
        async def get(self, request: Request) -> Response:
            body = generate_latest(service.registry)
            return self.bytes(body, content_type=CONTENT_TYPE_LATEST.split(";")[0])

    @app.page("/healthz")
    class HealthView(View):
        async def get(self, request: Request) -> Response:
            return _json(self, {"status": "ok"})

    @app.page("/readyz")
    class ReadyView(View):
        async def get(self, request: Request) -> Response:
            verdict = check_readiness(app, owner_topic, service.owner_partitions.live, service.consumer_lag)
            return _json(self, verdict.body(), 200 if verdict.ready else 503)

    @app.page("/relationships/{owner}")
    class RelationshipsView(View):
        async def get(self, request: Request, owner: str) -> Response:
            if not authorised(request.headers.get("Authorization"), expected_authorization):
                body = {
                    "error": "unauthorized",
                    "message": "state queries need `Authorization: Bearer <token>`",
                }
                return _json(self, body, 401, {"WWW-Authenticate": AUTH_REALM})
            try:
                query = parse_query(owner, request.query.items())
            except BadQuery as exc:
                return _json(self, exc.body(), 400)
            if app.rebalancing or not tables_recovered(app):
                return _error(self, 503, "not_ready", "the worker is rebalancing or recovering its tables")
            partition = owner_partition(query.owner, settings.partitions)
            if TP(owner_topic, partition) in app.assignor.assigned_actives():
                return self.answer(query, partition)
            if FORWARDED_HEADER in request.headers:
                # The forwarding worker's view of the assignment is older or newer than ours.
                return _error(
                    self,
                    503,
                    "not_owner",
                    "this worker does not own the owner's partition (assignment moving)",
                )
            url = partition_url(app, owner_topic, partition)
            if url is None or url == self_url():  # ours in the last assignment, not (or no longer) assigned
                return _error(self, 503, "partition_unassigned", "no worker owns the owner's partition yet")
            if URL(url).host in UNROUTABLE_HOSTS:
                return _error(
                    self,
                    503,
                    "owner_not_addressable",
                    "the owning worker advertises an address others cannot reach (see STREAMS_WEB_HOST)",
                )
            return await self.forward(request, url, partition)

        def answer(self, query: Query, partition: int) -> Response:
            part = service.owner_partitions.live.get(partition)
            if part is None:
                return _error(
                    self,
                    503,
                    "partition_loading",
                    "the owner's partition is being loaded",
                    partition=partition,
                )
            engine = part.engine
            as_of = as_of_ms(engine.watermark, int(time.time() * 1000))
            body = relationships_body(query, engine.rows, engine.rules, as_of, partition)
            headers = {SERVED_BY_HEADER: self_url()}
            if body is None:
                return _json(
                    self,
                    {
                        "error": "unknown_owner",
                        "message": "no relationships for this owner",
                        "owner_id": query.owner,
                    },
                    404,
                    headers,
                )
            return _json(self, body, 200, headers)

        async def forward(self, request: Request, url: str, partition: int) -> Response:
            target = URL(url).join(URL(request.url.raw_path_qs, encoded=True))
            session = app.http_client
            log.debug("forwarding query for owner partition %d to %s", partition, url)
            headers = {FORWARDED_HEADER: self_url(), "Accept": JSON}
            if token is not None:
                headers["Authorization"] = f"Bearer {token}"
            try:
                async with session.get(
                    target,
                    headers=headers,
                    timeout=aiohttp.ClientTimeout(total=PROXY_TIMEOUT_S),
                ) as response:
                    body = await response.read()
                    answered = {SERVED_BY_HEADER: response.headers.get(SERVED_BY_HEADER, url)}
                    if "Retry-After" in response.headers:
                        answered["Retry-After"] = response.headers["Retry-After"]
                    return self.bytes(
                        body, content_type=response.content_type, status=response.status, headers=answered
                    )
            except (aiohttp.ClientError, TimeoutError) as exc:
                log.warning(
                    "query for owner partition %d not forwarded to %s: %s", partition, url, type(exc).__name__
                )
                return _error(
                    self, 502, "owner_unreachable", "the worker that owns the partition did not answer"
                )
