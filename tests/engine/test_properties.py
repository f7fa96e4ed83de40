"""Hypothesis properties of SPEC §3-4: alerts do not depend on partitioning, arrival order, copies or restarts."""

from __future__ import annotations

import itertools
from collections import Counter
from typing import Any

import orjson
from hypothesis import given, settings
from hypothesis import strategies as st

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.events import INTERACTION_TYPES, Interaction
from streams.engine.row import Row
from streams.settings import Settings
from tests.engine.reference import Reference
from tests.engine.support import (
    DAY,
    HOUR,
    MINUTE,
    T0,
    assert_same_alerts,
    drive,
    make_settings,
    run_replay,
)

USERS = [f"u{i}" for i in range(6)]
PAIRS = list(itertools.combinations(USERS, 2))
PROPERTY = settings(max_examples=150, deadline=None)


@st.composite
def event_streams(draw: st.DrawFn) -> list[Interaction]:
    """Up to 60 events among 6 users over ~200 days, in clusters of a few days.

    Most events fall on a few "friend" pairs (either direction) so that rows get
    established; the rest pick any two users, self-interactions included. Times
    are coarse (whole hours, a few minute offsets) so equal `ts` are common; ids
    follow generation order, unrelated to time order.
    """
    clusters = draw(st.lists(st.integers(0, 200), min_size=1, max_size=8))
    friends = draw(st.lists(st.sampled_from(PAIRS), min_size=1, max_size=4))
    size = draw(st.integers(0, 60))
    events: list[Interaction] = []
    for number in range(size):
        day = draw(st.sampled_from(clusters)) + draw(st.integers(0, 3))
        minute = draw(st.sampled_from([0, 0, 0, 1, 30, 59]))
        ts = T0 + day * DAY + draw(st.integers(0, 23)) * HOUR + minute * MINUTE
        if draw(st.integers(0, 4)):
            actor, target = draw(st.sampled_from(friends))
            if draw(st.booleans()):
                actor, target = target, actor
        else:
            actor, target = draw(st.sampled_from(USERS)), draw(st.sampled_from(USERS))
        kind = draw(st.integers(0, len(INTERACTION_TYPES) - 1))
        events.append(Interaction(f"e{number:02d}", kind, actor, target, ts))
    return events


setting_overrides = st.fixed_dictionaries(
    {
        "min_touches": st.integers(2, 3),
        "require_mutual": st.booleans(),
        "min_silence_ms": st.sampled_from([DAY, 2 * DAY, 3 * DAY]),
        "max_silence_ms": st.just(10 * DAY),
        "touch_merge_ms": st.just(HOUR),
        "k": st.sampled_from([2.0, 3.0]),
        "gap_window": st.integers(2, 8),
        "half_life_ms": st.sampled_from([7 * DAY, 30 * DAY]),
    }
)

lateness_values = st.sampled_from([0, 1, HOUR, 6 * HOUR, DAY, 3 * DAY, 20 * DAY])


def in_order(events: list[Interaction]) -> list[Interaction]:
    """Events sorted by (ts, id)."""
    return sorted(events, key=lambda e: (e.ts, e.id))


def to_lines(events: list[Interaction]) -> list[bytes]:
    """Events as JSON lines."""
    return [
        orjson.dumps(
            {
                "id": e.id,
                "type": INTERACTION_TYPES[e.type],
                "actor_id": e.actor,
                "target_id": e.target,
                "ts": e.ts,
            }
        )
        for e in events
    ]


def replay_alerts(events: list[Interaction], config: Settings) -> list[Alert]:
    """Alerts of replaying `events` in the given arrival order."""
    return run_replay(to_lines(events), config)[0]


def respects_lateness(arrival: list[Interaction], lateness_ms: int) -> bool:
    """No event arrives more than `lateness_ms` of event time after a later one was seen."""
    seen: int | None = None
    for item in arrival:
        if seen is not None and item.ts < seen - lateness_ms:
            return False
        seen = item.ts if seen is None else max(seen, item.ts)
    return True


