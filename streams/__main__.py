"""The one entry point: `python -m streams <command>`."""

from __future__ import annotations

import argparse
import importlib
import logging
import sys

from streams.cli.broker_failure import EXIT_NO_BROKER, ConnectionErrors, gave_up_on_the_broker
from streams.gc_tuning import tune_garbage_collector

__all__ = ["main"]

COMMANDS = (
    "replay",
    "dataset",
    "topics",
    "worker",
    "produce",
    "alerts",
    "generate",
    "backtest",
    "offsets",
    "dead-letters",
    "erase",
    "feedback",
)


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen sub-command."""
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        module_name = f"streams.cli.{name.replace('-', '_')}"
        try:
            module = importlib.import_module(module_name)
        except ModuleNotFoundError as exc:
            if exc.name != module_name:
                raise
            continue
        module.add_parser(commands)
    args = parser.parse_args(argv)
    tune_garbage_collector()
    connection_errors = ConnectionErrors()
    logging.getLogger("kafka").addHandler(connection_errors)
    try:
        return int(args.run(args))
    except Exception as exc:
        if not gave_up_on_the_broker(exc):
            raise
        sys.stderr.write(connection_errors.explain(args.command, exc) + "\n")
        return EXIT_NO_BROKER


if __name__ == "__main__":
    sys.exit(main())
