"""Write a prover's counterexample as a model-engine trace, the format `kafka-verify replay` reads."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path

from kafka_verify.harness.report import report_directory
from kafka_verify.harness.trace import Trace, dump_trace, violation_record
from kafka_verify.model.state import Config
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.prove import ProofResult


def write_proof_trace(
    result: ProofResult, config: Config, violation: Violation, root: Path
) -> Path:
    """The trace of `result`'s actions, ending in `violation` (found by replaying them)."""
    directory = report_directory(root, result.property, datetime.now(UTC))
    directory.mkdir(parents=True, exist_ok=True)
    trace = Trace(
        schema=1,
        engine="model",
        config=config,
        items=tuple(result.actions),
        violation=violation_record(violation, len(result.actions)),
        meta={"command": "prove", "seconds": round(result.seconds, 3)},
    )
    path = directory / "trace.json"
    dump_trace(trace, path)
    return path
