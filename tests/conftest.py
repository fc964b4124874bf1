"""Shared pytest set-up: Hypothesis profiles and where failing runs write their reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from kafka_verify.harness.profiles import register_hypothesis_profiles

register_hypothesis_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reports",
        default=None,
        help="directory for counterexample reports (default: $KAFKA_VERIFY_REPORTS or reports/)",
    )
    parser.addoption(
        "--run-slow",
        action="store_true",
        default=False,
        help="also run tests marked slow (minutes each; also KAFKA_VERIFY_SLOW=1)",
    )


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """Tests marked slow (deep searches of minutes) run only when asked for, so CI stays short."""
    if config.getoption("--run-slow") or os.environ.get("KAFKA_VERIFY_SLOW"):
        return
    skip = pytest.mark.skip(reason="slow: run with --run-slow or KAFKA_VERIFY_SLOW=1")
    for item in items:
        if "slow" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where a failing stateful run writes its report."""
    chosen = (
        request.config.getoption("--reports") or os.environ.get("KAFKA_VERIFY_REPORTS") or "reports"
    )
    return Path(chosen)
