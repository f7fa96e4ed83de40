"""Which owner partition a user's rows live in: Kafka's default murmur2 partitioner of the owner id."""

from __future__ import annotations

from kafka.partitioner.default import murmur2

__all__ = ["owner_partition"]


def owner_partition(owner: str, partitions: int) -> int:
    """Partition of `owner` among `partitions`, as Kafka's producer would pick for key `owner`.

    >>> owner_partition("alice", 1)
    0
    """
    digest: int = murmur2(owner.encode())
    return (digest & 0x7FFFFFFF) % partitions
