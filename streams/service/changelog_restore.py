"""Which changelogs a worker restores a fetch at a time, and the count of what it restored."""

from __future__ import annotations

from prometheus_client import Counter

__all__ = ["ChangelogBatches"]


class ChangelogBatches:
    """The `ChangelogRestore` of `faust_internals.input_in_batches`: the rows table's changelog, counted."""

    def __init__(self, topics: frozenset[str], restored: Counter) -> None:
        self.topics = topics
        """The changelog topics whose records skip Faust's recovery queue."""
        self._restored = restored

    def restored(self, records: int) -> None:
        """`records` changelog records were written to their table in one batch."""
        self._restored.inc(records)
