"""Where a transactional changelog's committed records end: the offset after the last one below its last stable offset."""

from __future__ import annotations

import time
from collections.abc import Mapping

from kafka import KafkaConsumer, TopicPartition

from streams.kafka_admin import client_options
from streams.settings import Settings

__all__ = ["committed_ends"]

FIRST_WINDOW = 256
"""Records read back from the last stable offset at first; the window grows eightfold while it holds none."""


def committed_ends(
    settings: Settings, last_stable: Mapping[tuple[str, int], int], timeout_s: float = 10.0
) -> dict[tuple[str, int], int]:
    """Per `(topic, partition)`: the offset after its last committed record below `last_stable` (blocking).

    Under transactions a partition ends with a commit or abort marker, an
    offset no read_committed consumer ever delivers; a reader waiting for the
    record just below the last stable offset waits for nothing. A partition
    not scanned in `timeout_s` keeps its last stable offset.
    """
    ends = dict(last_stable)
    consumer = KafkaConsumer(
        **client_options(settings), isolation_level="read_committed", enable_auto_commit=False
    )
    try:
        deadline = time.monotonic() + timeout_s
        for (topic, partition), stable in last_stable.items():
            tp = TopicPartition(topic, partition)
            consumer.assign([tp])
            begin = consumer.beginning_offsets([tp])[tp]
            window = FIRST_WINDOW
            while stable > begin and time.monotonic() < deadline:
                start = max(begin, stable - window)
                last = _last_record_offset(consumer, tp, start, stable, deadline)
                if last is not None:
                    ends[(topic, partition)] = last + 1
                    break
                if start == begin:
                    ends[(topic, partition)] = begin  # nothing committed below the last stable offset
                    break
                window *= 8
    finally:
        consumer.close()
    return ends


def _last_record_offset(
    consumer: KafkaConsumer, tp: TopicPartition, start: int, stop: int, deadline: float
) -> int | None:
    """The offset of the last committed record of `tp` in `start..stop-1`, None if there is none."""
    consumer.seek(tp, start)
    last: int | None = None
    while consumer.position(tp) < stop and time.monotonic() < deadline:
        for records in consumer.poll(timeout_ms=200).values():
            for record in records:
                if record.offset < stop:
                    last = record.offset
    return last
