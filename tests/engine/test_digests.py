"""Daily digests: due once the watermark passes the day, ranked and capped, the same whatever steps it takes."""

from __future__ import annotations

import itertools
import random

import orjson
import pytest

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.alerts import Alert
from streams.engine.digests import DAY_MS, Digests, digests_of
from streams.engine.engine import RelationshipEngine
from streams.engine.events import decode_event, row_updates
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.settings import Settings

DAY = 12_000  # days since the epoch: 2002-11-09


def dormant(owner: str, contact: str, since: int, strength: float = 1.0, last: int = 0) -> Alert:
    return {
        "kind": "dormant",
        "alert_id": f"dormant:{owner}:{contact}:{last}",
        "owner_id": owner,
        "contact_id": contact,
        "strength": strength,
        "last_interaction_at": last,
        "dormant_since": since,
        "touches": 3,
    }


def test_a_day_is_due_once_the_watermark_reaches_its_last_millisecond() -> None:
    digests = Digests(top=5)
    digests.add(dormant("ann", "bob", DAY * DAY_MS))
    digests.add(dormant("ann", "cat", (DAY + 1) * DAY_MS - 1))
    digests.add(dormant("bob", "ann", (DAY + 1) * DAY_MS))  # the next day
    assert digests.due((DAY + 1) * DAY_MS - 2) == []
    [ann] = digests.due((DAY + 1) * DAY_MS - 1)
    assert (ann["owner_id"], ann["day"], ann["day_start"]) == ("ann", "2002-11-09", DAY * DAY_MS)
    assert [entry["contact_id"] for entry in ann["dormant"]] == ["bob", "cat"]
    assert ann["digest_id"] == f"digest:ann:{DAY}"
    assert digests.due((DAY + 1) * DAY_MS - 1) == [], "given once"
    assert digests.pending() == 1


def test_digests_come_by_day_then_owner() -> None:
    digests = Digests(top=5)
    for owner, day in [("zed", DAY), ("amy", DAY + 1), ("bob", DAY)]:
        digests.add(dormant(owner, "x", day * DAY_MS + 5))
    due = digests.due((DAY + 2) * DAY_MS)
    assert [(d["day_start"] // DAY_MS, d["owner_id"]) for d in due] == [
        (DAY, "bob"),
        (DAY, "zed"),
        (DAY + 1, "amy"),
    ]


def test_the_strongest_are_listed_up_to_the_cap_and_the_rest_counted() -> None:
    digests = Digests(top=2)
    for contact, strength in [("c1", 1.0), ("c2", 9.0), ("c3", 5.0), ("c0", 5.0)]:
        digests.add(dormant("ann", contact, DAY * DAY_MS + 1, strength))
    [ann] = digests.due((DAY + 1) * DAY_MS)
    assert [entry["contact_id"] for entry in ann["dormant"]] == ["c2", "c0"], "ties: by contact id"
    assert ann["more"] == 2


def test_revived_alerts_are_not_digested() -> None:
    digests = Digests(top=5)
    digests.add({**dormant("ann", "bob", DAY * DAY_MS), "kind": "revived"})
    assert digests.due((DAY + 5) * DAY_MS) == []


def test_an_erasure_removes_the_user_from_days_ending_at_or_after_it_whenever_it_is_known() -> None:
    alerts = [
        dormant("ann", "bob", DAY * DAY_MS + 10),  # the day before the erasure: kept
        dormant("ann", "bob", (DAY + 1) * DAY_MS + 10, last=1),  # the erasure's day: dropped
        dormant("bob", "cat", (DAY + 1) * DAY_MS + 20),  # bob as owner: dropped
        dormant("ann", "cat", (DAY + 1) * DAY_MS + 30),  # kept: ann's digest of that day lists cat only
    ]
    erasure = ("bob", (DAY + 1) * DAY_MS + 500)
    known_first = digests_of(alerts, (DAY + 3) * DAY_MS, top=5, erasures=[erasure])
    known_later = Digests(top=5)
    for alert in alerts:
        known_later.add(alert)
    known_later.erase(*erasure)
    assert known_later.due((DAY + 3) * DAY_MS) == known_first
    assert [(d["owner_id"], [e["contact_id"] for e in d["dormant"]]) for d in known_first] == [
        ("ann", ["bob"]),
        ("ann", ["cat"]),
    ]


def collegemsg_lines(count: int) -> list[bytes]:
    return [orjson.dumps(event) for event in itertools.islice(collegemsg_events(COLLEGEMSG), count)]


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_the_digests_are_the_same_whatever_steps_the_watermark_takes(seed: int) -> None:
    """What the service does (digests due after each record's alerts, at its own watermark steps) gives what the
    replay writes at the end."""
    settings = Settings(
        **REPLAY_DEFAULTS, min_touches=3, min_silence_ms=DAY_MS, max_silence_ms=7 * DAY_MS, digest_top=3
    )
    lines = collegemsg_lines(20_000)
    summary = ReplaySummary()
    alerts = list(replay(lines, settings, summary))
    expected = digests_of(alerts, summary.watermark, settings.digest_top)
    assert len(expected) > 100
    assert any(d["more"] > 0 for d in expected), "the cap is exercised"

    rng = random.Random(seed)
    engine = RelationshipEngine(settings)
    digests = Digests(settings.digest_top)
    got = []
    max_ts = None
    for line in lines:
        event = decode_event(line)
        for update in row_updates(event) if event.actor != event.target else ():
            for alert in engine.offer(update):
                digests.add(alert)
        max_ts = event.ts if max_ts is None else max(max_ts, event.ts)
        if rng.random() < 0.05:  # a watermark step now and then, of any size
            for alert in engine.advance(max_ts - rng.randrange(0, 3 * DAY_MS)):
                digests.add(alert)
            got += digests.due(engine.watermark)
    for alert in engine.finish():
        digests.add(alert)
    got += digests.due(engine.watermark)
    assert got == expected
