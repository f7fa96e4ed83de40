"""`python -m streams worker`: run one Faust worker (settings from `STREAMS_*`)."""

from __future__ import annotations

import argparse
import sys

from streams.settings import Settings

__all__ = ["EXIT_CONFIGURATION", "add_parser", "run"]

EXIT_CONFIGURATION = 2
"""The topics on the broker contradict each other, or Faust's internals are not those the service patches:
the worker did not start and consumed nothing."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `worker` sub-command."""
    parser = commands.add_parser("worker", help="run a worker of the service")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run until stopped; exit status 2 if the broker's topics contradict each other or Faust's internals differ."""
    from streams.kafka_admin import PartitionMismatch  # noqa: PLC0415
    from streams.service.faust_internals import FrameworkMismatch  # noqa: PLC0415
    from streams.service.worker import run_worker  # noqa: PLC0415  (keep Faust out of the other commands)

    try:
        run_worker(Settings())
    except (PartitionMismatch, FrameworkMismatch) as exc:
        sys.stderr.write(f"worker: refusing to start, nothing consumed: {exc}\n")
        return EXIT_CONFIGURATION
    return 0
