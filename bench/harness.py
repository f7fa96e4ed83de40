"""Shared pieces of the broker benchmarks: unique deployments, worker processes, metrics."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
import uuid
from pathlib import Path

from prometheus_client.parser import text_string_to_metric_families

from streams.cli.produce import route
from streams.kafka_admin import create_topics, producer
from streams.service.metrics import ROCKSDB_MEMORY_COMPONENTS
from streams.service.topology import MB
from streams.settings import deployment_env, settings_from_env

REPO = Path(__file__).resolve().parents[1]
SAMPLE_INTERVAL_S = 10.0
"""How often the memory of a running worker is sampled."""
FIRST_ROW_INTERVAL_S = 1.0
"""How often until it has rows."""
GROWTH_FROM_ROWS = 0.25
"""Growth is measured from the first sample past this share of the run's rows (caches filled) to the last."""


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
    create_topics(settings_from_env(env), partitions)
    return env


def produce(env: dict[str, str], lines: list[bytes]) -> None:
    """Send lines as `python -m streams produce` does."""
    settings = settings_from_env(env)
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


def metric_labelled(port: int, name: str, **labels: str) -> float:
    """Sum of the samples of `name` with `labels` on a worker's /metrics (0 when unreachable)."""
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    return sum(
        sample.value
        for family in text_string_to_metric_families(body)
        for sample in family.samples
        if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items())
    )


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


def peak_rss_mb(pid: int) -> float:
    """Peak resident set size of `pid` (VmHWM, /proc/<pid>/status), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmHWM for pid {pid}")


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` now (VmRSS), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


class MemorySampler(threading.Thread):
    """Every `SAMPLE_INTERVAL_S`: a running worker's RSS, its rows and held updates, and RocksDB's memory.

    Until the worker reports rows, every second: the last sample before its first row is the baseline
    (a worker that starts fast has rows by the first 10 s sample).
    """

    def __init__(self, pid: int, port: int) -> None:
        super().__init__(daemon=True)
        self.pid, self.port = pid, port
        self.samples: list[dict[str, float]] = []
        self.started = time.monotonic()
        self.stopped = threading.Event()

    def run(self) -> None:
        while not self.stopped.wait(SAMPLE_INTERVAL_S if self._has_rows() else FIRST_ROW_INTERVAL_S):
            try:
                sample = {"s": round(time.monotonic() - self.started, 1), "rss_mb": round(rss_mb(self.pid))}
            except (OSError, RuntimeError):
                return  # the worker is gone
            sample["rows"] = metric(self.port, "relationships_rows")
            sample["held_updates"] = metric(self.port, "relationships_held_updates")
            for component in ROCKSDB_MEMORY_COMPONENTS:
                sample[f"rocksdb_{component}_mb"] = round(
                    metric_labelled(self.port, "relationships_rocksdb_memory_bytes", component=component) / MB
                )
            self.samples.append(sample)

    def _has_rows(self) -> bool:
        return bool(self.samples) and self.samples[-1]["rows"] > 0

    def growth_mb_per_million_rows(self) -> float | None:
        """RSS growth per million rows from the first sample past `GROWTH_FROM_ROWS` of the rows to the last."""
        if not self.samples:
            return None
        last = self.samples[-1]
        first = next(s for s in self.samples if s["rows"] >= GROWTH_FROM_ROWS * last["rows"])
        if last["rows"] <= first["rows"]:
            return None
        return round((last["rss_mb"] - first["rss_mb"]) / (last["rows"] - first["rows"]) * 1e6, 1)
