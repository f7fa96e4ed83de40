"""The CLI and a worker over TLS with client certificates (mTLS) and over SASL_SSL (SCRAM-SHA-512); refusals are clear."""

from __future__ import annotations

import os
import subprocess
import sys
import time
import uuid
from collections.abc import Callable
from functools import lru_cache
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaAdminClient

from streams.cli.broker_failure import EXIT_NO_BROKER
from streams.kafka_admin import bootstrap_servers
from streams.settings import deployment_env
from tests.service.conftest import REPO, TopicSet, Worker
from tests.service.test_faults import (
    FAST,
    alive,
    assert_like_the_replay,
    collegemsg_lines,
    replay_alerts,
    serving,
    wait_until,
)
from tests.tls.conftest import TlsBroker

pytestmark = pytest.mark.tls

EVENTS = 8_000
"""A CollegeMsg prefix with both kinds of alert under FAST settings (114 dormant, 18 revived)."""
REFUSED_WITHIN_S = 120.0
"""A refused client gives up on its own well before this (kafka-python's bootstrap timeout is 30 s)."""


@lru_cache(maxsize=1)
def _prefix() -> tuple[tuple[bytes, ...], dict[str, dict[str, Any]]]:
    lines = collegemsg_lines(EVENTS)
    want, summary = replay_alerts(lines, **FAST)
    assert summary.alerts["dormant"] > 0
    assert summary.alerts["revived"] > 0
    return tuple(lines), want


def streams_cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """`python -m streams ARGS` as an operator runs it, with the deployment's `STREAMS_*` variables."""
    return subprocess.run(
        [sys.executable, "-m", "streams", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=REFUSED_WITHIN_S + 60,
        check=False,
    )


def deployment(partitions: int, security: dict[str, object]) -> tuple[str, dict[str, str]]:
    """A unique app id and the worker environment of a deployment with these connection settings."""
    app_id = f"t{uuid.uuid4().hex[:10]}"
    env = deployment_env(app_id, partitions, idle_timeout_ms=2000, tick_interval_ms=500, **FAST, **security)
    return app_id, env


def existing_topics(tls_broker: TlsBroker) -> set[str]:
    """Topic names on the broker, asked over its PLAINTEXT listener."""
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(tls_broker.plaintext))
    try:
        return set(admin.list_topics())
    finally:
        admin.close()


def run_over_tls(security: dict[str, object], tmp_path: Path, worker_factory: Callable[..., Worker]) -> None:
    """`topics create` and `produce` from the CLI and a worker, all with `security`: the replay's alerts."""
    lines, want = _prefix()
    app_id, env = deployment(3, security)
    created = streams_cli(env, "topics", "create")
    assert created.returncode == 0, created.stderr
    assert f"topic {app_id}-owner-updates: created, 3 partitions" in created.stderr
    topic_set = TopicSet(app_id, 3, env)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 90, "the worker's web port")
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(lines) + b"\n")
    produced = streams_cli(env, "produce", str(events))
    assert produced.returncode == 0, produced.stderr
    assert f"sent {EVENTS} records" in produced.stderr
    assert_like_the_replay(topic_set, want, [worker])
    assert alive(worker), worker.trouble()


def test_cli_and_worker_with_client_certificates_give_the_replays_alerts(
    observed_over_plaintext: TlsBroker, tmp_path: Path, worker_factory: Callable[..., Worker]
) -> None:
    run_over_tls(observed_over_plaintext.mtls(), tmp_path, worker_factory)


def test_cli_and_worker_with_scram_over_tls_give_the_replays_alerts(
    observed_over_plaintext: TlsBroker, tmp_path: Path, worker_factory: Callable[..., Worker]
) -> None:
    run_over_tls(observed_over_plaintext.scram(), tmp_path, worker_factory)


BAD_CERTIFICATE = "KafkaConnectionError: [SSL: SSLV3_ALERT_BAD_CERTIFICATE] sslv3 alert bad certificate"
"""What the client meets when the SSL listener refuses it a certificate."""
BROKER_REFUSED_TLS = "(SSL handshake failed)"
BROKER_REFUSED_SCRAM = "(Authentication failed during authentication due to invalid credentials with SASL mechanism SCRAM-SHA-512)"
"""What the broker logs (`Failed authentication with /127.0.0.1 ...`) for each refused connection."""


def broker_logged(tls_broker: TlsBroker, text: str) -> int:
    """Lines of the broker's server.log holding `text`."""
    log = tls_broker.directory / "kafka" / "logs" / "server.log"
    return sum(text in line for line in log.read_text(errors="replace").splitlines())


def gave_up(command: str, broker: str) -> str:
    """The start of the last line of a command that gave up on `broker`."""
    return f"{command}: gave up on the Kafka broker: KafkaTimeoutError: Unable to bootstrap from {bootstrap_servers(broker)}"


def assert_refused(tls_broker: TlsBroker, security: dict[str, object], broker_says: str) -> str:
    """`topics create` gives up on its own with status 1 and creates nothing; the broker logged the refusal.
    The command's last line, which says so and lists the connection errors met."""
    app_id, env = deployment(1, security)
    refusals = broker_logged(tls_broker, broker_says)
    started = time.monotonic()
    refused = streams_cli(env, "topics", "create")
    took = time.monotonic() - started
    assert refused.returncode == EXIT_NO_BROKER == 1, refused.stderr[-3000:]
    assert took < REFUSED_WITHIN_S
    last_line = refused.stderr.splitlines()[-1]
    assert last_line.startswith(gave_up("topics", str(security["broker"])) + "; connection errors: "), (
        last_line
    )
    assert not {t for t in existing_topics(tls_broker) if t.startswith(app_id)}
    assert broker_logged(tls_broker, broker_says) > refusals
    return last_line


def without_certificate(tls_broker: TlsBroker) -> dict[str, object]:
    """The SSL listener's client settings without the client certificate and key."""
    return {
        k: v for k, v in tls_broker.mtls().items() if k not in {"broker_ssl_certfile", "broker_ssl_keyfile"}
    }


def test_a_client_without_a_certificate_is_refused(tls_broker: TlsBroker) -> None:
    last_line = assert_refused(tls_broker, without_certificate(tls_broker), BROKER_REFUSED_TLS)
    assert BAD_CERTIFICATE in last_line


def test_a_worker_without_a_certificate_exits_saying_why(
    tls_broker: TlsBroker, worker_factory: Callable[..., Worker]
) -> None:
    app_id, env = deployment(1, without_certificate(tls_broker))
    worker = worker_factory(TopicSet(app_id, 1, env))
    assert worker.process is not None
    status = worker.process.wait(timeout=REFUSED_WITHIN_S)
    last_line = worker.log_text().splitlines()[-1]
    assert status == EXIT_NO_BROKER, worker.trouble()
    assert last_line.startswith(gave_up("worker", tls_broker.ssl) + "; connection errors: "), last_line
    assert BAD_CERTIFICATE in last_line


def test_a_wrong_scram_password_is_refused(tls_broker: TlsBroker) -> None:
    # The client meets the broker's SaslAuthenticationFailedError on some attempts only, and a closed
    # connection on the others: the broker's log is where the reason always shows.
    assert_refused(tls_broker, tls_broker.scram(password="not-the-password"), BROKER_REFUSED_SCRAM)
