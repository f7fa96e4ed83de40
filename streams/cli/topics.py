"""`python -m streams topics create [--partitions N]`: create the service's topics with kafka-python."""

from __future__ import annotations

import argparse
import logging

from streams.kafka_admin import create_topics
from streams.settings import Settings

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `topics` sub-command."""
    parser = commands.add_parser("topics", help="create the service's topics")
    parser.add_argument("action", choices=["create"])
    parser.add_argument("--partitions", type=int, default=None, help="default: STREAMS_PARTITIONS")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Create missing topics and report each."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    partitions = args.partitions or settings.partitions
    if args.partitions:
        settings = settings.model_copy(update={"partitions": args.partitions})
    for topic, outcome in create_topics(settings, partitions).items():
        log.info("topic %s: %s", topic, outcome)
    return 0
