"""Soak: a worker fed at a steady rate, its RSS sampled; exits 1 if it fell behind or memory kept growing."""

from __future__ import annotations

import argparse
import json
import os
import random
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
from kafka import KafkaProducer

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from streams.kafka_admin import bootstrap_servers, create_topics  # noqa: E402
from streams.settings import Settings, deployment_env, settings_from_env  # noqa: E402

START_TS = 1_704_067_200_000  # 2024-01-01: event time starts here and moves STEP_MS per event
STEP_MS = 60_000
# A leak is memory that grows with the events processed. The key space is bounded (users x
# contacts: 1,500 pairs, ~3,000 rows by default), each row remembers at most 32 ids past the
# 24 h window, and RocksDB memtables (Faust's defaults: 64 MB x 3 per partition database) fill
# and flush: at 3,000 events/s on one partition RSS climbs for ~45 s, then stays flat within
# a few MB (measured: second-half slope 1.4 MB/min). 4 MB/min at 3,000 events/s is 22 bytes
# per event: one leaked Python object per event (28 bytes or more) shows as 5 MB/min or more.
DEFAULT_MAX_SLOPE_MB_PER_MIN = 4.0
# RSS over the last third at 3,000 events/s (docs/guarantees.md, section 5): -0.2 %, and -1.0 % in 10 minutes
# under exactly_once. A 10 % bound catches a blatant leak in a short run; the slope bound is the finer one.
DEFAULT_MAX_LAST_THIRD_GROWTH = 0.10
# How long the worker may take, once production stops, to apply what is still in flight or queued. The last
# events wait for the watermark, held back until the inputs are idle (STREAMS_IDLE_TIMEOUT_MS, 30 s): the
# drain takes ~31 s even when the worker kept pace (1-minute run at 200 events/s, at most 54 events behind).
DEFAULT_DRAIN_SECONDS = 120.0
MIN_SAMPLES = 6
VERDICT = """\
Verdict (exit 0 only when all hold; otherwise exit 1, each failed criterion named on stderr and in the
summary's "failures"): kept up: once production stops, the worker's relationships_events_applied_total
reaches the number of events produced (every one valid, distinct and between two users, so each is applied
exactly once) within --drain-seconds; memory levelled off: the least-squares RSS slope over the second half
of the production samples is at most --max-slope MB/min and RSS grows at most --max-last-third-growth from
the first to the last sample of the last third; at least 6 RSS samples to judge on; the producer did not
fail. Exit 2: the worker did not start or exited.
"""


@dataclass
class Sample:
    """One RSS reading."""

    at_s: float
    rss_mb: float
    produced: int
    applied: float


@dataclass
class Run:
    """What the soak saw."""

    samples: list[Sample] = field(default_factory=list)
    produced: int = 0
    produce_seconds: float = 0.0
    drain_seconds: float = 0.0
    counters: dict[str, float] = field(default_factory=dict)
    producer_error: str | None = None


def free_port() -> int:
    """A free TCP port on 127.0.0.1."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def rss_mb(pid: int) -> float:
    """Resident set size of `pid` (VmRSS, /proc/<pid>/status), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) / 1024
    raise RuntimeError(f"no VmRSS for pid {pid}")


# The worker's counters the summary reports: what became of the events it consumed.
COUNTERS = (
    "relationships_events_applied_total",
    "relationships_self_interactions_total",
    "relationships_duplicate_events_total",
    "relationships_invalid_events_total",
    "relationships_dead_letters_total",
)


def worker_counters(port: int) -> dict[str, float]:
    """COUNTERS from the worker's /metrics, each summed over its labels (all 0 while it is starting)."""
    counters = dict.fromkeys(COUNTERS, 0.0)
    try:
        body = urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=3).read().decode()
    except OSError:
        return counters
    for line in body.splitlines():
        name = line.split("{", 1)[0].split(" ", 1)[0]
        if name in counters:
            counters[name] += float(line.rsplit(" ", 1)[1])
    return counters


def applied_events(port: int) -> float:
    """`relationships_events_applied_total` from the worker's /metrics (0 while it is starting)."""
    return worker_counters(port)["relationships_events_applied_total"]


class Events:
    """Endless synthetic events over a bounded key space, event time moving steadily forward.

    Every event is valid, has its own id and two distinct users: the worker must apply each one.
    """

    def __init__(self, users: int, contacts: int, seed: int = 7) -> None:
        self.rng = random.Random(seed)
        self.users = [f"u{n}" for n in range(users)]
        self.contacts = {u: self.rng.sample([c for c in self.users if c != u], contacts) for u in self.users}
        self.number = 0

    def next(self) -> bytes:
        """The next event as JSON."""
        rng = self.rng
        actor = rng.choice(self.users)
        target = rng.choice(self.contacts[actor])
        self.number += 1
        kind = rng.choice(("mention", "reply", "like"))
        event = {"id": f"s{self.number}", "type": kind, "actor_id": actor, "target_id": target}
        event["ts"] = START_TS + self.number * STEP_MS
        return orjson.dumps(event)


