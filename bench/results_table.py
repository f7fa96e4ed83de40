"""Print the results table of docs/benchmarks.md (Markdown) from docs/figures/benchmarks/results.json."""

from __future__ import annotations

import json
import sys
from typing import Any

from bench.results import RESULTS


def _mb(value: float | None) -> str:
    """A sampled size in MB, or why there is none."""
    return "not sampled (rows by the first sample)" if value is None else f"{value:,.0f} MB"


def _held(samples: list[dict[str, Any]]) -> str:
    """The most updates held for the watermark at any sample, when the samples have them."""
    held = [sample["held_updates"] for sample in samples if "held_updates" in sample]
    return f", at most {max(held):,.0f} updates held for the watermark" if held else ""


def _rows(results: dict[str, Any]) -> list[tuple[str, str, str, str]]:
    rows = []
    for run in results.get("replay", {}).get("runs", []):
        rows.append((
            f"replay, {run['workload']} ({run['events']:,} events)",
            f"{run['replay_eps']:,} events/s (median of {run['rounds']})",
            f"bare orjson parse {run['bare_parse_eps']:,} events/s", f"{run['ratio']:.3f}",
        ))  # fmt: skip
        if "compiled_eps" in run:
            rows.append((
                f"replay --engine compiled, {run['workload']} ({run['events']:,} events)",
                f"{run['compiled_eps']:,} events/s (median of {run['rounds']})",
                f"bare orjson parse {run['bare_parse_eps']:,} events/s", f"{run['compiled_ratio']:.3f}",
            ))  # fmt: skip
    for run in results.get("service", {}).get("runs", []):
        drained = run["drain"]
        rows.append((
            f"service, {run['workers']} worker(s), {run['workload']} ({run['events']:,} events, "
            f"{run['partitions']} partitions, {drained['alerts']:,} alerts)",
            f"{run['service_eps']:,} events/s from the worker start to all output out ({drained['done_s']} s); "
            f"{drained['eps_after_first_applied']:,} events/s after the first applied event ({drained['first_applied_s']} s)",
            f"bare aiokafka consumer {run['bare_consumer_eps']:,} events/s"
            + (f"; bare Faust agent {run['bare_faust_eps']:,} records/s" if "bare_faust_eps" in run else ""),
            f"{run['ratio']:.4f}; {run['ratio_after_first_applied']:.4f}"
            + (f"; {run['ratio_to_bare_faust_after_first_applied']:.2f} of bare Faust" if "bare_faust_eps" in run else ""),
        ))  # fmt: skip
    if codec := results.get("row_codec"):
        compiled, reference = codec["medians"]["compiled"], codec["medians"]["reference"]
        rows.append((
            f"service, 1 worker, {codec['workload']}: compiled row codec (median of {codec['rounds']} interleaved pairs)",
            f"{compiled['eps_from_start']:,} events/s from the worker start; "
            f"{compiled['eps_after_first_applied']:,} after the first applied event",
            f"Python reference codec: {reference['eps_from_start']:,}; {reference['eps_after_first_applied']:,}",
            f"{codec['ratios']['eps_from_start']:.2f}; {codec['ratios']['eps_after_first_applied']:.2f}",
        ))  # fmt: skip
    if latency := results.get("latency"):
        rows.append((
            f"alert latency, hybrid clock, {latency['alerts']} of {latency['expected_alerts']} alerts",
            f"p50 {latency['p50_ms']} ms, p99 {latency['p99_ms']} ms, max {latency['max_ms']} ms", "—", "—",
        ))  # fmt: skip
    for run in results.get("recovery", {}).get("runs", []):
        rows.append((
            f"restart after SIGKILL, {run['workload']} ({run['rows']:,} rows)",
            f"local RocksDB kept {run['local_kept_s']} s"
            + (f" (without static membership {run['local_kept_dynamic_membership_s']} s)"
               if "local_kept_dynamic_membership_s" in run else "")
            + f"; data dir lost {run['changelog_only_s']} s "
            f"(built in {run['build_s']} s, {run['build_eps']:,} events/s; data dir {run['data_dir_bytes_per_row']} B/row)",
            f"data dir lost, Faust's recovery a record at a time: {run['changelog_only_faust_per_record_s']} s"
            if "changelog_only_ratio" in run else "—",
            f"{run['changelog_only_ratio']:.3f} (data dir lost)" if "changelog_only_ratio" in run else "—",
        ))  # fmt: skip
    for run in results.get("rows", {}).get("workloads", []):
        json_baseline = "json_rocksdb_bytes_per_row" in run
        rows.append((
            f"bytes per row, {run['workload']} ({run['rows']:,} rows)",
            f"serialised median {run['serialised_median']} B (mean {run['serialised_mean']}, p99 "
            f"{run['serialised_p99']}); RocksDB {run['rocksdb_bytes_per_row']} B; in memory "
            f"{run['in_memory_bytes_per_row']:,} B"
            + (f"; encode {run['encode_us']} µs, decode {run['decode_us']} µs" if json_baseline else ""),
            f"JSON rows (version 0): serialised median {run['json_serialised_median']} B; RocksDB "
            f"{run['json_rocksdb_bytes_per_row']} B; orjson encode {run['json_encode_us']} µs, decode "
            f"{run['json_decode_us']} µs" if json_baseline else "—",
            f"{run['rocksdb_bytes_per_row'] / run['json_rocksdb_bytes_per_row']:.2f} (RocksDB bytes)"
            if json_baseline else "—",
        ))  # fmt: skip
    for run in results.get("retention", {}).get("runs", []):
        kept, retained = run["without"], run["with"]
        rows.append((
            f"replay with row_ttl {run['row_ttl_ms'] // 86_400_000} days, {run['workload']} "
            f"({run['events']:,} events), median of {run['rounds']}",
            f"rows at the end {retained['rows_at_end']:,.0f} ({retained['rows_reclaimed']:,.0f} reclaimed); "
            f"peak RSS {retained['peak_rss_mb']:,.0f} MB; {retained['events_per_second']:,.0f} events/s; "
            f"{retained['alerts']:,.0f} alerts",
            f"row_ttl 0: rows {kept['rows_at_end']:,.0f}; peak RSS {kept['peak_rss_mb']:,.0f} MB; "
            f"{kept['events_per_second']:,.0f} events/s; {kept['alerts']:,.0f} alerts",
            f"{run['rows_at_end_ratio']:.3f} (rows); {run['peak_rss_ratio']:.3f} (RSS); "
            f"{run['speed_ratio']:.3f} (speed)",
        ))  # fmt: skip
    if (cache := results.get("row_cache", {}).get("summary")) and "configs" in cache:
        rss, eps = cache["peak_rss_mb"], cache["eps_from_start"]
        small_mb = cache["configs"]["small"]["row_cache_mb"]
        rows.append((
            f"one worker, mentions ({cache['events']:,} events, 930,782 rows), STREAMS_ROW_CACHE_MB={small_mb}, "
            "medians",
            f"peak RSS {rss['small']:,.0f} MB; {eps['small']:,.0f} events/s from the worker start",
            f"every row in memory: {rss['all_rows']:,.0f} MB, {eps['all_rows']:,.0f} events/s; Faust's RocksDB "
            f"memory (64 MB memtables, 2 GB block cache): {rss['small_faust_rocksdb']:,.0f} MB, "
            f"{eps['small_faust_rocksdb']:,.0f} events/s",
            f"{cache['rss_ratio']:.3f} (RSS), {cache['speed_ratio']:.3f} (speed) of every row in memory; "
            f"{cache['rss_ratio_to_faust_rocksdb']:.3f} (RSS), {cache['speed_ratio_to_faust_rocksdb']:.3f} "
            "(speed) of Faust's RocksDB memory",
        ))  # fmt: skip
    if large := results.get("large_worker"):
        rows.append((
            f"one worker, mentions ({large['events']:,} events, {large['rows']:,} rows), "
            f"STREAMS_ROW_CACHE_MB={large['row_cache_mb']}, one run",
            f"peak RSS {large['peak_rss_mb']:,} MB, growth {large['rss_growth_mb_per_million_rows']} MB per million "
            f"rows past a quarter of them{_held(large.get('samples', []))}; restart after SIGKILL, state kept: "
            f"{large['restart_kept_s']} s",
            f"RSS before the first row: {_mb(large['rss_before_first_row_mb'])}; targets "
            f"{large['rss_target_mb']:,} MB and {large['restart_target_s']} s",
            f"{large['rss_ratio_to_target']:.3f} (RSS), {large['restart_ratio_to_target']:.3f} (restart) of the "
            "targets",
        ))  # fmt: skip
    if opened := results.get("partition_open"):
        rows.append((
            f"opening one owner partition, mentions ({opened['events']:,} events, {opened['rows']:,} rows in its "
            "RocksDB, no broker), median of 3",
            f"from the checkpoint's counts: {opened['open_counts_s']} s, "
            f"{opened['deadlines_in_memory_counts']:,} deadlines in memory",
            f"scanning every row (every restart before): {opened['open_scan_s']} s",
            f"{opened['ratio_counts_to_scan']:.4f} (time)",
        ))  # fmt: skip
    if guarantees := results.get("guarantees"):
        alo, eos = guarantees["at_least_once"], guarantees["exactly_once"]
        rows.append((
            f"exactly_once cost, {guarantees['workload']} ({guarantees['events']:,} events, "
            f"{guarantees['alerts']:,} alerts) backlog, {len(eos['seconds'])} runs each",
            f"exactly once: median {eos['median_s']} s to all output out (min {eos['min_s']}, max {eos['max_s']})",
            f"at least once: median {alo['median_s']} s (min {alo['min_s']}, max {alo['max_s']})",
            f"{guarantees['time_ratio_exactly_once_over_at_least_once']:.2f} (time)",
        ))  # fmt: skip
    return rows


def main() -> int:
    results = json.loads(RESULTS.read_text())
    out = sys.stdout
    out.write("| benchmark | measured | baseline (same run) | ratio |\n| --- | --- | --- | --- |\n")
    for row in _rows(results):
        out.write("| " + " | ".join(row) + " |\n")
    return 0


if __name__ == "__main__":
    sys.exit(main())
