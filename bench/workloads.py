"""The inputs the benchmarks run on: CollegeMsg (SNAP), the heavy-tailed mention profile, one-event pairs."""

from __future__ import annotations

from collections import Counter
from pathlib import Path

import orjson

from streams.datasets.collegemsg import collegemsg_events
from streams.generate.mentions import MentionConfig, mention_lines

T0 = 1_700_000_000_000


def collegemsg(data: Path, repeat: int = 1) -> list[bytes]:
    """CollegeMsg as JSON lines; `repeat` > 1 plays it again with shifted event ids and times (same users)."""
    return [orjson.dumps(event) for event in collegemsg_events(data, repeat=repeat)]


def mentions(events: int | None = None, seed: int = 1) -> list[bytes]:
    """`streams generate --profile mentions --events N`: Twitter-shaped, most pairs seen once.

    Fewer events than the default keep the default's users per event, so the shape holds.
    """
    default = MentionConfig()
    events = default.events if events is None else events
    users = max(2, round(default.users * events / default.events))
    return mention_lines(MentionConfig(events=events, users=users, seed=seed))


def one_event_pairs(pairs: int) -> list[bytes]:
    """The old synthetic baseline: one like between each of `pairs` distinct pairs (2 rows per event)."""
    return [
        orjson.dumps({"id": f"r{n}", "type": "like", "actor_id": f"u{n}", "target_id": f"v{n}", "ts": T0 + n})
        for n in range(pairs)
    ]


def distinct_rows(lines: list[bytes]) -> int:
    """Rows the lines make: one per direction of each distinct pair (self-interactions make none)."""
    return 2 * len(_pair_counts(lines))


def pairs_seen_once(lines: list[bytes]) -> float:
    """Share of the distinct pairs (either direction) that interact in exactly one event."""
    counts = _pair_counts(lines)
    return sum(1 for count in counts.values() if count == 1) / len(counts)


def _pair_counts(lines: list[bytes]) -> Counter[frozenset[str]]:
    counts: Counter[frozenset[str]] = Counter()
    for line in lines:
        event = orjson.loads(line)
        if event["actor_id"] != event["target_id"]:
            counts[frozenset((event["actor_id"], event["target_id"]))] += 1
    return counts
