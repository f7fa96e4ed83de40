"""`streams erase USER_ID [--ts MS]`: a valid request lands on the erasures topic; an invalid one exits 2."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from collections.abc import Callable

import orjson
import pytest

from tests.service.conftest import REPO, TopicSet
from tests.service.test_faults import read_to_end


def erase(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        [sys.executable, "-m", "streams", "erase", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        timeout=60,
        check=False,
    )


@pytest.mark.parametrize(
    ("args", "reason"),
    [
        (["", "--ts", "1700000000000"], "bad_length user_id"),
        (["x" * 129, "--ts", "1700000000000"], "bad_length user_id"),
        (["bob", "--ts", "5"], "ts_out_of_range ts"),
    ],
)
def test_an_invalid_request_exits_2_naming_the_reason_and_sends_nothing(args: list[str], reason: str) -> None:
    done = erase({"STREAMS_BROKER": "kafka://127.0.0.1:1"}, *args)  # no broker: refused before connecting
    assert done.returncode == 2, done.stderr
    assert done.stderr.decode().strip() == f"not an erasure request: {reason}"


@pytest.mark.broker
def test_a_request_lands_on_the_erasures_topic_keyed_by_user(topic_factory: Callable[..., TopicSet]) -> None:
    topic_set = topic_factory(1)
    before = int(time.time() * 1000)
    given = erase(topic_set.env, "bob", "--ts", "1700000000000")
    now = erase(topic_set.env, "ann")
    assert given.returncode == now.returncode == 0, (given.stderr, now.stderr)
    topic = topic_set.env["STREAMS_TOPIC_ERASURES"]
    printed = [orjson.loads(done.stdout) for done in (given, now)]
    assert printed[0] == {"user_id": "bob", "ts": 1700000000000, "topic": topic, "partition": 0, "offset": 0}
    assert printed[1]["offset"] == 1
    assert before <= printed[1]["ts"] <= int(time.time() * 1000), "--ts defaults to now"
    records = read_to_end(topic)
    assert [(r.key, orjson.loads(r.value)) for r in records] == [
        (b"bob", {"user_id": "bob", "ts": 1700000000000}),
        (b"ann", {"user_id": "ann", "ts": printed[1]["ts"]}),
    ]
