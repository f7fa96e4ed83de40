"""Which owner partition a user's rows live in: Kafka's default murmur2 partitioner of the owner id."""

from __future__ import annotations

from functools import lru_cache

from kafka.partitioner.default import murmur2

__all__ = ["owner_partition"]


@lru_cache(maxsize=1 << 17)
def owner_partition(owner: str, partitions: int) -> int:
    """Partition of `owner` among `partitions`, as Kafka's producer would pick for key `owner`.

    Cached for the most recent 131,072 owners: kafka-python's murmur2 is pure
    Python (2.4 µs a call), and a few users are in most events.

    >>> owner_partition("alice", 1)
    0
    """
    digest: int = murmur2(owner.encode())
    return (digest & 0x7FFFFFFF) % partitions
