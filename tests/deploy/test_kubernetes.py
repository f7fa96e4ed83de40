"""Kubernetes manifests: valid objects (kubernetes-validate), and the operator objects agree with the rest."""

from __future__ import annotations

import importlib.util
import shutil
import subprocess
from pathlib import Path
from types import ModuleType
from typing import Any

import kubernetes_validate
import pytest
import yaml

from tests.deploy.support import KUBERNETES, RULE_FILES, kubernetes_objects, load_yaml

KUBERNETES_VERSION = "1.33"
"""The oldest Kubernetes version the manifests are validated against (policy/v1 PDBs need 1.21)."""
OPERATOR_KINDS = {"ServiceMonitor", "PrometheusRule", "ScaledObject"}
"""Kinds of the Prometheus Operator and KEDA: kubernetes-validate has no schema for custom resources."""


def _objects() -> list[dict[str, Any]]:
    return kubernetes_objects(optional=True)


def _one(kind: str) -> dict[str, Any]:
    (found,) = [obj for obj in _objects() if obj["kind"] == kind]
    return found


def _generator() -> ModuleType:
    spec = importlib.util.spec_from_file_location("prometheusrule", KUBERNETES / "prometheusrule.py")
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.mark.parametrize(
    "obj",
    [obj for obj in _objects() if obj["kind"] not in OPERATOR_KINDS],
    ids=lambda obj: f"{obj['kind']}/{obj['metadata']['name']}",
)
def test_every_built_in_object_is_valid_for_kubernetes(obj: dict[str, Any]) -> None:
    kubernetes_validate.validate(obj, KUBERNETES_VERSION, strict=True)


def test_the_validator_rejects_an_invalid_object() -> None:
    broken = yaml.safe_load(yaml.safe_dump(_one("PodDisruptionBudget")))
    broken["spec"]["maxUnavailabel"] = 1
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(broken, KUBERNETES_VERSION, strict=True)


def test_the_expected_kinds_are_there() -> None:
    assert {obj["kind"] for obj in _objects()} == {
        "ConfigMap",
        "Service",
        "StatefulSet",
        "PodDisruptionBudget",
        *OPERATOR_KINDS,
    }


def test_the_pod_disruption_budget_covers_the_workers_one_at_a_time() -> None:
    budget, statefulset = _one("PodDisruptionBudget"), _one("StatefulSet")
    assert budget["spec"]["selector"]["matchLabels"] == statefulset["spec"]["selector"]["matchLabels"]
    assert budget["spec"]["maxUnavailable"] == 1
    assert statefulset["spec"]["replicas"] > 1


def test_each_pod_is_a_static_member_named_after_itself() -> None:
    (container,) = _one("StatefulSet")["spec"]["template"]["spec"]["containers"]
    (instance,) = [item for item in container["env"] if item["name"] == "STREAMS_INSTANCE_ID"]
    assert instance["valueFrom"] == {"fieldRef": {"fieldPath": "metadata.name"}}


def test_the_service_monitor_scrapes_the_workers_service_as_the_job_the_rules_select() -> None:
    monitor, service = _one("ServiceMonitor"), _one("Service")
    labels = service["metadata"]["labels"]
    assert monitor["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert labels[monitor["spec"]["jobLabel"]] == "relationships"
    port_names = {port["name"] for port in service["spec"]["ports"]}
    for endpoint in monitor["spec"]["endpoints"]:
        assert endpoint["port"] in port_names
        assert endpoint["path"] == "/metrics"


def test_the_prometheus_rule_is_generated_from_the_rule_files() -> None:
    generator = _generator()
    assert (KUBERNETES / "prometheusrule.yaml").read_text(encoding="utf-8") == generator.render(), (
        "deploy/kubernetes/prometheusrule.yaml is stale: run `make manifests`"
    )
    groups = [group for path in RULE_FILES for group in load_yaml(path)["groups"]]
    assert _one("PrometheusRule")["spec"]["groups"] == groups


def test_the_prometheus_rule_passes_promtool(tmp_path: Path) -> None:
    promtool = shutil.which("promtool")
    assert promtool, "promtool is not on PATH: install Debian's `prometheus` package"
    rules = tmp_path / "rules.yml"
    rules.write_text(yaml.safe_dump({"groups": _one("PrometheusRule")["spec"]["groups"]}), encoding="utf-8")
    done = subprocess.run(
        [promtool, "check", "rules", str(rules)], capture_output=True, text=True, check=False
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_the_keda_scaler_follows_the_consumer_group_and_partitions() -> None:
    scaled, statefulset = _one("ScaledObject"), _one("StatefulSet")
    config = _one("ConfigMap")["data"]
    target = scaled["spec"]["scaleTargetRef"]
    assert (target["kind"], target["name"]) == ("StatefulSet", statefulset["metadata"]["name"])
    (trigger,) = scaled["spec"]["triggers"]
    assert trigger["type"] == "kafka"
    assert trigger["metadata"]["consumerGroup"] == config["STREAMS_APP_ID"]
    assert trigger["metadata"]["bootstrapServers"] == config["STREAMS_BROKER"].removeprefix("kafka://")
    assert 1 <= scaled["spec"]["minReplicaCount"] <= scaled["spec"]["maxReplicaCount"]
    assert scaled["spec"]["maxReplicaCount"] <= int(config["STREAMS_PARTITIONS"])


def test_the_state_query_token_comes_from_a_mounted_secret() -> None:
    pod = _one("StatefulSet")["spec"]["template"]["spec"]
    (container,) = pod["containers"]
    (token_file,) = [item["value"] for item in container["env"] if item["name"] == "STREAMS_WEB_TOKEN_FILE"]
    assert not [item for item in container["env"] if item["name"] == "STREAMS_WEB_TOKEN"]
    mounts = {mount["name"]: mount for mount in container["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    (name,) = [n for n, mount in mounts.items() if token_file.startswith(mount["mountPath"] + "/")]
    assert mounts[name]["readOnly"] is True
    secret = volumes[name]["secret"]
    assert secret["secretName"] == "relationships-web"
    assert [item["path"] for item in secret["items"]] == [token_file.rsplit("/", 1)[1]]