def displace(data: st.DataObject, ordered: list[Interaction], lateness_ms: int) -> list[Interaction]:
    """An arrival order within the lateness: each event is delayed by 0..lateness ms."""
    delays = data.draw(st.lists(st.integers(0, lateness_ms), min_size=len(ordered), max_size=len(ordered)))
    keyed = sorted(
        ((e.ts + d, i) for i, (e, d) in enumerate(zip(ordered, delays, strict=True))),
    )
    return [ordered[i] for _, i in keyed]


def inject_copies(
    data: st.DataObject, arrival: list[Interaction], slack_ms: int
) -> tuple[list[Interaction], int]:
    """Exact copies of some non-self events inserted after their original, each where the
    largest ts seen before it is at most `slack_ms` above its own ts; (stream, copies)."""
    prefix_max: list[int] = []  # prefix_max[p] = max ts of arrival[:p + 1]
    for item in arrival:
        prefix_max.append(item.ts if not prefix_max else max(prefix_max[-1], item.ts))
    candidates = [i for i, e in enumerate(arrival) if e.actor != e.target]
    if not candidates:
        return arrival, 0
    chosen = data.draw(st.lists(st.sampled_from(candidates), max_size=10))
    inserts: list[tuple[int, int, Interaction]] = []
    for serial, origin in enumerate(chosen):
        item = arrival[origin]
        # a copy inserted before position p sees max(arrival[:p]) = prefix_max[p - 1]
        last = origin + 1
        while last < len(arrival) and prefix_max[last] - item.ts <= slack_ms:
            last += 1
        position = data.draw(st.integers(origin + 1, last))
        inserts.append((position, serial, item))
    stream: list[Interaction] = []
    pending = sorted(inserts, key=lambda t: (t[0], t[1]))
    for position in range(len(arrival) + 1):
        stream.extend(copy for p, _, copy in pending if p == position)
        if position < len(arrival):
            stream.append(arrival[position])
    return stream, len(chosen)


# --- the generator is worth testing with ----------------------------------------


def test_generated_streams_produce_dormant_and_revived_alerts() -> None:
    kinds: list[Counter[str]] = []

    @settings(max_examples=100, derandomize=True, database=None, deadline=None)
    @given(stream=event_streams(), overrides=setting_overrides)
    def collect(stream: list[Interaction], overrides: dict[str, Any]) -> None:
        alerts = replay_alerts(in_order(stream), make_settings(**overrides))
        kinds.append(Counter(a["kind"] for a in alerts))

    collect()
    assert len(kinds) == 100
    with_dormant = sum(1 for k in kinds if k["dormant"])
    with_revived = sum(1 for k in kinds if k["revived"])
    assert with_dormant >= 30, kinds
    assert with_revived >= 10, kinds


# --- the replay equals the SPEC reference loop ---------------------------------------


def as_dicts(events: list[Interaction]) -> list[dict[str, Any]]:
    """Events as the JSON objects of SPEC §1."""
    return [orjson.loads(raw) for raw in to_lines(events)]


@PROPERTY
@given(data=st.data(), stream=event_streams(), overrides=setting_overrides, lateness=lateness_values)
def test_replay_equals_the_reference_loop(
    data: st.DataObject, stream: list[Interaction], overrides: dict[str, Any], lateness: int
) -> None:
    reference = Reference(make_settings(**overrides)).run(as_dicts(stream))
    assert_same_alerts(replay_alerts(in_order(stream), make_settings(**overrides)), reference)
    arrival = displace(data, in_order(stream), lateness)
    config = make_settings(**overrides, allowed_lateness_ms=lateness)
    alerts = replay_alerts(arrival, config)
    assert_same_alerts(alerts, reference)
    for alert in alerts:
        assert alert["dormant_since"] == alert["last_interaction_at"] + alert["threshold_ms"]


# --- a. splitting by owner -------------------------------------------------------


@PROPERTY
@given(
    stream=event_streams(),
    overrides=setting_overrides,
    partitions=st.integers(1, 5),
    lateness=lateness_values,
)
def test_splitting_rows_by_owner_gives_the_same_alerts(
    stream: list[Interaction], overrides: dict[str, Any], partitions: int, lateness: int
) -> None:
    config = make_settings(**overrides, allowed_lateness_ms=lateness)
    ordered = in_order(stream)
    single = replay_alerts(ordered, config)
    engines = [RelationshipEngine(config) for _ in range(partitions)]
    split = drive(engines, ordered, lateness)
    assert_same_alerts(split, single, dedupe_actual=True)
    assert sum(e.stats.applied for e in engines) == sum(1 for e in stream if e.actor != e.target)
    # every row lives in exactly one engine
    owners = [{key[0] for key in engine.rows} for engine in engines]
    assert sum(len(o) for o in owners) == len(set().union(*owners))


