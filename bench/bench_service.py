"""End-to-end events/s of the service through the real broker, against a bare aiokafka consumer (same run).

The clock runs from the worker processes' start until every alert of the replay and
the last row write in the changelog are readable (no row record for 3 s after it).
A bare Faust agent that only parses each record (`bench/bare_faust.py`) is measured
in the same run: the ceiling of Faust's own per-record path, which the service's
input no longer takes.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import subprocess
import sys
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer

from bench.drain import drain, expected_output
from bench.harness import REPO, deployment, produce
from bench.results import Recorder
from bench.workloads import collegemsg, mentions
from streams.kafka_admin import bootstrap_servers
from streams.settings import Settings, settings_from_env


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


def bare_faust(settings: Settings, expected: int) -> float:
    """Records/s of a bare Faust agent that only parses the input records (`bench.bare_faust`, its own process)."""
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(tmp) / "bare-faust.json"
        subprocess.run(
            [sys.executable, "-m", "bench.bare_faust", "--broker", settings.broker,
             "--topics", ",".join(settings.input_topics()), "--records", str(expected), "--out", str(out)],
            cwd=REPO, capture_output=True, timeout=900, check=True,
        )  # fmt: skip
        eps: float = json.loads(out.read_bytes())["eps"]
    return eps


def measure(name: str, lines: list[bytes], workers: int, partitions: int) -> dict[str, Any]:
    """One deployment: produce, drain with a bare consumer and a bare Faust agent, then with `workers` workers."""
    env = deployment(partitions)
    expected = expected_output(lines, env)
    produce(env, lines)
    bare = asyncio.run(bare_consumer(settings_from_env(env), len(lines)))
    faust_eps = bare_faust(settings_from_env(env), len(lines))
    with tempfile.TemporaryDirectory() as tmp:
        drained = drain(env, workers, expected, Path(tmp)).figures()
    service = drained["eps_from_start"]
    after_first = drained["eps_after_first_applied"]
    return {
        "workload": name, "events": len(lines), "partitions": partitions, "workers": workers,
        "bare_consumer_eps": round(bare), "service_eps": service, "ratio": round(service / bare, 4),
        "ratio_after_first_applied": round(after_first / bare, 4), "drain": drained,
        "bare_faust_eps": round(faust_eps), "ratio_to_bare_faust_after_first_applied": round(after_first / faust_eps, 3),
    }  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt.gz")
    parser.add_argument("--repeat", type=int, default=4, help="copies of CollegeMsg (4 = 239,340 events)")
    parser.add_argument("--partitions", type=int, default=6)
    parser.add_argument("--workers", default="1,2", help="worker counts to measure on CollegeMsg")
    parser.add_argument(
        "--mention-events",
        type=int,
        default=100_000,
        help="events of the mention profile, one worker (0: skip)",
    )
    args = parser.parse_args()
    recorder = Recorder("service")
    cases: list[tuple[str, list[bytes], int]] = []
    college = collegemsg(args.data, args.repeat)
    cases += [(f"CollegeMsg x{args.repeat}", college, int(w)) for w in args.workers.split(",")]
    if args.mention_events:
        cases.append((f"mentions {args.mention_events:,}", mentions(args.mention_events), 1))
    out = sys.stdout
    runs = []
    for name, lines, workers in cases:
        run = measure(name, lines, workers, args.partitions)
        runs.append(run)
        drained = run["drain"]
        out.write(
            f"{name}, {run['events']:,} events, workers={workers}: bare aiokafka consumer "
            f"{run['bare_consumer_eps']:>9,} events/s | service {run['service_eps']:>7,} events/s from the "
            f"worker start to all {drained['alerts']:,} alerts and row writes out ({drained['done_s']} s) "
            f"| ratio {run['ratio']:.4f}; after the first applied event ({drained['first_applied_s']} s): "
            f"{drained['eps_after_first_applied']:,} events/s, ratio {run['ratio_after_first_applied']:.4f}; "
            f"bare Faust agent {run['bare_faust_eps']:,} records/s, ratio after the first applied event "
            f"{run['ratio_to_bare_faust_after_first_applied']:.3f}\n"
        )
        out.flush()
    recorder.save({"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
