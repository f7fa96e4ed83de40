"""`python -m streams offsets reset --to earliest|latest|DATETIME`: move the workers' committed input offsets."""

from __future__ import annotations

import argparse
import sys
from datetime import datetime
from typing import Any, TextIO

from kafka import KafkaAdminClient, KafkaConsumer, TopicPartition
from kafka.admin import OffsetSpec, OffsetTimestamp

from streams.kafka_admin import client_options
from streams.settings import Settings

__all__ = ["EXIT_REFUSED", "add_parser", "reset_target", "run"]

EXIT_REFUSED = 2
"""The group has live members (or the target is not understood): nothing was changed."""
EXIT_FAILED = 1
"""The broker refused some partitions (a worker joined meanwhile?): see the lines printed."""


def _say(line: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(line + "\n")


def reset_target(text: str) -> OffsetSpec | OffsetTimestamp:
    """`earliest`, `latest`, or an ISO 8601 time with its UTC offset (`2026-01-31T12:00:00Z`)."""
    if text in {"earliest", "latest"}:
        return OffsetSpec.EARLIEST if text == "earliest" else OffsetSpec.LATEST
    try:
        moment = datetime.fromisoformat(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(f"not earliest, latest or an ISO 8601 time: {text!r}") from exc
    if moment.tzinfo is None:
        raise argparse.ArgumentTypeError(f"give the time's UTC offset (Z or +hh:mm): {text!r}")
    return OffsetTimestamp(round(moment.timestamp() * 1000))


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `offsets` sub-command."""
    parser = commands.add_parser(
        "offsets", help="reset the workers' committed offsets on the input topics (workers stopped)"
    )
    parser.add_argument("action", choices=["reset"])
    parser.add_argument(
        "--to",
        dest="target",
        required=True,
        help="earliest, latest, or an ISO 8601 time with UTC offset: the first record at or after it",
    )
    parser.set_defaults(run=run)


def _input_partitions(settings: Settings) -> list[TopicPartition]:
    consumer = KafkaConsumer(**client_options(settings))
    try:
        return [
            TopicPartition(topic, partition)
            for topic in settings.input_topics()
            for partition in sorted(consumer.partitions_for_topic(topic) or ())
        ]
    finally:
        consumer.close()


def _live_members(admin: KafkaAdminClient, group: str) -> list[dict[str, Any]]:
    description = admin.describe_groups([group])[group]
    return list(description.get("members") or [])


def run(args: argparse.Namespace) -> int:
    """Refuse while the group has members; else reset every input partition and print each change."""
    settings = Settings()
    group = settings.app_id  # the workers' one consumer group (Faust's app id)
    try:
        target = reset_target(args.target)
    except argparse.ArgumentTypeError as exc:
        _say(f"offsets reset: {exc}", sys.stderr)
        return EXIT_REFUSED
    admin = KafkaAdminClient(client_id=f"{group}-offsets", **client_options(settings))
    try:
        members = _live_members(admin, group)
        if members:
            hosts = ", ".join(sorted(f"{m['client_id']}@{m['client_host']}" for m in members))
            _say(
                f"offsets reset: group {group} has {len(members)} live member(s) ({hosts}); "
                "stop every worker of the deployment first. Nothing changed.",
                sys.stderr,
            )
            return EXIT_REFUSED
        partitions = _input_partitions(settings)
        before = admin.list_group_offsets({group: partitions})[group]
        outcome = admin.reset_group_offsets(group, dict.fromkeys(partitions, target))
    finally:
        admin.close()
    failed = 0
    for tp in partitions:
        result = outcome[tp]
        was = before[tp].offset if tp in before and before[tp].offset >= 0 else None
        error = result["error"]
        if error.errno:  # NoError is 0
            failed += 1
            _say(f"{group} {tp.topic}[{tp.partition}]: not reset ({error.__name__})")
        else:
            _say(
                f"{group} {tp.topic}[{tp.partition}]: {'none' if was is None else was} -> {result['offset']}"
            )
    _say(
        f"group {group}: {len(partitions) - failed} of {len(partitions)} input partitions reset to {args.target}"
    )
    return EXIT_FAILED if failed else 0
