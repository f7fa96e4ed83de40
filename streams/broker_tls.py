"""The TLS context of the service's aiokafka clients (Faust's and its own), built from the `STREAMS_BROKER_SSL_*` settings."""

from __future__ import annotations

import ssl

from streams.settings import Settings

__all__ = ["TLS_PROTOCOLS", "broker_ssl_context"]

TLS_PROTOCOLS = frozenset({"SSL", "SASL_SSL"})
"""Security protocols whose connections are TLS."""


def broker_ssl_context(settings: Settings) -> ssl.SSLContext:
    """Verifies the broker's certificate and host name against `broker_ssl_cafile` (the system CAs when unset);
    presents `broker_ssl_certfile` (with `broker_ssl_keyfile`) to a broker that asks for a client certificate
    (mTLS). kafka-python builds the same context from `client_options`."""
    context = ssl.create_default_context(
        cafile=str(settings.broker_ssl_cafile) if settings.broker_ssl_cafile else None
    )
    if settings.broker_ssl_certfile is not None:
        context.load_cert_chain(
            certfile=str(settings.broker_ssl_certfile),
            keyfile=str(settings.broker_ssl_keyfile) if settings.broker_ssl_keyfile else None,
        )
    return context
