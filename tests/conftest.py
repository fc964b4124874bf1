"""Shared pytest set-up: Hypothesis profiles and where failing runs write their reports."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from harness.profiles import register_hypothesis_profiles

register_hypothesis_profiles()


def pytest_addoption(parser: pytest.Parser) -> None:
    parser.addoption(
        "--reports",
        default=None,
        help="directory for counterexample reports (default: $KAFKA_VERIFY_REPORTS or reports/)",
    )


@pytest.fixture
def reports_dir(request: pytest.FixtureRequest) -> Path:
    """Where a failing stateful run writes its report."""
    chosen = (
        request.config.getoption("--reports") or os.environ.get("KAFKA_VERIFY_REPORTS") or "reports"
    )
    return Path(chosen)
