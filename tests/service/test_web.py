"""The worker's web port: state queries (routed to the owning worker), health, readiness, metrics, lag."""

from __future__ import annotations

import json
import math
import shutil
import subprocess
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import Any

import orjson
import pytest
from faust.types import TP
from jsonschema import Draft7Validator

from streams.datasets.collegemsg import COLLEGEMSG as COLLEGEMSG_FIXTURE
from streams.datasets.collegemsg import collegemsg_events
from streams.engine.engine import RelationshipEngine
from streams.engine.events import InvalidEvent, decode_event, row_updates
from streams.engine.row_codec import RowCodec
from streams.engine.rules import Rules
from streams.service.consumer_lag import ProgressTracker, Stall, stall_after_s
from streams.service.readiness import assess
from streams.service.row_store import MemoryTable, StoredRows
from streams.service.state_query import (
    MAX_LIMIT,
    BadQuery,
    Query,
    contact_entry,
    parse_query,
    relationships_body,
)
from streams.service.topology import owner_updates_topic_name
from streams.service.web import AUTH_REALM, SERVED_BY_HEADER
from streams.settings import DAY_MS, HOUR_MS, Settings
from tests.service.conftest import TopicSet, Worker, produce_lines

REPO = Path(__file__).resolve().parents[2]
COLLEGEMSG = COLLEGEMSG_FIXTURE
SCHEMA = Draft7Validator(json.loads((REPO / "schemas" / "relationships-response.v1.json").read_text()))
T0 = 1_600_000_000_000
WEIGHTS = {"mention": 2.0, "reply": 3.0, "like": 1.0}
HALF_LIFE_MS = 30 * DAY_MS


# --- a scenario whose answers are worked out by hand ------------------------------


def _event(event_id: str, kind: str, actor: str, target: str, ts: int) -> dict[str, Any]:
    return {"id": event_id, "type": kind, "actor_id": actor, "target_id": target, "ts": ts}


# ann and bob talk daily for six days (six touches, typical gap 1 day, so the
# threshold is the 14-day floor), then fall silent; ann likes cat once; a late
# event between others moves event time 60 days on, so ann-bob is dormant.
ANN_BOB = [
    _event(
        f"ab{day}",
        "mention" if day % 2 == 0 else "reply",
        *(("ann", "bob") if day % 2 == 0 else ("bob", "ann")),
        T0 + day * DAY_MS,
    )
    for day in range(6)
]
SCENARIO = [
    *ANN_BOB,
    _event("ac0", "like", "ann", "cat", T0 + 2 * DAY_MS + HOUR_MS),
    _event("zz0", "reply", "zoë lee/2", "ann", T0 + 3 * DAY_MS),
    _event("end", "mention", "xavier", "yolanda", T0 + 60 * DAY_MS),
]
NOISE = [
    orjson.dumps(_event("self", "like", "ann", "ann", T0 + DAY_MS)),  # self-interaction: skipped
    b"not json {",
    b'{"id": "g1", "type": "poke", "actor_id": "a", "target_id": "b", "ts": 1600000000000}',
]
AS_OF = T0 + 60 * DAY_MS


def _strength(events: list[dict[str, Any]], as_of: int) -> float:
    return sum(WEIGHTS[e["type"]] * 2 ** (-(as_of - e["ts"]) / HALF_LIFE_MS) for e in events)


