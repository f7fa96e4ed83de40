"""Alert latency in live (`hybrid`) mode: from the wall-clock moment a deadline passes to the alert on the topic."""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

import orjson
from kafka import KafkaConsumer

from bench.harness import deployment, free_port, metric, produce, start_worker, stop
from bench.results import Recorder
from streams.kafka_admin import bootstrap_servers
from streams.settings import settings_from_env

SILENCE_MS = 8_000


def relationships(count: int, now_ms: int) -> list[bytes]:
    """`count` mutual pairs, two touches each (1 ms apart): each deadline = last event + SILENCE_MS.

    Event times are 3 s ahead of the wall clock, so the watermark (wall clock,
    lateness 0) holds them back and applies them in order, as live traffic
    within the allowed lateness would be.
    """
    lines = []
    for n in range(count):
        a, b = f"a{n}", f"b{n}"
        ts = now_ms + 3_000 + n * 5  # ahead of the wall clock: held, then applied in (ts, id) order
        lines.append(orjson.dumps({"id": f"x{n}", "type": "reply", "actor_id": a, "target_id": b, "ts": ts}))
        lines.append(
            orjson.dumps({"id": f"y{n}", "type": "reply", "actor_id": b, "target_id": a, "ts": ts + 1})
        )
    return lines


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--pairs", type=int, default=300)
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    recorder = Recorder("latency")
    env = deployment(
        args.partitions,
        clock="hybrid",
        allowed_lateness_ms="0",
        touch_merge_ms="1",
        min_touches="2",
        min_silence_ms=str(SILENCE_MS),
        max_silence_ms=str(SILENCE_MS),
    )
    settings = settings_from_env(env)
    port = free_port()
    with tempfile.TemporaryDirectory() as tmp:
        worker = start_worker(env, Path(tmp), port)
        try:
            while metric(port, "relationships_build_info") == 0:
                time.sleep(0.5)
            time.sleep(5)  # let the group settle
            produce(env, relationships(args.pairs, int(time.time() * 1000)))
            consumer = KafkaConsumer(
                settings.topic_alerts,
                bootstrap_servers=bootstrap_servers(settings.broker),
                auto_offset_reset="earliest",
                fetch_max_wait_ms=20,
            )
            latencies: list[float] = []
            deadline = time.monotonic() + SILENCE_MS / 1000 + 60
            while len(latencies) < 2 * args.pairs and time.monotonic() < deadline:
                for records in consumer.poll(timeout_ms=200).values():
                    arrived = time.time() * 1000
                    latencies += [arrived - orjson.loads(r.value)["dormant_since"] for r in records]
            consumer.close()
        finally:
            stop(worker)
    latencies.sort()
    out = sys.stdout
    out.write(
        f"alerts: {len(latencies)} of {2 * args.pairs} (clock=hybrid, lateness 0, tick {settings.tick_interval_ms} ms)\n"
    )
    if latencies:
        p99 = latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))]
        out.write(
            f"latency deadline -> alert on topic: p50 {statistics.median(latencies):.0f} ms, p99 {p99:.0f} ms (target p99 < 1000 ms)\n"
        )
        deciles = [round(latencies[len(latencies) * q // 10]) for q in range(10)]
        out.write(f"deciles (ms): {deciles}, max {latencies[-1]:.0f}\n")
        recorder.save({
            "alerts": len(latencies), "expected_alerts": 2 * args.pairs, "tick_interval_ms": settings.tick_interval_ms,
            "p50_ms": round(statistics.median(latencies)), "p99_ms": round(p99), "max_ms": round(latencies[-1]),
            "deciles_ms": deciles,
        })  # fmt: skip
    return 0 if len(latencies) == 2 * args.pairs else 1


if __name__ == "__main__":
    sys.exit(main())
