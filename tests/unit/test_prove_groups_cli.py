"""`kafka-verify prove` with the group properties: exit codes, JSON rows, replayable traces."""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import pytest
from kafka_verify.harness.prove_cli import add_prove_arguments, run_prove
from kafka_verify.harness.replay import run_trace
from kafka_verify.harness.trace import load_trace
from kafka_verify.properties.prove_groups import group_config, shortest_violation
from kafka_verify.properties.symbolic_groups import PROPERTY_NAMES


def _args(tmp_path: Path, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_prove_arguments(parser)
    return parser.parse_args([*flags, "--reports", str(tmp_path / "reports")])


@pytest.mark.parametrize(
    ("bug", "name"),
    [
        ("zombie-commit", "no-stale-generation-commit"),
        ("double-assignment", "single-member-per-partition"),
    ],
)
def test_a_group_variant_exits_1_with_a_bfs_minimal_replayable_trace(
    tmp_path: Path, bug: str, name: str
) -> None:
    out = tmp_path / "out.json"
    assert run_prove(_args(tmp_path, "--bug", bug, "--json", str(out))) == 1
    rows = {row["property"]: row for row in json.loads(out.read_text())["results"]}
    # Only the group properties run: a group variant leaves the replication model alone.
    assert list(rows) == list(PROPERTY_NAMES)
    assert [p for p, row in rows.items() if row["status"] == "violated"] == [name]
    assert all(row["status"] == "proved" for p, row in rows.items() if p != name)
    shortest = shortest_violation(name, group_config(frozenset({bug})))
    assert shortest is not None and rows[name]["depth"] == len(shortest) == 7
    trace = load_trace(rows[name]["trace"])
    assert trace.engine == "model" and len(trace.items) == 7
    assert trace.violation is not None and trace.violation["property"] == name
    outcome = run_trace(trace, trace.config.bugs)
    assert outcome.violation is not None and outcome.violation.property == name
    assert len(outcome.steps) == 7
    fixed = run_trace(trace, frozenset())
    assert fixed.violation is None or fixed.violation.property != name


def test_one_group_property_of_the_correct_model_exits_0(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = _args(tmp_path, "--property", "committed-offsets-durable", "--json", str(out))
    assert run_prove(args) == 0
    (row,) = json.loads(out.read_text())["results"]
    assert (row["property"], row["status"], row["trace"]) == (
        "committed-offsets-durable",
        "proved",
        None,
    )
