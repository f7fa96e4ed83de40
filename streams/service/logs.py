"""Worker logging: `STREAMS_LOG_FORMAT=json` writes one JSON object per line (python-json-logger)."""

from __future__ import annotations

import logging
import logging.config
from typing import Any

from streams.settings import Settings

__all__ = ["JSON_FIELDS", "logging_config", "setup_logging"]

JSON_FIELDS = ("time", "level", "logger", "message")
"""Keys of every JSON line, before the static ones (`app_id`, `guarantee`) and a call's `extra=` keys."""


def logging_config(settings: Settings) -> dict[str, Any] | None:
    """The `logging.config.dictConfig` of a worker; None keeps Faust's own text format."""
    if settings.log_format == "text":
        return None
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "formatters": {
            "json": {
                "()": "pythonjsonlogger.json.JsonFormatter",
                "fmt": "%(levelname)s %(name)s %(message)s",
                "timestamp": "time",  # ISO 8601, UTC
                "rename_fields": {"levelname": "level", "name": "logger"},
                "static_fields": {"app_id": settings.app_id, "guarantee": settings.processing_guarantee},
            }
        },
        "handlers": {
            "default": {"class": "logging.StreamHandler", "formatter": "json", "stream": "ext://sys.stdout"}
        },
        "root": {"level": settings.log_level.upper(), "handlers": ["default"]},
    }


def setup_logging(settings: Settings) -> dict[str, Any] | None:
    """Apply the JSON configuration now (lines before Faust's own set-up), warnings included; what Faust gets.

    Faust's worker clears the root handlers and applies its `logging_config`
    at start: given this same configuration, its own lines (and mode's, aiokafka's)
    go through the same formatter.
    """
    config = logging_config(settings)
    if config is not None:
        logging.config.dictConfig(config)
        logging.captureWarnings(True)
    return config
