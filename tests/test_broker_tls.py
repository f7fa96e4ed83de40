"""The TLS settings reach every client: a handshake with a server that requires a client certificate, Faust's
credentials and kafka-python's options."""

from __future__ import annotations

import socket
import ssl
import threading
from pathlib import Path

import pytest
from faust.auth import SASLCredentials, SSLCredentials
from pydantic import ValidationError

from streams.broker_tls import broker_ssl_context
from streams.kafka_admin import client_options
from streams.service.app import create_app
from streams.settings import Settings
from tests.tls.conftest import make_certificates


@pytest.fixture(scope="module")
def certificates(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A CA, and a server and a client certificate it signed (both for 127.0.0.1)."""
    directory = tmp_path_factory.mktemp("certificates")
    make_certificates(directory)
    return directory


def handshake_with_a_server_requiring_a_client_certificate(
    certificates: Path, client: ssl.SSLContext, host: str = "127.0.0.1"
) -> str:
    """Connect to a local TLS server (certificate for 127.0.0.1 and localhost) as `host`; it requires a
    certificate signed by the CA: the subject CN it saw."""
    server = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH, cafile=str(certificates / "ca.pem"))
    server.load_cert_chain(str(certificates / "broker.pem"), str(certificates / "broker.key"))
    server.verify_mode = ssl.CERT_REQUIRED
    seen: list[str] = []
    with socket.create_server(("127.0.0.1", 0)) as listener:

        def serve() -> None:
            connection, _ = listener.accept()
            try:
                with server.wrap_socket(connection, server_side=True) as tls:
                    subject = dict(item[0] for item in tls.getpeercert()["subject"])  # type: ignore[index]
                    seen.append(subject["commonName"])
                    tls.sendall(b"ok")
            except (ssl.SSLError, OSError):
                connection.close()

        thread = threading.Thread(target=serve, daemon=True)
        thread.start()
        port = listener.getsockname()[1]
        with (
            socket.create_connection(("127.0.0.1", port), timeout=10) as raw,
            client.wrap_socket(raw, server_hostname=host) as tls,
        ):
            assert tls.recv(2) == b"ok"  # TLS 1.3: the server's verdict on the certificate arrives here
        thread.join(10)
    return seen[0]


def test_the_context_presents_the_client_certificate(certificates: Path) -> None:
    settings = Settings(
        broker_security_protocol="SSL",
        broker_ssl_cafile=certificates / "ca.pem",
        broker_ssl_certfile=certificates / "client.pem",
        broker_ssl_keyfile=certificates / "client.key",
    )
    context = broker_ssl_context(settings)
    assert context.check_hostname
    assert context.verify_mode == ssl.CERT_REQUIRED
    assert (
        handshake_with_a_server_requiring_a_client_certificate(certificates, context) == "streams-test-client"
    )


def test_without_a_certificate_the_server_refuses(certificates: Path) -> None:
    context = broker_ssl_context(Settings(broker_ssl_cafile=certificates / "ca.pem"))
    with pytest.raises((ssl.SSLError, ConnectionError)):
        handshake_with_a_server_requiring_a_client_certificate(certificates, context)


def test_the_brokers_host_name_is_checked(certificates: Path) -> None:
    settings = Settings(
        broker_ssl_cafile=certificates / "ca.pem",
        broker_ssl_certfile=certificates / "client.pem",
        broker_ssl_keyfile=certificates / "client.key",
    )
    assert handshake_with_a_server_requiring_a_client_certificate(
        certificates, broker_ssl_context(settings), "localhost"
    )
    with pytest.raises(ssl.SSLCertVerificationError, match="Hostname mismatch"):
        handshake_with_a_server_requiring_a_client_certificate(
            certificates, broker_ssl_context(settings), "kafka.example.com"
        )


def test_the_certificate_reaches_faust_and_kafka_python(certificates: Path) -> None:
    files = {
        "broker_ssl_cafile": certificates / "ca.pem",
        "broker_ssl_certfile": certificates / "client.pem",
        "broker_ssl_keyfile": certificates / "client.key",
    }
    mtls = Settings(broker_security_protocol="SSL", **files)
    credentials = create_app(mtls).conf.broker_credentials
    assert isinstance(credentials, SSLCredentials)
    assert handshake_with_a_server_requiring_a_client_certificate(certificates, credentials.context)
    scram = Settings(broker_security_protocol="SASL_SSL", broker_sasl_mechanism="SCRAM-SHA-512", **files)
    sasl = create_app(scram).conf.broker_credentials
    assert isinstance(sasl, SASLCredentials)
    assert sasl.ssl_context is not None
    assert handshake_with_a_server_requiring_a_client_certificate(certificates, sasl.ssl_context)
    options = client_options(mtls)
    assert (options["ssl_cafile"], options["ssl_certfile"], options["ssl_keyfile"]) == tuple(
        str(path) for path in files.values()
    )


def test_a_key_without_its_certificate_is_refused(certificates: Path) -> None:
    with pytest.raises(ValidationError, match="STREAMS_BROKER_SSL_KEYFILE needs STREAMS_BROKER_SSL_CERTFILE"):
        Settings(broker_ssl_keyfile=certificates / "client.key")
