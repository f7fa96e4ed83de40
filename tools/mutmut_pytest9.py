"""Pytest plugin for `make mutation`: gives test items the `_nodeid` that mutmut 3.7.0 reads.

mutmut 3.7.0 is the last release that installs beside faust-streaming (3.8 needs click>=8.4.2,
faust-streaming 0.15.3 needs click<8.4), and its stats hook reads `item._nodeid`, which pytest 9
no longer has; 3.8 reads `item.nodeid`. This plugin sets one from the other.
"""

from __future__ import annotations

import pytest


@pytest.hookimpl(tryfirst=True)
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Copy each item's public node id to the private attribute mutmut 3.7.0 reads."""
    for item in items:
        if not hasattr(item, "_nodeid"):
            item._nodeid = item.nodeid  # type: ignore[attr-defined]
