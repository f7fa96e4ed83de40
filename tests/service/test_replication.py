"""Replication settings reach every topic the worker declares and its Faust app (no broker needed)."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import ValidationError

from streams.service.app import create_app
from streams.service.topology import declare_topology
from streams.settings import Settings

PRODUCTION = Settings(replication_factor=3, min_insync_replicas=2, standby_replicas=1)


def test_min_insync_replicas_beyond_the_replication_factor_is_refused() -> None:
    with pytest.raises(ValidationError, match=r"STREAMS_MIN_INSYNC_REPLICAS \(3\) must be at most"):
        Settings(replication_factor=2, min_insync_replicas=3)
    with pytest.raises(ValidationError):
        Settings(replication_factor=0)
    with pytest.raises(ValidationError):
        Settings(standby_replicas=-1)


def test_the_defaults_suit_a_single_local_broker() -> None:
    settings = Settings()
    assert (settings.replication_factor, settings.min_insync_replicas, settings.standby_replicas) == (1, 1, 0)


def test_the_app_replicates_its_own_topics_keeps_standbys_and_waits_for_all_in_sync_replicas() -> None:
    conf = create_app(PRODUCTION).conf
    assert conf.topic_replication_factor == 3
    assert conf.table_standby_replicas == 1
    assert conf.producer_acks == -1
    assert create_app(Settings()).conf.table_standby_replicas == 0


def test_the_owner_stream_and_the_rows_changelog_are_declared_with_the_replication_settings() -> None:
    app = create_app(PRODUCTION)
    topology = declare_topology(app, PRODUCTION)
    assert topology.owner_updates.replicas == 3
    assert topology.owner_updates.config == {"min.insync.replicas": "2"}
    changelog = topology.rows.changelog_topic
    assert changelog.config == {"min.insync.replicas": "2"}
    assert (changelog.replicas or app.conf.topic_replication_factor) == 3


@pytest.mark.parametrize("guarantee", ["at_least_once", "exactly_once"])
def test_the_workers_producers_are_idempotent_under_both_guarantees(guarantee: str) -> None:
    async def transaction_manager_of_the_producer() -> object:
        app = create_app(Settings(processing_guarantee=guarantee))  # type: ignore[arg-type]
        producer = app.producer._new_producer()  # the aiokafka producer Faust starts (not started here)
        try:
            # aiokafka keeps a transaction manager (producer id, sequence numbers) only when idempotent,
            # and refuses enable_idempotence without acks=all.
            return producer._txn_manager
        finally:
            await producer.stop()

    assert asyncio.run(transaction_manager_of_the_producer()) is not None