def expected_ann() -> dict[str, Any]:
    """`GET /relationships/ann` after the scenario, computed from SPEC §2-3 by hand."""
    last = T0 + 5 * DAY_MS
    bob = {
        "contact_id": "bob",
        "status": "dormant",
        "established": True,
        "last_interaction_at": last,
        "last_out_at": T0 + 4 * DAY_MS,
        "last_in_at": last,
        "touches": 6,
        "typical_gap_ms": DAY_MS,
        "threshold_ms": 14 * DAY_MS,
        "deadline": None,
        "dormant_since": last + 14 * DAY_MS,
        "counts": {"out": {"mention": 3, "reply": 0, "like": 0}, "in": {"mention": 0, "reply": 3, "like": 0}},
    }
    cat_ts = T0 + 2 * DAY_MS + HOUR_MS
    cat = {
        "contact_id": "cat",
        "status": "active",
        "established": False,
        "last_interaction_at": cat_ts,
        "last_out_at": cat_ts,
        "last_in_at": None,
        "touches": 1,
        "typical_gap_ms": None,
        "threshold_ms": None,
        "deadline": None,
        "dormant_since": None,
        "counts": {"out": {"mention": 0, "reply": 0, "like": 1}, "in": {"mention": 0, "reply": 0, "like": 0}},
    }
    zoe = {
        "contact_id": "zoë lee/2",
        "status": "active",
        "established": False,
        "last_interaction_at": T0 + 3 * DAY_MS,
        "last_out_at": None,
        "last_in_at": T0 + 3 * DAY_MS,
        "touches": 1,
        "typical_gap_ms": None,
        "threshold_ms": None,
        "deadline": None,
        "dormant_since": None,
        "counts": {"out": {"mention": 0, "reply": 0, "like": 0}, "in": {"mention": 0, "reply": 1, "like": 0}},
    }
    strengths = {
        "bob": _strength(ANN_BOB, AS_OF),
        "cat": _strength([SCENARIO[6]], AS_OF),
        "zoë lee/2": _strength([SCENARIO[7]], AS_OF),
    }
    contacts = [{**c, "strength": strengths[c["contact_id"]]} for c in (bob, cat, zoe)]
    return {"owner_id": "ann", "as_of": AS_OF, "contacts": contacts, "schema_version": 1}


def scenario_lines() -> list[bytes]:
    """The scenario, one exact duplicate right behind its original (it must not count twice), then noise."""
    lines = [orjson.dumps(e) for e in SCENARIO]
    return [*lines[:2], lines[1], *lines[2:], *NOISE]


def engine_after(lines: list[bytes], settings: Settings) -> RelationshipEngine:
    """The in-process engine fed the same lines to the end of input (what every worker converges to)."""
    engine = RelationshipEngine(
        settings, StoredRows(MemoryTable({}), RowCodec(), Rules(settings), capacity=0)
    )
    for line in lines:
        try:
            interaction = decode_event(line, settings.max_record_bytes)
        except InvalidEvent:
            continue
        if interaction.actor != interaction.target:
            for update in row_updates(interaction):
                engine.offer(update)
    engine.finish()
    return engine


def assert_same_body(got: dict[str, Any], want: dict[str, Any]) -> None:
    """Equal, strengths within a relative 1e-9 (SPEC §4)."""
    got_contacts = [dict(c) for c in got["contacts"]]
    got_strengths = [c.pop("strength") for c in got_contacts]
    want_contacts = [dict(c) for c in want["contacts"]]
    want_strengths = [c.pop("strength") for c in want_contacts]
    assert {**got, "contacts": got_contacts} == {**want, "contacts": want_contacts}
    for g, w in zip(got_strengths, want_strengths, strict=True):
        assert math.isclose(g, w, rel_tol=1e-9), (g, w)


# --- HTTP helpers ------------------------------------------------------------------


class Answer:
    """Status, headers and decoded JSON body of one request."""

    def __init__(self, status: int, headers: Any, body: bytes) -> None:
        self.status = status
        self.headers = headers
        self.raw = body
        json_body = headers.get("Content-Type", "").startswith("application/json")
        self.json: Any = orjson.loads(body) if json_body else None


WORKERS_TOKEN = object()
"""`get`'s default: send the token the worker was started with (STREAMS_WEB_TOKEN), if any."""


def get(worker: Worker, path: str, timeout: float = 10.0, token: object = WORKERS_TOKEN) -> Answer:
    url = f"http://127.0.0.1:{worker.web_port}{path}"
    if token is WORKERS_TOKEN:
        token = worker.env.get("STREAMS_WEB_TOKEN")
    headers = {} if token is None else {"Authorization": f"Bearer {token}"}
    try:
        with urllib.request.urlopen(
            urllib.request.Request(url, headers=headers), timeout=timeout
        ) as response:
            return Answer(response.status, response.headers, response.read())
    except urllib.error.HTTPError as error:
        return Answer(error.code, error.headers, error.read())


def owner_path(owner: str, **params: Any) -> str:
    query = f"?{urllib.parse.urlencode(params)}" if params else ""
    return f"/relationships/{urllib.parse.quote(owner, safe='')}{query}"


