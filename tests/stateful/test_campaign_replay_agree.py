"""The shrunk schedule a campaign reports is exactly what replay reproduces.

Hypothesis runs `teardown` even after a failing step; the machine must not run
its liveness phase then, or the recorded failure would be replaced by whatever
the cleanup trips over.
"""

from __future__ import annotations

from kafka_verify.harness.campaign import run_campaign
from kafka_verify.harness.profiles import PROFILES
from kafka_verify.harness.runner import execute
from kafka_verify.impl.config import ClusterConfig


def test_campaign_failure_replays_to_the_same_violation_at_the_same_step() -> None:
    config = ClusterConfig(partitions=2, bugs=frozenset({"unclean-election"}))
    result = run_campaign(
        config,
        PROFILES["ci"],
        seed=4,
        examples=200,
        shrink_budget_s=10,
        event_shrink_budget_s=5,
    )
    assert result.violation is not None
    outcome = execute(result.config, result.events)  # the failing example's own config
    assert outcome.violation is not None
    assert outcome.violation.property == result.violation.property
    assert outcome.violation.message == result.violation.message
    assert len(outcome.steps) == len(result.events)
