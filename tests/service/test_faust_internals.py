"""The seam to Faust's internals: the start-up check passes on the installed classes, refuses changed ones, and is the only user."""

from __future__ import annotations

import ast
import asyncio
import inspect
import logging
import os
import subprocess
import sys
import tomllib
from collections import defaultdict
from pathlib import Path
from types import SimpleNamespace
from typing import Any
from weakref import WeakSet

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaConnectionError, KafkaError
from aiokafka.producer.sender import Sender
from aiokafka.structs import OffsetAndMetadata, TopicPartition
from aiokafka.util import commit_structure_validate
from faust.transport.consumer import Consumer
from faust.transport.drivers import aiokafka as faust_aiokafka
from faust.types import TP, Message
from intervaltree import IntervalTree

from streams.service import faust_internals
from streams.service.app import create_app
from streams.service.faust_internals import (
    FRAMEWORK,
    INTERNALS,
    FrameworkMismatch,
    check_faust_internals,
    differences,
    pinned_versions,
    version_differences,
)
from streams.settings import Settings
from tests.service.conftest import REPO

STREAMS = REPO / "streams"
SEAM = STREAMS / "service" / "faust_internals.py"
PATCH_MARKERS = {"_ends_every_transaction", "_commits_only_open", "_rewinds", "_idempotent", "_hands_off"}
"""Attributes the seam sets on its own replacements so that a second `create_app` does not patch twice."""
FOREIGN_PRIVATE_NAMES_ALLOWED = {
    "_SubParsersAction": "argparse's sub-parser type, in the CLI's annotations",
    "_exit": "os._exit, the forced exit after an agent raised",
    "_asdict": "NamedTuple's public method",
}
"""Underscore names our code may use without defining them: the standard library's, none of Faust's."""
FRAMEWORK_MODULES = {"faust", "aiokafka", "mode"}
WRITTEN_FOR = "faust-streaming==0.15.3, aiokafka==0.14.0, mode-streaming==0.7.1"


def test_the_installed_classes_pass_the_check_that_runs_at_start() -> None:
    assert differences() == []
    assert version_differences() == []
    check_faust_internals()


def test_the_check_still_sees_fausts_originals_once_the_patches_are_installed(tmp_path: Path) -> None:
    create_app(Settings(processing_guarantee="exactly_once", data_dir=tmp_path))
    assert getattr(Consumer._commit_tps, "_ends_every_transaction", False), "the patch is installed"
    assert getattr(faust_aiokafka.AIOKafkaConsumerThread.seek_to_committed, "_rewinds", False)
    assert differences() == []


def test_the_pins_the_check_compares_with_are_pyproject_tomls() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text())["project"]
    pins = dict(requirement.split("==") for requirement in project["dependencies"])
    assert pinned_versions() == {name: pins[name] for name in FRAMEWORK}


def _async_highwaters(self: Any, partitions: Any, timeout: float) -> Any:
    raise AssertionError("never called")


def _commit_tps_override(self: Any, tps: Any, start_new_transaction: bool) -> bool:
    raise AssertionError("never called")


def _init_without_txn_manager(self: Any, **configs: Any) -> None:
    self.client = None


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        (
            lambda monkeypatch: monkeypatch.delattr(faust_aiokafka.Producer, "_trn_locks"),
            "faust.transport.drivers.aiokafka.Producer._trn_locks: missing",
        ),
        (
            lambda monkeypatch: monkeypatch.setattr(
                faust_aiokafka.AIOKafkaConsumerThread, "_highwaters", _async_highwaters
            ),
            "faust.transport.drivers.aiokafka.AIOKafkaConsumerThread._highwaters: "
            "signature (self, partitions, timeout), written for (self, partitions)",
        ),
        (
            lambda monkeypatch: monkeypatch.setattr(
                faust_aiokafka.Consumer, "_commit_tps", _commit_tps_override, raising=False
            ),
            "faust.transport.drivers.aiokafka.Consumer._commit_tps: "
            "overridden: the patch on faust.transport.consumer.Consumer would not apply",
        ),
        (
            lambda monkeypatch: monkeypatch.setattr(AIOKafkaProducer, "__init__", _init_without_txn_manager),
            "aiokafka.producer.producer.AIOKafkaProducer._txn_manager: no longer set in __init__",
        ),
    ],
    ids=["attribute missing", "signature differs", "patched method overridden", "instance attribute gone"],
)
def test_a_changed_internal_refuses_the_start_naming_it_and_the_versions_written_for(
    monkeypatch: pytest.MonkeyPatch, change: Any, expected: str
) -> None:
    change(monkeypatch)
    with pytest.raises(FrameworkMismatch) as refused:
        check_faust_internals()
    message = str(refused.value)
    assert f"Differs: {expected}." in message
    assert f"Faust internals differ from those of {WRITTEN_FOR} (pyproject.toml)" in message
    assert "installed: faust-streaming 0.15.3, aiokafka 0.14.0, mode-streaming 0.7.1" in message


