"""State-query authentication: the token's sources, the start-up warning, the constant-time check."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from pydantic import ValidationError

from streams.service.web import authorised, exposure_warning
from streams.service.worker import build_service
from streams.settings import Settings


def test_the_token_comes_from_the_variable_or_from_a_mounted_file(tmp_path: Path) -> None:
    secret = tmp_path / "web-token"
    secret.write_text("from-the-file\n", encoding="utf-8")
    assert Settings(web_token_file=secret).resolved_web_token() == "from-the-file"
    assert Settings(web_token="from-the-variable").resolved_web_token() == "from-the-variable"
    assert Settings().resolved_web_token() is None
    assert "from-the-variable" not in repr(Settings(web_token="from-the-variable"))


@pytest.mark.parametrize("kwargs", [{"web_token": " "}, {"web_token": "a", "web_token_file": Path("/x")}])
def test_an_empty_token_or_two_sources_are_refused(kwargs: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        Settings(**kwargs)  # type: ignore[arg-type]


def test_an_empty_token_file_is_refused(tmp_path: Path) -> None:
    empty = tmp_path / "web-token"
    empty.write_text("\n", encoding="utf-8")
    with pytest.raises(ValueError, match="empty"):
        Settings(web_token_file=empty).resolved_web_token()


def test_only_the_exact_bearer_token_is_authorised() -> None:
    expected = b"Bearer right"
    assert authorised("Bearer right", expected)
    for given in (None, "", "right", "Bearer righ", "Bearer right ", "bearer right", "Basic right"):
        assert not authorised(given, expected), given
    assert authorised(None, None)


@pytest.mark.parametrize(
    ("host", "token", "warns"),
    [
        ("127.0.0.1", None, False),
        ("::1", None, False),
        ("localhost", None, False),
        ("0.0.0.0", None, True),
        ("10.1.2.3", None, True),
        ("worker-0.example", None, True),
        ("0.0.0.0", "t", False),
    ],
)
def test_a_non_loopback_bind_without_a_token_is_a_warning(host: str, token: str | None, warns: bool) -> None:
    warning = exposure_warning(host, token)
    assert (warning is not None) == warns
    if warning is not None:
        assert host in warning
        assert "STREAMS_WEB_TOKEN" in warning


def test_the_worker_logs_the_warning_when_it_is_built(caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.WARNING, logger="streams.service.web"):
        build_service(Settings(web_host="0.0.0.0", app_id="auth-warning-test"))
    assert any("STREAMS_WEB_TOKEN is not set" in r.getMessage() for r in caplog.records)
    caplog.clear()
    with caplog.at_level(logging.WARNING, logger="streams.service.web"):
        build_service(Settings(web_host="0.0.0.0", web_token="t", app_id="auth-warning-test"))
    assert not [r for r in caplog.records if r.levelno >= logging.WARNING]
