"""Turning a found failure into its report folder: report.md, report.html and trace.json."""

from __future__ import annotations

from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka_verify.harness.campaign import CampaignResult
from kafka_verify.harness.report import report_directory, write_report
from kafka_verify.harness.runner import execute
from kafka_verify.harness.trace import SCHEMA_VERSION, Trace, violation_record
from kafka_verify.properties.registry import PROPERTIES, Kind


def write_failure(
    result: CampaignResult, reports_root: Path, meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Replay the shrunk schedule once more, and write report.md, report.html and trace.json."""
    assert result.violation is not None
    violation = result.violation
    eventually = (
        PROPERTIES.get(violation.property) is not None
        and PROPERTIES[violation.property].kind is Kind.EVENTUALLY
    )
    outcome = execute(result.config, result.events, finish=eventually)
    found = outcome.violation or violation
    trace = Trace(
        schema=SCHEMA_VERSION,
        engine="impl",
        config=result.config,
        items=tuple(result.events),
        violation=violation_record(found, len(outcome.steps)),
        meta=meta,
    )
    directory = report_directory(reports_root, found.property, datetime.now(UTC))
    trace_path = directory / "trace.json"
    report_path = write_report(outcome, trace, directory)
    return report_path, trace_path