def faust_consumer(committed: dict[TP, int]) -> Any:
    """Faust's aiokafka consumer with only the bookkeeping of acks, gaps and commits set up (no broker)."""
    consumer: Any = object.__new__(faust_aiokafka.Consumer)
    consumer._gap = defaultdict(IntervalTree)
    consumer._acked = defaultdict(list)
    consumer._acked_index = defaultdict(set)
    consumer._committed_offset = defaultdict(lambda: None, committed)
    consumer._unacked_messages = WeakSet()
    consumer._n_acked = 0
    consumer._waiting_for_ack = None
    consumer.app = SimpleNamespace(topics=SimpleNamespace(acks_enabled_for=lambda topic: True))
    return consumer


def test_offsets_acked_as_ranges_are_committed_as_faust_commits_its_own_acks() -> None:
    tp = TP("in", 2)
    consumer = faust_consumer({tp: 5})
    faust_internals.ack_offsets(consumer, "in", 2, range(3, 9))  # 3 and 4 are below the committed offset
    faust_internals.ack_offsets(consumer, "in", 2, range(7, 10))  # 7 and 8 again: acked once
    assert consumer._acked[tp] == [5, 6, 7, 8, 9]
    assert consumer._n_acked == 5
    assert consumer._new_offset(tp) == 10


def test_an_offset_acked_for_faust_can_be_committed_in_a_transaction() -> None:
    consumer = faust_consumer({})
    faust_internals.ack_offsets(consumer, "in", 2, range(5, 6))
    [key] = consumer._acked
    # What Faust's transactional commit passes the acked partitions' keys to (it crashed on Faust's TP):
    assert commit_structure_validate({key: 6}) == {TopicPartition("in", 2): OffsetAndMetadata(6, "")}


def test_an_ack_wakes_whoever_waits_for_one() -> None:
    async def main() -> bool:
        consumer = faust_consumer({})
        consumer._waiting_for_ack = asyncio.get_running_loop().create_future()
        faust_internals.ack_offsets(consumer, "in", 0, range(1))
        return bool(consumer._waiting_for_ack.done())

    assert asyncio.run(main())


def test_offsets_faust_saw_skipped_and_acked_here_are_committed_in_one_go() -> None:
    tp = TP("in", 2)
    consumer = faust_consumer({tp: 633})
    # Faust delivered 948 past its read offset 633: it records 634..948 as a gap, counted acked at commit.
    asyncio.run(consumer._add_gap(tp, 634, 948))
    faust_internals.ack_offsets(consumer, "in", 2, range(634, 948))  # the ingest read them from the broker
    for offset in range(948, 960):
        consumer.ack(Message("in", 2, offset, 0.0, 0, None, None, None, None, tp=TopicPartition("in", 2)))
    commits = []
    for _ in range(2):
        commits.append(consumer._new_offset(tp))
        consumer._committed_offset[tp] = commits[-1]
    # 948 is Faust's own repeat (its gap takes in the record it delivered); with the gap left in place the
    # commits were 635, 636: one offset per commit.
    assert commits == [949, 960]


def test_another_version_with_the_same_internals_only_warns(
    monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    installed = faust_internals._installed
    monkeypatch.setattr(
        faust_internals,
        "_installed",
        lambda name: "0.16.0" if name == "faust-streaming" else installed(name),
    )
    with caplog.at_level(logging.WARNING, logger=faust_internals.__name__):
        check_faust_internals()
    assert [record.getMessage() for record in caplog.records] == [
        "faust internals checked against a version not pinned: "
        "faust-streaming 0.16.0 installed, pyproject.toml pins 0.15.3"
    ]


def test_the_worker_command_exits_2_before_asking_the_broker_when_an_internal_is_gone() -> None:
    script = (
        "import sys\n"
        "from faust.transport.drivers.aiokafka import Producer\n"
        "import streams.service.worker as worker\n"
        "del Producer._trn_locks\n"
        "def reached(*args, **kwargs): raise SystemExit('the broker was asked')\n"
        "worker.follow_the_broker = reached\n"
        "from streams.__main__ import main\n"
        "sys.exit(main(['worker']))\n"
    )
    env = {**os.environ, "STREAMS_BROKER": "kafka://127.0.0.1:1", "STREAMS_LOG_FORMAT": "text"}
    done = subprocess.run(
        [sys.executable, "-c", script],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
        env=env,
    )
    assert done.returncode == 2, done.stderr
    assert (
        "worker: refusing to start, nothing consumed: Faust internals differ from those of "
        f"{WRITTEN_FOR} (pyproject.toml)" in done.stderr
    )
    assert "Differs: faust.transport.drivers.aiokafka.Producer._trn_locks: missing." in done.stderr
    assert "Traceback" not in done.stderr


def test_the_check_runs_on_its_own_as_a_module() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "streams.service.faust_internals"],
        check=False,
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert (done.returncode, done.stdout) == (0, f"{len(INTERNALS)} Faust internals as written for: ok\n")


