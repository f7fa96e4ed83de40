"""Feedback (docs/semantics.md §11): mute, unmute and snooze hold alerts back while the rows evolve as before."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.digests import digests_of
from streams.engine.engine import RelationshipEngine
from streams.engine.events import Interaction, InvalidEvent, Reason
from streams.engine.feedback import (
    Action,
    Feedback,
    HeldFeedback,
    RowFeedback,
    decode_feedback,
    feedback_state_from_bytes,
    feedback_state_to_bytes,
    read_feedback,
)
from streams.replay import ReplaySummary, replay
from tests.engine.support import DAY, MINUTE, SMALL, T0, make_settings
from tests.engine.test_erasure import friends, offer_and_advance
from tests.engine.test_properties import USERS, dirty_streams, to_lines

REPO = Path(__file__).resolve().parents[2]
# ann and bob talk on days 0-2: touches a day apart, threshold 3 days, so both rows fade at LAST + 3 days
LAST = T0 + 2 * DAY + MINUTE
DEADLINE = LAST + 3 * DAY
FADING = friends("ann", "bob", [0, 1, 2])
BACK = friends("ann", "bob", [8])  # both rows revive on day 8
QUIET = [Interaction("tick", 0, "x", "y", T0 + 12 * DAY)]  # moves the watermark on without touching ann/bob


def mute(ts: int, owner: str = "ann", contact: str = "bob") -> HeldFeedback:
    return HeldFeedback(ts, owner, contact, Action.MUTE, 0)


def unmute(ts: int, owner: str = "ann", contact: str = "bob") -> HeldFeedback:
    return HeldFeedback(ts, owner, contact, Action.UNMUTE, 0)


def snooze(ts: int, until: int, owner: str = "ann", contact: str = "bob") -> HeldFeedback:
    return HeldFeedback(ts, owner, contact, Action.SNOOZE, until)


def run(
    feedback: list[HeldFeedback], events: list[Interaction]
) -> tuple[list[dict[str, Any]], RelationshipEngine]:
    """Feedback known up front (as the replay's `--feedback`), then the events in order."""
    engine = RelationshipEngine(make_settings(**SMALL))
    alerts: list[dict[str, Any]] = []
    for item in feedback:
        alerts += engine.give_feedback(item)
    alerts += offer_and_advance(engine, events)
    return alerts, engine


def of_row(alerts: list[dict[str, Any]], owner: str = "ann", contact: str = "bob") -> list[tuple[Any, ...]]:
    return [
        (a["kind"], a["dormant_since"], a.get("released_at"))
        for a in alerts
        if (a["owner_id"], a["contact_id"]) == (owner, contact)
    ]


def test_without_feedback_both_rows_fade_and_come_back() -> None:
    alerts, _ = run([], FADING + BACK)
    assert (
        of_row(alerts)
        == of_row(alerts, "bob", "ann")
        == [
            ("dormant", DEADLINE, None),
            ("revived", DEADLINE, None),
        ]
    )


def test_a_muted_row_emits_no_alerts_and_its_state_evolves_as_without_feedback() -> None:
    plain, plain_engine = run([], FADING + BACK)
    alerts, engine = run([mute(T0 + 3 * DAY)], FADING + BACK)
    assert of_row(alerts) == []
    assert of_row(alerts, "bob", "ann") == of_row(plain, "bob", "ann"), "the other direction is its own row"
    assert engine.rows == plain_engine.rows
    assert (engine.stats.withheld, engine.stats.dormant, engine.stats.revived, engine.stats.feedback) == (
        2,
        1,
        1,
        1,
    )


def test_a_snoozed_rows_dormant_alert_goes_out_when_the_snooze_ends_if_the_row_is_still_dormant() -> None:
    plain, _ = run([], FADING + QUIET)
    until = T0 + 6 * DAY
    alerts, engine = run([snooze(T0 + 3 * DAY, until)], FADING + QUIET)
    assert of_row(alerts) == [("dormant", DEADLINE, until)]
    released = next(a for a in alerts if a["owner_id"] == "ann")
    original = next(a for a in plain if a["owner_id"] == "ann")
    assert {**released, "released_at": None, "detected_at": 0} == {
        **original,
        "released_at": None,
        "detected_at": 0,
    }
    assert engine.stats.withheld == 1
    assert engine.feedback["ann", "bob"].snoozed_until is None


def test_a_snooze_ending_before_the_deadline_changes_nothing() -> None:
    plain, _ = run([], FADING + BACK)
    alerts, _ = run([snooze(T0 + 3 * DAY, DEADLINE - 1)], FADING + BACK)
    assert of_row(alerts) == of_row(plain)


def test_a_row_back_before_its_snooze_ends_emits_neither_alert() -> None:
    alerts, engine = run([snooze(T0 + 3 * DAY, T0 + 9 * DAY)], FADING + BACK)
    assert of_row(alerts) == []
    assert of_row(alerts, "bob", "ann") == [("dormant", DEADLINE, None), ("revived", DEADLINE, None)]
    assert engine.stats.withheld == 2
    assert engine.rows["ann", "bob"].dormant_since is None


def test_unmuting_a_dormant_row_releases_its_alert_and_its_revival_follows() -> None:
    alerts, _ = run([mute(T0 + 3 * DAY), unmute(T0 + 6 * DAY)], FADING + BACK)
    assert of_row(alerts) == [("dormant", DEADLINE, T0 + 6 * DAY), ("revived", DEADLINE, None)]


def test_a_mute_after_the_dormant_alert_holds_back_the_revival() -> None:
    alerts, engine = run([mute(T0 + 6 * DAY)], FADING + BACK)
    assert of_row(alerts) == [("dormant", DEADLINE, None)]
    assert engine.stats.withheld == 1


def test_feedback_at_the_deadline_applies_before_it_fires() -> None:
    alerts, _ = run([mute(DEADLINE)], FADING + QUIET)
    assert of_row(alerts) == []
    alerts, _ = run([mute(DEADLINE + 1)], FADING + QUIET)
    assert of_row(alerts) == [("dormant", DEADLINE, None)]


def test_the_latest_feedback_wins_whatever_order_it_arrives_in() -> None:
    items = [mute(T0 + 3 * DAY), unmute(T0 + 4 * DAY), mute(T0 + 4 * DAY), unmute(T0 + 2 * DAY)]
    results = {
        str(of_row(run(order, FADING + BACK)[0])) for order in (items, items[::-1], items[1:] + items[:1])
    }
    assert results == {"[]"}, "a mute and an unmute at one ts: the mute (the larger action) wins"
    # late feedback (below the watermark) applies at once, but never over a later one already applied
    engine = RelationshipEngine(make_settings(**SMALL))
    offer_and_advance(engine, FADING)
    engine.give_feedback(mute(LAST))
    engine.give_feedback(unmute(LAST - DAY))
    assert engine.feedback["ann", "bob"].muted


def test_a_snooze_until_its_own_ts_or_earlier_lifts_a_snooze() -> None:
    alerts, _ = run([snooze(T0 + 3 * DAY, T0 + 9 * DAY), snooze(T0 + 6 * DAY, T0 + 6 * DAY)], FADING + QUIET)
    assert of_row(alerts) == [("dormant", DEADLINE, T0 + 6 * DAY)]


def test_an_erasure_forgets_the_feedback_naming_the_user_and_drops_feedback_held_for_them() -> None:
    engine = RelationshipEngine(make_settings(**SMALL))
    engine.give_feedback(mute(T0 + DAY))
    engine.give_feedback(snooze(T0 + 5 * DAY, T0 + 20 * DAY, "bob", "ann"))
    engine.erase("bob", T0 + 4 * DAY)
    offer_and_advance(engine, FADING + QUIET)
    assert engine.feedback == {}
    assert engine.feedback_changed
    assert engine.stats.feedback == 1, "the mute applied before the erasure; the snooze came after it"


def test_a_released_alert_goes_in_the_digest_of_its_release_day() -> None:
    until = T0 + 6 * DAY
    alerts, engine = run([snooze(T0 + 3 * DAY, until)], FADING + QUIET)
    days = {(d["owner_id"], d["day_start"]) for d in digests_of(alerts, engine.watermark, top=5)}
    assert days == {("ann", until // DAY * DAY), ("bob", DEADLINE // DAY * DAY)}


def test_feedback_state_round_trips_and_a_restored_engine_carries_on_alike() -> None:
    feedback = [snooze(T0 + 3 * DAY, T0 + 6 * DAY), mute(T0 + 3 * DAY, "bob", "ann")]
    applied = [
        Interaction("mid", 0, "x", "y", T0 + 4 * DAY)
    ]  # the watermark passes the feedback, not the deadline
    whole, _ = run(feedback, FADING + applied + BACK)
    first, engine = run(feedback, FADING + applied)
    assert not engine.held_feedback
    state = feedback_state_from_bytes(feedback_state_to_bytes(engine.feedback))
    assert state == engine.feedback
    assert state["ann", "bob"].snoozed_until == T0 + 6 * DAY
    restored = RelationshipEngine(make_settings(**SMALL), rows=dict(engine.rows))
    restored.watermark = engine.watermark
    restored.restore_feedback(state)
    rest = offer_and_advance(restored, BACK)
    assert of_row(first + rest) == of_row(whole)
    assert of_row(first + rest, "bob", "ann") == of_row(whole, "bob", "ann")
    with pytest.raises(ValueError, match="version byte 0x02"):
        feedback_state_from_bytes(b"\x02[]")


def test_decoding_feedback() -> None:
    assert decode_feedback(b'{"owner_id":"a","contact_id":"b","action":"unmute","ts":1e12}') == Feedback(
        "a", "b", Action.UNMUTE, None, 10**12
    )
    with pytest.raises(InvalidEvent) as caught:
        decode_feedback(b"{")
    assert caught.value.reason == Reason.NOT_JSON
    with pytest.raises(ValueError, match="feedback line 2: unknown_action action"):
        list(
            read_feedback(
                [
                    b'{"owner_id":"a","contact_id":"b","action":"mute","ts":1e12}',
                    b'{"owner_id":"a","contact_id":"b","action":"x","ts":1e12}',
                ]
            )
        )


# --- properties: feedback that silences rows from the start removes exactly their alerts ----------------------------


@settings(max_examples=60, deadline=None)
@given(data=st.data(), stream=dirty_streams(lateness_ms=0), muted=st.sets(st.sampled_from(USERS), max_size=3))
def test_rows_muted_or_snoozed_past_the_end_from_the_start_lose_exactly_their_alerts(
    data: st.DataObject, stream: list[Interaction], muted: set[str]
) -> None:
    config = make_settings(**SMALL)
    plain = list(replay(to_lines(stream), config))
    far = T0 + 10_000 * DAY
    silenced = {(owner, contact) for owner in muted for contact in USERS if contact != owner}
    how = data.draw(st.sampled_from(["mute", "snooze"]))
    action, until = (Action.MUTE, None) if how == "mute" else (Action.SNOOZE, far)
    feedback = [
        Feedback(owner, contact, action, until, 946_684_800_000) for owner, contact in sorted(silenced)
    ]
    summary = ReplaySummary()
    got = list(replay(to_lines(stream), config, summary, feedback=feedback))
    kept = [a for a in plain if (a["owner_id"], a["contact_id"]) not in silenced]
    assert [a["alert_id"] for a in got] == [a["alert_id"] for a in kept]
    assert summary.withheld == len(plain) - len(kept)
    # feedback that silences nothing (an unmute, a snooze already over) leaves v1's alerts as they are
    harmless = [Feedback(owner, contact, Action.UNMUTE, None, 946_684_800_000) for owner, contact in silenced]
    assert [a["alert_id"] for a in replay(to_lines(stream), config, feedback=harmless)] == [
        a["alert_id"] for a in plain
    ]


# --- the command line ------------------------------------------------------------------------------------------------


def test_replay_feedback_flag_in_both_engines_and_bad_feedback_refused(tmp_path: Path) -> None:
    events = tmp_path / "events.jsonl"
    events.write_bytes(b"\n".join(to_lines(FADING + QUIET)) + b"\n")
    feedback = tmp_path / "feedback.jsonl"
    feedback.write_bytes(
        orjson.dumps({"owner_id": "ann", "contact_id": "bob", "action": "mute", "ts": T0}) + b"\n"
    )
    command = [sys.executable, "-m", "streams", "replay", str(events), "--feedback", str(feedback)]
    small = [
        f"--{name.replace('_', '-')}={value}" for name, value in SMALL.items() if name != "require_mutual"
    ]
    done = subprocess.run([*command, *small], capture_output=True, check=True, cwd=REPO)
    alerts = [orjson.loads(line) for line in done.stdout.splitlines()]
    summary = orjson.loads(done.stderr.splitlines()[-1])
    assert [(a["owner_id"], a["kind"]) for a in alerts] == [("bob", "dormant")]
    assert (summary["feedback"], summary["withheld"]) == (1, 1)
    compiled = subprocess.run(
        [*command, *small, "--engine", "compiled"], capture_output=True, check=True, cwd=REPO
    )
    assert compiled.stdout == done.stdout
    assert orjson.loads(compiled.stderr.splitlines()[-1])["withheld"] == 1
    feedback.write_bytes(b'{"owner_id":"ann","contact_id":"bob","action":"mute","until":1e12,"ts":1e12}\n')
    refused = subprocess.run(command, capture_output=True, check=False, cwd=REPO)
    assert refused.returncode == 2
    assert b"feedback line 1: unexpected_field until" in refused.stderr


def test_row_feedback_silences() -> None:
    entry = RowFeedback()
    assert not entry.silenced(5)
    entry.snoozed_until = 10
    assert entry.silenced(9)
    assert not entry.silenced(10)
    entry.muted = True
    assert entry.silenced(10)
