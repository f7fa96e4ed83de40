"""Prometheus config, alert rules and Grafana dashboards: valid, unit-tested, and about real metrics."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml
from prometheus_client import CollectorRegistry, generate_latest

from streams.service.metrics import Metrics
from streams.settings import Settings
from tests.deploy.support import (
    DASHBOARD,
    DASHBOARD_VARIABLES,
    PROMETHEUS_CONFIGS,
    REPO,
    RULE_FILES,
    RULE_TESTS,
    RUNBOOK,
    alert_rules,
    dashboard_panels,
    dashboard_targets,
    exposed_metric_names,
    load_yaml,
    metric_names,
    provisioned_datasource_uids,
    rule_exprs,
)

JOB = "relationships"
DASHBOARD_UID = "relationships-overview"
DATASOURCE_UID = "relationships-prometheus"
SEVERITIES = {"critical", "warning", "info"}
ALERTS = {
    "RelationshipsWorkerDown",
    "RelationshipsConsumerLagGrowing",
    "RelationshipsWatermarkStuck",
    "RelationshipsDeadLetterRate",
    "RelationshipsNoEvents",
    "RelationshipsPartitionStalled",
    "RelationshipsProducerSendErrors",
    "RelationshipsPoisonRecord",
}


def _dashboard() -> dict[str, Any]:
    loaded: dict[str, Any] = json.loads(DASHBOARD.read_text(encoding="utf-8"))
    return loaded


# --- metric names ---


def test_metric_name_extractor() -> None:
    expr = (
        "histogram_quantile(0.99, sum by (le) (rate(relationships_processing_seconds_bucket[5m])))"
        ' / relationships:events_consumed:rate1m + up{job="relationships"} + x_relationships_not'
    )
    assert metric_names(expr) == {"relationships_processing_seconds_bucket"}


def test_exposed_names_cover_every_family_and_suffix() -> None:
    names = exposed_metric_names()
    assert {
        "relationships_build_info",
        "relationships_events_consumed_total",
        "relationships_events_consumed_created",
        "relationships_processing_seconds_bucket",
        "relationships_processing_seconds_count",
        "relationships_processing_seconds_sum",
        "relationships_rows",
    } <= names
    assert "relationships_events_consumed" not in names
    assert "relationships_build" not in names


def test_exposed_names_agree_with_a_real_exposition() -> None:
    """The suffix table of support.py agrees with what prometheus_client writes."""
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.consumed.labels(topic="t", type="like").inc()
    metrics.processing.labels(stage="ingest").observe(0.01)
    scraped = {
        line.split("{")[0].split(" ")[0]
        for line in generate_latest(registry).decode().splitlines()
        if line and not line.startswith("#")
    }
    assert scraped
    assert scraped <= exposed_metric_names()


@pytest.mark.parametrize(("title", "expr"), dashboard_targets(), ids=lambda v: str(v)[:60])
def test_dashboard_expr_uses_only_real_metrics(title: str, expr: str) -> None:
    used = metric_names(expr)
    assert used, f"panel {title!r}: no relationships_ metric in {expr!r}"
    unknown = used - exposed_metric_names()
    assert not unknown, f"panel {title!r}: not exposed by streams.service.metrics: {sorted(unknown)}"


@pytest.mark.parametrize(("name", "expr"), rule_exprs(), ids=lambda v: str(v)[:60])
def test_rule_expr_uses_only_real_metrics(name: str, expr: str) -> None:
    unknown = metric_names(expr) - exposed_metric_names()
    assert not unknown, f"rule {name}: not exposed by streams.service.metrics: {sorted(unknown)}"


def test_every_metric_family_is_on_the_dashboard() -> None:
    """A new metric needs a panel in deploy/grafana/dashboards/relationships.json."""
    used = set().union(*(metric_names(expr) for _, expr in dashboard_targets()))
    registry = CollectorRegistry()
    Metrics(registry)
    missing = [
        family.name
        for family in registry.collect()
        if family.name.startswith("relationships_")
        and not any(name == family.name or name.startswith(f"{family.name}_") for name in used)
    ]
    assert not missing, f"metrics without a dashboard panel: {missing}"


# --- Grafana ---


def test_dashboard_has_its_stable_uid_and_title() -> None:
    dashboard = _dashboard()
    assert dashboard["uid"] == DASHBOARD_UID
    assert dashboard["title"]
    assert dashboard.get("id") is None, "provisioned dashboards carry no database id"


def test_provisioned_datasource_uid() -> None:
    assert provisioned_datasource_uids() == {DATASOURCE_UID}


def _variables() -> dict[str, dict[str, Any]]:
    return {variable["name"]: variable for variable in _dashboard()["templating"]["list"]}


def test_the_dashboard_has_datasource_job_and_instance_variables() -> None:
    variables = _variables()
    assert set(variables) == {"datasource", "job", "instance"}
    datasource = variables["datasource"]
    assert (datasource["type"], datasource["query"]) == ("datasource", "prometheus")
    assert datasource["current"]["value"] in provisioned_datasource_uids()
    job, instance = variables["job"], variables["instance"]
    assert job["definition"] == "label_values(relationships_build_info, job)"
    assert job["current"]["value"] == JOB
    assert instance["definition"] == 'label_values(relationships_build_info{job="$job"}, instance)'
    assert instance["includeAll"]
    assert instance["multi"]
    assert instance["allValue"] == ".*"
    for variable in (job, instance):
        assert variable["datasource"]["uid"] == "${datasource}"


def test_every_panel_queries_the_datasource_variable() -> None:
    panels = dashboard_panels()
    assert len(panels) >= 10
    for panel in panels:
        assert panel["datasource"] == {"type": "prometheus", "uid": "${datasource}"}, panel["title"]
        assert panel["targets"], f"panel {panel['title']!r} has no query"
        for target in panel["targets"]:
            assert target.get("datasource", panel["datasource"]) == panel["datasource"], panel["title"]


def test_panel_ids_and_ref_ids_are_unique() -> None:
    panels = dashboard_panels()
    rows = [p for p in _dashboard()["panels"] if p.get("type") == "row"]
    ids = [p["id"] for p in panels + rows]
    assert len(ids) == len(set(ids))
    for panel in panels:
        refs = [t["refId"] for t in panel["targets"]]
        assert len(refs) == len(set(refs)), panel["title"]


# A metric selector of a query: a metric name, then its label matchers if any.
_SELECTOR = re.compile(r"(?<![A-Za-z0-9_:])((?:relationships|process)_[a-z0-9_]+)(\{[^}]*\})?")


def test_every_dashboard_selector_is_filtered_by_job_and_instance() -> None:
    """Only `$job` and `$instance` appear, and each selector carries both, so the pickers filter every panel."""
    for title, expr in dashboard_targets():
        assert set(re.findall(r"\$(\w+)", expr)) == {"job", "instance"}, f"panel {title!r}: {expr}"
        for name, matchers in _SELECTOR.findall(expr):
            assert 'job="$job"' in matchers, f"{title!r}: {name}"
            assert 'instance=~"$instance"' in matchers, f"{title!r}: {name}"


def test_the_variables_substitute_to_plain_promql() -> None:
    for (_, raw), (_, expr) in zip(dashboard_targets(), dashboard_targets(DASHBOARD_VARIABLES), strict=True):
        assert "$" not in expr
        assert 'job="relationships"' in expr, raw
        assert 'instance=~".*"' in expr, raw


def test_dashboard_covers_the_required_views() -> None:
    selector = re.escape('{job="relationships", instance=~".*"}')
    exprs = "\n".join(re.sub(selector, "", expr) for _, expr in dashboard_targets(DASHBOARD_VARIABLES))
    for needle in (
        "sum by (topic, type) (rate(relationships_events_consumed_total[1m]))",
        "relationships_events_applied_total",
        "relationships_consumer_lag_records",
        "relationships_watermark_lag_seconds",
        "relationships_event_time_lag_seconds",
        "sum by (kind) (rate(relationships_alerts_published_total[5m])) * 60",
        "relationships_invalid_events_total",
        "relationships_dead_letters_total",
        "relationships_rows",
        "relationships_held_updates",
        "relationships_timer_index_size",
        "histogram_quantile(0.5, sum by (le, stage) (rate(relationships_processing_seconds_bucket[5m])))",
        "histogram_quantile(0.99, sum by (le, stage) (rate(relationships_processing_seconds_bucket[5m])))",
        "increase(relationships_rebalances_total[15m])",
        "relationships_recovering_partitions",
        "rate(relationships_recovered_rows_total[5m])",
        "rate(relationships_changelog_records_restored_total[5m])",
        "relationships_duplicate_events_total",
        "relationships_late_events_total",
        "relationships_self_interactions_total",
        "relationships_build_info",
        "relationships_established_rows",
        "relationships_stalled_partitions",
        "relationships_producer_send_errors_total",
        "process_resident_memory_bytes",
        "sum by (instance, component) (relationships_rocksdb_memory_bytes)",
    ):
        assert needle in exprs, needle


# --- Prometheus config and rules ---


def test_scrape_job_of_both_configs_is_the_one_the_rules_select() -> None:
    port = Settings.model_fields["web_port"].default
    for path in PROMETHEUS_CONFIGS:
        config = load_yaml(path)
        assert config["global"]["scrape_interval"] == "5s"
        assert config["rule_files"] == ["rules/*.yml"]
        jobs = {job["job_name"]: job for job in config["scrape_configs"]}
        targets = [t for sc in jobs[JOB]["static_configs"] for t in sc["targets"]]
        assert targets
        assert all(t.endswith(f":{port}") for t in targets), targets
    assert load_yaml(PROMETHEUS_CONFIGS[0])["scrape_configs"][0]["static_configs"][0]["targets"] == [
        f"127.0.0.1:{port}"
    ]
    for rule in alert_rules():
        for selected in re.findall(r'job="([^"]*)"', rule["expr"]):
            assert selected == JOB, rule["alert"]


def test_the_alerts_are_there() -> None:
    assert {rule["alert"] for rule in alert_rules()} == ALERTS


def test_the_recording_rules_follow_the_naming_convention() -> None:
    records = [name for name, _ in rule_exprs() if name not in ALERTS]
    assert "relationships:events_consumed:rate1m" in records
    assert all(re.fullmatch(r"relationships:[a-z0-9_]+:[a-z0-9_]+", name) for name in records), records


def _runbook_anchors() -> set[str]:
    headings = re.findall(r"^#+\s+(.+?)\s*$", RUNBOOK.read_text(encoding="utf-8"), flags=re.MULTILINE)
    return {re.sub(r"[^a-z0-9 -]", "", h.lower()).replace(" ", "-") for h in headings}


@pytest.mark.parametrize("rule", alert_rules(), ids=lambda rule: rule["alert"])
def test_alert_has_for_severity_and_annotations(rule: dict[str, Any]) -> None:
    assert re.fullmatch(r"\d+[smh]", str(rule["for"])), rule.get("for")
    assert rule["labels"]["severity"] in SEVERITIES
    annotations = rule["annotations"]
    assert annotations["summary"].strip()
    assert annotations["description"].strip()
    page, _, anchor = annotations["runbook_url"].partition("#")
    assert (REPO / page).resolve() == RUNBOOK.resolve()
    assert anchor in _runbook_anchors(), f"no section #{anchor} in {RUNBOOK.name}"


def _alert_cases() -> dict[str, tuple[int, int]]:
    """alertname -> (cases expecting it to fire, cases expecting no alert) in the promtool tests."""
    cases: dict[str, list[int]] = {}
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                counts = cases.setdefault(case["alertname"], [0, 0])
                counts[0 if case.get("exp_alerts") else 1] += 1
    return {name: (fires, quiet) for name, (fires, quiet) in cases.items()}


def test_every_alert_has_firing_and_quiet_unit_tests() -> None:
    cases = _alert_cases()
    for alert in ALERTS:
        fires, quiet = cases.get(alert, (0, 0))
        assert fires >= 1, f"{alert}: no promtool case where it fires"
        assert quiet >= 1, f"{alert}: no promtool case where it stays quiet"


def test_firing_cases_match_labels_and_annotations() -> None:
    for path in RULE_TESTS:
        for test in load_yaml(path)["tests"]:
            for case in test.get("alert_rule_test", []):
                for alert in case.get("exp_alerts") or []:
                    assert alert["exp_labels"]["severity"] in SEVERITIES, test["name"]
                    assert {"summary", "description", "runbook_url"} <= set(alert["exp_annotations"])


# --- promtool ---


def _promtool(*args: str, cwd: Path = REPO) -> subprocess.CompletedProcess[str]:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's `prometheus` package"
    return subprocess.run(
        [promtool, *args], capture_output=True, text=True, timeout=120, cwd=cwd, check=False
    )


def _ok(done: subprocess.CompletedProcess[str]) -> None:
    assert done.returncode == 0, f"{' '.join(done.args)}\n{done.stdout}\n{done.stderr}"


def test_promtool_check_config() -> None:
    _ok(_promtool("check", "config", "deploy/prometheus/prometheus.yml"))


def test_promtool_check_compose_config(tmp_path: Path) -> None:
    """The Compose config, laid out as its container sees it (rules/ beside it)."""
    shutil.copy(PROMETHEUS_CONFIGS[1], tmp_path / "prometheus.yml")
    shutil.copytree(REPO / "deploy/prometheus/rules", tmp_path / "rules")
    done = _promtool("check", "config", "prometheus.yml", cwd=tmp_path)
    _ok(done)
    assert "rules/relationships.yml" in done.stdout + done.stderr


def test_promtool_check_rules() -> None:
    assert RULE_FILES
    _ok(_promtool("check", "rules", *(str(path.relative_to(REPO)) for path in RULE_FILES)))


def test_promtool_test_rules() -> None:
    assert RULE_TESTS
    done = _promtool("test", "rules", *(str(path.relative_to(REPO)) for path in RULE_TESTS))
    _ok(done)
    assert "SUCCESS" in done.stdout + done.stderr


def test_promtool_test_rules_can_fail(tmp_path: Path) -> None:
    """The unit tests notice a broken rule: a stuck watermark that never alerts."""
    broken = (RULE_FILES[0]).read_text(encoding="utf-8").replace(">= 590", ">= 100000")
    assert broken != RULE_FILES[0].read_text(encoding="utf-8")
    (tmp_path / "rules").mkdir()
    (tmp_path / "rules" / RULE_FILES[0].name).write_text(broken, encoding="utf-8")
    (tmp_path / "tests").mkdir()
    for path in RULE_TESTS:
        shutil.copy(path, tmp_path / "tests" / path.name)
    done = _promtool("test", "rules", *(f"tests/{path.name}" for path in RULE_TESTS), cwd=tmp_path)
    assert done.returncode != 0
    assert "RelationshipsWatermarkStuck" in done.stdout + done.stderr


def test_promtool_parses_every_dashboard_expr(tmp_path: Path) -> None:
    """Each dashboard query, variables substituted, as a recording rule passes `promtool check rules`."""
    targets = dashboard_targets(DASHBOARD_VARIABLES)
    rules = [
        {"record": f"dashboard:expr_{index}:check", "expr": expr} for index, (_, expr) in enumerate(targets)
    ]
    path = tmp_path / "dashboard_exprs.yml"
    path.write_text(yaml.safe_dump({"groups": [{"name": "dashboard", "rules": rules}]}), encoding="utf-8")
    done = _promtool("check", "rules", str(path))
    _ok(done)
    assert f"{len(targets)} rules found" in done.stdout


def test_promtool_check_metrics_accepts_the_exposition() -> None:
    registry = CollectorRegistry()
    metrics = Metrics(registry)
    metrics.consumed.labels(topic="interactions.likes", type="like").inc()
    metrics.invalid.labels(reason="not_json").inc()
    metrics.alerts.labels(kind="dormant").inc()
    metrics.rows.set(1)
    metrics.watermark_lag.labels(partition="0").set(60)
    metrics.event_time_lag.labels(partition="0").set(60)
    metrics.processing.labels(stage="ingest").observe(0.01)
    metrics.consumer_lag.labels(topic="interactions.likes", partition="0").set(0)
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's `prometheus` package"
    done = subprocess.run(
        [promtool, "check", "metrics"],
        input=generate_latest(registry),
        capture_output=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 0, done.stdout.decode() + done.stderr.decode()
