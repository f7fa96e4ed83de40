"""End-to-end events/s of the service through the real broker, against a bare aiokafka consumer (same run)."""

from __future__ import annotations

import argparse
import asyncio
import sys
import tempfile
import time
import uuid
from pathlib import Path

import orjson
from aiokafka import AIOKafkaConsumer

from bench.harness import deployment, free_port, metric, produce, settings_for, start_worker, stop
from streams.datasets.collegemsg import collegemsg_events
from streams.kafka_admin import bootstrap_servers
from streams.settings import Settings


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


def service(env: dict[str, str], workers: int, expected: int, data_root: Path) -> float:
    """Events/s from the first applied event to the last, over `workers` worker processes."""
    ports = [free_port() for _ in range(workers)]
    processes = [start_worker(env, data_root / f"w{n}", port) for n, port in enumerate(ports)]
    try:
        started = None
        first = done = 0.0
        deadline = time.monotonic() + 900
        while time.monotonic() < deadline:
            done = sum(metric(port, "relationships_events_applied_total") for port in ports)
            if started is None and done > 0:
                started, first = time.perf_counter(), done
            if started is not None and done >= expected:
                return (expected - first) / (time.perf_counter() - started)
            time.sleep(0.2)
        raise TimeoutError(f"only {done} of {expected} events applied")
    finally:
        for process in processes:
            stop(process)


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
