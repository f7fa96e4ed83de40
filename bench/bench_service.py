"""End-to-end events/s of the service through the real broker, against a bare aiokafka consumer (same run)."""

from __future__ import annotations

import argparse
import asyncio
import os
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from streams.cli.produce import route
from streams.datasets.collegemsg import collegemsg_events
from streams.kafka_admin import bootstrap_servers, create_topics, producer
from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def deployment(partitions: int) -> dict[str, str]:
    """A unique app id and topic set, as environment variables."""
    app = f"bench{uuid.uuid4().hex[:8]}"
    return {
        "STREAMS_APP_ID": app,
        "STREAMS_PARTITIONS": str(partitions),
        "STREAMS_TOPIC_MENTIONS": f"{app}.mentions",
        "STREAMS_TOPIC_REPLIES": f"{app}.replies",
        "STREAMS_TOPIC_LIKES": f"{app}.likes",
        "STREAMS_TOPIC_ALERTS": f"{app}.alerts",
        "STREAMS_TOPIC_DEAD_LETTER": f"{app}.dead-letter",
        "STREAMS_CLOCK": "event",
        "STREAMS_IDLE_TIMEOUT_MS": "2000",
        "STREAMS_LOG_LEVEL": "warning",
    }


def settings_for(env: dict[str, str]) -> Settings:
    return Settings.model_validate({k[8:].lower(): v for k, v in env.items()})


def produce(env: dict[str, str], lines: list[bytes]) -> None:
    settings = settings_for(env)
    client = producer(settings)
    for line in lines:
        topic, key = route(line, settings)
        client.send(topic, key=key, value=line)
    client.flush()
    client.close()


async def bare_consumer(settings: Settings, expected: int) -> float:
    """Events/s of an aiokafka consumer that only drains the input topics."""
    consumer = AIOKafkaConsumer(
        *settings.input_topics(),
        bootstrap_servers=bootstrap_servers(settings.broker),
        group_id=f"bare-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        max_poll_records=2000,
    )
    await consumer.start()
    started = None
    seen = 0
    try:
        while seen < expected:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            if started is None and batches:
                started = time.perf_counter()
            for records in batches.values():
                seen += sum(1 for _ in records)
        return expected / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()


def applied(port: int) -> float:
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read().decode()
    except OSError:
        return 0.0
    for line in body.splitlines():
        if line.startswith("relationships_events_applied_total "):
            return float(line.split()[1])
    return 0.0


def service(env: dict[str, str], workers: int, expected: int, data_root: Path) -> float:
    """Events/s from the first applied event to the last, over `workers` worker processes."""
    processes = []
    ports = []
    for number in range(workers):
        port = free_port()
        ports.append(port)
        worker_env = {
            **os.environ,
            **env,
            "STREAMS_WEB_PORT": str(port),
            "STREAMS_DATA_DIR": str(data_root / f"w{number}"),
        }
        processes.append(
            subprocess.Popen(
                [sys.executable, "-m", "streams", "worker"],
                cwd=REPO,
                env=worker_env,
                stdout=subprocess.DEVNULL,
                stderr=subprocess.DEVNULL,
            )
        )
    try:
        started = None
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = sum(applied(port) for port in ports)
            if started is None and done > 0:
                started, first = time.perf_counter(), done
            if done >= expected:
                return (expected - first) / (time.perf_counter() - started)
            time.sleep(0.2)
        raise TimeoutError(f"only {done} of {expected} events applied")
    finally:
        for process in processes:
            process.send_signal(signal.SIGTERM)
        for process in processes:
            try:
                process.wait(timeout=60)
            except subprocess.TimeoutExpired:
                process.kill()


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt")
    parser.add_argument("--repeat", type=int, default=4, help="copies of the data set (4 = 239,340 events)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure")
    args = parser.parse_args()
    lines = [orjson.dumps(e) for e in collegemsg_events(args.data, repeat=args.repeat)]
    out = sys.stdout
    out.write(f"events: {len(lines)} (CollegeMsg x{args.repeat}), partitions: {args.partitions}\n")
    for workers in (int(w) for w in args.workers.split(",")):
        env = deployment(args.partitions)
        settings = settings_for(env)
        create_topics(settings, args.partitions)
        produce(env, lines)
        bare = asyncio.run(bare_consumer(settings, len(lines)))
        with tempfile.TemporaryDirectory() as tmp:
            rate = service(env, workers, len(lines), Path(tmp))
        out.write(f"workers={workers}: bare aiokafka consumer {bare:>10,.0f} events/s | ")
        out.write(f"service {rate:>9,.0f} events/s | ratio {rate / bare:.3f} (target >= 0.30)\n")
        out.flush()
    return 0


if __name__ == "__main__":
    sys.exit(main())