def produce_steadily(settings: Settings, rate: float, seconds: float, events: Events, run: Run) -> None:
    """Send `rate` events/s for `seconds`, in 100 ms ticks (topic by type, key = actor as `streams produce`)."""
    topics = dict(zip(("mention", "reply", "like"), settings.input_topics(), strict=True))
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(settings.broker), acks="all", linger_ms=5)
    started = time.monotonic()
    try:
        while (elapsed := time.monotonic() - started) < seconds:
            due = int(rate * elapsed)
            while run.produced < due:
                raw = events.next()
                event = orjson.loads(raw)
                producer.send(topics[event["type"]], key=event["actor_id"].encode(), value=raw)
                run.produced += 1
            time.sleep(0.1)
        producer.flush()
    except Exception as error:  # reported in the summary's failures, not lost in the thread
        run.producer_error = repr(error)
    finally:
        producer.close()
        run.produce_seconds = time.monotonic() - started


def slope_mb_per_min(samples: list[Sample]) -> float:
    """Least-squares slope of RSS over time, MB per minute."""
    if len(samples) < 2:
        return 0.0
    xs = [s.at_s / 60 for s in samples]
    ys = [s.rss_mb for s in samples]
    mx, my = sum(xs) / len(xs), sum(ys) / len(ys)
    var = sum((x - mx) ** 2 for x in xs)
    return sum((x - mx) * (y - my) for x, y in zip(xs, ys, strict=True)) / var if var else 0.0


def wait_for_drain(port: int, worker: subprocess.Popen[bytes], run: Run, seconds: float) -> None:
    """After production: poll until the worker applied every produced event, it exits, or `seconds` pass."""
    started = time.monotonic()
    while True:
        # Counters only grow: a reading that failed (all 0) does not undo an earlier one.
        run.counters = {
            name: max(v, run.counters.get(name, 0.0)) for name, v in worker_counters(port).items()
        }
        applied = run.counters["relationships_events_applied_total"]
        if applied >= run.produced or worker.poll() is not None or time.monotonic() - started > seconds:
            break
        time.sleep(1.0)
    run.drain_seconds = time.monotonic() - started


