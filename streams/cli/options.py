"""Command-line flags for every semantic setting, derived from the settings object."""

from __future__ import annotations

import argparse
from typing import Any, get_args

from streams.settings import Settings

__all__ = ["SEMANTIC_FIELDS", "add_setting_flags", "settings_from_args"]

SEMANTIC_FIELDS = (
    "weight_mention",
    "weight_reply",
    "weight_like",
    "half_life_ms",
    "touch_merge_ms",
    "gap_window",
    "min_touches",
    "require_mutual",
    "k",
    "rule",
    "min_silence_ms",
    "max_silence_ms",
    "allowed_lateness_ms",
    "idle_timeout_ms",
    "clock",
    "dedup_window_ms",
    "row_ttl_ms",
    "digest_top",
)


def _parse_bool(text: str) -> bool:
    lowered = text.lower()
    if lowered in {"1", "true", "yes", "on"}:
        return True
    if lowered in {"0", "false", "no", "off"}:
        return False
    raise argparse.ArgumentTypeError(f"not a boolean: {text!r}")


def add_setting_flags(parser: argparse.ArgumentParser, defaults: dict[str, Any]) -> None:
    """Add `--<field>` for each semantic setting; `defaults` overrides the service defaults."""
    group = parser.add_argument_group("semantics (SPEC §5; flag > STREAMS_* variable > default)")
    for name in SEMANTIC_FIELDS:
        field = Settings.model_fields[name]
        default = defaults.get(name, field.default)
        annotation = field.annotation
        kwargs: dict[str, Any] = {"dest": name, "default": None}
        if annotation is bool:
            kwargs["type"] = _parse_bool
        elif get_args(annotation):
            kwargs["choices"] = get_args(annotation)
        else:
            kwargs["type"] = annotation
        description = (field.description or "").split(": ", 1)[-1]
        group.add_argument(
            "--" + name.replace("_", "-"), help=f"{description} [default: {default}]", **kwargs
        )


def settings_from_args(args: argparse.Namespace, defaults: dict[str, Any]) -> Settings:
    """Settings from flags, then `STREAMS_*` variables, then `defaults`, then the built-ins."""
    env_view = Settings()
    values: dict[str, Any] = {}
    for name in SEMANTIC_FIELDS:
        flag = getattr(args, name, None)
        if flag is not None:
            values[name] = flag
        elif name in defaults and name not in env_view.model_fields_set:
            values[name] = defaults[name]
    return env_view.model_copy(update=values) if values else env_view
