"""The README documents every setting and keeps the quick-start commands true."""

from __future__ import annotations

import subprocess
from pathlib import Path

from streams.settings import Settings

REPO = Path(__file__).resolve().parents[1]


def test_readme_lists_every_setting_with_its_default() -> None:
    readme = (REPO / "README.md").read_text()
    for name, field in Settings.model_fields.items():
        assert f"| `STREAMS_{name.upper()}` | `{field.default}` |" in readme, name


def test_readme_quick_start_names_make_targets_that_exist() -> None:
    readme = (REPO / "README.md").read_text()
    makefile = (REPO / "Makefile").read_text()
    for target in ("run", "test", "test-unit", "lint", "bench", "check-rules", "kafka", "kafka-stop"):
        assert f"make {target}" in readme or f"`{target}`" in readme, target
        assert f"\n{target}:" in makefile, target


def test_the_repository_stands_alone() -> None:
    """The data the tests and demos read is in the repository; no tracked file reaches outside it."""
    from streams.datasets.collegemsg import COLLEGEMSG, read_rows  # noqa: PLC0415

    assert COLLEGEMSG.is_relative_to(REPO)
    assert len(read_rows(COLLEGEMSG)) == 59_835
    tracked = subprocess.run(["git", "ls-files"], cwd=REPO, capture_output=True, text=True, check=True)
    outside = "../" + "shared"
    for name in tracked.stdout.split():
        path = REPO / name
        if (
            path.suffix in {".py", ".md", ".toml", ".yml", ".yaml", ".json", ".sh", ".txt", ""}
            and path.is_file()
        ):
            assert outside not in path.read_text(errors="replace"), name


def test_make_run_installs_the_runtime_dependencies_only() -> None:
    """`make run` needs the service's dependencies; the test tools come with the test targets (`install-dev`)."""
    makefile = (REPO / "Makefile").read_text()
    targets = dict(
        line.split(":", 1) for line in makefile.splitlines() if line and line[0].isalpha() and ":" in line
    )
    assert targets["run"].split("##")[0].split() == ["install", "kafka", "topics"]
    assert targets["install"].split("##")[0].split() == ["$(STAMP)"]
    runtime_recipe = makefile.split("$(STAMP): ", 1)[1].split("\n\n", 1)[0]
    assert "pip install -q -e .\n" in runtime_recipe
    assert "[dev]" not in runtime_recipe
    for target in ("test", "test-unit", "lint", "bench-replay", "mutation"):
        assert targets[target].split("##")[0].split()[0] == "install-dev", target
