"""Replay every trace in tests/regressions/ on every run.

Against the correct broker each must pass; against the bugs it recorded, each
must reproduce the recorded violation. `kafka-verify run --save-regression`
adds traces here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_verify.harness.replay import run_trace
from kafka_verify.harness.trace import load_trace

CORPUS = sorted(Path(__file__).parent.glob("*.json"))


def test_the_corpus_is_not_empty() -> None:
    assert CORPUS, "tests/regressions/ holds no traces"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_trace_passes_on_the_correct_broker(path: Path) -> None:
    trace = load_trace(path)
    outcome = run_trace(trace, frozenset())
    assert outcome.violation is None, f"{outcome.violation}"


@pytest.mark.parametrize("path", CORPUS, ids=[p.stem for p in CORPUS])
def test_trace_reproduces_its_recorded_violation(path: Path) -> None:
    trace = load_trace(path)
    if not trace.config.bugs:
        pytest.skip("recorded against the correct broker: nothing to reproduce")
    outcome = run_trace(trace, trace.config.bugs)
    assert outcome.violation is not None
    assert trace.violation is not None
    assert outcome.violation.property == trace.violation["property"]