def wait_for(what: str, check: Callable[[], Any], timeout_s: float = 90.0, every_s: float = 0.5) -> Any:
    """Poll `check` until it returns something truthy; fail with `what` and the last value."""
    deadline = time.monotonic() + timeout_s
    last: Any = None
    while time.monotonic() < deadline:
        try:
            last = check()
        except (urllib.error.URLError, ConnectionError, TimeoutError) as error:
            last = error
        else:
            if last:
                return last
        time.sleep(every_s)
    raise AssertionError(f"timed out waiting for {what}: last {last!r}")


def ready(worker: Worker) -> bool:
    answer = get(worker, "/readyz")
    return answer.status == 200 and answer.json == {"ready": True, "reasons": []}


def body_when(worker: Worker, path: str, want: Callable[[dict[str, Any]], bool]) -> dict[str, Any]:
    """Poll `path` until a 200 whose body satisfies `want`."""

    def check() -> dict[str, Any] | None:
        answer = get(worker, path)
        return answer.json if answer.status == 200 and want(answer.json) else None

    result: dict[str, Any] = wait_for(path, check)
    return result


def same_answer(first: Worker, second: Worker, path: str) -> tuple[Answer, Answer] | None:
    """Both workers' answers to `path`, when they are equal (None while they differ)."""
    a, b = get(first, path), get(second, path)
    return (a, b) if (a.status, a.json) == (b.status, b.json) else None


# --- units: no worker needed ------------------------------------------------------


@pytest.mark.parametrize(
    ("owner", "params", "code", "parameter"),
    [
        ("", {}, "invalid_owner", "owner"),
        ("x" * 129, {}, "invalid_owner", "owner"),
        ("ann", {"limit": "0"}, "invalid_parameter", "limit"),
        ("ann", {"limit": str(MAX_LIMIT + 1)}, "invalid_parameter", "limit"),
        ("ann", {"limit": "ten"}, "invalid_parameter", "limit"),
        ("ann", {"limit": "-1"}, "invalid_parameter", "limit"),
        ("ann", {"limit": "\uff11"}, "invalid_parameter", "limit"),  # a full-width digit
        ("ann", {"status": "asleep"}, "invalid_parameter", "status"),
        ("ann", {"sort": "loudest"}, "invalid_parameter", "sort"),
        ("ann", {"order": "strength"}, "unknown_parameter", "order"),
    ],
)
def test_bad_queries_are_refused_with_a_code(
    owner: str, params: dict[str, str], code: str, parameter: str
) -> None:
    with pytest.raises(BadQuery) as caught:
        parse_query(owner, params.items())
    assert caught.value.body()["error"] == code
    assert caught.value.body()["parameter"] == parameter


def test_query_defaults_and_bounds() -> None:
    assert parse_query("x" * 128, []) == Query("x" * 128, None, 100)
    assert parse_query("ann", [("limit", str(MAX_LIMIT)), ("status", "active")]) == Query(
        "ann", "active", MAX_LIMIT
    )
    with pytest.raises(BadQuery, match="more than once"):
        parse_query("ann", [("limit", "1"), ("limit", "1")])


def test_body_from_engine_rows_matches_hand_worked_values_and_schema() -> None:
    settings = Settings(clock="event")
    engine = engine_after(scenario_lines(), settings)
    assert engine.watermark == AS_OF
    by_contact = Query("ann", sort="contact")
    body = relationships_body(by_contact, engine.rows, engine.rules, engine.watermark, partition=0)
    assert body is not None
    assert not list(SCHEMA.iter_errors(body))
    assert (body["count"], body["total"], body["truncated"]) == (3, 3, False)
    body = {k: v for k, v in body.items() if k not in {"count", "total", "truncated", "partition"}}
    assert_same_body(body, expected_ann())

    dormant = relationships_body(Query("ann", "dormant"), engine.rows, engine.rules, AS_OF, 0)
    assert dormant is not None
    assert [c["contact_id"] for c in dormant["contacts"]] == ["bob"]
    assert (dormant["count"], dormant["total"], dormant["truncated"]) == (1, 1, False)
    first = relationships_body(Query("ann", limit=2, sort="contact"), engine.rows, engine.rules, AS_OF, 0)
    assert first is not None
    assert [c["contact_id"] for c in first["contacts"]] == ["bob", "cat"]
    assert (first["count"], first["total"], first["truncated"]) == (2, 3, True)
    assert relationships_body(Query("nobody"), engine.rows, engine.rules, AS_OF, 0) is None
    # A plain mapping (no index) gives the same answer by a scan.
    plain = relationships_body(Query("ann"), dict(engine.rows), engine.rules, AS_OF, 0)
    assert plain == relationships_body(Query("ann"), engine.rows, engine.rules, AS_OF, 0)


