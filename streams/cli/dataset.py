"""`python -m streams dataset collegemsg FILE`: write a public data set as JSON-lines events."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import orjson

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `dataset` sub-command."""
    parser = commands.add_parser("dataset", help="convert a public data set to JSON-lines events")
    parser.add_argument("name", choices=["collegemsg"])
    parser.add_argument(
        "file",
        type=Path,
        nargs="?",
        default=COLLEGEMSG,
        help="the data set file (default: the copy in data/)",
    )
    parser.add_argument("--repeat", type=int, default=1, help="play the file N times, shifted in time")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Write the events to stdout."""
    out = sys.stdout.buffer
    for event in collegemsg_events(args.file, repeat=args.repeat):
        out.write(orjson.dumps(event, option=orjson.OPT_APPEND_NEWLINE))
    out.flush()
    return 0
