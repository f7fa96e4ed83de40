"""`streams topics create`: creates what is missing, reports each topic's partitions, refuses contradicting topics."""

from __future__ import annotations

import os
import subprocess
import sys
import uuid

import pytest
from kafka import KafkaAdminClient

from streams.cli.topics import EXIT_CONFIGURATION
from streams.kafka_admin import bootstrap_servers
from streams.settings import deployment_env
from tests.service.conftest import BROKER, REPO

pytestmark = pytest.mark.broker


def topics_create(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    """Run the command as an operator would, with the deployment's `STREAMS_*` variables."""
    return subprocess.run(
        [sys.executable, "-m", "streams", "topics", "create", *args],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )


def test_topics_keep_their_partitions_and_a_contradiction_is_refused_with_status_2() -> None:
    app_id = f"t{uuid.uuid4().hex[:10]}"
    env = deployment_env(app_id, 6, broker=BROKER)
    owner, changelog = f"{app_id}-owner-updates", f"{app_id}-rows-changelog"

    first = topics_create(env, "--partitions", "4")
    assert first.returncode == 0, first.stderr
    assert f"topic {owner}: created, 4 partitions" in first.stderr
    assert f"topic {app_id}.likes: created, 4 partitions" in first.stderr

    again = topics_create(env)  # STREAMS_PARTITIONS=6: nothing changes
    assert again.returncode == 0, again.stderr
    assert f"topic {owner}: exists, 4 partitions" in again.stderr
    assert f"topic {changelog}: exists, 4 partitions" in again.stderr

    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        admin.create_partitions({changelog: 6})
    finally:
        admin.close()
    refused = topics_create(env)
    assert refused.returncode == EXIT_CONFIGURATION == 2
    assert f"topic {owner} has 4 partitions but topic {changelog} has 6" in refused.stderr
    assert "Traceback" not in refused.stderr