def test_contacts_are_sorted_dormant_first_then_strongest_unless_asked_otherwise() -> None:
    engine = engine_after(scenario_lines(), Settings(clock="event"))

    def listed(sort: str) -> list[dict[str, Any]]:
        body = relationships_body(parse_query("ann", [("sort", sort)]), engine.rows, engine.rules, AS_OF, 0)
        assert body is not None
        assert not list(SCHEMA.iter_errors(body))
        contacts: list[dict[str, Any]] = body["contacts"]
        return contacts

    by_strength = listed("strength")
    assert by_strength == relationships_body(Query("ann"), engine.rows, engine.rules, AS_OF, 0)["contacts"]  # type: ignore[index]
    ranks = [(c["status"] != "dormant", -c["strength"], c["contact_id"]) for c in by_strength]
    assert ranks == sorted(ranks)
    assert by_strength[0]["status"] == "dormant"
    recent = [(-c["last_interaction_at"], c["contact_id"]) for c in listed("last_interaction")]
    assert recent == sorted(recent)
    ids = [c["contact_id"] for c in listed("contact")]
    assert ids == sorted(ids)
    assert {c["contact_id"] for c in by_strength} == set(ids)
    assert (
        len({tuple(c["contact_id"] for c in listed(s)) for s in ("strength", "last_interaction", "contact")})
        > 1
    )


def test_stall_needs_waiting_records_and_a_committed_offset_standing_still() -> None:
    now = [0.0]
    tracker = ProgressTracker(stall_after_s=60.0, clock=lambda: now[0])
    busy, idle, moving = TP("in", 0), TP("in", 1), TP("owner", 0)
    for step in range(0, 100, 5):
        now[0] = float(step)
        tracker.observe(busy, committed=10, lag=5 + step)  # stuck while records pile up
        tracker.observe(idle, committed=7, lag=0)  # nothing to do: never stalled
        tracker.observe(moving, committed=step, lag=3)  # committing: never stalled
        stalled = tracker.stalled()
        assert [(s.topic, s.partition) for s in stalled] == ([("in", 0)] if step >= 60 else [])
    assert stalled[0][2:] == (100, 10, 95.0)
    tracker.keep_only([idle, moving])  # `busy` was revoked
    assert tracker.stalled() == []


def test_stall_window_covers_the_service_hold_backs() -> None:
    assert stall_after_s(Settings(clock="event", idle_timeout_ms=2000)) == 120.0
    assert (
        stall_after_s(Settings(clock="hybrid", idle_timeout_ms=60_000, allowed_lateness_ms=120_000)) == 480.0
    )


def test_readiness_lists_every_reason() -> None:
    stall = Stall("in", 0, 12, 3, 130.0)
    assert assess(False, "done", [], []).body() == {"ready": True, "reasons": []}
    assert assess(False, "starting", [], []).body() == {"ready": False, "reasons": ["starting"]}
    verdict = assess(True, "recovering", [3, 1], [stall])
    assert verdict.body() == {
        "ready": False,
        "reasons": ["rebalancing", "recovering", "loading", "stalled"],
        "loading_partitions": [1, 3],
        "stalled": [{"topic": "in", "partition": 0, "lag": 12, "committed": 3, "unchanged_s": 130.0}],
    }


# --- one worker on the real broker ---------------------------------------------------


def collegemsg_lines(count: int) -> list[bytes]:
    events = collegemsg_events(COLLEGEMSG)
    return [orjson.dumps(next(events)) for _ in range(count)]


def promtool_check(text: bytes) -> subprocess.CompletedProcess[bytes]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's `prometheus` package"
    return subprocess.run(
        [promtool, "check", "metrics"], input=text, capture_output=True, timeout=30, check=False
    )


def series(worker: Worker, metric: str, *labels: str) -> dict[tuple[str, ...], float]:
    """Samples of one metric on the worker's /metrics: values of `labels` (in that order) -> value."""
    found: dict[tuple[str, ...], float] = {}
    for line in get(worker, "/metrics").raw.decode().splitlines():
        if line.startswith(metric + "{"):
            text, value = line[len(metric) + 1 :].rsplit("} ", 1)
            pairs = dict(item.split("=", 1) for item in text.split(","))
            found[tuple(pairs[name].strip('"') for name in labels)] = float(value)
    return found


