"""`python -m streams erase USER_ID [--ts MS]`: ask the service to forget a user (docs/semantics.md §9)."""

from __future__ import annotations

import argparse
import sys
import time

import orjson

from streams.engine.erasures import validate_erasure
from streams.engine.events import InvalidEvent
from streams.kafka_admin import producer
from streams.settings import Settings

__all__ = ["add_parser", "run"]

EXIT_INVALID = 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `erase` sub-command."""
    parser = commands.add_parser(
        "erase",
        help="write an erasure request for a user to the erasures topic (schemas/erasure.v1.json)",
    )
    parser.add_argument("user_id", help="the user to forget, as in events' actor_id / target_id")
    parser.add_argument(
        "--ts",
        type=int,
        default=None,
        help="event time (epoch ms) the erasure takes effect at; default: now. The user's events before it "
        "are forgotten, later ones start afresh",
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate the request, send it keyed by user and wait for the broker; print where it landed (JSON)."""
    settings = Settings()
    ts = args.ts if args.ts is not None else int(time.time() * 1000)
    try:
        erasure = validate_erasure({"user_id": args.user_id, "ts": ts})
    except InvalidEvent as exc:
        sys.stderr.write(f"not an erasure request: {exc.reason.value} {exc.field or ''}".rstrip() + "\n")
        return EXIT_INVALID
    value = orjson.dumps({"user_id": erasure.user, "ts": erasure.ts})
    client = producer(settings)
    try:
        sent = client.send(settings.topic_erasures, key=erasure.user.encode(), value=value).get(timeout=30)
    finally:
        client.close()
    where = {"topic": sent.topic, "partition": sent.partition, "offset": sent.offset}
    sys.stdout.write(orjson.dumps({"user_id": erasure.user, "ts": erasure.ts, **where}).decode() + "\n")
    return 0
