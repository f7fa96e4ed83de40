"""`STREAMS_LOG_FORMAT=json`: one JSON object per line, Faust's own lines too, dead letters with their position."""

from __future__ import annotations

import io
import json
import logging
import logging.config
from collections.abc import Callable
from typing import Any

import pytest

from streams.cli.produce import route
from streams.service.logs import JSON_FIELDS, logging_config
from streams.settings import Settings
from tests.service.conftest import TopicSet, Worker, produce_lines
from tests.service.test_faults import collegemsg_lines, serving, wait_until

BAD_LINES = [
    b"not json {",
    b"[1, 2]",
    b'{"id": "x", "type": "poke", "actor_id": "a", "target_id": "b", "ts": 1082040961000}',
]


def test_text_format_keeps_fausts_own_configuration() -> None:
    assert logging_config(Settings()) is None
    assert Settings().log_format == "text"


def test_json_lines_carry_the_level_logger_static_and_extra_fields() -> None:
    settings = Settings(log_format="json", app_id="demo", processing_guarantee="exactly_once")
    config = logging_config(settings)
    assert config is not None
    stream = io.StringIO()
    config["handlers"]["default"]["stream"] = stream
    logger = logging.getLogger("tests.json_lines")
    handlers, level = logging.root.handlers[:], logging.root.level
    try:
        logging.config.dictConfig(config)
        logger.info(
            "dead letter %s", "t[1]@7", extra={"topic": "t", "partition": 1, "offset": 7, "reason": "x"}
        )
    finally:
        logging.root.handlers[:] = handlers
        logging.root.setLevel(level)
    line = json.loads(stream.getvalue())
    assert set(JSON_FIELDS) <= line.keys()
    assert line["message"] == "dead letter t[1]@7"
    assert (line["level"], line["logger"]) == ("INFO", "tests.json_lines")
    assert (line["app_id"], line["guarantee"]) == ("demo", "exactly_once")
    assert (line["topic"], line["partition"], line["offset"], line["reason"]) == ("t", 1, 7, "x")
    assert line["time"].endswith("+00:00")


def json_objects(text: str) -> list[dict[str, Any]]:
    """Every line of a worker's output as a JSON object (fails on the first line that is not one)."""
    objects = []
    for number, line in enumerate(text.splitlines(), 1):
        try:
            parsed = json.loads(line)
        except json.JSONDecodeError:
            pytest.fail(f"line {number} is not JSON: {line[:300]!r}")
        assert isinstance(parsed, dict), f"line {number} is not a JSON object: {line[:300]!r}"
        objects.append(parsed)
    return objects


@pytest.mark.broker
@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_a_json_worker_writes_only_json_lines_with_dead_letter_positions(
    guarantee: str, topic_factory: Callable[..., TopicSet], worker_factory: Callable[..., Worker]
) -> None:
    topic_set = topic_factory(1, log_format="json", processing_guarantee=guarantee)
    worker = worker_factory(topic_set)
    wait_until(lambda: serving(worker), 90, "the worker's web port")
    good = collegemsg_lines(200)
    produce_lines(topic_set, good + BAD_LINES)
    mentions = topic_set.env["STREAMS_TOPIC_MENTIONS"]  # where `produce` routes lines without a known type
    first_bad = sum(route(line, topic_set.settings)[0] == mentions for line in good)
    want = {reason: first_bad + i for i, reason in enumerate(["not_json", "not_object", "unknown_type"])}

    def dead_letter_lines() -> list[dict[str, Any]]:
        return [line for line in json_objects(worker.log_text()) if line["message"].startswith("dead letter")]

    def ready_lines() -> list[dict[str, Any]]:
        return [
            line
            for line in json_objects(worker.log_text())
            if line["message"].startswith("owner partition 0 ready")
        ]

    wait_until(lambda: len(dead_letter_lines()) >= len(BAD_LINES), 120, "the dead-letter log lines")
    # The ingest stage dead-letters on its own; the owner partition may load after it.
    wait_until(lambda: bool(ready_lines()), 120, "the owner partition's ready line")
    worker.stop()
    assert worker.process is not None
    assert worker.process.returncode == 0

    lines = json_objects(worker.log_text())
    assert all(set(JSON_FIELDS) <= line.keys() for line in lines)
    assert all(line["guarantee"] == guarantee and line["app_id"] == topic_set.app_id for line in lines)
    loggers = {line["logger"] for line in lines}
    assert "faust.worker" in loggers, sorted(loggers)  # Faust's own lines, through the same formatter
    assert any(name.startswith("aiokafka") for name in loggers), sorted(loggers)
    assert any(line["message"].startswith("[^Worker]: Ready") for line in lines)
    letters = dead_letter_lines()
    positions = {line["reason"]: (line["topic"], line["partition"], line["offset"]) for line in letters}
    assert positions == {reason: (mentions, 0, offset) for reason, offset in want.items()}
    for line in letters:
        assert line["message"] == f"dead letter {mentions}[0]@{line['offset']} reason={line['reason']}"
    ready = [line for line in lines if line["message"].startswith("owner partition 0 ready")]
    assert ready
    assert all(line["owner_partition"] == 0 for line in ready)