# The static rule: outside the seam, (1) none of the seam's private names appears, as an attribute or as a
# string; (2) every `x._name` (and getattr/setattr/hasattr string) names something our own code
# defines (a function, class, variable, argument or `self._name` assignment in streams/), or one of
# `FOREIGN_PRIVATE_NAMES_ALLOWED`. A private name of Faust, aiokafka or mode is defined by none of them.


def _modules() -> dict[Path, ast.Module]:
    return {path: ast.parse(path.read_text(), str(path)) for path in sorted(STREAMS.rglob("*.py"))}


def _defined_by_us(trees: dict[Path, ast.Module]) -> set[str]:
    defined: set[str] = set()
    for tree in trees.values():
        for node in ast.walk(tree):
            if isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef | ast.ClassDef):
                defined.add(node.name)
            elif isinstance(node, ast.Name) and isinstance(node.ctx, ast.Store):
                defined.add(node.id)
            elif isinstance(node, ast.arg):
                defined.add(node.arg)
            elif (
                isinstance(node, ast.Attribute)
                and isinstance(node.ctx, ast.Store)
                and isinstance(node.value, ast.Name)
                and node.value.id in {"self", "cls"}
            ):
                defined.add(node.attr)
    return defined


def _private_names_used(tree: ast.Module) -> list[tuple[int, str]]:
    """`(line, name)` of each `x._name`, `getattr(x, "_name")`-like string and `_name` imported from the framework.

    Dunders excepted.
    """
    found = []
    for node in ast.walk(tree):
        name = None
        if isinstance(node, ast.ImportFrom) and (node.module or "").split(".")[0] in FRAMEWORK_MODULES:
            imported = [*(node.module or "").split("."), *(alias.name for alias in node.names)]
            found += [(node.lineno, part) for part in imported if part.startswith("_")]
        elif isinstance(node, ast.Attribute):
            name = node.attr
        elif (
            isinstance(node, ast.Call)
            and isinstance(node.func, ast.Name)
            and node.func.id in {"getattr", "setattr", "hasattr", "delattr"}
            and len(node.args) > 1
            and isinstance(node.args[1], ast.Constant)
            and isinstance(node.args[1].value, str)
        ):
            name = node.args[1].value
        if name is not None and name.startswith("_") and not name.startswith("__"):
            found.append((node.lineno, name))
    return found


def test_only_the_seam_touches_fausts_private_names() -> None:
    trees = _modules()
    seam_names = {internal.name for internal in INTERNALS if internal.name.startswith("_")} | PATCH_MARKERS
    seam_names -= {"__init__"}
    assert all(name in SEAM.read_text() for name in seam_names), "the seam's list names what it uses"
    defined = _defined_by_us({path: tree for path, tree in trees.items() if path != SEAM})
    outside = []
    for path, tree in trees.items():
        if path == SEAM:
            continue
        strings = [
            (node.lineno, node.value)
            for node in ast.walk(tree)
            if isinstance(node, ast.Constant) and node.value in seam_names
        ]
        for line, name in _private_names_used(tree) + strings:
            if name in seam_names or (name not in defined and name not in FOREIGN_PRIVATE_NAMES_ALLOWED):
                outside.append(f"{path.relative_to(REPO)}:{line}: {name}")
    assert outside == [], "private framework internals belong in streams/service/faust_internals.py"


def test_the_static_rule_catches_a_private_read_and_a_monkeypatch() -> None:
    trees = _modules()
    defined = _defined_by_us({path: tree for path, tree in trees.items() if path != SEAM})
    offending = ast.parse(
        "from faust.transport.consumer import _ensure_TP\n"
        "def f(app):\n"
        "    Consumer._commit_tps = f\n"
        "    return getattr(app.consumer, '_committed_offset', {}), app.producer._trn_locks\n"
    )
    used = sorted(_private_names_used(offending))
    assert used == [(1, "_ensure_TP"), (3, "_commit_tps"), (4, "_committed_offset"), (4, "_trn_locks")]
    assert all(name not in defined for _, name in used)


