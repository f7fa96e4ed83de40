"""A local broker of its own with an mTLS (SSL) and a SASL_SSL (SCRAM-SHA-512) listener, certificates made here."""

from __future__ import annotations

import os
import subprocess
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from kafka import KafkaAdminClient

import tests.service.conftest as service_conftest
import tests.service.test_faults as service_faults
from tests.service.conftest import REPO, _free_port, worker_factory
from tests.service.test_faults import KAFKA_SH, wait_until

__all__ = ["TlsBroker", "observed_over_plaintext", "tls_broker", "worker_factory"]

STORE_PASSWORD = "tls-test-store"
"""Password of the broker's keystore and truststore (test material only)."""
SCRAM_USER = "streams-svc"
SCRAM_PASSWORD = "scram-test-secret"


@dataclass(frozen=True)
class TlsBroker:
    """Where the test broker listens and the client material it accepts."""

    directory: Path
    plaintext: str
    """`kafka://` URL of the PLAINTEXT listener (readiness probe, inter-broker; the tests' observer)."""
    ssl: str
    """`kafka://` URL of the SSL listener, which requires a client certificate (`ssl.client.auth=required`)."""
    sasl_ssl: str
    """`kafka://` URL of the SASL_SSL listener (SCRAM-SHA-512; no client certificate asked)."""
    cafile: Path
    client_certfile: Path
    client_keyfile: Path

    def mtls(self) -> dict[str, object]:
        """Settings fields of a client of the SSL listener with its certificate (for `deployment_env`)."""
        return {
            "broker": self.ssl,
            "broker_security_protocol": "SSL",
            "broker_ssl_cafile": self.cafile,
            "broker_ssl_certfile": self.client_certfile,
            "broker_ssl_keyfile": self.client_keyfile,
        }

    def scram(self, password: str = SCRAM_PASSWORD) -> dict[str, object]:
        """Settings fields of a SCRAM-SHA-512 client of the SASL_SSL listener (for `deployment_env`)."""
        return {
            "broker": self.sasl_ssl,
            "broker_security_protocol": "SASL_SSL",
            "broker_ssl_cafile": self.cafile,
            "broker_sasl_mechanism": "SCRAM-SHA-512",
            "broker_sasl_username": SCRAM_USER,
            "broker_sasl_password": password,
        }


def _run(*command: str | Path, cwd: Path) -> None:
    done = subprocess.run([str(c) for c in command], cwd=cwd, capture_output=True, text=True, check=False)
    assert done.returncode == 0, f"{' '.join(map(str, command))} failed: {done.stderr}"


def make_certificates(directory: Path) -> None:
    """A CA; a broker certificate for 127.0.0.1 in a PKCS12 keystore, the CA in a truststore; a client
    certificate and key in PEM, signed by the same CA."""
    _run("openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "2", "-subj", "/CN=streams-test-ca",
         "-keyout", "ca.key", "-out", "ca.pem", cwd=directory)  # fmt: skip
    (directory / "san.ext").write_text("subjectAltName=IP:127.0.0.1,DNS:localhost\n")
    for name in ("broker", "client"):
        _run("openssl", "req", "-newkey", "rsa:2048", "-nodes", "-subj", f"/CN=streams-test-{name}",
             "-keyout", f"{name}.key", "-out", f"{name}.csr", cwd=directory)  # fmt: skip
        _run("openssl", "x509", "-req", "-in", f"{name}.csr", "-CA", "ca.pem", "-CAkey", "ca.key",
             "-CAcreateserial", "-days", "2", "-extfile", "san.ext", "-out", f"{name}.pem", cwd=directory)  # fmt: skip
    _run("openssl", "pkcs12", "-export", "-in", "broker.pem", "-inkey", "broker.key", "-certfile", "ca.pem",
         "-name", "broker", "-out", "broker.p12", "-passout", f"pass:{STORE_PASSWORD}", cwd=directory)  # fmt: skip
    _run("keytool", "-importcert", "-noprompt", "-alias", "ca", "-file", "ca.pem", "-keystore", "truststore.p12",
         "-storetype", "PKCS12", "-storepass", STORE_PASSWORD, cwd=directory)  # fmt: skip


