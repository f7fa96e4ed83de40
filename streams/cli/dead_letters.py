"""`python -m streams dead-letters redrive [--apply]`: re-publish dead letters whose original bytes now validate."""

from __future__ import annotations

import argparse
import base64
import binascii
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, NamedTuple, TextIO

import orjson
from kafka import KafkaConsumer, TopicPartition
from kafka.structs import OffsetAndMetadata

from streams.engine.events import InvalidEvent, Reason, decode_event
from streams.kafka_admin import client_options, producer
from streams.service.dead_letter import KEPT_BYTES
from streams.settings import Settings

__all__ = ["Redrive", "add_parser", "classify", "latest_valid_ts", "redrive_group", "run"]

READ_TIMEOUT_S = 300.0


class Redrive(NamedTuple):
    """A dead letter that validates now: where it came from and its original key and bytes."""

    topic: str
    partition: int
    key: bytes | None
    value: bytes


@dataclass
class Tally:
    """What a pass over the dead-letter topic found."""

    to_send: list[Redrive] = field(default_factory=list)
    still_invalid: Counter[str] = field(default_factory=Counter)
    """Reason of each dead letter that still does not validate."""
    not_recoverable: int = 0
    """Dead letters whose original bytes are not all there (truncated for size), or unreadable."""


def _say(line: str, stream: TextIO | None = None) -> None:
    (stream or sys.stdout).write(line + "\n")


def redrive_group(settings: Settings) -> str:
    """The consumer group whose committed offsets record how far `--apply` has redriven."""
    return f"{settings.app_id}-redrive"


def latest_valid_ts(settings: Settings, now_ms: int) -> int | None:
    """With the hybrid clock, the largest `ts` the service takes now (SPEC v1.1 §1 `max_future`); else None."""
    return now_ms + settings.max_future_ms if settings.clock == "hybrid" else None


def classify(value: bytes, max_record_bytes: int, latest_ts: int | None = None) -> Redrive | str | None:
    """A dead-letter value -> what to send, the reason it is still invalid, or None (not recoverable).

    `latest_ts` (`latest_valid_ts`): an event stamped later is still `ts_in_future`, as the
    worker would judge it now; sending it would only make it a dead letter again.
    """
    try:
        envelope = orjson.loads(value)
        source = envelope["source"]
        if envelope.get("value_truncated"):
            return None
        key = None if envelope["key_b64"] is None else base64.b64decode(envelope["key_b64"], validate=True)
        raw = base64.b64decode(envelope["value_b64"], validate=True)
        topic, partition = str(source["topic"]), int(source["partition"])
    except (orjson.JSONDecodeError, KeyError, TypeError, ValueError, binascii.Error):
        return None
    if key is not None and len(key) >= KEPT_BYTES:  # keys are cut at KEPT_BYTES with no mark: maybe not whole
        return None
    try:
        event = decode_event(raw, max_record_bytes)
    except InvalidEvent as exc:
        return exc.reason.value
    if latest_ts is not None and event.ts > latest_ts:
        return Reason.TS_IN_FUTURE.value
    return Redrive(topic, partition, key, raw)


def add_parser(commands: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register the `dead-letters` sub-command."""
    parser = commands.add_parser("dead-letters", help="redrive dead letters that now validate")
    parser.add_argument("action", choices=["redrive"])
    parser.add_argument(
        "--apply", action="store_true", help="send them and record progress (default: dry run, counts only)"
    )
    parser.set_defaults(run=run)


def _read_new(settings: Settings, consumer: KafkaConsumer) -> tuple[Tally, dict[TopicPartition, int]]:
    """Every dead letter from the redrive group's committed offsets to the end offsets as of now."""
    topic = settings.topic_dead_letter
    partitions = [TopicPartition(topic, p) for p in sorted(consumer.partitions_for_topic(topic) or ())]
    consumer.assign(partitions)
    beginnings = consumer.beginning_offsets(partitions)
    for tp in partitions:
        committed = consumer.committed(tp)
        consumer.seek(tp, max(committed or 0, beginnings[tp]))
    ends: dict[TopicPartition, int] = consumer.end_offsets(partitions)
    latest_ts = latest_valid_ts(settings, int(time.time() * 1000))
    tally = Tally()
    deadline = time.monotonic() + READ_TIMEOUT_S
    while any(consumer.position(tp) < ends[tp] for tp in partitions):
        if time.monotonic() > deadline:
            raise TimeoutError(f"could not read {topic} to its end in {READ_TIMEOUT_S:.0f} s")
        for tp, records in consumer.poll(timeout_ms=500).items():
            for record in records:
                if record.offset >= ends[tp]:
                    continue
                verdict = classify(record.value or b"", settings.max_record_bytes, latest_ts)
                if isinstance(verdict, Redrive):
                    tally.to_send.append(verdict)
                elif verdict is None:
                    tally.not_recoverable += 1
                else:
                    tally.still_invalid[verdict] += 1
    return tally, ends


def _send(settings: Settings, records: list[Redrive]) -> None:
    client = producer(settings)
    try:
        futures: list[Any] = [
            client.send(r.topic, key=r.key, value=r.value, partition=r.partition) for r in records
        ]
        client.flush()
        for future in futures:
            future.get(timeout=60)  # raises if the broker did not take it
    finally:
        client.close()


def run(args: argparse.Namespace) -> int:
    """Print what the dead letters since the last `--apply` hold; with `--apply`, send and record progress."""
    settings = Settings()
    group = redrive_group(settings)
    consumer = KafkaConsumer(
        group_id=group,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        isolation_level="read_committed",
        **client_options(settings),
    )
    try:
        tally, ends = _read_new(settings, consumer)
        if args.apply:
            _send(settings, tally.to_send)
            consumer.commit({tp: OffsetAndMetadata(end, "", -1) for tp, end in ends.items()})
    finally:
        consumer.close()
    invalid = sum(tally.still_invalid.values())
    reasons = ", ".join(f"{reason} {count}" for reason, count in sorted(tally.still_invalid.items()))
    verb = "sent" if args.apply else "would send"
    _say(
        f"{settings.topic_dead_letter}: {verb} {len(tally.to_send)}, still invalid {invalid}"
        f"{f' ({reasons})' if reasons else ''}, not recoverable {tally.not_recoverable}"
    )
    if args.apply:
        _say(f"progress recorded: consumer group {group} at the end offsets read")
    else:
        _say("dry run: nothing sent (--apply sends)")
    return 0
