"""Factory fixtures of the engine tests: settings, engines and replays with overrides."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

import pytest

from streams.engine.alerts import Alert
from streams.engine.engine import RelationshipEngine
from streams.engine.rules import Rules
from streams.replay import ReplaySummary
from tests.engine.support import (
    EngineFactory,
    ReplayFactory,
    RulesFactory,
    make_settings,
    run_replay,
)


@pytest.fixture
def make_rules() -> RulesFactory:
    """`make_rules(**settings_overrides)`: the arithmetic of replay defaults with overrides."""

    def factory(**overrides: Any) -> Rules:
        return Rules(make_settings(**overrides))

    return factory


@pytest.fixture
def make_engine() -> EngineFactory:
    """`make_engine(**settings_overrides)`: a fresh engine on replay defaults with overrides."""

    def factory(**overrides: Any) -> RelationshipEngine:
        return RelationshipEngine(make_settings(**overrides))

    return factory


@pytest.fixture
def replay_lines() -> ReplayFactory:
    """`replay_lines(lines, **settings_overrides)`: (alerts in emission order, summary)."""

    def factory(lines: Iterable[bytes], **overrides: Any) -> tuple[list[Alert], ReplaySummary]:
        return run_replay(lines, make_settings(**overrides))

    return factory
