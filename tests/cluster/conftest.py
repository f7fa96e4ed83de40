"""The three-broker cluster of the `cluster` tests, and the broker tests' helpers pointed at it."""

from __future__ import annotations

import subprocess
from collections.abc import Iterator

import pytest

import tests.service.conftest as service_conftest
import tests.service.test_faults as faults
from tests.service.conftest import REPO, topic_factory, worker_factory  # noqa: F401  (fixtures used here)

CLUSTER_SH = REPO / "deploy" / "kafka" / "cluster.sh"


def cluster_sh(*args: str, timeout_s: float = 420.0) -> str:
    """Run `deploy/kafka/cluster.sh ARGS` (its own directory and ports, never the shared broker); its stdout."""
    done = subprocess.run(
        ["bash", str(CLUSTER_SH), *args], capture_output=True, text=True, timeout=timeout_s, check=False
    )
    assert done.returncode == 0, f"cluster.sh {' '.join(args)} failed:\n{done.stdout}\n{done.stderr}"
    return done.stdout


@pytest.fixture(scope="session")
def kafka_cluster() -> Iterator[str]:
    """The cluster's broker URL (`kafka://n1;n2;n3`). Started if no node runs, and then stopped at the end;
    a cluster found running (`make kafka-cluster`) is left running."""
    status = subprocess.run(["bash", str(CLUSTER_SH), "status"], capture_output=True, text=True, check=False)
    ours = " up on " not in status.stdout
    cluster_sh("start")
    yield "kafka://" + cluster_sh("bootstrap").strip().replace(",", ";")
    if ours:
        cluster_sh("stop")


@pytest.fixture(autouse=True)
def on_the_cluster(kafka_cluster: str, monkeypatch: pytest.MonkeyPatch) -> str:
    """Every node up (a test may have killed one), and the broker tests' helpers talking to the cluster."""
    cluster_sh("start")  # starts only the nodes that are down
    monkeypatch.setattr(service_conftest, "BROKER", kafka_cluster)
    monkeypatch.setattr(faults, "BROKER", kafka_cluster)
    return kafka_cluster
