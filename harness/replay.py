"""`kafka-verify replay TRACE`: re-execute exactly what a trace records.

Exit 1 when the recorded violation reproduces (and write its report again, byte
for byte), 0 when it does not (for example once the bug is fixed, or with
`--bug none`), 2 on a malformed trace.
"""

from __future__ import annotations

import dataclasses
import sys
from datetime import UTC, datetime
from pathlib import Path

from kafka_verify.harness.cli_common import UsageError
from kafka_verify.harness.codec import TraceError
from kafka_verify.harness.runner import RunOutcome, execute, execute_model
from kafka_verify.harness.trace import Trace
from kafka_verify.impl.world import InvalidEvent


def _bug_set(requested: list[str] | None, recorded: frozenset[str]) -> frozenset[str]:
    if requested is None:
        return recorded
    if requested == ["none"]:
        return frozenset()
    if "none" in requested:
        raise UsageError("--bug none cannot be combined with other bug names")
    return frozenset(requested)


def run_trace(trace: Trace, bugs: frozenset[str]) -> RunOutcome:
    """Execute a loaded trace with the given bug set; EVENTUALLY traces end with the liveness check."""
    from kafka_verify.properties.registry import PROPERTIES, Kind

    recorded = trace.violation
    name = recorded["property"] if recorded else None
    eventually = name in PROPERTIES and PROPERTIES[name].kind is Kind.EVENTUALLY
    try:
        config = dataclasses.replace(trace.config, bugs=bugs)
    except ValueError as error:
        raise UsageError(str(error)) from None
    if trace.engine == "model":
        return execute_model(config, trace.items)
    try:
        return execute(
            config,
            trace.items,
            finish=eventually or recorded is None,
            skip_diverged=bugs != trace.config.bugs,
        )
    except InvalidEvent as error:
        raise UsageError(f"the trace cannot be replayed: {error}") from None


def replay_trace(path: Path, requested_bugs: list[str] | None, reports: Path | None) -> int:
    from kafka_verify.harness.report import report_directory, write_report
    from kafka_verify.harness.trace import load_trace

    try:
        trace = load_trace(path)
    except TraceError as error:
        raise UsageError(str(error)) from None
    bugs = _bug_set(requested_bugs, trace.config.bugs)
    outcome = run_trace(trace, bugs)
    recorded = trace.violation
    found = outcome.violation
    shown_bugs = ", ".join(sorted(bugs)) or "none"
    if found is None or (recorded is not None and found.property != recorded["property"]):
        what = recorded["property"] if recorded else "any property"
        print(
            f"did not reproduce: {what} holds over {len(outcome.steps)} steps (bugs: {shown_bugs})"
        )
        if found is not None:
            print(f"note: a different property failed instead: {found.property}: {found.message}")
        return 0
    print(
        f"reproduced {found.property} at step {len(outcome.steps)} (bugs: {shown_bugs}): {found.message}"
    )
    if bugs == trace.config.bugs:
        root = reports or path.resolve().parent.parent
        directory = (
            report_directory(root, found.property, datetime.now(UTC))
            if reports
            else path.resolve().parent
        )
        report = write_report(outcome, trace, directory)
        print(f"report: {report}")
    else:
        print("report not rewritten: the bug set differs from the recorded one", file=sys.stderr)
    return 1
