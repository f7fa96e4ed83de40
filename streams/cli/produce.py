"""`python -m streams produce FILE`: send JSON-lines events to their topics, keyed by `actor_id`."""

from __future__ import annotations

import argparse
import logging
import sys

import orjson

from streams.kafka_admin import producer
from streams.settings import Settings

__all__ = ["add_parser", "run"]

log = logging.getLogger(__name__)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `produce` sub-command."""
    parser = commands.add_parser("produce", help="send a JSON-lines event file to the input topics")
    parser.add_argument("file", help="JSON-lines events, or - for stdin")
    parser.set_defaults(run=run)


def route(line: bytes, settings: Settings) -> tuple[str, bytes | None]:
    """Topic by the event's `type` (mentions when unreadable), key = `actor_id` when it is a string."""
    topics = dict(zip(("mention", "reply", "like"), settings.input_topics(), strict=True))
    try:
        obj = orjson.loads(line)
    except orjson.JSONDecodeError:
        return settings.topic_mentions, None
    if not isinstance(obj, dict):
        return settings.topic_mentions, None
    actor = obj.get("actor_id")
    key = actor.encode() if isinstance(actor, str) else None
    kind = obj.get("type")
    return topics.get(kind, settings.topic_mentions) if isinstance(
        kind, str
    ) else settings.topic_mentions, key


def run(args: argparse.Namespace) -> int:
    """Send every non-blank line as it is (bad lines too: the service dead-letters them)."""
    logging.basicConfig(level=logging.INFO, format="%(levelname)s %(name)s: %(message)s")
    settings = Settings()
    client = producer(settings)
    source = sys.stdin.buffer if args.file == "-" else open(args.file, "rb")  # noqa: SIM115
    sent = 0
    try:
        for raw in source:
            line = raw.rstrip(b"\n")
            if not line.strip():
                continue
            topic, key = route(line, settings)
            client.send(topic, key=key, value=line)
            sent += 1
        client.flush()
    finally:
        client.close()
        if source is not sys.stdin.buffer:
            source.close()
    log.info("sent %d records", sent)
    return 0