def lag_series(worker: Worker) -> dict[tuple[str, ...], float]:
    """`relationships_consumer_lag_records` by (topic, partition)."""
    return series(worker, "relationships_consumer_lag_records", "topic", "partition")


@pytest.mark.broker
def test_one_worker_answers_queries_health_readiness_and_metrics(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    topic_set = topic_factory(2)
    settings = topic_set.settings
    worker = worker_factory(topic_set)
    wait_for("/healthz", lambda: get(worker, "/healthz").json == {"status": "ok"})
    early = get(worker, "/readyz")  # most likely still joining the group: 503 and why
    assert (early.status, early.json["ready"]) in {(200, True), (503, False)}
    assert set(early.json["reasons"]) <= {"starting", "rebalancing", "recovering", "loading"}, early.json
    wait_for("/readyz before any input", lambda: ready(worker))

    # CollegeMsg (2004) first, then the scenario (2020): every input partition stays in event-time order.
    college = collegemsg_lines(1500)
    lines = college + scenario_lines()
    produce_lines(topic_set, lines)
    engine = engine_after(lines, settings)

    # The owner's rows as the worker holds them, once every event is applied.
    by_contact = owner_path("ann", sort="contact")
    body = body_when(worker, by_contact, lambda b: b["as_of"] == AS_OF and b["count"] == 3)
    assert not list(SCHEMA.iter_errors(body))
    assert (body["total"], body["truncated"]) == (3, False)
    assert_same_body(
        {k: v for k, v in body.items() if k not in {"count", "total", "truncated", "partition"}},
        expected_ann(),
    )
    # An owner id that needs escaping in a path.
    zoe = get(worker, owner_path("zoë lee/2"))
    assert (zoe.status, [c["contact_id"] for c in zoe.json["contacts"]]) == (200, ["ann"])
    assert zoe.headers[SERVED_BY_HEADER] == f"http://127.0.0.1:{worker.web_port}"

    # CollegeMsg owners agree with the in-process engine fed the same lines.
    college_owners = sorted({orjson.loads(line)["actor_id"] for line in college[:200]})[:15]
    for owner in college_owners:
        answer = get(worker, owner_path(owner, limit=MAX_LIMIT, sort="contact"))
        assert answer.status == 200, answer.json
        want = sorted((c, r) for (o, c), r in engine.rows.items() if o == owner)
        assert answer.json["total"] == len(want)
        expected = [contact_entry(c, r, engine.rules, engine.watermark) for c, r in want]
        assert_same_body(
            {"contacts": answer.json["contacts"]},
            {"contacts": sorted(expected, key=lambda e: e["contact_id"])},
        )
        assert not list(SCHEMA.iter_errors(answer.json))

    # Filters, limits, errors.
    dormant = get(worker, owner_path("ann", status="dormant")).json
    assert ([c["contact_id"] for c in dormant["contacts"]], dormant["total"]) == (["bob"], 1)
    active = get(worker, owner_path("ann", status="active", sort="contact")).json
    assert [c["contact_id"] for c in active["contacts"]] == ["cat", "zoë lee/2"]
    limited = get(worker, owner_path("ann", limit=1)).json
    assert (limited["count"], limited["total"], limited["truncated"]) == (1, 3, True)
    unknown = get(worker, owner_path("nobody-at-all"))
    assert (unknown.status, unknown.json["error"]) == (404, "unknown_owner")
    assert unknown.headers["Content-Type"].startswith("application/json")
    for path, code in [
        (owner_path("ann", limit=0), "invalid_parameter"),
        (owner_path("ann", limit=1001), "invalid_parameter"),
        (owner_path("ann", status="asleep"), "invalid_parameter"),
        (owner_path("ann", colour="red"), "unknown_parameter"),
        (owner_path("ann") + "?limit=1&limit=2", "repeated_parameter"),
        (owner_path("x" * 129), "invalid_owner"),
    ]:
        answer = get(worker, path)
        assert (answer.status, answer.json.get("error")) == (400, code), (path, answer.json)

    # Health, readiness and consumer lag of every assigned partition.
    assert get(worker, "/healthz").json == {"status": "ok"}
    wait_for("/readyz after the input", lambda: ready(worker))
    owner_topic = owner_updates_topic_name(settings)
    wanted = {(topic, str(p)) for topic in (*settings.input_topics(), owner_topic) for p in range(2)}
    lags = wait_for(
        "lag of every assigned partition, inputs at 0",
        lambda: (
            (s := lag_series(worker)).keys() == wanted
            and all(s[(t, p)] == 0 for t, p in wanted if t != owner_topic)
            and s
        ),
    )
    assert all(value >= 0 for value in lags.values())

    # The scrape passes promtool's checks, with no remark at all.
    scrape = get(worker, "/metrics")
    assert scrape.headers["Content-Type"].startswith("text/plain")
    checked = promtool_check(scrape.raw)
    assert checked.returncode == 0, checked.stdout + checked.stderr
    assert (checked.stdout.strip(), checked.stderr.strip()) == (b"", b""), "promtool has remarks"


# --- two workers: a query goes to the worker that owns the partition ------------------

TOKEN = "a-token-for-the-tests-only"


@pytest.mark.broker
def test_queries_are_routed_to_the_worker_that_owns_the_partition(
    topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    """With STREAMS_WEB_TOKEN set, as a deployment reachable from outside its host must run."""
    topic_set = topic_factory(4, web_token=TOKEN)
    first, second = worker_factory(topic_set, "w1"), worker_factory(topic_set, "w2")
    urls = {f"http://127.0.0.1:{w.web_port}" for w in (first, second)}
    wait_for("both workers ready", lambda: ready(first) and ready(second), timeout_s=120)
    # Probes and scrapes stay open; state queries need the token, on either worker.
    for worker in (first, second):
        for open_path in ("/healthz", "/readyz", "/metrics"):
            assert get(worker, open_path, token=None).status == 200, open_path
        for token in (None, TOKEN[:-1], TOKEN + "x", TOKEN.upper()):
            refused = get(worker, owner_path("user-1"), token=token)
            assert (refused.status, refused.json["error"]) == (401, "unauthorized"), token
            assert refused.headers["WWW-Authenticate"] == AUTH_REALM
    owners = [f"user-{n}" for n in range(16)]
    lines = [
        orjson.dumps(_event(f"r{n}", "reply", owner, "hub", T0 + n * HOUR_MS))
        for n, owner in enumerate(owners)
    ]
    produce_lines(topic_set, lines)
    # Every reply applied first: a row's strength is reported as of its partition's
    # watermark, which moves while events still flow (two reads could straddle it).
    body_when(first, owner_path("hub", limit=5), lambda b: b["total"] == len(owners))
    served_by: dict[str, str] = {}
    for owner in owners:
        path = owner_path(owner)
        body_when(first, path, lambda b: b["count"] == 1)
        a, b = wait_for(f"{owner}: the same answer from both", partial(same_answer, first, second, path))
        assert a.status == b.status == 200, (a.json, b.json)
        assert a.json == b.json
        assert a.headers[SERVED_BY_HEADER] == b.headers[SERVED_BY_HEADER] in urls
        served_by[owner] = a.headers[SERVED_BY_HEADER]
    assert set(served_by.values()) == urls, "every worker owns some of the 16 owners' partitions"
    # The hub's contacts live in one partition; either worker answers, and unknown owners are 404 on both.
    hub = [get(w, owner_path("hub", limit=5)).json for w in (first, second)]
    assert hub[0] == hub[1]
    assert (hub[0]["count"], hub[0]["total"], hub[0]["truncated"]) == (5, 16, True)
    for worker in (first, second):
        missing = get(worker, owner_path("nobody-at-all"))
        assert (missing.status, missing.json["error"]) == (404, "unknown_owner")

    # Per-partition series follow the assignment: each worker reports only its own partitions.
    settings = topic_set.settings
    every_tp = {
        (t, str(p)) for t in (*settings.input_topics(), owner_updates_topic_name(settings)) for p in range(4)
    }

    def split_between_workers() -> bool:
        lags = [lag_series(w).keys() for w in (first, second)]
        marks = [
            series(w, "relationships_watermark_lag_seconds", "partition").keys() for w in (first, second)
        ]
        return (
            not lags[0] & lags[1]
            and lags[0] | lags[1] == every_tp
            and not marks[0] & marks[1]
            and marks[0] | marks[1] == {(str(p),) for p in range(4)}
        )

    wait_for("lag series split between the workers", split_between_workers, timeout_s=30)
