"""Replay throughput, Python engine and compiled core, against a bare orjson parse loop (same lines, same run, medians)."""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson

from bench.results import Recorder
from bench.workloads import collegemsg, mentions
from streams.gc_tuning import tune_garbage_collector
from streams.replay import REPLAY_DEFAULTS, EngineName, ReplaySummary, replay
from streams.settings import Settings


def bare_parse(lines: list[bytes]) -> int:
    """The baseline: parse every line and touch one field, nothing else."""
    loads = orjson.loads
    total = 0
    for line in lines:
        total += loads(line)["ts"] & 1
    return total


def replay_with(engine_name: EngineName) -> Callable[[list[bytes]], int]:
    """The replay through one engine: validation, row updates, held-back ordering, timers, alerts."""

    def run(lines: list[bytes]) -> int:
        summary = ReplaySummary()
        alerts = sum(1 for _ in replay(lines, Settings(**REPLAY_DEFAULTS), summary, engine_name))
        return alerts + summary.read

    return run


def timed(fn: Callable[[list[bytes]], int], lines: list[bytes], rounds: int) -> list[float]:
    """Events/s of `fn` over `rounds` runs (GC collected before each)."""
    rates = []
    for _ in range(rounds):
        gc.collect()
        started = time.perf_counter()
        fn(lines)
        rates.append(len(lines) / (time.perf_counter() - started))
    return rates


def measure(name: str, lines: list[bytes], rounds: int) -> dict[str, Any]:
    """Median events/s of the bare loop and of the replay through each engine, and their ratios."""
    parse = timed(bare_parse, lines, rounds)
    engine = timed(replay_with("python"), lines, rounds)
    compiled = timed(replay_with("compiled"), lines, rounds)
    return {
        "workload": name, "events": len(lines), "rounds": rounds,
        "bare_parse_eps": round(statistics.median(parse)), "replay_eps": round(statistics.median(engine)),
        "compiled_eps": round(statistics.median(compiled)),
        "bare_parse_eps_runs": [round(r) for r in parse], "replay_eps_runs": [round(r) for r in engine],
        "compiled_eps_runs": [round(r) for r in compiled],
        "ratio": round(statistics.median(engine) / statistics.median(parse), 4),
        "compiled_ratio": round(statistics.median(compiled) / statistics.median(parse), 4),
    }  # fmt: skip


def main() -> int:
    tune_garbage_collector()  # as `python -m streams` does
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt.gz")
    parser.add_argument("--repeat", type=int, default=9, help="copies of CollegeMsg (9 = 538,515 events)")
    parser.add_argument(
        "--mention-events", type=int, default=563_069, help="events of the mention profile (0: skip)"
    )
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    recorder = Recorder("replay")
    workloads: dict[str, Callable[[], list[bytes]]] = {
        f"CollegeMsg x{args.repeat}": lambda: collegemsg(args.data, args.repeat)
    }
    if args.mention_events:
        workloads[f"mentions {args.mention_events:,}"] = lambda: mentions(args.mention_events)
    out = sys.stdout
    runs = []
    for name, make in workloads.items():
        run = measure(name, make(), args.rounds)
        runs.append(run)
        out.write(
            f"{name}: {run['events']:,} events, {args.rounds} rounds, medians: bare orjson parse loop "
            f"{run['bare_parse_eps']:,} events/s | replay (python) {run['replay_eps']:,} events/s, "
            f"ratio {run['ratio']:.4f} | replay (compiled) {run['compiled_eps']:,} events/s, "
            f"ratio {run['compiled_ratio']:.4f}\n"
        )
        out.flush()
    recorder.save({"runs": runs})
    return 0


if __name__ == "__main__":
    sys.exit(main())
