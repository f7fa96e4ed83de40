"""Readers of the deploy/ files for the deploy tests: YAML, env files, Containerfile, metric and setting names."""

from __future__ import annotations

import configparser
import json
import re
import shlex
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import yaml
from prometheus_client import CollectorRegistry

from streams.service.metrics import Metrics
from streams.settings import Settings

__all__ = [
    "COMPOSE",
    "CONTAINERFILE",
    "DASHBOARD",
    "DASHBOARD_VARIABLES",
    "DEPLOY",
    "ENV_FILE",
    "KUBERNETES",
    "MANIFEST_DIRS",
    "PROMETHEUS",
    "PROMETHEUS_CONFIGS",
    "REPO",
    "RULE_FILES",
    "RULE_TESTS",
    "RUNBOOK",
    "SYSTEMD_UNIT",
    "Instruction",
    "alert_rules",
    "container_instructions",
    "dashboard_panels",
    "dashboard_targets",
    "exposed_metric_names",
    "final_stage",
    "kubernetes_objects",
    "load_yaml",
    "manifest_files",
    "metric_names",
    "provisioned_datasource_uids",
    "read_env_file",
    "read_unit",
    "rule_exprs",
    "setting_names",
    "settings_from",
    "settings_variables",
    "substitute",
    "unit_values",
    "yaml_files",
]

REPO = Path(__file__).resolve().parents[2]
DEPLOY = REPO / "deploy"
MANIFEST_DIRS = tuple(
    DEPLOY / name for name in ("prometheus", "grafana", "container", "kubernetes", "systemd", "compose")
)
PROMETHEUS = DEPLOY / "prometheus"
PROMETHEUS_CONFIGS = (PROMETHEUS / "prometheus.yml", DEPLOY / "compose" / "prometheus.yml")
RULE_FILES = tuple(sorted((PROMETHEUS / "rules").glob("*.yml")))
RULE_TESTS = tuple(sorted((PROMETHEUS / "tests").glob("*.yml")))
RUNBOOK = PROMETHEUS / "RUNBOOK.md"
GRAFANA = DEPLOY / "grafana"
DASHBOARD = GRAFANA / "dashboards" / "relationships.json"
DATASOURCES = GRAFANA / "provisioning" / "datasources"
CONTAINERFILE = DEPLOY / "container" / "Containerfile"
KUBERNETES = DEPLOY / "kubernetes"
SYSTEMD_UNIT = DEPLOY / "systemd" / "relationships-worker.service"
ENV_FILE = DEPLOY / "systemd" / "relationships.env"
COMPOSE = DEPLOY / "compose" / "compose.yaml"

# A metric name of the service: `relationships_` or `process_` + snake case, not part of a longer
# name or of a recording rule name (`relationships:events_consumed:rate1m`).
_METRIC_NAME = re.compile(r"(?<![A-Za-z0-9_:])(?:relationships|process)_[a-z0-9_]+")
# A settings variable: STREAMS_WORD(_WORD)*, so `STREAMS_` alone (in prose) is not one.
_SETTING_NAME = re.compile(r"(?<![A-Za-z0-9_])STREAMS_[A-Z0-9]+(?:_[A-Z0-9]+)*")
# Sample names prometheus_client exposes per family type (family name + suffix).
_SAMPLE_SUFFIXES: dict[str, tuple[str, ...]] = {
    "counter": ("_total", "_created"),
    "gauge": ("",),
    "histogram": ("_bucket", "_count", "_sum", "_created"),
    "summary": ("", "_count", "_sum", "_created"),
    "info": ("_info",),
    "stateset": ("",),
    "gaugehistogram": ("_bucket", "_gcount", "_gsum"),
    "unknown": ("",),
}


def manifest_files() -> list[Path]:
    """Every file under the deploy folders this suite covers."""
    return sorted(path for folder in MANIFEST_DIRS for path in folder.rglob("*") if path.is_file())


def yaml_files() -> list[Path]:
    """Every YAML file under the deploy folders this suite covers."""
    return [path for path in manifest_files() if path.suffix in {".yml", ".yaml"}]


def load_yaml(path: Path) -> Any:
    """The single YAML document of `path`."""
    return yaml.safe_load(path.read_text(encoding="utf-8"))


def kubernetes_objects(optional: bool = False) -> list[dict[str, Any]]:
    """Every object of every manifest in deploy/kubernetes/ (with `optional`, of optional/ too)."""
    found: list[dict[str, Any]] = []
    paths = sorted(KUBERNETES.glob("*.yaml")) + (
        sorted(KUBERNETES.glob("optional/*.yaml")) if optional else []
    )
    for path in paths:
        found += [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc]
    return found


def metric_names(text: str) -> set[str]:
    """The service's metric names (`relationships_...`) mentioned in a PromQL expression."""
    return set(_METRIC_NAME.findall(text))


def setting_names(text: str) -> set[str]:
    """The `STREAMS_...` variable names mentioned in `text`."""
    return set(_SETTING_NAME.findall(text))


def settings_variables() -> set[str]:
    """The environment variable of every Settings field."""
    return {f"STREAMS_{name.upper()}" for name in Settings.model_fields}


def settings_from(env: Mapping[str, object]) -> Settings:
    """Settings from `STREAMS_*` values as a manifest gives them (strings), validated; defaults for the rest."""
    return Settings.model_validate(
        {name.removeprefix("STREAMS_").lower(): str(value) for name, value in env.items()}
    )


