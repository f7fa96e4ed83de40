"""One delivery interface: each processing guarantee's sends live in `streams.service.delivery`, nowhere else."""

from __future__ import annotations

import asyncio
import contextlib
import re
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from streams.service.delivery import AtLeastOnce, Delivery, ExactlyOnce
from streams.service.records import Marker, Split, decode_owner_record
from streams.service.transactions import TransactionGone
from streams.settings import Settings

SERVICE = Path(__file__).resolve().parents[2] / "streams" / "service"


class FakeTransactions:
    """Records what goes in which transaction; `open` lists the transactional ids assigned here."""

    def __init__(self, open_ids: set[str], gone_on: int | None = None) -> None:
        self.open_ids = open_ids
        self.sent: list[tuple[str | None, str, bytes | None, int | None]] = []
        self.gone_on = gone_on

    def transactional_id(self, topic: str, partition: int) -> str:
        return f"app-{topic}-{partition}"

    def is_open(self, tid: str) -> bool:
        return tid in self.open_ids

    def lock(self, tid: str | None) -> Any:
        return contextlib.nullcontext() if tid is None else asyncio.Lock()

    async def send(
        self,
        tid: str | None,
        topic: str,
        value: bytes | None,
        key: Any = None,
        partition: Any = None,
        headers: Any = None,
    ) -> None:
        if self.gone_on is not None and len(self.sent) == self.gone_on:
            raise TransactionGone(tid)
        self.sent.append((tid, topic, value, partition))


def delivery(kind: type[Delivery], partitions: int, transactions: Any = None) -> Any:
    """A delivery without an app: settings, a fake topology and fake transactions."""
    found: Any = kind.__new__(kind)
    found.settings = Settings(partitions=partitions)
    found.owner_topic = "owner"
    found.transactions = transactions
    sends: list[tuple[int, bytes]] = []

    async def send(partition: int, value: bytes) -> None:
        sends.append((partition, value))

    found.topology = SimpleNamespace(owner_updates=SimpleNamespace(send=send))
    found.plain_sends = sends
    return found


UPDATES = {
    0: [[1, "e1", "ann", "bob", 0, 0, 0, 7], [2, "e2", "ann", "cid", 0, 0, 1, 3]],
    1: [[1, "e1", "bob", "ann", 1, 0, 0, 7]],
}
SPLIT = Split(UPDATES, ["m:0", "r:1"], [["dan", 5, 1, 4]])
"""Two input partitions' updates, and one erasure request read from the second."""


def own_markers(markers: dict[str, Marker], source: str) -> dict[str, Marker]:
    """`Rekeyer.source_markers` with no idleness to take back: a source's records carry its own marker."""
    return {source: markers[source]} if source in markers else {}


def test_at_least_once_sends_one_record_per_owner_partition_with_every_source() -> None:
    plain = delivery(AtLeastOnce, 2)
    markers = {"m:0": (1, False), "r:1": (2, False)}
    assert asyncio.run(plain.send_updates(SPLIT, markers, own_markers)) is True
    assert [partition for partition, _ in plain.plain_sends] == [0, 1]
    first = decode_owner_record(plain.plain_sends[0][1])
    assert (first.sources, first.updates, first.markers) == (["m:0", "r:1"], UPDATES[0], markers)
    assert first.erasures == SPLIT.erasures


def test_exactly_once_sends_each_sources_updates_in_its_own_transaction() -> None:
    transactions = FakeTransactions({"app-m-0", "app-r-1"})
    exact = delivery(ExactlyOnce, 2, transactions)
    markers = {"m:0": (1, False), "r:1": (2, False)}
    assert asyncio.run(exact.send_updates(SPLIT, markers, own_markers)) is True
    assert exact.plain_sends == []
    by_tid: dict[str | None, list[Any]] = {}
    for tid, topic, value, partition in transactions.sent:
        assert topic == "owner"
        assert value is not None
        by_tid.setdefault(tid, []).append((partition, decode_owner_record(value)))
    assert set(by_tid) == {"app-m-0", "app-r-1"}
    m0 = dict(by_tid["app-m-0"])
    assert m0[0].sources == ["m:0"]
    assert m0[0].updates == [[1, "e1", "ann", "bob", 0, 0, 0, 7]]
    assert m0[1].updates == [[1, "e1", "bob", "ann", 1, 0, 0, 7]]
    assert m0[0].markers == m0[1].markers == {"m:0": (1, False)}
    assert m0[0].erasures == m0[1].erasures == []
    r1 = dict(by_tid["app-r-1"])
    assert r1[0].updates == [[2, "e2", "ann", "cid", 0, 0, 0, 3]]  # re-indexed: its only source
    assert (r1[1].sources, r1[1].updates) == (["r:1"], [])  # its erasure goes to every partition
    assert r1[0].erasures == r1[1].erasures == [["dan", 5, 0, 4]]