def broker_properties(directory: Path, plaintext: int, controller: int, ssl: int, sasl_ssl: int) -> str:
    """What `KAFKA_EXTRA_PROPS` appends to the generated server.properties (its keys win)."""
    return "\n".join(
        [
            f"listeners=PLAINTEXT://127.0.0.1:{plaintext},CONTROLLER://127.0.0.1:{controller},"
            f"SSL://127.0.0.1:{ssl},SASL_SSL://127.0.0.1:{sasl_ssl}",
            f"advertised.listeners=PLAINTEXT://127.0.0.1:{plaintext},SSL://127.0.0.1:{ssl},"
            f"SASL_SSL://127.0.0.1:{sasl_ssl}",
            "listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT,SSL:SSL,SASL_SSL:SASL_SSL",
            "ssl.keystore.type=PKCS12",
            f"ssl.keystore.location={directory / 'broker.p12'}",
            f"ssl.keystore.password={STORE_PASSWORD}",
            f"ssl.key.password={STORE_PASSWORD}",
            "ssl.truststore.type=PKCS12",
            f"ssl.truststore.location={directory / 'truststore.p12'}",
            f"ssl.truststore.password={STORE_PASSWORD}",
            "listener.name.ssl.ssl.client.auth=required",
            "sasl.enabled.mechanisms=SCRAM-SHA-512",
            "listener.name.sasl_ssl.scram-sha-512.sasl.jaas.config="
            "org.apache.kafka.common.security.scram.ScramLoginModule required;",
            "",
        ]
    )


def _group_coordinator_answers(port: int) -> bool:
    """A group's offsets can be asked (the fresh broker created `__consumer_offsets` and loaded it)."""
    admin = KafkaAdminClient(bootstrap_servers=[f"127.0.0.1:{port}"])
    try:
        admin.list_group_offsets({"tls-broker-ready": None})
        return True
    finally:
        admin.close()


def _kafka_sh(command: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(KAFKA_SH), command],
        cwd=REPO,
        env={**os.environ, **env},
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


@pytest.fixture(scope="session")
def tls_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[TlsBroker]:
    """The broker, started with `deploy/kafka/kafka.sh` and its env hooks under a tmp dir (jars from
    `<repo>/.kafka/lib`, as `make kafka` resolved them); stopped at the end of the session."""
    directory = tmp_path_factory.mktemp("tls-broker")
    make_certificates(directory)
    ports = {_free_port() for _ in range(4)}
    assert len(ports) == 4, "the same free port twice: run again"
    plaintext, controller, ssl, sasl_ssl = ports
    extra = directory / "tls.properties"
    extra.write_text(broker_properties(directory, plaintext, controller, ssl, sasl_ssl))
    env = {
        "KAFKA_PORT": str(plaintext),
        "KAFKA_CONTROLLER_PORT": str(controller),
        "KAFKA_DIR": str(directory / "kafka"),
        "KAFKA_LIB_DIR": str(REPO / ".kafka" / "lib"),
        "KAFKA_EXTRA_PROPS": str(extra),
        "KAFKA_FORMAT_ARGS": f"--add-scram SCRAM-SHA-512=[name={SCRAM_USER},password={SCRAM_PASSWORD}]",
        "KAFKA_HEAP": "-Xms128m -Xmx512m",
        "KAFKA_START_TIMEOUT": "180",
    }
    started = _kafka_sh("start", env)
    try:
        assert started.returncode == 0, f"kafka.sh start failed:\n{started.stdout}\n{started.stderr}"
        wait_until(
            lambda: _group_coordinator_answers(plaintext), 120, "the group coordinator of the TLS broker"
        )
        yield TlsBroker(
            directory=directory,
            plaintext=f"kafka://127.0.0.1:{plaintext}",
            ssl=f"kafka://127.0.0.1:{ssl}",
            sasl_ssl=f"kafka://127.0.0.1:{sasl_ssl}",
            cafile=directory / "ca.pem",
            client_certfile=directory / "client.pem",
            client_keyfile=directory / "client.key",
        )
    finally:
        stopped = _kafka_sh("stop", env)
        assert stopped.returncode == 0, f"kafka.sh stop failed:\n{stopped.stdout}\n{stopped.stderr}"


@pytest.fixture
def observed_over_plaintext(tls_broker: TlsBroker, monkeypatch: pytest.MonkeyPatch) -> TlsBroker:
    """The broker helpers of tests/service (alert reading, group progress) read this broker's PLAINTEXT
    listener, as an operator's monitoring would; the clients under test use only the TLS listeners."""
    monkeypatch.setattr(service_conftest, "BROKER", tls_broker.plaintext)
    monkeypatch.setattr(service_faults, "BROKER", tls_broker.plaintext)
    return tls_broker
