"""Shared pieces of the broker benchmarks: unique deployments, worker processes, metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import urllib.request
import uuid
from pathlib import Path

from streams.cli.produce import route
from streams.kafka_admin import create_topics, producer
from streams.settings import deployment_env
from streams.settings import settings_from_env as settings_for

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deployment(partitions: int, **overrides: str) -> dict[str, str]:
    """A unique app id and topic set (created on the broker), as `STREAMS_*` variables."""
    env = deployment_env(
        f"bench{uuid.uuid4().hex[:8]}",
        partitions,
        **{"idle_timeout_ms": 2000, "log_level": "warning", **overrides},
    )
    create_topics(settings_for(env), partitions)
    return env


def produce(env: dict[str, str], lines: list[bytes]) -> None:
    """Send lines as `python -m streams produce` does."""
    settings = settings_for(env)
    client = producer(settings)
    for line in lines:
        topic, key = route(line, settings)
        client.send(topic, key=key, value=line)
    client.flush()
    client.close()


def start_worker(
    env: dict[str, str], data_dir: Path, port: int, log: Path | None = None
) -> subprocess.Popen[bytes]:
    """`python -m streams worker` with `env`, its web port and data dir."""
    worker_env = {**os.environ, **env, "STREAMS_WEB_PORT": str(port), "STREAMS_DATA_DIR": str(data_dir)}
    sink = log.open("ab") if log else subprocess.DEVNULL
    try:
        return subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"], cwd=REPO, env=worker_env, stdout=sink, stderr=sink
        )
    finally:
        if log:
            sink.close()  # type: ignore[union-attr]


def stop(process: subprocess.Popen[bytes]) -> None:
    """SIGTERM, then SIGKILL after 60 s."""
    process.send_signal(signal.SIGTERM)
    try:
        process.wait(timeout=60)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def metric(port: int, name: str) -> float:
    """Sum of the samples of `name` on a worker's /metrics (0 when unreachable)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(
        float(line.rsplit(" ", 1)[1])
        for line in body.splitlines()
        if line.startswith((name + " ", name + "{"))
    )
