"""Against the broker: a transactional changelog's committed records end before its commit and abort markers."""

from __future__ import annotations

import uuid

import pytest
from kafka import KafkaProducer
from kafka.admin import KafkaAdminClient, NewTopic

from streams.kafka_admin import bootstrap_servers
from streams.service.changelog_ends import committed_ends
from streams.settings import Settings
from tests.service.conftest import BROKER

pytestmark = pytest.mark.broker


def transactional_topic(committed: int, aborted: int) -> str:
    """A one-partition topic: `committed` records in a committed transaction, then `aborted` in an aborted one."""
    topic = f"ends{uuid.uuid4().hex[:10]}-changelog"
    admin = KafkaAdminClient(bootstrap_servers=bootstrap_servers(BROKER))
    try:
        admin.create_topics([NewTopic(topic, 1, 1)])
    finally:
        admin.close()
    producer = KafkaProducer(bootstrap_servers=bootstrap_servers(BROKER), transactional_id=topic)
    try:
        producer.init_transactions()
        for count, commit in ((committed, True), (aborted, False)):
            producer.begin_transaction()
            for n in range(count):
                producer.send(topic, key=b"k%d" % n, value=b"v", partition=0)
            producer.flush()
            if commit:
                producer.commit_transaction()
            else:
                producer.abort_transaction()
    finally:
        producer.close()
    return topic


def test_the_committed_end_is_after_the_last_committed_record_not_the_last_stable_offset() -> None:
    topic = transactional_topic(committed=3, aborted=2)
    # offsets 0-2 committed, 3 its commit marker, 4-5 aborted, 6 the abort marker: last stable offset 7
    ends = committed_ends(Settings(broker=BROKER), {(topic, 0): 7})
    assert ends == {(topic, 0): 3}


def test_a_partition_with_nothing_committed_ends_where_it_begins() -> None:
    topic = transactional_topic(committed=0, aborted=2)
    assert committed_ends(Settings(broker=BROKER), {(topic, 0): 3}) == {(topic, 0): 0}
    assert committed_ends(Settings(broker=BROKER), {(topic, 0): 0}) == {(topic, 0): 0}


def test_the_window_grows_until_it_finds_a_committed_record() -> None:
    topic = transactional_topic(committed=2, aborted=600)  # more aborted records than the first window
    assert committed_ends(Settings(broker=BROKER), {(topic, 0): 604}) == {(topic, 0): 2}
