"""A real Prometheus scrapes a real worker fed with data and answers every dashboard query and rule expression."""

from __future__ import annotations

import shutil
import socket
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import yaml

from streams.datasets.collegemsg import COLLEGEMSG as COLLEGEMSG_FIXTURE
from streams.datasets.collegemsg import collegemsg_events
from tests.deploy.support import (
    DASHBOARD_VARIABLES,
    PROMETHEUS,
    RULE_FILES,
    dashboard_targets,
    load_yaml,
    metric_names,
    rule_exprs,
)
from tests.service.conftest import BROKER, TopicSet, Worker, _broker_answers, produce_lines

pytestmark = [pytest.mark.broker, pytest.mark.prometheus]

COLLEGEMSG = COLLEGEMSG_FIXTURE
EVENTS = 3000
START_TIMEOUT_S = 30.0
DATA_TIMEOUT_S = 90.0
GARBAGE = [
    b"not json {",
    b"[1, 2, 3]",
    b'{"id": "g1", "type": "poke", "actor_id": "a", "target_id": "b", "ts": 1}',
]


def fed_lines() -> list[bytes]:
    """CollegeMsg events with a duplicate, a self-interaction and garbage, so every counter moves."""
    lines: list[bytes] = []
    for number, event in enumerate(collegemsg_events(COLLEGEMSG), start=1):
        lines.append(orjson.dumps(event))
        if number == 100:
            lines.append(lines[-1])  # an exact duplicate, right behind its original
            lines.append(orjson.dumps({**event, "id": "self-100", "target_id": event["actor_id"]}))
        if number == EVENTS:
            break
    return lines + GARBAGE


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


def _get(url: str) -> Any:
    with urllib.request.urlopen(url, timeout=10) as response:
        return orjson.loads(response.read())


def query(base: str, expr: str) -> list[Any]:
    """Evaluate `expr` now; a parse or evaluation error fails with Prometheus' message."""
    url = f"{base}/api/v1/query?{urllib.parse.urlencode({'query': expr})}"
    try:
        answer = _get(url)
    except urllib.error.HTTPError as error:
        raise AssertionError(f"{expr}: {error.read().decode(errors='replace')}") from error
    assert answer["status"] == "success", answer
    result: list[Any] = answer["data"]["result"]
    return result


def wait_until(what: str, check: Callable[[], bool], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while not check():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.5)


def prometheus_config(target: str) -> dict[str, Any]:
    """deploy/prometheus/prometheus.yml, scraping `target` every second and evaluating its rules every second."""
    config: dict[str, Any] = load_yaml(PROMETHEUS / "prometheus.yml")
    config["global"] = {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(path) for path in RULE_FILES]
    (job,) = config["scrape_configs"]
    assert job["job_name"] == "relationships"
    job["static_configs"] = [{"targets": [target]}]
    return config


@pytest.fixture
def prometheus(tmp_path: Path) -> Iterator[Callable[[str], str]]:
    """Start a Prometheus scraping a target (`host:port`); returns its base URL. Stopped at teardown."""
    binary = shutil.which("prometheus")
    assert binary, "prometheus is not on PATH: install Debian's `prometheus` package"
    processes: list[subprocess.Popen[bytes]] = []

    def start(target: str) -> str:
        config = tmp_path / "prometheus.yml"
        config.write_text(yaml.safe_dump(prometheus_config(target)), encoding="utf-8")
        port = _free_port()
        log = tmp_path / "prometheus.log"
        with log.open("wb") as out:
            process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config}",
                    f"--storage.tsdb.path={tmp_path / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                ],
                stdout=out,
                stderr=subprocess.STDOUT,
            )
        processes.append(process)
        base = f"http://127.0.0.1:{port}"

        def up() -> bool:
            assert process.poll() is None, log.read_text(errors="replace")
            try:
                return bool(query(base, 'up{job="relationships"} == 1'))
            except (urllib.error.URLError, ConnectionError):
                return False

        wait_until("Prometheus to scrape the worker", up, START_TIMEOUT_S)
        return base

    yield start
    for process in processes:
        process.terminate()
        try:
            process.wait(15)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(5)


def missing_data(base: str) -> list[str]:
    """Dashboard queries and recording rules without a result, and metrics of alert rules without series.

    An alert expression is empty while all is well, so for those each
    `relationships_*` metric it reads must have series instead.
    """
    missing = [
        f"panel {title!r}: {expr}"
        for title, expr in dashboard_targets(DASHBOARD_VARIABLES)
        if not query(base, expr)
    ]
    for path in RULE_FILES:
        for group in load_yaml(path)["groups"]:
            for rule in group["rules"]:
                if "record" in rule:
                    if not query(base, rule["expr"]):
                        missing.append(f"record {rule['record']}: {rule['expr']}")
                    continue
                query(base, rule["expr"])  # must parse and evaluate
                missing += [
                    f"alert {rule['alert']}: no series of {name}"
                    for name in sorted(metric_names(rule["expr"]))
                    if not query(base, f"count({name})")
                ]
    return missing


def test_every_panel_and_rule_has_data_from_a_fed_worker(
    topic_factory: Callable[..., TopicSet],
    worker_factory: Callable[..., Worker],
    prometheus: Callable[[str], str],
) -> None:
    assert _broker_answers(), f"no Kafka broker at {BROKER}: run `make kafka` (make test does)"
    topic_set = topic_factory(2)
    worker = worker_factory(topic_set)
    base = prometheus(f"127.0.0.1:{worker.web_port}")
    produce_lines(topic_set, fed_lines())

    # Every expression parses and evaluates now (before the data settles).
    for _name, expr in rule_exprs():
        query(base, expr)
    # Every query has data once the events went through and two scrapes cover each rate window.
    missing: list[str] = []

    def settled() -> bool:
        nonlocal missing
        missing = missing_data(base)
        return not missing

    try:
        wait_until("every panel and rule to have data", settled, DATA_TIMEOUT_S)
    except AssertionError:
        raise AssertionError("no data for:\n" + "\n".join(missing)) from None
    every_line = EVENTS + 2 + len(GARBAGE)
    wait_until(
        f"Prometheus to see all {every_line} lines consumed, the garbage as invalid",
        lambda: (
            bool(query(base, f"sum(relationships_events_consumed_total) == {every_line}"))
            and bool(query(base, f"sum(relationships_invalid_events_total) == {len(GARBAGE)}"))
        ),
        DATA_TIMEOUT_S,
    )

    # Prometheus itself loaded and evaluated every rule without error.
    rules = _get(f"{base}/api/v1/rules")["data"]["groups"]
    unhealthy = [
        (rule["name"], rule.get("lastError"))
        for group in rules
        for rule in group["rules"]
        if rule["health"] != "ok"
    ]
    assert not unhealthy, unhealthy
    assert sum(len(group["rules"]) for group in rules) == len(rule_exprs())

    # The data check above can fail: a name the worker does not expose has no series.
    assert query(base, "sum(rate(relationships_events_consumed[1m]))") == []
