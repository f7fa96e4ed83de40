"""Bytes per relationship row: serialised (table value, changelog record) and in memory (tracemalloc)."""

from __future__ import annotations

import argparse
import gc
import statistics
import sys
import tracemalloc
from pathlib import Path

import orjson

from streams.datasets.collegemsg import collegemsg_events
from streams.engine.engine import RelationshipEngine
from streams.engine.events import IN, OUT, RowUpdate, decode_event
from streams.replay import REPLAY_DEFAULTS
from streams.service.relationships import row_key
from streams.settings import Settings


def load_rows(data: Path) -> RelationshipEngine:
    """Replay CollegeMsg (SNAP) into an engine and keep its rows."""
    engine = RelationshipEngine(Settings(**REPLAY_DEFAULTS))
    for number, event in enumerate(collegemsg_events(data), start=1):
        e = decode_event(orjson.dumps(event))
        engine.offer(RowUpdate(e.ts, e.id, e.actor, e.target, OUT, e.type, 0, number))
        engine.offer(RowUpdate(e.ts, e.id, e.target, e.actor, IN, e.type, 0, number))
        engine.advance(e.ts)
    engine.finish()
    return engine


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--data", type=Path, required=True, help="CollegeMsg.txt")
    args = parser.parse_args()
    gc.collect()
    tracemalloc.start()
    before = tracemalloc.get_traced_memory()[0]
    engine = load_rows(args.data)
    gc.collect()
    after = tracemalloc.get_traced_memory()[0]
    tracemalloc.stop()
    rows = engine.rows
    values = [len(row.to_bytes()) for row in rows.values()]
    keys = [len(row_key(key)) for key in rows]
    out = sys.stdout
    out.write(f"rows: {len(rows)} from {args.data.name}\n")
    out.write(
        f"serialised value: median {statistics.median(values):.0f} B, mean {statistics.mean(values):.0f} B, "
        f"p99 {sorted(values)[int(len(values) * 0.99)]} B; key median {statistics.median(keys):.0f} B\n"
    )
    out.write(
        f"in memory (engine rows, timers, ids; tracemalloc): {(after - before) / len(rows):.0f} B per row\n"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
