"""`python -m streams alerts`: print alerts from the alert topic as JSON lines (tail -f style)."""

from __future__ import annotations

import argparse
import sys

from streams.kafka_admin import consumer
from streams.settings import Settings

__all__ = ["add_parser", "run"]


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `alerts` sub-command."""
    parser = commands.add_parser("alerts", help="tail the alert topic")
    parser.add_argument("--from-beginning", action="store_true", help="start at the earliest alert")
    parser.add_argument("--idle-exit-ms", type=int, default=None, help="exit after this long without alerts")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Print each alert value on its own line."""
    settings = Settings()
    client = consumer(settings, settings.topic_alerts)
    if not args.from_beginning:
        client.poll(timeout_ms=1000)
        client.seek_to_end()
    out = sys.stdout.buffer
    try:
        while True:
            batch = client.poll(timeout_ms=args.idle_exit_ms or 1000)
            if not batch and args.idle_exit_ms:
                return 0
            for records in batch.values():
                for record in records:
                    out.write(record.value + b"\n")
            out.flush()
    except KeyboardInterrupt:
        return 0
    finally:
        client.close()
