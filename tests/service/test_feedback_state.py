"""Feedback in an owner partition: routed by owner, held with its record's ack, checkpointed, applied once."""

from __future__ import annotations

from typing import Any

import orjson
from prometheus_client import CollectorRegistry

from streams.engine.events import Reason
from streams.engine.feedback import Action, feedback_state_from_bytes
from streams.engine.row import Row
from streams.service.delivery import source_records
from streams.service.ingest import Rekeyer
from streams.service.metrics import Metrics
from streams.service.owner_partition import OwnerPartition
from streams.service.partitioning import owner_partition
from streams.service.records import (
    OWNER_RECORD_WITH_FEEDBACK_VERSION,
    OwnerRecord,
    decode_owner_record,
    encode_owner_record,
)
from streams.settings import Settings
from tests.service.test_erasure_log import DAY, SOURCE, T0, feed, record, talk

FEEDBACK = "relationships.feedback:0"
# established at the first touch; threshold 14 days (the floor)
SETTINGS = Settings(allowed_lateness_ms=0, clock="event", min_touches=1, require_mutual=False)
DEADLINE = T0 + 14 * DAY


def feedback(action: Action, ts: int, input_offset: int, until: int = 0, owner: str = "ann") -> OwnerRecord:
    """An owner record carrying one feedback request, as the ingest stage writes it."""
    fields = [[ts, owner, "bob", int(action), until, 0, input_offset]]
    return decode_owner_record(encode_owner_record([FEEDBACK], [], {FEEDBACK: (ts, False)}, None, fields))


def heartbeat(max_ts: int, idle: bool = False) -> OwnerRecord:
    """The interactions' marker, and the feedback topic caught up (idle)."""
    return OwnerRecord([], [], {SOURCE: (max_ts, idle), FEEDBACK: (None, True)})


def restart(
    part: OwnerPartition[str], rows: dict[tuple[str, str], Row], state: bytes | None
) -> OwnerPartition[str]:
    """What a worker loads after `part`'s last checkpoint: rows, resume record and the feedback it last wrote."""
    saved = part.checkpoint()
    for key, row in saved.rows:
        if row is not None:
            rows[key] = Row.from_bytes(row.to_bytes())
    state = saved.feedback if saved.feedback is not None else state
    loaded = None if state is None else feedback_state_from_bytes(state)
    return OwnerPartition(0, SETTINGS, rows, [SOURCE, FEEDBACK], saved.resume, None, None, loaded)


def kinds(alerts: list[dict[str, Any]]) -> list[tuple[str, str, Any]]:
    return [(a["kind"], a["owner_id"], a.get("released_at")) for a in alerts]


def test_a_record_with_feedback_is_version_3_and_round_trips() -> None:
    fields = [[T0, "ann", "bob", 2, T0 + DAY, 0, 5]]
    encoded = encode_owner_record([FEEDBACK], [], {}, None, fields)
    assert encoded[0] == OWNER_RECORD_WITH_FEEDBACK_VERSION == 3
    assert decode_owner_record(encoded) == OwnerRecord([FEEDBACK], [], {}, [], fields)


def test_the_ingest_stage_routes_feedback_to_the_owners_partition_and_dead_letters_bad_ones() -> None:
    settings = Settings(partitions=4, clock="event")
    rekeyer = Rekeyer(settings, Metrics(CollectorRegistry()))
    topic = settings.topic_feedback
    request = {"owner_id": "ann", "contact_id": "bob", "action": "snooze", "until": T0 + DAY, "ts": T0}
    batch = [
        record(topic, 3, orjson.dumps(request)),
        record(topic, 4, orjson.dumps({**request, "action": "block"})),
        record(topic, 5, orjson.dumps({**request, "action": "mute"})),
        record(topic, 6, orjson.dumps({**request, "action": "mute", "until": None, "ts": T0 + 5})),
    ]
    dead: list[Any] = []
    split = rekeyer.split(batch, dead)
    assert split.feedback == {
        owner_partition("ann", 4): [[T0, "ann", "bob", 2, T0 + DAY, 0, 3], [T0 + 5, "ann", "bob", 1, 0, 0, 6]]
    }
    assert [(e.message.offset, error.reason, error.field) for e, error in dead] == [
        (4, Reason.UNKNOWN_ACTION, "action"),
        (5, Reason.UNEXPECTED_FIELD, "until"),
    ]
    assert rekeyer.batch_markers(split.sources) == {f"{topic}:0": (T0 + 5, False)}
    assert rekeyer.quiet(f"{topic}:0"), "a control topic is quiet once caught up"
    # exactly_once: the feedback travels in its own source's record, to the owner's partition only
    values = source_records(split, f"{topic}:0", {}, 4)
    carried = [decode_owner_record(value).feedback for value in values]
    assert [len(f) for f in carried] == [2 if p == owner_partition("ann", 4) else 0 for p in range(4)]


def test_feedback_waits_for_the_watermark_with_its_record_unacked_and_a_restart_applies_it_again() -> None:
    rows: dict[tuple[str, str], Row] = {}
    part: OwnerPartition[str] = OwnerPartition(0, SETTINGS, rows, [SOURCE, FEEDBACK])
    records = [talk(T0, "e1", 0), feedback(Action.MUTE, T0 + DAY, 0), heartbeat(T0 + 1)]
    feed(part, records, 0)
    assert part.engine.held_feedback, "the watermark has not reached it"
    assert part.checkpoint().acks == ["r0"], "the feedback's record waits"
    restarted = restart(part, rows, None)
    assert restarted.resume is not None
    assert restarted.resume.replay_from == 1
    alerts = feed(restarted, records[1:], 1)  # re-delivered from the unacked record on
    alerts += feed(restarted, [heartbeat(DEADLINE + DAY, idle=True)], 3)
    assert kinds(alerts) == [("dormant", "bob", None)], "ann's row is muted"
    assert restarted.engine.stats.withheld == 1
    saved = restarted.checkpoint()
    assert saved.acks == ["r1", "r2", "r3"]
    assert saved.feedback is not None
    assert feedback_state_from_bytes(saved.feedback)["ann", "bob"].muted


def test_feedback_applied_before_a_checkpoint_is_not_applied_again_and_its_state_survives_a_restart() -> None:
    rows: dict[tuple[str, str], Row] = {}
    part: OwnerPartition[str] = OwnerPartition(0, SETTINGS, rows, [SOURCE, FEEDBACK])
    until = DEADLINE + 2 * DAY
    records = [talk(T0, "e1", 0), feedback(Action.SNOOZE, T0 + DAY, 0, until), heartbeat(T0 + 2 * DAY)]
    feed(part, records, 0)
    assert part.engine.stats.feedback == 1
    restarted = restart(part, rows, None)
    assert restarted.engine.feedback["ann", "bob"].snoozed_until == until
    alerts = feed(restarted, [feedback(Action.SNOOZE, T0 + DAY, 0, until)], 3)  # the ingest sent it again
    assert restarted.engine.stats.feedback == 0
    assert restarted.skipped == 1
    alerts += feed(restarted, [heartbeat(until + DAY, idle=True)], 4)
    assert kinds(alerts) == [("dormant", "bob", None), ("dormant", "ann", until)]