def exposed_metric_names(registry: CollectorRegistry | None = None) -> set[str]:
    """Every sample name a scrape of `Metrics` can carry, including labelled families without children."""
    if registry is None:
        registry = CollectorRegistry()
        Metrics(registry)
    names: set[str] = set()
    for family in registry.collect():
        names.update(family.name + suffix for suffix in _SAMPLE_SUFFIXES[family.type])
        names.update(sample.name for sample in family.samples)
    return names


@cache
def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


def dashboard_panels(dashboard: Mapping[str, Any] | None = None) -> list[dict[str, Any]]:
    """Every panel of the dashboard, rows' nested panels included (rows themselves left out)."""
    found: list[dict[str, Any]] = []

    def walk(panels: Iterable[dict[str, Any]]) -> None:
        for panel in panels:
            if panel.get("type") == "row":
                walk(panel.get("panels", []))
            else:
                found.append(panel)

    walk((dashboard or _dashboard())["panels"])
    return found


DASHBOARD_VARIABLES = {"job": "relationships", "instance": ".*"}
"""What the dashboard's `$job` and `$instance` stand for when its queries are evaluated outside Grafana."""


def substitute(expr: str, variables: Mapping[str, str]) -> str:
    """`expr` with Grafana's `$name` / `${name}` variables replaced by `variables` (unknown ones are an error)."""

    def value(match: re.Match[str]) -> str:
        return variables[match.group(1) or match.group(2)]

    return re.sub(r"\$\{(\w+)\}|\$(\w+)", value, expr)


def dashboard_targets(variables: Mapping[str, str] | None = None) -> list[tuple[str, str]]:
    """(panel title, expr) of every query of the dashboard; with `variables`, Grafana's variables replaced."""
    return [
        (panel["title"], substitute(target["expr"], variables) if variables else target["expr"])
        for panel in dashboard_panels()
        for target in panel["targets"]
    ]


def provisioned_datasource_uids() -> set[str]:
    """The uid of every Grafana data source provisioned in deploy/grafana."""
    uids: set[str] = set()
    for path in sorted(DATASOURCES.glob("*.y*ml")):
        uids.update(source["uid"] for source in load_yaml(path)["datasources"])
    return uids


def alert_rules() -> list[dict[str, Any]]:
    """Every alerting rule of the rule files."""
    return [
        rule
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
        if "alert" in rule
    ]


def rule_exprs() -> list[tuple[str, str]]:
    """(alert or record name, expr) of every rule of the rule files."""
    return [
        (rule.get("alert") or rule["record"], rule["expr"])
        for path in RULE_FILES
        for group in load_yaml(path)["groups"]
        for rule in group["rules"]
    ]


def read_env_file(path: Path) -> dict[str, str]:
    """KEY=VALUE lines of a systemd environment file (comments and blank lines skipped)."""
    env: dict[str, str] = {}
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        stripped = line.strip()
        if not stripped or stripped.startswith(("#", ";")):
            continue
        key, sep, value = stripped.partition("=")
        assert sep, f"{path.name}:{number}: not KEY=VALUE: {line!r}"
        env[key.strip()] = value.strip()
    return env


def read_unit(path: Path) -> configparser.ConfigParser:
    """A systemd unit file: sections and keys, case kept; repeated keys keep the last value."""
    parser = configparser.ConfigParser(strict=False, interpolation=None)
    parser.optionxform = str  # type: ignore[assignment,method-assign]
    parser.read_string(path.read_text(encoding="utf-8"), source=str(path))
    return parser


def unit_values(path: Path, section: str, key: str) -> list[str]:
    """Every value of a key that a systemd unit may repeat (EnvironmentFile=, Environment=)."""
    values: list[str] = []
    current = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("[") and line.endswith("]"):
            current = line[1:-1]
        elif current == section and not line.startswith(("#", ";")) and "=" in line:
            name, _, value = line.partition("=")
            if name.strip() == key:
                values.append(value.strip())
    return values


@dataclass(frozen=True)
class Instruction:
    """One Containerfile instruction: keyword (upper case) and its argument text."""

    keyword: str
    args: str

    def exec_form(self) -> list[str]:
        """The JSON (exec form) argument list, e.g. of ENTRYPOINT or CMD."""
        parsed = json.loads(self.args)
        assert isinstance(parsed, list), f"{self.keyword} is not in exec form: {self.args}"
        return [str(item) for item in parsed]

    def pairs(self) -> dict[str, str]:
        """KEY=VALUE pairs, e.g. of ENV or LABEL."""
        return dict(word.split("=", 1) for word in shlex.split(self.args))


def container_instructions(path: Path = CONTAINERFILE) -> list[Instruction]:
    """The instructions of a Containerfile, continuation lines joined and comments dropped."""
    instructions: list[Instruction] = []
    pending = ""
    for raw in path.read_text(encoding="utf-8").splitlines():
        line = raw.strip()
        if line.startswith("#") or (not line and not pending):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        text = (pending + line).strip()
        pending = ""
        if text:
            keyword, _, args = text.partition(" ")
            instructions.append(Instruction(keyword.upper(), args.strip()))
    assert not pending, f"{path.name} ends inside a continuation line"
    return instructions


def final_stage(instructions: list[Instruction]) -> list[Instruction]:
    """The instructions of the last build stage (from its FROM on)."""
    starts = [index for index, item in enumerate(instructions) if item.keyword == "FROM"]
    assert starts, "no FROM"
    return instructions[starts[-1] :]
