"""Shared test options: slow tests run only with --runslow, and say so when skipped."""

from __future__ import annotations

import pytest


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption("--runslow", action="store_true", default=False, help="also run tests marked slow (long checks on the embedded model)")


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if config.getoption("--runslow"):
        return
    skip = pytest.mark.skip(reason="slow: run with --runslow (see README, Tests)")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)
