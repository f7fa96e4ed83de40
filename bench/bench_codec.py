"""The compiled row codec in the service: one worker, compiled against the Python reference, interleaved pairs.

Each round drains the same mention events twice, once per codec
(`STREAMS_COMPILED_CORE`), in alternating order, each time into a fresh
deployment; the figures are the medians of the rounds and the ratio of the
medians. Pairs run back to back, so they share the machine's load of the moment:
on a shared 2-CPU machine single runs of the service vary by ±10 %.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
from pathlib import Path
from typing import Any

from bench.drain import drain, expected_output
from bench.harness import deployment, produce
from bench.results import Recorder
from bench.workloads import mentions

CODECS = {True: "compiled", False: "reference"}


def drained(lines: list[bytes], compiled: bool, partitions: int) -> dict[str, Any]:
    """One worker from its start until every output of `lines` is out, with the codec asked for."""
    env = deployment(partitions, compiled_core=str(compiled).lower())
    expected = expected_output(lines, env)
    produce(env, lines)
    with tempfile.TemporaryDirectory() as tmp:
        figures: dict[str, Any] = drain(env, 1, expected, Path(tmp)).figures()
    return figures


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--mention-events", type=int, default=300_000, help="events of the mention profile")
    parser.add_argument("--rounds", type=int, default=4, help="pairs of runs (compiled, reference)")
    parser.add_argument("--partitions", type=int, default=6)
    args = parser.parse_args()
    recorder = Recorder("row_codec")
    lines = mentions(args.mention_events)
    runs: dict[str, list[dict[str, Any]]] = {name: [] for name in CODECS.values()}
    for number in range(args.rounds):
        for compiled in (True, False) if number % 2 == 0 else (False, True):
            figures = drained(lines, compiled, args.partitions)
            runs[CODECS[compiled]].append(figures)
            sys.stdout.write(
                f"round {number + 1}, {CODECS[compiled]} codec: {figures['eps_from_start']:,} events/s from the "
                f"worker start, {figures['eps_after_first_applied']:,} after the first applied event\n"
            )
            sys.stdout.flush()
    medians = {
        name: {
            key: round(statistics.median(run[key] for run in found))
            for key in ("eps_from_start", "eps_after_first_applied")
        }
        for name, found in runs.items()
    }
    ratios = {
        key: round(medians["compiled"][key] / medians["reference"][key], 3)
        for key in ("eps_from_start", "eps_after_first_applied")
    }
    sys.stdout.write(f"medians {medians}; compiled / reference {ratios}\n")
    recorder.save({
        "workload": f"mentions {args.mention_events:,}", "events": len(lines), "partitions": args.partitions,
        "rounds": args.rounds, "medians": medians, "ratios": ratios, "runs": runs,
    })  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
