"""The one entry point: `python -m streams <command>`."""

from __future__ import annotations

import argparse
import importlib
import sys

__all__ = ["main"]

COMMANDS = ("replay", "dataset", "topics", "worker", "produce", "alerts", "generate", "backtest")


def main(argv: list[str] | None = None) -> int:
    """Parse the command line and run the chosen sub-command."""
    parser = argparse.ArgumentParser(prog="python -m streams", description=__doc__)
    commands = parser.add_subparsers(dest="command", required=True)
    for name in COMMANDS:
        try:
            module = importlib.import_module(f"streams.cli.{name}")
        except ModuleNotFoundError as exc:
            if exc.name != f"streams.cli.{name}":
                raise
            continue
        module.add_parser(commands)
    args = parser.parse_args(argv)
    return int(args.run(args))


if __name__ == "__main__":
    sys.exit(main())
