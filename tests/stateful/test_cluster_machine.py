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
