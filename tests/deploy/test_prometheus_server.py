"""A real Prometheus scrapes the service's metrics and answers every dashboard query and rule expression."""

from __future__ import annotations

import http.server
import json
import shutil
import socket
import subprocess
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from prometheus_client import CONTENT_TYPE_LATEST, CollectorRegistry, generate_latest

from streams.service.metrics import Metrics
from tests.deploy.support import dashboard_targets, rule_exprs

pytestmark = pytest.mark.prometheus

SCRAPES_NEEDED = 4
START_TIMEOUT_S = 30.0


def _exercise(metrics: Metrics, step: int) -> None:
    """Move every metric, with every label the dashboard groups by, as a busy worker would."""
    metrics.consumed.labels(topic="interactions.mentions", type="mention").inc(100)
    metrics.consumed.labels(topic="interactions.mentions", type="invalid").inc()
    metrics.invalid.labels(reason="not_json").inc()
    metrics.dead_letters.inc()
    metrics.self_interactions.inc()
    metrics.duplicates.inc()
    metrics.late.inc()
    metrics.redelivered.inc()
    metrics.applied.inc(98)
    metrics.alerts.labels(kind="dormant").inc()
    metrics.rows.labels(status="active").set(1000 + step)
    metrics.rows.labels(status="dormant").set(10)
    metrics.timers.set(500)
    metrics.held.set(3)
    metrics.watermark_lag.labels(partition="0").set(60 + step)
    metrics.event_time_lag.labels(partition="0").set(1 + step)
    metrics.processing.labels(stage="ingest").observe(0.002)
    metrics.processing.labels(stage="relationships").observe(0.02)
    metrics.consumer_lag.labels(topic="interactions.mentions", partition="0").set(10 * step)
    metrics.rebalances.inc()
    metrics.recovered_rows.inc(10)
    metrics.recovering.set(step % 2)


class _Exporter(http.server.BaseHTTPRequestHandler):
    registry: CollectorRegistry
    metrics: Metrics
    scrapes = 0

    def do_GET(self) -> None:
        cls = type(self)
        cls.scrapes += 1
        _exercise(cls.metrics, cls.scrapes)
        body = generate_latest(cls.registry)
        self.send_response(200)
        self.send_header("Content-Type", CONTENT_TYPE_LATEST)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        return


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return json.load(response)


@pytest.fixture(scope="module")
def exporter() -> Iterator[tuple[int, type[_Exporter]]]:
    registry = CollectorRegistry()
    handler = type(
        "Exporter", (_Exporter,), {"registry": registry, "metrics": Metrics(registry), "scrapes": 0}
    )
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1], handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.fixture(scope="module")
def prometheus(
    exporter: tuple[int, type[_Exporter]], tmp_path_factory: pytest.TempPathFactory
) -> Iterator[str]:
    """A Prometheus scraping the exporter every second as job `relationships`; yields its base URL."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not on PATH: install Debian's `prometheus` package"
    exporter_port, handler = exporter
    workdir: Path = tmp_path_factory.mktemp("prometheus")
    config = workdir / "prometheus.yml"
    config.write_text(
        "global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\n"
        "scrape_configs:\n  - job_name: relationships\n"
        f"    static_configs:\n      - targets: ['127.0.0.1:{exporter_port}']\n",
        encoding="utf-8",
    )
    port = _free_port()
    base = f"http://127.0.0.1:{port}"
    log = (workdir / "prometheus.log").open("wb")
    process = subprocess.Popen(
        [
            binary,
            f"--config.file={config}",
            f"--storage.tsdb.path={workdir / 'data'}",
            f"--web.listen-address=127.0.0.1:{port}",
        ],
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT_S
        while handler.scrapes < SCRAPES_NEEDED:
            assert process.poll() is None, (workdir / "prometheus.log").read_text(errors="replace")
            assert time.monotonic() < deadline, f"only {handler.scrapes} scrapes in {START_TIMEOUT_S}s"
            time.sleep(0.2)
        # The last scrape must be stored before the queries run.
        while _query(base, "count(relationships_rows)") == []:
            assert time.monotonic() < deadline, "scraped samples never became queryable"
            time.sleep(0.2)
        yield base
    finally:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)
        log.close()


def _query(base: str, expr: str) -> list[Any]:
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        answer = _get(url)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{expr}: {error.read().decode(errors='replace')}") from error
    assert answer["status"] == "success", answer
    result: list[Any] = answer["data"]["result"]
    return result


@pytest.mark.parametrize(("title", "expr"), dashboard_targets(), ids=lambda v: str(v)[:60])
def test_dashboard_query_returns_data(prometheus: str, title: str, expr: str) -> None:
    result = _query(prometheus, expr)
    assert result, f"panel {title!r}: no data for {expr}"


@pytest.mark.parametrize(("name", "expr"), rule_exprs(), ids=lambda v: str(v)[:60])
def test_rule_expression_evaluates(prometheus: str, name: str, expr: str) -> None:
    _query(prometheus, expr)


def test_a_misspelt_metric_returns_no_data(prometheus: str) -> None:
    """The data check above can fail: a name the worker does not expose has no series."""
    assert _query(prometheus, "sum(rate(relationships_events_consumed[1m]))") == []
