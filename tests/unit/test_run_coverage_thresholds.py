"""`run` judges its coverage: a SOMETIMES property below its threshold is "pass, coverage short"."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka_verify.harness.cli import main

# One replica per partition: no follower exists, so the follower situations are never reached,
# whatever the schedule; 15 examples are owed a share of each threshold.
NO_FOLLOWERS = ["run", "--profile", "ci", "--seed", "1", "--examples", "15", "--steps", "20"]
NO_FOLLOWERS += ["--replication", "1", "--min-insync", "1"]
FOLLOWER_SITUATIONS = ("readmitted-follower-crashed", "follower-truncated-replicated")


def test_a_shortfall_passes_with_coverage_short_and_names_the_property(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "run.json"
    code = main([*NO_FOLLOWERS, "--json", str(out), "--reports", str(tmp_path / "reports")])
    assert code == 0
    payload = json.loads(out.read_text())
    assert payload["status"] == "pass, coverage short"
    for name in FOLLOWER_SITUATIONS:
        assert payload["coverage"][name] == 0
        assert payload["coverage_thresholds"][name] > 0
        assert name in payload["coverage_short"]
    assert "coverage short: readmitted-follower-crashed reached 0 times" in capsys.readouterr().err
    summary = (tmp_path / "reports" / "summary.md").read_text()
    assert "| readmitted-follower-crashed | 0 |" in summary and "(short)" in summary


def test_strict_coverage_turns_a_shortfall_into_exit_1(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    args = [*NO_FOLLOWERS, "--strict-coverage", "--json", str(out)]
    assert main([*args, "--reports", str(tmp_path / "reports")]) == 1
    payload = json.loads(out.read_text())
    assert payload["status"] == "pass, coverage short" and payload["violations"] == []


def test_a_run_owed_nothing_is_a_plain_pass(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    args = ["run", "--profile", "ci", "--seed", "1", "--examples", "1", "--steps", "10"]
    assert main([*args, "--strict-coverage", "--json", str(out), "--reports", str(tmp_path)]) == 0
    payload = json.loads(out.read_text())
    assert payload["status"] == "pass" and payload["coverage_short"] == []
    assert set(payload["coverage_thresholds"]) <= set(payload["coverage"])
