"""Replay throughput against a bare orjson parse loop over the same lines (same run, medians)."""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tempfile
import time
from collections.abc import Callable
from pathlib import Path

import orjson

from streams.datasets.collegemsg import collegemsg_events
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings


def write_events(data: Path, repeat: int, out: Path) -> int:
    """CollegeMsg (SNAP) played `repeat` times with shifted ids and times; returns the line count."""
    count = 0
    with out.open("wb") as sink:
        for event in collegemsg_events(data, repeat=repeat):
            sink.write(orjson.dumps(event) + b"\n")
            count += 1
    return count


def bare_parse(lines: list[bytes]) -> int:
    """The baseline: parse every line and touch one field, nothing else."""
    loads = orjson.loads
    total = 0
    for line in lines:
        total += loads(line)["ts"] & 1
    return total


def run_replay(lines: list[bytes]) -> int:
    """The engine: validation, row updates, held-back ordering, timers, alerts."""
    summary = ReplaySummary()
    alerts = sum(1 for _ in replay(lines, Settings(**REPLAY_DEFAULTS), summary))
    return alerts + summary.read


def timed(fn: Callable[[list[bytes]], int], lines: list[bytes], rounds: int) -> list[float]:
    """Events/s of `fn` over `rounds` runs (GC collected before each)."""
    rates = []
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        fn(lines)
        rates.append(len(lines) / (time.perf_counter() - started))
    return rates


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt")
    parser.add_argument("--repeat", type=int, default=9, help="copies of the data set (9 = 538,515 events)")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--target", type=float, default=0.25, help="required replay / parse ratio")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "events.jsonl"
        count = write_events(args.data, args.repeat, path)
        lines = path.read_bytes().splitlines()
    parse = statistics.median(timed(bare_parse, lines, args.rounds))
    engine = statistics.median(timed(run_replay, lines, args.rounds))
    ratio = engine / parse
    out = sys.stdout
    out.write(f"events: {count} (CollegeMsg x{args.repeat}), rounds: {args.rounds}, medians\n")
    out.write(f"bare orjson parse loop: {parse:>12,.0f} events/s\n")
    out.write(f"replay (engine):        {engine:>12,.0f} events/s\n")
    out.write(f"ratio replay/parse:     {ratio:>12.3f}  (target >= {args.target})\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
