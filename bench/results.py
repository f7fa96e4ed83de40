"""Each benchmark merges its figures into docs/figures/benchmarks/results.json, then redraws the plots."""

from __future__ import annotations

import datetime as dt
import json
import os
import platform
import shlex
import subprocess
import sys
from pathlib import Path
from typing import Any

FIGURES = Path(__file__).resolve().parents[1] / "docs" / "figures" / "benchmarks"
RESULTS = FIGURES / "results.json"


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return round(int(line.split()[1]) / 2**20, 1)
    return 0.0


def source() -> dict[str, Any]:
    """The commit measured, and which files of the product differed from it (uncommitted work)."""

    def git(*args: str) -> str:
        done = subprocess.run(
            ["git", *args], cwd=FIGURES.parents[2], capture_output=True, text=True, check=False
        )
        return done.stdout.rstrip("\n")

    changed = git("status", "--porcelain", "--", "streams", "core", "pyproject.toml").splitlines()
    return {
        "commit": git("rev-parse", "HEAD"),
        "uncommitted_product_files": sorted(line[3:] for line in changed),
    }


def machine() -> dict[str, Any]:
    """The running machine: CPUs (as `nproc` counts them), CPU model, memory, and the load right now."""
    return {
        "nproc": len(os.sched_getaffinity(0)),
        "cpu_model": _cpu_model(),
        "memory_gib": _memory_gib(),
        "python": platform.python_version(),
        "load_average_1_5_15": [round(x, 2) for x in os.getloadavg()],
    }


class Recorder:
    """Collects one benchmark's figures with the load before and after; `save` merges them into results.json."""

    def __init__(self, section: str) -> None:
        self.section = section
        self.load_before = machine()["load_average_1_5_15"]
        self.started = dt.datetime.now(dt.UTC)
        self.source = source()

    def save(self, figures: dict[str, Any]) -> None:
        """Write `figures` as this benchmark's section (replacing the previous one) and redraw the plots."""
        results: dict[str, Any] = json.loads(RESULTS.read_text()) if RESULTS.exists() else {}
        results = {k: v for k, v in results.items() if isinstance(v, dict) and "command" in v}
        module = Path(sys.argv[0]).stem
        results[self.section] = {
            "command": shlex.join(["python", "-m", f"bench.{module}", *sys.argv[1:]]),
            "started": self.started.isoformat(timespec="seconds"),
            "finished": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
            "machine": {**machine(), "load_average_1_5_15_before": self.load_before},
            "source": self.source,
            **figures,
        }
        RESULTS.write_text(json.dumps(dict(sorted(results.items())), indent=1) + "\n")
        from bench.plot_results import draw  # noqa: PLC0415 - matplotlib only once there is something to draw

        draw(results)
        sys.stdout.write(f"recorded in {RESULTS} [{self.section}]\n")
