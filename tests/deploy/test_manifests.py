"""The ways of running the worker (container, Kubernetes, systemd, Compose) agree with the code and each other."""

from __future__ import annotations

import http.server
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Any

import pytest
import yaml
from pydantic import ValidationError

from streams.settings import Settings
from tests.deploy.support import (
    COMPOSE,
    CONTAINERFILE,
    ENV_FILE,
    MANIFEST_DIRS,
    REPO,
    SYSTEMD_UNIT,
    Instruction,
    container_instructions,
    final_stage,
    kubernetes_objects,
    load_yaml,
    manifest_files,
    read_env_file,
    read_unit,
    setting_names,
    settings_from,
    settings_variables,
    unit_values,
    yaml_files,
)

DEFAULT_WEB_PORT: int = Settings.model_fields["web_port"].default
COMPOSE_SERVICES = {"kafka", "topics-init", "worker", "prometheus", "grafana"}


# --- every file ---


def test_the_manifest_folders_exist() -> None:
    missing = [str(folder.relative_to(REPO)) for folder in MANIFEST_DIRS if not folder.is_dir()]
    assert not missing


@pytest.mark.parametrize("path", yaml_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_yaml_parses_to_a_mapping(path: Path) -> None:
    documents = [doc for doc in yaml.safe_load_all(path.read_text(encoding="utf-8")) if doc is not None]
    assert documents, f"{path} is empty"
    assert all(isinstance(doc, dict) for doc in documents)


def test_every_expected_yaml_file_is_there() -> None:
    names = {str(path.relative_to(REPO)) for path in yaml_files()}
    expected = {
        "deploy/prometheus/prometheus.yml",
        "deploy/prometheus/rules/relationships.yml",
        "deploy/prometheus/tests/relationships_test.yml",
        "deploy/grafana/provisioning/datasources/prometheus.yaml",
        "deploy/grafana/provisioning/dashboards/relationships.yaml",
        "deploy/kubernetes/statefulset.yaml",
        "deploy/kubernetes/service.yaml",
        "deploy/kubernetes/configmap.yaml",
        "deploy/compose/compose.yaml",
        "deploy/compose/prometheus.yml",
    }
    assert expected <= names


def test_setting_name_extractor() -> None:
    text = "STREAMS_WEB_PORT=6066 and ${STREAMS_BROKER}; `STREAMS_` alone, XSTREAMS_NO, STREAMS_TOPIC_*"
    assert setting_names(text) == {"STREAMS_WEB_PORT", "STREAMS_BROKER", "STREAMS_TOPIC"}


@pytest.mark.parametrize(
    "env", [{"STREAMS_WEB_PORT": "not-a-port"}, {"STREAMS_CLOCK": "wall"}, {"STREAMS_NO_SUCH_FIELD": "1"}]
)
def test_settings_from_rejects_bad_values(env: dict[str, str]) -> None:
    with pytest.raises(ValidationError):
        settings_from(env)


@pytest.mark.parametrize("path", manifest_files(), ids=lambda p: str(p.relative_to(REPO)))
def test_every_streams_variable_is_a_setting(path: Path) -> None:
    unknown = setting_names(path.read_text(encoding="utf-8")) - settings_variables()
    assert not unknown, f"not fields of streams.settings.Settings: {sorted(unknown)}"


def test_the_manifests_do_set_settings() -> None:
    """Guards the test above against finding nothing at all."""
    used = set().union(*(setting_names(p.read_text(encoding="utf-8")) for p in manifest_files()))
    assert {"STREAMS_BROKER", "STREAMS_WEB_HOST", "STREAMS_WEB_PORT", "STREAMS_DATA_DIR"} <= used


def _commands() -> list[list[str]]:
    """Every `python -m streams ...` argument list some manifest runs."""
    stage = final_stage(container_instructions())
    compose = load_yaml(COMPOSE)["services"]
    statefulset = _statefulset()
    exec_start = read_unit(SYSTEMD_UNIT)["Service"]["ExecStart"].split()
    return [
        _only(stage, "CMD").exec_form(),
        compose["topics-init"]["command"],
        compose["worker"]["command"],
        _container(statefulset)["args"],
        exec_start[exec_start.index("streams") + 1 :],
    ]


def test_every_command_run_by_a_manifest_exists() -> None:
    commands = {tuple(command) for command in _commands()}
    assert ("worker",) in commands
    assert ("topics", "create") in commands
    for command in sorted(commands):
        done = subprocess.run(
            [sys.executable, "-m", "streams", *command, "--help"],
            capture_output=True,
            text=True,
            timeout=60,
            cwd=REPO,
            check=False,
        )
        assert done.returncode == 0, f"python -m streams {' '.join(command)}: {done.stderr}"


# --- Containerfile ---


def _only(stage: list[Instruction], keyword: str) -> Instruction:
    found = [item for item in stage if item.keyword == keyword]
    assert len(found) == 1, f"expected one {keyword} in the final stage, found {len(found)}"
    return found[0]


def _env(stage: list[Instruction]) -> dict[str, str]:
    env: dict[str, str] = {}
    for item in stage:
        if item.keyword == "ENV":
            env.update(item.pairs())
    return env


def test_containerfile_bases_every_stage_on_python_311_slim() -> None:
    bases = [item.args.split()[0] for item in container_instructions() if item.keyword == "FROM"]
    assert bases
    assert all(base == "python:3.11-slim" for base in bases)


def test_containerfile_entrypoint_and_command() -> None:
    stage = final_stage(container_instructions())
    assert _only(stage, "ENTRYPOINT").exec_form() == ["python", "-m", "streams"]
    assert _only(stage, "CMD").exec_form() == ["worker"]


def test_containerfile_runs_as_a_non_root_user() -> None:
    user = _only(final_stage(container_instructions()), "USER").args.split(":")[0]
    assert user not in {"", "root", "0"}
    assert user.isdigit(), "a numeric USER lets Kubernetes check runAsNonRoot"
    assert user == str(_statefulset()["spec"]["template"]["spec"]["securityContext"]["runAsUser"])


def test_containerfile_serves_the_web_port_on_all_addresses() -> None:
    stage = final_stage(container_instructions())
    env = _env(stage)
    assert env["STREAMS_WEB_HOST"] == "0.0.0.0"
    port = int(env.get("STREAMS_WEB_PORT", DEFAULT_WEB_PORT))
    assert _only(stage, "EXPOSE").args.split() == [str(port)]


def test_containerfile_keeps_the_tables_on_a_volume() -> None:
    stage = final_stage(container_instructions())
    data_dir = _env(stage)["STREAMS_DATA_DIR"]
    volume = _only(stage, "VOLUME").args
    volumes = Instruction("VOLUME", volume).exec_form() if volume.startswith("[") else volume.split()
    assert volumes == [data_dir]


def test_containerfile_env_is_valid_settings() -> None:
    env = {k: v for k, v in _env(final_stage(container_instructions())).items() if k.startswith("STREAMS_")}
    assert env
    settings_from(env)


def test_containerfile_copies_what_exists() -> None:
    for item in container_instructions():
        if item.keyword != "COPY" or item.args.startswith("--from"):
            continue
        sources = item.args.split()[:-1]
        assert sources
        assert any((REPO / source).exists() for source in sources), item.args
        assert (REPO / sources[0]).exists(), f"{sources[0]} is not in the build context"


def _healthcheck_code() -> list[str]:
    args = _only(final_stage(container_instructions()), "HEALTHCHECK").args
    assert " CMD " in f" {args} "
    command = Instruction("CMD", args.split("CMD", 1)[1].strip()).exec_form()
    assert command[:2] == ["python", "-c"]
    return command[2:]


class _Health(http.server.BaseHTTPRequestHandler):
    status = 200
    paths: list[str] = []

    def do_GET(self) -> None:
        type(self).paths.append(self.path)
        self.send_response(self.status if self.path == "/healthz" else 404)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:
        return


@pytest.fixture
def health_server() -> Iterator[tuple[http.server.HTTPServer, type[_Health]]]:
    handler = type("Health", (_Health,), {"status": 200, "paths": []})
    server = http.server.HTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server, handler
    finally:
        server.shutdown()
        server.server_close()
        thread.join(5)


@pytest.mark.parametrize(("status", "healthy"), [(200, True), (503, False)])
def test_containerfile_healthcheck_asks_healthz(
    health_server: tuple[http.server.HTTPServer, type[_Health]], status: int, healthy: bool
) -> None:
    server, handler = health_server
    handler.status = status
    port = server.server_address[1]
    done = subprocess.run(
        [sys.executable, "-c", *_healthcheck_code()],
        env={"STREAMS_WEB_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert handler.paths == ["/healthz"]
    assert (done.returncode == 0) is healthy


def test_containerfile_healthcheck_fails_when_nothing_listens(
    health_server: tuple[http.server.HTTPServer, type[_Health]],
) -> None:
    server, _ = health_server
    port = server.server_address[1]
    server.shutdown()
    server.server_close()
    done = subprocess.run(
        [sys.executable, "-c", *_healthcheck_code()],
        env={"STREAMS_WEB_PORT": str(port)},
        capture_output=True,
        timeout=30,
        check=False,
    )
    assert done.returncode != 0


# --- Kubernetes ---


def _object(kind: str, name: str | None = None) -> dict[str, Any]:
    found = [
        obj
        for obj in kubernetes_objects()
        if obj["kind"] == kind and (name is None or obj["metadata"]["name"] == name)
    ]
    assert len(found) == 1, f"expected one {kind} {name or ''}, found {len(found)}"
    return found[0]


def _statefulset() -> dict[str, Any]:
    return _object("StatefulSet")


def _container(statefulset: dict[str, Any]) -> dict[str, Any]:
    containers = statefulset["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    container: dict[str, Any] = containers[0]
    return container


def _effective_env(container: dict[str, Any]) -> dict[str, str]:
    """The container's environment: ConfigMaps of envFrom, then env values (secrets left out)."""
    env: dict[str, str] = {}
    for source in container.get("envFrom", []):
        config_map = _object("ConfigMap", source["configMapRef"]["name"])
        env.update({k: str(v) for k, v in config_map["data"].items()})
    for item in container.get("env", []):
        if "value" in item:
            env[item["name"]] = str(item["value"])
    return env


def _port_number(container: dict[str, Any], port: int | str) -> int:
    if isinstance(port, int):
        return port
    numbers = [p["containerPort"] for p in container["ports"] if p.get("name") == port]
    assert numbers, f"no container port named {port}"
    return int(numbers[0])


def test_kubernetes_objects_have_api_version_kind_and_name() -> None:
    objects = kubernetes_objects()
    assert {obj["kind"] for obj in objects} >= {"StatefulSet", "Service", "ConfigMap"}
    for obj in objects:
        assert obj["apiVersion"]
        assert obj["metadata"]["name"]


def test_statefulset_scales_by_replicas() -> None:
    spec = _statefulset()["spec"]
    assert isinstance(spec["replicas"], int)
    assert spec["replicas"] >= 1
    selector = spec["selector"]["matchLabels"]
    labels = spec["template"]["metadata"]["labels"]
    assert selector.items() <= labels.items()


def test_statefulset_probes_match_the_web_port() -> None:
    container = _container(_statefulset())
    web_port = int(_effective_env(container).get("STREAMS_WEB_PORT", DEFAULT_WEB_PORT))
    liveness = container["livenessProbe"]["httpGet"]
    readiness = container["readinessProbe"]["httpGet"]
    assert liveness["path"] == "/healthz"
    assert readiness["path"] == "/readyz"
    assert _port_number(container, liveness["port"]) == web_port
    assert _port_number(container, readiness["port"]) == web_port
    if "startupProbe" in container:
        startup = container["startupProbe"]["httpGet"]
        assert startup["path"] == "/healthz"
        assert _port_number(container, startup["port"]) == web_port


def test_statefulset_binds_the_web_port_on_all_addresses() -> None:
    env = _effective_env(_container(_statefulset()))
    assert env["STREAMS_WEB_HOST"] == "0.0.0.0"


def test_statefulset_keeps_the_tables_on_a_claimed_volume() -> None:
    statefulset = _statefulset()
    container = _container(statefulset)
    data_dir = _effective_env(container)["STREAMS_DATA_DIR"]
    claims = {claim["metadata"]["name"] for claim in statefulset["spec"]["volumeClaimTemplates"]}
    mounted = {mount["name"] for mount in container["volumeMounts"] if mount["mountPath"] == data_dir}
    assert mounted & claims, f"no volumeClaimTemplate mounted at {data_dir}"


def test_statefulset_environment_is_valid_settings() -> None:
    container = _container(_statefulset())
    env = _effective_env(container)
    assert set(env) <= settings_variables()
    settings = settings_from(env)
    assert settings.broker.startswith("kafka://")
    secrets = [item for item in container.get("env", []) if "valueFrom" in item]
    assert all(item["name"] in settings_variables() for item in secrets)


def test_statefulset_replicates_its_topics_keeps_standbys_and_is_a_static_member_by_pod_name() -> None:
    container = _container(_statefulset())
    settings = settings_from(_effective_env(container))
    assert (settings.replication_factor, settings.min_insync_replicas) == (3, 2)
    assert settings.standby_replicas >= 1
    instance_ids = [item for item in container["env"] if item["name"] == "STREAMS_INSTANCE_ID"]
    assert instance_ids == [
        {"name": "STREAMS_INSTANCE_ID", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}
    ]


def test_statefulset_runs_non_root_with_resources_and_grace() -> None:
    pod = _statefulset()["spec"]["template"]["spec"]
    container = _container(_statefulset())
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert pod["securityContext"]["runAsUser"] != 0
    assert container["securityContext"]["allowPrivilegeEscalation"] is False
    assert pod["terminationGracePeriodSeconds"] >= 30
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])
    assert "memory" in container["resources"]["limits"]


def test_statefulset_pods_are_annotated_for_prometheus() -> None:
    template = _statefulset()["spec"]["template"]
    container = _container(_statefulset())
    annotations = template["metadata"]["annotations"]
    web_port = int(_effective_env(container).get("STREAMS_WEB_PORT", DEFAULT_WEB_PORT))
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == web_port
    assert annotations["prometheus.io/path"] == "/metrics"


def test_service_is_the_headless_service_of_the_statefulset() -> None:
    statefulset = _statefulset()
    service = _object("Service", statefulset["spec"]["serviceName"])
    assert service["spec"]["clusterIP"] == "None"
    labels = statefulset["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= labels.items()
    container = _container(statefulset)
    for port in service["spec"]["ports"]:
        target = port.get("targetPort", port["port"])
        assert _port_number(container, target) == port["port"]


# --- systemd ---


def test_systemd_unit_sections_and_worker_command() -> None:
    unit = read_unit(SYSTEMD_UNIT)
    assert {"Unit", "Service", "Install"} <= set(unit.sections())
    exec_start = unit["Service"]["ExecStart"].split()
    assert exec_start[0].startswith("/"), "systemd needs an absolute ExecStart"
    assert exec_start[-3:] == ["-m", "streams", "worker"]
    assert unit["Install"]["WantedBy"]
    assert unit["Service"]["Restart"] in {"on-failure", "always"}


def test_systemd_unit_reads_the_env_file_and_state_directory() -> None:
    service = read_unit(SYSTEMD_UNIT)["Service"]
    env_files = unit_values(SYSTEMD_UNIT, "Service", "EnvironmentFile")
    required = [PurePosixPath(f).name for f in env_files if not f.startswith("-")]
    assert required == [ENV_FILE.name], "the example env file is the one required EnvironmentFile"
    data_dir = read_env_file(ENV_FILE)["STREAMS_DATA_DIR"]
    assert data_dir == f"/var/lib/{service['StateDirectory']}"
    assert service["WorkingDirectory"] == data_dir
    environment = dict(item.split("=", 1) for item in unit_values(SYSTEMD_UNIT, "Service", "Environment"))
    assert environment.get("STREAMS_DATA_DIR", data_dir) == data_dir


def test_systemd_env_file_is_valid_settings_without_secrets() -> None:
    env = read_env_file(ENV_FILE)
    assert env
    assert set(env) <= settings_variables()
    assert "STREAMS_BROKER_SASL_PASSWORD" not in env
    assert settings_from(env).web_host == "127.0.0.1"


# --- Compose ---


def _compose_services() -> dict[str, Any]:
    services: dict[str, Any] = load_yaml(COMPOSE)["services"]
    return services


def _depends_on(service: dict[str, Any]) -> dict[str, str]:
    depends = service.get("depends_on", {})
    if isinstance(depends, list):
        return dict.fromkeys(depends, "service_started")
    return {name: spec.get("condition", "service_started") for name, spec in depends.items()}


def test_compose_has_the_five_services() -> None:
    assert set(_compose_services()) >= COMPOSE_SERVICES


def test_compose_kafka_is_a_single_kraft_node() -> None:
    kafka = _compose_services()["kafka"]
    assert kafka["image"] == "apache/kafka:4.0.0"
    env = kafka["environment"]
    assert set(env["KAFKA_PROCESS_ROLES"].split(",")) == {"broker", "controller"}
    assert str(env["KAFKA_CONTROLLER_QUORUM_VOTERS"]).startswith(f"{env['KAFKA_NODE_ID']}@kafka:")
    assert "healthcheck" in kafka


def test_compose_worker_waits_for_kafka_and_topics() -> None:
    services = _compose_services()
    worker = _depends_on(services["worker"])
    assert worker["kafka"] == "service_healthy"
    assert worker["topics-init"] == "service_completed_successfully"
    assert _depends_on(services["topics-init"])["kafka"] == "service_healthy"
    assert services["topics-init"]["command"] == ["topics", "create"]


def test_compose_builds_the_worker_from_the_containerfile() -> None:
    for name in ("worker", "topics-init"):
        build = _compose_services()[name]["build"]
        context = (COMPOSE.parent / build["context"]).resolve()
        assert (context / build["dockerfile"]).resolve() == CONTAINERFILE.resolve()
        assert (context / "pyproject.toml").is_file()


def test_compose_worker_settings_match_its_port_volume_and_broker() -> None:
    services = _compose_services()
    worker = services["worker"]
    env = worker["environment"]
    settings = settings_from(env)
    assert settings.web_host == "0.0.0.0"
    assert settings.broker == "kafka://kafka:9092"
    assert settings_from(services["topics-init"]["environment"]).broker == settings.broker
    published = [str(port).rsplit(":", 1)[-1] for port in worker["ports"]]
    assert str(settings.web_port) in published
    targets = [str(volume).split(":")[1] for volume in worker["volumes"]]
    assert str(settings.data_dir) in targets


def _bind_sources(service: dict[str, Any]) -> dict[str, Path]:
    """Container path -> host path of the service's bind mounts (relative sources)."""
    mounts: dict[str, Path] = {}
    for volume in service.get("volumes", []):
        source, target = str(volume).split(":")[:2]
        if source.startswith("."):
            mounts[target] = (COMPOSE.parent / source).resolve()
    return mounts


def test_compose_bind_mounts_exist() -> None:
    for name, service in _compose_services().items():
        for target, source in _bind_sources(service).items():
            assert source.exists(), f"{name}: {source} (mounted at {target}) does not exist"


def test_compose_prometheus_gets_its_config_and_the_rules() -> None:
    prometheus = _compose_services()["prometheus"]
    mounts = _bind_sources(prometheus)
    config = mounts["/etc/prometheus/prometheus.yml"]
    assert config == (COMPOSE.parent / "prometheus.yml").resolve()
    assert mounts["/etc/prometheus/rules"] == (REPO / "deploy/prometheus/rules").resolve()
    scrape = load_yaml(config)["scrape_configs"]
    targets = [t for job in scrape for sc in job["static_configs"] for t in sc["targets"]]
    worker_port = settings_from(_compose_services()["worker"]["environment"]).web_port
    assert f"worker:{worker_port}" in targets


def test_compose_grafana_gets_provisioning_and_dashboards() -> None:
    grafana = _compose_services()["grafana"]
    mounts = _bind_sources(grafana)
    assert mounts["/etc/grafana/provisioning"] == (REPO / "deploy/grafana/provisioning").resolve()
    provider = load_yaml(REPO / "deploy/grafana/provisioning/dashboards/relationships.yaml")
    path = provider["providers"][0]["options"]["path"]
    assert mounts[path] == (REPO / "deploy/grafana/dashboards").resolve()
