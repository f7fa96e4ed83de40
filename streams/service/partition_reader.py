"""Reads a range of one topic partition straight from the broker: records a consumer skipped or fetched too early."""

from __future__ import annotations

import time
from typing import NamedTuple

from kafka import KafkaConsumer, TopicPartition

from streams.kafka_admin import client_options
from streams.settings import Settings

__all__ = ["Fetched", "read_range"]


class Fetched(NamedTuple):
    """One record read from the broker."""

    offset: int
    timestamp: int
    """Record timestamp (ms)."""
    key: bytes | None
    value: bytes | None


def read_range(settings: Settings, topic: str, partition: int, start: int, end: int) -> list[Fetched]:
    """The records of `topic[partition]` with `start <= offset < end` (blocking; read_committed under exactly_once)."""
    consumer = KafkaConsumer(
        **client_options(settings),
        enable_auto_commit=False,
        auto_offset_reset="earliest",  # `start` below the log's start (retention): from the first record kept
        isolation_level="read_committed" if settings.exactly_once else "read_uncommitted",
    )
    try:
        tp = TopicPartition(topic, partition)
        consumer.assign([tp])
        consumer.seek(tp, start)
        found: list[Fetched] = []
        deadline = time.monotonic() + settings.session_timeout_ms / 1000
        transactional = settings.exactly_once
        while consumer.position(tp) < end:
            if time.monotonic() > deadline:
                if transactional:  # what is left are transaction markers, or aborted records
                    return found
                raise TimeoutError(f"could not read {topic}[{partition}] {start}..{end - 1}")
            for records in consumer.poll(timeout_ms=200).values():
                found += [
                    Fetched(r.offset, r.timestamp, r.key, r.value) for r in records if start <= r.offset < end
                ]
        return found
    finally:
        consumer.close()
