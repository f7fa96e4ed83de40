"""Draw docs/figures/benchmarks/*.png from the measured results.json beside them."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures" / "benchmarks"


def main() -> int:
    results = json.loads((FIGURES / "results.json").read_text())
    fig, (rates, latency, profile) = plt.subplots(1, 3, figsize=(15, 4.5))
    labels = ["replay", *(f"service, {s['workers']} worker(s)" for s in results["service"])]
    ours = [results["replay"]["replay_eps"], *(s["service_eps"] for s in results["service"])]
    base = [results["replay"]["bare_parse_eps"], *(s["bare_consumer_eps"] for s in results["service"])]
    x = range(len(labels))
    rates.bar([i - 0.2 for i in x], base, 0.4, label="baseline (bare parse / bare consumer)")
    rates.bar([i + 0.2 for i in x], ours, 0.4, label="ours")
    rates.set_yscale("log")
    rates.set_xticks(list(x), labels, fontsize=8)
    rates.set_ylabel("events/s (log)")
    rates.set_title("throughput vs same-run baseline")
    rates.legend(fontsize=8)
    deciles = results["latency_ms"]["deciles"]
    latency.plot([q * 10 for q in range(len(deciles))], deciles, marker="o")
    latency.axhline(1000, color="red", linestyle="--", label="target p99 < 1 s")
    latency.set_xlabel("percentile")
    latency.set_ylabel("deadline -> alert on topic (ms)")
    latency.set_title(f"alert latency, hybrid clock (p99 {results['latency_ms']['p99']} ms)")
    latency.legend(fontsize=8)
    shares = results["service_profile_share"]
    profile.pie(list(shares.values()), labels=list(shares), autopct="%.0f%%", textprops={"fontsize": 8})
    profile.set_title("one worker's CPU (py-spy)")
    fig.suptitle(results["machine"], fontsize=9)
    fig.tight_layout()
    fig.savefig(FIGURES / "benchmarks.png", dpi=90)
    return 0


if __name__ == "__main__":
    sys.exit(main())