def test_exactly_once_gives_up_a_batch_whose_partitions_moved() -> None:
    markers = {"m:0": (1, False)}
    revoked = delivery(ExactlyOnce, 2, FakeTransactions(set()))
    one = Split({0: UPDATES[0][:1]}, ["m:0"], [])
    assert asyncio.run(revoked.send_updates(one, markers, own_markers)) is False
    mid_send = delivery(ExactlyOnce, 2, FakeTransactions({"app-m-0"}, gone_on=1))
    assert asyncio.run(mid_send.send_updates(one, markers, own_markers)) is False


def test_retracting_idleness_under_exactly_once_claims_no_progress_outside_any_transaction() -> None:
    transactions = FakeTransactions(set())
    exact = delivery(ExactlyOnce, 3, transactions)
    asyncio.run(exact.retract_idleness({"m:0": (5, False)}))
    assert [(tid, partition) for tid, _, _, partition in transactions.sent] == [
        (None, 0),
        (None, 1),
        (None, 2),
    ]
    assert {decode_owner_record(value).markers["m:0"] for _, _, value, _ in transactions.sent if value} == {
        (None, False)
    }
    plain = delivery(AtLeastOnce, 2)
    asyncio.run(plain.retract_idleness({"m:0": (5, False)}))
    assert [decode_owner_record(v).markers for _, v in plain.plain_sends] == [{"m:0": (5, False)}] * 2


def test_exactly_once_holds_alerts_per_partition_until_its_checkpoint() -> None:
    exact = delivery(ExactlyOnce, 2)
    exact.unsent_alerts, exact.unsent_digests = {}, {}
    asyncio.run(exact.publish_alerts(1, [{"kind": "dormant"}]))
    assert (exact.has_unsent_alerts(0), exact.has_unsent_alerts(1)) == (False, True)
    plain = delivery(AtLeastOnce, 2)
    assert not plain.has_unsent_alerts(1)


def test_exactly_once_holds_digests_for_the_checkpoint_and_sends_them_after_its_alerts() -> None:
    transactions = FakeTransactions({"app-owner-1"})
    exact = delivery(ExactlyOnce, 2, transactions)
    exact.unsent_alerts, exact.unsent_digests = {}, {}
    exact.committed_writes = SimpleNamespace(discard_all=lambda: None)
    exact.metrics = SimpleNamespace(
        digests=SimpleNamespace(inc=lambda n: None),
        alerts=SimpleNamespace(labels=lambda kind: SimpleNamespace(inc=lambda: None)),
    )
    exact.topology.digests = SimpleNamespace(get_topic_name=lambda: "digests")
    exact.topology.alerts = SimpleNamespace(get_topic_name=lambda: "alerts")
    alert = {"kind": "dormant", "owner_id": "ann", "dormant_since": 1, "alert_id": "dormant:ann:bob:0"}
    digest = {"digest_id": "digest:ann:0", "owner_id": "ann", "day_start": 0}

    async def main() -> None:
        await exact.publish_digests(1, [digest])
        assert (exact.has_unsent_alerts(0), exact.has_unsent_alerts(1)) == (False, True)
        await exact.publish_alerts(1, [alert])
        async with exact.checkpoint(1) as writing:
            await writing.flush_alerts()
        assert [(tid, topic) for tid, topic, _value, _partition in transactions.sent] == [
            ("app-owner-1", "alerts"),
            ("app-owner-1", "digests"),
        ]
        assert not exact.has_unsent_alerts(1)
        await exact.publish_digests(0, [digest])
        exact.drop_all()
        assert not exact.has_unsent_alerts(0), "a revocation drops them with the transaction"

    asyncio.run(main())


def test_only_the_delivery_module_branches_on_the_guarantee_for_sends() -> None:
    """Outside delivery.py (and transactions.py, its primitive) the guarantee only picks a read isolation
    level, installs Faust patches, or tells the relationship stage that offsets may skip."""
    branching = {
        path.name
        for path in SERVICE.glob("*.py")
        if re.search(r"\.exactly_once\b|\.enabled\b|\.transactional\b", path.read_text())
    }
    assert branching == {
        "app.py",
        "broker_offsets.py",
        "partition_reader.py",
        "relationships.py",
        "delivery.py",
        "transactions.py",
    }
    relationships = (SERVICE / "relationships.py").read_text()
    # relationships.py asks only whether offsets may skip (transaction markers), to read a gap
    assert re.findall(r"\.exactly_once\b|\.enabled\b|\.transactional\b", relationships) == [".transactional"]
    transactional_calls = {
        path.name
        for path in SERVICE.glob("*.py")
        if re.search(r"Transactions\(|\.transactional_id\(", path.read_text())
    }
    assert transactional_calls == {"delivery.py"}
