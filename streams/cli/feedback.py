"""`python -m streams feedback OWNER CONTACT mute|unmute|snooze [--until MS] [--ts MS]`: mute or snooze a row (§11)."""

from __future__ import annotations

import argparse
import sys
import time
from typing import Any

import orjson

from streams.engine.events import InvalidEvent
from streams.engine.feedback import Action, validate_feedback
from streams.kafka_admin import producer
from streams.settings import Settings

__all__ = ["add_parser", "run"]

EXIT_INVALID = 2


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `feedback` sub-command."""
    parser = commands.add_parser(
        "feedback",
        help="write a mute, unmute or snooze request to the feedback topic (schemas/feedback.v1.json)",
    )
    parser.add_argument("owner_id", help="the row's owner: the user who receives its alerts")
    parser.add_argument("contact_id", help="the row's contact")
    parser.add_argument("action", choices=[action.name.lower() for action in Action])
    parser.add_argument(
        "--until",
        type=int,
        default=None,
        help="snooze only (required): event time (epoch ms) the snooze ends at",
    )
    parser.add_argument(
        "--ts", type=int, default=None, help="event time (epoch ms) the request takes effect at; default: now"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Validate the request, send it keyed by owner and wait for the broker; print where it landed (JSON)."""
    settings = Settings()
    request: dict[str, Any] = {
        "owner_id": args.owner_id,
        "contact_id": args.contact_id,
        "action": args.action,
        "ts": args.ts if args.ts is not None else int(time.time() * 1000),
    }
    if args.until is not None:
        request["until"] = args.until
    try:
        validate_feedback(request)
    except InvalidEvent as exc:
        sys.stderr.write(f"not a feedback request: {exc.reason.value} {exc.field or ''}".rstrip() + "\n")
        return EXIT_INVALID
    client = producer(settings)
    try:
        sent = client.send(settings.topic_feedback, key=args.owner_id.encode(), value=orjson.dumps(request))
        metadata = sent.get(timeout=30)
    finally:
        client.close()
    where = {"topic": metadata.topic, "partition": metadata.partition, "offset": metadata.offset}
    sys.stdout.write(orjson.dumps({**request, **where}).decode() + "\n")
    return 0
