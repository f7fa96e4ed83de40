"""Score of the last `mutmut run` (from `mutmut export-cicd-stats`); exits 1 below a minimum."""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

STATS = Path("mutants/mutmut-cicd-stats.json")


def score(stats: dict[str, int]) -> float:
    """Per cent of all mutants caught: failed a test (killed) or ran past the time limit (timeout)."""
    return 100.0 * (stats["killed"] + stats["timeout"]) / stats["total"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--min-score", type=float, required=True, help="minimum per cent of mutants caught")
    parser.add_argument("--stats", type=Path, default=STATS)
    args = parser.parse_args()
    stats = json.loads(args.stats.read_text())
    if stats["total"] == 0 or stats["check_was_interrupted_by_user"]:
        sys.stderr.write(f"mutation: incomplete run ({stats})\n")
        return 1
    value = score(stats)
    caught = stats["killed"] + stats["timeout"]
    sys.stdout.write(
        f"mutation score {value:.1f}% = {caught}/{stats['total']} caught"
        f" (killed {stats['killed']}, timeout {stats['timeout']}, survived {stats['survived']},"
        f" no tests {stats['no_tests']}, suspicious {stats['suspicious']}); minimum {args.min_score}%\n"
    )
    if value < args.min_score:
        sys.stderr.write("mutation: score below the minimum; see `mutmut results` and docs/testing.md\n")
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
