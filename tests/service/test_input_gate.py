"""The ingest's input gate: nothing before the seek, then records in order from the seeked offset, gaps read first."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

import pytest
from kafka import TopicPartition

from streams.service import ingest
from streams.service.input_gate import InputGate, record_seeks
from streams.settings import Settings

TOPIC = "replies"


def event(offset: int, partition: int = 0) -> Any:
    return SimpleNamespace(message=SimpleNamespace(topic=TOPIC, partition=partition, offset=offset))


def offsets(events: list[Any]) -> list[int]:
    return [e.message.offset for e in events]


def queued(gate: InputGate, offset: int, partition: int = 0) -> None:
    """What the ingest records once the updates of the records up to `offset` are queued (`Rekeyer.next_offset`)."""
    gate.queued[f"{TOPIC}:{partition}"] = offset + 1  # type: ignore[index]


def seeked_gate(**targets: int) -> InputGate:
    gate = InputGate({}, {})
    record_seeks(gate.seeked, {TopicPartition(TOPIC, int(p[1:])): o for p, o in targets.items()})
    return gate


def test_nothing_passes_before_the_seek() -> None:
    gate = InputGate({}, {})
    batch = gate.sort([event(300), event(301)])  # fetched from the old position, before the seek
    assert batch.send == batch.ack_only == []
    assert batch.missing == {}


def test_records_pass_in_order_from_the_seeked_offset() -> None:
    gate = seeked_gate(p0=100)
    batch = gate.sort([event(100), event(101), event(102)])
    assert offsets(batch.send) == [100, 101, 102]
    assert batch.missing == {}
    queued(gate, 102)
    assert offsets(gate.sort([event(103)]).send) == [103]


def test_a_first_record_past_the_seeked_offset_asks_for_the_offsets_between() -> None:
    gate = seeked_gate(p0=100)
    batch = gate.sort([event(246), event(247)])  # fetched before the seek, delivered after it
    assert offsets(batch.send) == [246, 247]
    assert batch.missing == {(TOPIC, 0): [(100, 246)]}


def test_records_not_delivered_inside_a_batch_are_asked_for_too() -> None:
    # Faust drops records below its read offset: a seek or a rebalance can leave some never delivered.
    gate = seeked_gate(p0=308, p1=0)
    batch = gate.sort([event(308), event(485), event(500), event(0, partition=1), event(501), event(503)])
    assert offsets(batch.send) == [308, 485, 500, 0, 501, 503]
    assert batch.missing == {(TOPIC, 0): [(309, 485), (486, 500), (502, 503)]}


def test_records_read_from_the_broker_go_in_their_place(monkeypatch: pytest.MonkeyPatch) -> None:
    gate = seeked_gate(p0=10, p1=0)
    batch = gate.sort([event(10), event(13), event(0, partition=1), event(14)])
    asked: list[tuple[str, int, int, int]] = []

    def read(settings: Settings, topic: str, partition: int, start: int, end: int) -> list[Any]:
        asked.append((topic, partition, start, end))
        return [
            SimpleNamespace(offset=o, key=None, value=b"") for o in range(start, end) if o != 12
        ]  # a marker

    monkeypatch.setattr(ingest, "read_range", read)
    events = asyncio.run(ingest.with_missing(batch, Settings()))
    assert asked == [(TOPIC, 0, 11, 13)]
    assert [(e.message.partition, e.message.offset) for e in events] == [
        (0, 10),
        (0, 11),
        (0, 13),
        (0, 14),
        (1, 0),
    ]


def test_records_already_sent_are_acked_only() -> None:
    gate = seeked_gate(p0=100)
    queued(gate, 249)  # 100..246 read from the broker, then 247..249
    batch = gate.sort([event(100), event(101), event(250)])  # the consumer, seeked back to 100
    assert offsets(batch.ack_only) == [100, 101]
    assert offsets(batch.send) == [250]
    assert batch.missing == {}


def test_a_revocation_closes_the_gate_until_the_next_seek() -> None:
    gate = seeked_gate(p0=100, p1=7)
    queued(gate, 101)
    gate.revoked()
    gate.queued.clear()  # type: ignore[attr-defined]  # the rekeyer forgets what it queued (retract_idle)
    assert gate.sort([event(102), event(7, partition=1)]).send == []
    record_seeks(gate.seeked, {TopicPartition(TOPIC, 0): 100})  # nothing was committed
    batch = gate.sort([event(100), event(7, partition=1)])
    assert offsets(batch.send) == [100]  # partition 1 has not been seeked yet