def summarize(run: Run, rate: float, limits: argparse.Namespace) -> dict[str, Any]:
    """Figures of a run and its verdict: `failures` names every criterion (VERDICT) not met."""
    samples = run.samples
    half = samples[len(samples) // 2 :]
    third = samples[2 * len(samples) // 3 :]
    first_rss, mid_rss, last_rss = samples[0].rss_mb, samples[len(samples) // 2].rss_mb, samples[-1].rss_mb
    last_third_growth = (third[-1].rss_mb - third[0].rss_mb) / third[0].rss_mb if third else 0.0
    slope = slope_mb_per_min(half)
    applied = int(run.counters.get("relationships_events_applied_total", 0.0))
    applied_while_producing = samples[-1].applied
    kept_up = applied == run.produced
    levelled_off = slope <= limits.max_slope and last_third_growth <= limits.max_last_third_growth
    failures = []
    if applied < run.produced:
        failures.append(
            f"did not keep up: {applied} of {run.produced} events applied {run.drain_seconds:.0f} s after "
            f"production stopped (--drain-seconds {limits.drain_seconds:g})"
        )
    elif applied > run.produced:
        failures.append(f"applied {applied} events, more than the {run.produced} produced")
    if slope > limits.max_slope:
        failures.append(
            f"memory kept growing: second-half RSS slope {slope:.2f} MB/min > --max-slope {limits.max_slope:g}"
        )
    if last_third_growth > limits.max_last_third_growth:
        failures.append(
            f"memory kept growing: RSS grew {last_third_growth:.1%} over the last third "
            f"> --max-last-third-growth {limits.max_last_third_growth:.1%}"
        )
    if run.producer_error:
        failures.append(f"production stopped early: {run.producer_error}")
    if len(samples) < MIN_SAMPLES:
        failures.append(f"{len(samples)} RSS samples, fewer than the {MIN_SAMPLES} needed to judge memory")
    produce_s = samples[-1].at_s
    return {
        "rate_wanted": rate,
        "events_produced": run.produced,
        "produce_events_per_s": round(run.produce_seconds and run.produced / run.produce_seconds, 1),
        "events_applied": applied,
        "applied_events_per_s_while_producing": round(applied_while_producing / produce_s, 1)
        if produce_s
        else 0.0,
        "max_backlog_events": int(max(s.produced - s.applied for s in samples)),
        "drain_seconds": round(run.drain_seconds, 1),
        "worker_counters": {name.removeprefix("relationships_"): int(v) for name, v in run.counters.items()},
        "rss_mb": {"start": round(first_rss, 1), "mid": round(mid_rss, 1), "end": round(last_rss, 1)},
        "rss_slope_second_half_mb_per_min": round(slope, 3),
        "rss_growth_last_third": round(last_third_growth, 4),
        "max_slope_mb_per_min": limits.max_slope,
        "max_last_third_growth": limits.max_last_third_growth,
        "drain_seconds_allowed": limits.drain_seconds,
        "kept_up": kept_up,
        "levelled_off": levelled_off,
        "samples": len(samples),
        "failures": failures,
    }


def main(argv: list[str] | None = None) -> int:
    """Run the soak; exit 1 if it did not keep up or RSS kept growing (VERDICT), 2 if the worker failed."""
    parser = argparse.ArgumentParser(
        description=__doc__, epilog=VERDICT, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--rate", type=float, default=3000.0, help="events per second (3000)")
    parser.add_argument("--minutes", type=float, default=2.0, help="how long to produce (2)")
    parser.add_argument("--sample-seconds", type=float, default=3.0, help="RSS sampling period (3)")
    parser.add_argument("--users", type=int, default=300, help="distinct users (300)")
    parser.add_argument("--contacts", type=int, default=5, help="contacts per user (5)")
    parser.add_argument("--partitions", type=int, default=1, help="partitions per topic (1)")
    parser.add_argument(
        "--max-slope",
        type=float,
        default=DEFAULT_MAX_SLOPE_MB_PER_MIN,
        help=f"RSS slope over the second half allowed, MB/min ({DEFAULT_MAX_SLOPE_MB_PER_MIN:g})",
    )
    parser.add_argument(
        "--max-last-third-growth",
        type=float,
        default=DEFAULT_MAX_LAST_THIRD_GROWTH,
        help=f"RSS growth over the last third allowed, a fraction ({DEFAULT_MAX_LAST_THIRD_GROWTH:g})",
    )
    parser.add_argument(
        "--drain-seconds",
        type=float,
        default=DEFAULT_DRAIN_SECONDS,
        help=f"after production, how long the worker may take to apply every event ({DEFAULT_DRAIN_SECONDS:g})",
    )
    parser.add_argument("--broker", default=os.environ.get("STREAMS_BROKER", "kafka://127.0.0.1:9092"))
    parser.add_argument(
        "--guarantee",
        choices=["at_least_once", "exactly_once"],
        default=os.environ.get("SOAK_GUARANTEE", "at_least_once"),
        help="STREAMS_PROCESSING_GUARANTEE of the worker (at_least_once)",
    )
    parser.add_argument("--json", type=Path, help="also write the summary here")
    args = parser.parse_args(argv)

    app_id = f"soak{uuid.uuid4().hex[:8]}"
    workdir = Path(tempfile.mkdtemp(prefix=f"{app_id}-"))
    port = free_port()
    env = deployment_env(
        app_id,
        args.partitions,
        broker=args.broker,
        data_dir=workdir / "data",
        web_port=port,
        log_level="warning",
        processing_guarantee=args.guarantee,
    )
    settings = settings_from_env(env)
    create_topics(settings, args.partitions)
    log_path = workdir / "worker.log"
    with log_path.open("ab") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "streams", "worker"],
            cwd=REPO,
            env={**os.environ, **env},
            stdout=log,
            stderr=log,
        )
    run = Run()
    try:
        deadline = time.monotonic() + 180  # a broker just restarted may take a while to serve the group
        while not urllib_ready(port):
            if time.monotonic() > deadline or worker.poll() is not None:
                print(f"worker did not start; log: {log_path}", file=sys.stderr)
                return 2
            time.sleep(0.5)
        seconds = args.minutes * 60
        producer = threading.Thread(
            target=produce_steadily,
            args=(settings, args.rate, seconds, Events(args.users, args.contacts), run),
            daemon=True,
        )
        started = time.monotonic()
        producer.start()
        print(f"{'t (s)':>7} {'RSS (MB)':>9} {'produced':>9} {'applied':>9}")
        while not run.samples or producer.is_alive():
            if worker.poll() is not None:
                print(f"worker exited ({worker.returncode}); log: {log_path}", file=sys.stderr)
                return 2
            sample = Sample(
                time.monotonic() - started, rss_mb(worker.pid), run.produced, applied_events(port)
            )
            run.samples.append(sample)
            print(
                f"{sample.at_s:7.1f} {sample.rss_mb:9.1f} {sample.produced:9d} {sample.applied:9.0f}",
                flush=True,
            )
            producer.join(args.sample_seconds)
        wait_for_drain(port, worker, run, args.drain_seconds)
        if worker.poll() is not None:
            print(f"worker exited ({worker.returncode}); log: {log_path}", file=sys.stderr)
            return 2
    finally:
        if worker.poll() is None:
            worker.send_signal(signal.SIGTERM)
            try:
                worker.wait(timeout=60)
            except subprocess.TimeoutExpired:
                worker.kill()
    summary = summarize(run, args.rate, args)
    summary["guarantee"] = args.guarantee
    summary["worker_log"] = str(log_path)
    print(json.dumps(summary, indent=2))
    if args.json:
        args.json.write_text(json.dumps(summary))
    for failure in summary["failures"]:
        print(f"soak failed: {failure}", file=sys.stderr)
    return 1 if summary["failures"] else 0


def urllib_ready(port: int) -> bool:
    """The worker's web port answers."""
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{port}/metrics", timeout=2).read()
    except OSError:
        return False
    return True


if __name__ == "__main__":
    sys.exit(main())
