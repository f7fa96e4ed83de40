"""The README documents every setting and keeps the quick-start commands true."""

from __future__ import annotations

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
