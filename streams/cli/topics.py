"""`python -m streams topics create [--partitions N]`: create the service's topics with kafka-python."""

from __future__ import annotations

import argparse
import logging
import sys

from streams.kafka_admin import PartitionMismatch, create_topics
from streams.settings import Settings

__all__ = ["EXIT_CONFIGURATION", "add_parser", "run"]

log = logging.getLogger(__name__)

EXIT_CONFIGURATION = 2
"""The owner stream and the rows changelog already exist with different partition counts."""


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `topics` sub-command."""
    parser = commands.add_parser("topics", help="create the service's topics")
    parser.add_argument("action", choices=["create"])
    parser.add_argument(
        "--partitions",
        type=int,
        default=None,
        help="partitions of the topics created (default: STREAMS_PARTITIONS); existing ones keep theirs, "
        "and the internal topics follow an existing owner stream",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Create missing topics and report each with its partition count."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    partitions = args.partitions or settings.partitions
    if args.partitions:
        settings = settings.model_copy(update={"partitions": args.partitions})
    try:
        outcome = create_topics(settings, partitions)
    except PartitionMismatch as exc:
        sys.stderr.write(f"topics: {exc}\n")
        return EXIT_CONFIGURATION
    for topic, done in outcome.items():
        log.info("topic %s: %s", topic, done)
    return 0
