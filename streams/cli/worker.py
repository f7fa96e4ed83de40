"""`python -m streams worker`: run one Faust worker (settings from `STREAMS_*`)."""

from __future__ import annotations

import argparse

from streams.settings import Settings

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `worker` sub-command."""
    parser = commands.add_parser("worker", help="run a worker of the service")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Run until stopped."""
    from streams.service.worker import run_worker  # noqa: PLC0415  (keep Faust out of the other commands)

    run_worker(Settings())
    return 0