# --- b. arrival order within the allowed lateness ----------------------------------


@PROPERTY
@given(data=st.data(), stream=event_streams(), overrides=setting_overrides, lateness=lateness_values)
def test_shuffle_within_lateness_gives_the_same_alerts(
    data: st.DataObject, stream: list[Interaction], overrides: dict[str, Any], lateness: int
) -> None:
    ordered = in_order(stream)
    arrival = displace(data, ordered, lateness)
    assert respects_lateness(arrival, lateness)
    reference = replay_alerts(ordered, make_settings(**overrides))
    config = make_settings(**overrides, allowed_lateness_ms=lateness)
    assert_same_alerts(replay_alerts(ordered, config), reference)
    alerts, summary = run_replay(to_lines(arrival), config)
    assert_same_alerts(alerts, reference)
    assert summary.late == 0
    assert summary.applied == sum(1 for e in stream if e.actor != e.target)


@PROPERTY
@given(data=st.data(), stream=event_streams(), overrides=setting_overrides, lateness=lateness_values)
def test_copies_within_lateness_are_duplicates(
    data: st.DataObject, stream: list[Interaction], overrides: dict[str, Any], lateness: int
) -> None:
    ordered = in_order(stream)
    arrival = displace(data, ordered, lateness)
    with_copies, copies = inject_copies(data, arrival, lateness)
    assert respects_lateness(with_copies, lateness)
    reference = replay_alerts(ordered, make_settings(**overrides))
    alerts, summary = run_replay(
        to_lines(with_copies), make_settings(**overrides, allowed_lateness_ms=lateness)
    )
    assert_same_alerts(alerts, reference)
    assert summary.duplicates == copies
    assert summary.applied == sum(1 for e in stream if e.actor != e.target)
    assert summary.late == 0


@PROPERTY
@given(data=st.data(), stream=event_streams(), overrides=setting_overrides)
def test_late_copies_inside_the_dedup_window_are_duplicates(
    data: st.DataObject, stream: list[Interaction], overrides: dict[str, Any]
) -> None:
    # lateness 0: a copy arriving after later events is late, but within 24 h of
    # the largest ts seen it is still recognised (and never counted as late)
    ordered = in_order(stream)
    with_copies, copies = inject_copies(data, ordered, DAY - 1)
    reference = replay_alerts(ordered, make_settings(**overrides))
    alerts, summary = run_replay(to_lines(with_copies), make_settings(**overrides))
    assert_same_alerts(alerts, reference)
    assert summary.duplicates == copies
    assert summary.applied == sum(1 for e in stream if e.actor != e.target)
    assert summary.late == 0


# --- c. restarts: rows persisted and restored ---------------------------------------


@PROPERTY
@given(
    data=st.data(),
    stream=event_streams(),
    overrides=setting_overrides,
    lateness=lateness_values,
)
def test_restart_from_persisted_rows_gives_the_same_alerts(
    data: st.DataObject, stream: list[Interaction], overrides: dict[str, Any], lateness: int
) -> None:
    ordered = in_order(stream)
    cuts = [0, *(i for i in range(1, len(ordered)) if ordered[i].ts > ordered[i - 1].ts)]
    cut = data.draw(st.sampled_from(cuts))
    config = make_settings(**overrides, allowed_lateness_ms=lateness)
    before = RelationshipEngine(config)
    alerts = drive([before], ordered[:cut], lateness)
    stored = {key: row.to_bytes() for key, row in before.rows.items()}
    after = RelationshipEngine(config, rows={k: Row.from_bytes(v) for k, v in stored.items()})
    alerts += drive([after], ordered[cut:], lateness, first_position=cut + 1)
    assert_same_alerts(alerts, replay_alerts(ordered, config))
