"""bench/drain.py: its figures are when the worker's output became readable, however slowly the drain reads it."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka import KafkaConsumer, TopicPartition

import bench.drain as drain_module
from bench.drain import SETTLE_S, Drained, drain, expected_output
from bench.harness import MemorySampler
from streams.kafka_admin import bootstrap_servers
from tests.service.conftest import BROKER, TopicSet, produce_lines
from tests.service.test_faults import FAST, collegemsg_lines

SENT_TO_READABLE_S = 3.0
"""Generous bound on send-to-readable: producer linger, broker append, an offset poll (and a commit, 1 s apart)."""


def test_a_record_is_readable_from_the_first_poll_that_showed_its_partition_past_it() -> None:
    ends = drain_module._Ends()
    for seen_s, end in [(1.0, 0), (1.1, 5), (1.2, 5), (1.3, 9)]:
        ends.add(seen_s, end)
    assert (ends.seen_s, ends.ends) == ([1.0, 1.1, 1.3], [0, 5, 9])
    assert [ends.readable_s(offset) for offset in (0, 4, 5, 8)] == [1.1, 1.1, 1.3, 1.3]
    assert ends.readable_s(9) == float("inf")


def _changelog_rows(topic: str) -> tuple[int, float]:
    """Row records of a changelog (read_committed, to its last stable offsets) and their latest timestamp (s)."""
    consumer = KafkaConsumer(
        bootstrap_servers=bootstrap_servers(BROKER),
        isolation_level="read_committed",
        enable_auto_commit=False,
        max_poll_records=10_000,
    )
    try:
        partitions = [TopicPartition(topic, p) for p in consumer.partitions_for_topic(topic) or ()]
        consumer.assign(partitions)
        consumer.seek_to_beginning()
        ends = consumer.end_offsets(partitions)
        rows, latest = 0, 0.0
        deadline = time.monotonic() + 120
        while any(consumer.position(tp) < ends[tp] for tp in partitions):
            assert time.monotonic() < deadline, "the changelog was not read in 120 s"
            for records in consumer.poll(timeout_ms=500).values():
                for record in records:
                    if record.key.startswith(drain_module.ROW_KEY_PREFIX):
                        rows, latest = rows + 1, max(latest, record.timestamp / 1000)
        return rows, latest
    finally:
        consumer.close()


def _drain_and_check(
    topic_set: TopicSet, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> tuple[Drained, float]:
    """Drain 5,000 CollegeMsg events with one worker; check the figures against the topics read afterwards.

    Returns the figures and how long after `done_s` the drain returned.
    """
    lines = collegemsg_lines(5_000)
    expected = expected_output(lines, topic_set.env)
    produce_lines(topic_set, lines)
    launched: list[float] = []
    start_worker = drain_module.start_worker

    def start_and_note(*args: Any) -> Any:
        launched.append(time.time())
        return start_worker(*args)

    monkeypatch.setattr(drain_module, "start_worker", start_and_note)
    hooks: list[tuple[str, list[int]]] = []
    drained = drain(
        topic_set.env,
        1,
        expected,
        tmp_path,
        stall_s=120,
        after_start=lambda _, ports: hooks.append(("started", list(ports))),
        before_stop=lambda _, ports: hooks.append(("stopping", list(ports))),
    )
    assert [hook for hook, _ in hooks] == ["started", "stopping"]
    assert hooks[0][1] == hooks[1][1], "the same worker's port, once started and before it stops"
    returned_s = time.time() - launched[0]
    rows, latest_row_sent = _changelog_rows(f"{topic_set.app_id}-rows-changelog")

    assert expected.alert_ids
    assert (drained.alerts, drained.unexpected_alerts, drained.row_records) == (
        len(expected.alert_ids),
        0,
        rows,
    )
    assert drained.last_row_sent_s == pytest.approx(latest_row_sent - launched[0], abs=0.05)
    assert 0 < drained.first_applied_s <= drained.all_applied_s <= drained.done_s
    for sent, readable in [
        (drained.last_row_sent_s, drained.last_row_write_s),
        (drained.last_alert_sent_s, drained.alerts_out_s),
    ]:
        assert sent - 0.01 <= readable < sent + SENT_TO_READABLE_S
    assert returned_s >= drained.last_row_write_s + SETTLE_S
    return drained, returned_s - drained.done_s


@pytest.mark.broker
def test_a_slow_reader_delays_the_return_but_not_the_figures(
    topic_factory: Callable[..., TopicSet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(drain_module, "FETCH_MAX_RECORDS", 10)  # ~100 records/s: far behind the worker
    _, late_s = _drain_and_check(topic_factory(3, **FAST), tmp_path, monkeypatch)
    assert late_s > SETTLE_S + 5  # the reader caught up long after the output was readable


@pytest.mark.broker
def test_exactly_once_figures_are_the_commits_that_made_the_output_readable(
    topic_factory: Callable[..., TopicSet], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _drain_and_check(topic_factory(3, **FAST, processing_guarantee="exactly_once"), tmp_path, monkeypatch)


def test_memory_growth_is_measured_past_a_quarter_of_the_rows() -> None:
    sampler = MemorySampler(pid=0, port=0)
    assert sampler.growth_mb_per_million_rows() is None
    sampler.samples = [
        {"s": 10.0, "rss_mb": 300, "rows": 0.0},
        {"s": 20.0, "rss_mb": 700, "rows": 1_000_000.0},  # caches filling: before a quarter of the rows
        {"s": 30.0, "rss_mb": 900, "rows": 2_000_000.0},
        {"s": 40.0, "rss_mb": 960, "rows": 6_000_000.0},
    ]
    assert sampler.growth_mb_per_million_rows() == 15.0
