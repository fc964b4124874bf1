"""The stateful campaign against the correct reference cluster: it must find nothing.

A failure here writes a full counterexample report, and its path is in the
failure text (and so in JUnit XML).
"""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import settings
from kafka_verify.harness.campaign import run_campaign
from kafka_verify.harness.failures import write_failure
from kafka_verify.harness.profiles import PROFILES, selected_profile_name
from kafka_verify.impl.config import ClusterConfig

CONFIGS = {
    "3 brokers, 2 partitions, RF=3, min ISR=2": ClusterConfig(partitions=2),
    "3 brokers, 1 partition, RF=2, min ISR=1": ClusterConfig(
        partitions=1, replication=2, min_insync=1
    ),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_correct_cluster_survives_random_faults(name: str, reports_dir: Path) -> None:
    # pytest's --hypothesis-profile (or HYPOTHESIS_PROFILE) picks the profile; ci otherwise.
    current = settings.get_current_profile_name()
    profile = PROFILES[selected_profile_name(current if current in PROFILES else "ci")]
    result = run_campaign(CONFIGS[name], profile, seed=11, examples=min(profile.examples, 25))
    if result.violation is not None:
        report, trace = write_failure(result, reports_dir, {"test": name})
        pytest.fail(
            f"{result.violation.property}: {result.violation.message}\n"
            f"report: {report}\nreplay: kafka-verify replay {trace}"
        )
    assert result.error is None
    assert result.examples >= 1
    assert result.steps > 100


def test_every_example_ends_each_phase_with_a_full_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The safety phase and the liveness phase of each example end with a full refinement check."""
    from kafka_verify.harness.runner import Checker

    calls: list[int] = []
    original = Checker.full_comparison

    def counted(self: Checker) -> list:  # type: ignore[type-arg]
        calls.append(self.steps_done)
        return original(self)

    monkeypatch.setattr(Checker, "full_comparison", counted)
    result = run_campaign(ClusterConfig(partitions=1), PROFILES["ci"], seed=3, examples=4)
    assert result.violation is None
    # Two per example that reached teardown (examples Hypothesis discards reach none).
    assert len(calls) >= 2 and len(calls) % 2 == 0
    assert len(calls) <= 2 * result.examples
