"""An owner partition's digests: due as its watermark passes a day, checkpointed, and the same after a reload."""

from __future__ import annotations

import itertools

import orjson

from streams.datasets.collegemsg import COLLEGEMSG, collegemsg_events
from streams.engine.digests import DAY_MS, Digests, digests_of
from streams.engine.events import decode_event, row_updates
from streams.replay import REPLAY_DEFAULTS, ReplaySummary, replay
from streams.service.owner_partition import OwnerPartition
from streams.service.records import OwnerRecord
from streams.settings import Settings

SOURCE = "app.mentions:0"
SHORT = {"min_touches": 3, "min_silence_ms": DAY_MS, "max_silence_ms": 7 * DAY_MS, "digest_top": 3}


def owner_records(lines: list[bytes], per_record: int) -> list[OwnerRecord]:
    """The events as one input partition's owner records (a single owner partition), `per_record` at a time."""
    records = []
    for start in range(0, len(lines), per_record):
        updates: list[list[object]] = []
        max_ts = 0
        for offset, line in enumerate(lines[start : start + per_record], start=start):
            event = decode_event(line)
            max_ts = max(max_ts, event.ts)
            if event.actor != event.target:
                updates += [[*u[:6], 0, offset] for u in row_updates(event)]
        records.append(OwnerRecord([SOURCE], updates, {SOURCE: (max_ts, False)}))  # type: ignore[arg-type]
    last = records[-1].markers[SOURCE][0]
    records.append(OwnerRecord([], [], {SOURCE: (last, True)}))  # idle: the watermark reaches the end
    return records


def expected_digests(lines: list[bytes], settings: Settings) -> list[dict[str, object]]:
    summary = ReplaySummary()
    alerts = list(replay(lines, settings, summary))
    return digests_of(alerts, summary.watermark, settings.digest_top)


def test_the_partitions_digests_are_the_replays_with_a_reload_from_a_checkpoint_between() -> None:
    lines = [orjson.dumps(e) for e in itertools.islice(collegemsg_events(COLLEGEMSG), 12_000)]
    settings = Settings(**REPLAY_DEFAULTS, **SHORT, digests=True)
    want = expected_digests(lines, settings)
    assert len(want) > 50
    records = owner_records(lines, 500)

    part: OwnerPartition[str] = OwnerPartition(0, settings, {}, [SOURCE])
    got: list[dict[str, object]] = []
    cut = len(records) // 2
    for offset, record in enumerate(records[:cut]):
        part.handle(record, f"r{offset}", offset, now_ms=0, record_ms=0)
        got += part.due_digests()
    saved = part.checkpoint()
    assert saved.digests is not None, "digests wait for their day: the checkpoint carries them"
    assert Digests.from_bytes(saved.digests, settings.digest_top).pending() > 0
    assert part.checkpoint().digests is None, "unchanged: not written again"
    assert got, "some days were due before the cut"

    rows = {key: row for key, row in saved.rows if row is not None}
    restored = Digests.from_bytes(saved.digests, settings.digest_top)
    again: OwnerPartition[str] = OwnerPartition(0, settings, rows, [SOURCE], saved.resume, digests=restored)
    for offset, record in enumerate(records[cut:], start=cut):
        again.handle(record, f"r{offset}", offset, now_ms=0, record_ms=0)
        got += again.due_digests()
    assert got == want


def test_without_the_setting_nothing_is_buffered_or_written() -> None:
    lines = [orjson.dumps(e) for e in itertools.islice(collegemsg_events(COLLEGEMSG), 3_000)]
    part: OwnerPartition[str] = OwnerPartition(0, Settings(**REPLAY_DEFAULTS, **SHORT), {}, [SOURCE])
    for offset, record in enumerate(owner_records(lines, 500)):
        part.handle(record, f"r{offset}", offset, now_ms=0, record_ms=0)
        assert part.due_digests() == []
    assert part.digests is None
    assert part.checkpoint().digests is None