class FlakyCoordinatorLookups:
    """What `Sender._find_coordinator` asks of its client: the first lookups lose their connection."""

    def __init__(self, lost: int) -> None:
        self.lost = lost
        self.lookups = 0
        self.metadata_updates = 0

    async def coordinator_lookup(self, coordinator_type: Any, coordinator_key: Any) -> int:
        self.lookups += 1
        if self.lookups <= self.lost:
            raise KafkaConnectionError("Connection at 127.0.0.1:29094 closed")
        return 3

    async def ready(self, node_id: int, group: Any = None) -> bool:
        return True

    async def force_metadata_update(self) -> bool:
        self.metadata_updates += 1
        return True


def test_a_coordinator_lookup_that_loses_its_connection_is_retried_not_fatal() -> None:
    """aiokafka#1151: a broker SIGKILLed under a FindCoordinator request stopped the worker (the cluster test)."""

    def sender(client: FlakyCoordinatorLookups) -> Any:
        return SimpleNamespace(client=client, _txn_manager=object(), _coordinators={}, _retry_backoff=0)

    original = inspect.unwrap(Sender._find_coordinator)
    with pytest.raises(KafkaError, match=r"Connection at 127\.0\.0\.1:29094 closed"):
        asyncio.run(original(sender(FlakyCoordinatorLookups(lost=1)), "group", "g"))
    faust_internals.coordinator_lookups_survive_a_lost_broker()
    client = FlakyCoordinatorLookups(lost=2)
    assert asyncio.run(Sender._find_coordinator(sender(client), "group", "g")) == 3
    assert (client.lookups, client.metadata_updates) == (3, 2)
    faust_internals.coordinator_lookups_survive_a_lost_broker()  # applied once, however often called
    assert inspect.unwrap(Sender._find_coordinator) is original


class FakeTransaction:
    """An aiokafka transactional producer's calls, recorded; `abort` ends its transaction as a revocation does."""

    def __init__(self, calls: list[str], name: str) -> None:
        self.calls = calls
        self.name = name
        self.open = True
        self._txn_manager = SimpleNamespace(is_in_transaction=lambda: self.open)

    async def send_offsets_to_transaction(self, offsets: Any, group_id: str) -> None:
        assert self.open, "IllegalOperation: Not in the middle of a transaction"
        self.calls.append(f"{self.name}: offsets {offsets} of {group_id}")

    async def commit_transaction(self) -> None:
        assert self.open, "IllegalOperation: Not in the middle of a transaction"
        self.calls.append(f"{self.name}: commit")

    async def begin_transaction(self) -> None:
        self.open = True
        self.calls.append(f"{self.name}: begin")

    async def abort(self, lock: asyncio.Lock) -> None:
        async with lock:
            await asyncio.sleep(0)
            self.open = False
            self.calls.append(f"{self.name}: abort")


def test_a_commit_skips_transactions_a_revocation_aborted_and_reports_only_those_it_committed() -> None:
    """The join/leave test's exit status 1: the periodic commit met a transaction aborted until the next assignment."""
    faust_internals.commit_only_open_transactions()
    calls: list[str] = []
    kept, aborted, racing = (FakeTransaction(calls, name) for name in ("kept", "aborted", "racing"))
    aborted.open = False
    producer = SimpleNamespace(
        _trn_locks=defaultdict(asyncio.Lock),
        _transaction_producers={"kept": kept, "aborted": aborted, "racing": racing},
    )
    reported: list[str] = []
    faust_internals.on_transaction_committed(producer, reported.append)
    offsets = {"kept": {"k": 1}, "aborted": {"a": 2}, "racing": {"r": 3}}

    async def main() -> None:
        # The revocation's abort holds the lock of `racing` when the commit comes to it.
        abort = asyncio.ensure_future(racing.abort(producer._trn_locks["racing"]))
        await asyncio.sleep(0)
        await faust_aiokafka.Producer.commit_transactions(producer, offsets, "g")
        await abort

    asyncio.run(main())
    assert calls == ["kept: offsets {'k': 1} of g", "kept: commit", "kept: begin", "racing: abort"]
    assert reported == ["kept"]
    faust_internals.commit_only_open_transactions()  # applied once, however often called
    assert inspect.unwrap(faust_aiokafka.Producer.commit_transactions).__name__ == "commit_transactions"
