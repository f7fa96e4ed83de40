"""A worker whose ingest or relationship agent raises once, at a chosen call: `python -m tests.service.crashing_worker AGENT N`."""

from __future__ import annotations

import sys
from typing import Any

from streams.__main__ import main
from streams.service.ingest import Rekeyer
from streams.service.owner_partition import OwnerPartition


class InjectedFault(RuntimeError):
    """The fault this worker was asked to raise."""


def raise_at_call(owner: type, method: str, call: int) -> None:
    """Make `owner.method` raise `InjectedFault` on its `call`-th call with data (counting from 1), once."""
    original = getattr(owner, method)
    calls = 0

    def patched(self: Any, *args: Any, **kwargs: Any) -> Any:
        nonlocal calls
        calls += carries_data(args[0])
        if calls == call:
            raise InjectedFault(f"{owner.__name__}.{method} call {call}")
        return original(self, *args, **kwargs)

    setattr(owner, method, patched)


def carries_data(first: Any) -> bool:
    """A batch of input events (ingest) or an owner record with updates, not a heartbeat (relationships)."""
    return bool(getattr(first, "updates", first))


TARGETS = {"ingest": (Rekeyer, "split"), "relationships": (OwnerPartition, "handle")}

if __name__ == "__main__":
    agent, call = sys.argv[1], int(sys.argv[2])
    raise_at_call(*TARGETS[agent], call)
    sys.exit(main(["worker"]))
