"""No synchronous Kafka client call runs on the worker's event loop: kafka-python runs in a thread, or before the loop."""

from __future__ import annotations

import ast

from tests.service.conftest import REPO

SERVICE = REPO / "streams" / "service"
BLOCKING_READERS = {"read_range", "committed_ends"}
"""The service's kafka-python readers: they block until the broker answered."""


def modules() -> dict[str, ast.Module]:
    return {path.name: ast.parse(path.read_text(), str(path)) for path in sorted(SERVICE.glob("*.py"))}


def imported_from(tree: ast.Module, module: str) -> set[str]:
    """Names imported from `module` or its submodules (`import module...` counts as the module itself)."""
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.module and (node.module + ".").startswith(module + "."):
            found |= {alias.name for alias in node.names}
        elif isinstance(node, ast.Import):
            found |= {alias.name for alias in node.names if (alias.name + ".").startswith(module + ".")}
    return found


def test_kafka_python_is_imported_only_by_the_blocking_readers_and_for_the_partitioner() -> None:
    importers = {name: imported_from(tree, "kafka") for name, tree in modules().items()}
    assert {name: names for name, names in importers.items() if names} == {
        "changelog_ends.py": {"KafkaConsumer", "TopicPartition"},
        "partition_reader.py": {"KafkaConsumer", "TopicPartition"},
        # `FailureLog`, only ever called through asyncio.to_thread (`PoisonRecords.refresh`, `.agent_failed`)
        "poison_records.py": {
            "KafkaAdminClient",
            "KafkaConsumer",
            "KafkaProducer",
            "NewTopic",
            "TopicAlreadyExistsError",
            "TopicPartition",
        },
        "partitioning.py": {"murmur2"},  # a pure function
    }


def test_the_blocking_readers_are_called_only_in_a_thread() -> None:
    for name, tree in modules().items():
        in_a_thread: set[int] = set()
        for node in ast.walk(tree):
            if (
                isinstance(node, ast.Call)
                and isinstance(node.func, ast.Attribute)
                and node.func.attr == "to_thread"
                and node.args
            ):
                in_a_thread.add(id(node.args[0]))
        for node in ast.walk(tree):
            if isinstance(node, ast.Name) and node.id in BLOCKING_READERS:
                assert id(node) in in_a_thread, f"{name}:{node.lineno}: {node.id} outside asyncio.to_thread"


def test_the_service_uses_kafka_admin_only_for_options_and_before_the_loop() -> None:
    used = {name: imported_from(tree, "streams.kafka_admin") for name, tree in modules().items()}
    assert set().union(*used.values()) <= {"bootstrap_servers", "client_options", "follow_the_broker"}
    assert [name for name, names in used.items() if "follow_the_broker" in names] == ["worker.py"]
    run_worker = next(
        node
        for node in ast.walk(modules()["worker.py"])
        if isinstance(node, ast.FunctionDef) and node.name == "run_worker"
    )
    called_at = {
        node.func.id if isinstance(node.func, ast.Name) else getattr(node.func, "attr", ""): node.lineno
        for node in ast.walk(run_worker)
        if isinstance(node, ast.Call)
    }
    assert called_at["follow_the_broker"] < called_at["execute_from_commandline"]  # the loop runs from there
