"""Writing a report folder: report.md, report.html, trace.json and, for impl runs, history.jsonl.

Rules of this module:
- The folder's files are a pure function of (outcome, trace, the folder's
  name): no clock is read here and no absolute path is written into them, so
  `kafka-verify replay` of the same trace rewrites them byte for byte, and a
  folder copied elsewhere still replays with the commands it shows.
- `report_directory` names a new folder after a time the caller passes in;
  nothing here reads the clock.
- Imports run downwards only: writer -> html_page, markdown, content; never
  the package's `__init__`.
"""

from __future__ import annotations

import json
import os
import re
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from kafka_verify.harness.report.content import build_content
from kafka_verify.harness.report.html_page import render_html
from kafka_verify.harness.report.markdown import render_markdown
from kafka_verify.harness.trace import Trace, dump_trace, jsonable

if TYPE_CHECKING:
    from kafka_verify.harness.runner import RunOutcome


def report_directory(root: Path, property: str, now: datetime) -> Path:
    """`root/<UTC time>-<property>/`, with a numeric suffix if that directory already exists."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", property).strip("-") or "violation"
    candidate = Path(root) / f"{stamp}-{slug}"
    suffix = 2
    while candidate.exists():
        candidate = Path(root) / f"{stamp}-{slug}-{suffix}"
        suffix += 1
    return candidate


def write_report(outcome: RunOutcome, trace: Trace, directory: Path) -> Path:
    """Write report.md, report.html and trace.json into `directory`; return report.md's path.

    The reports' replay commands name trace.json relative to `directory`, so
    they hold wherever the folder is later copied or moved.
    """
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    # Only the folder's own name goes into the report; abspath makes "." and
    # "reports/x/.." name a real folder without reading any symlink.
    content = build_content(outcome, trace, Path(os.path.abspath(directory)).name)
    markdown_path = directory / "report.md"
    markdown_path.write_text(render_markdown(content), encoding="utf-8")
    (directory / "report.html").write_text(render_html(content), encoding="utf-8")
    dump_trace(trace, directory / "trace.json")
    if outcome.engine == "impl":
        (directory / "history.jsonl").write_text(history_jsonl(outcome), encoding="utf-8")
    return markdown_path


def history_jsonl(outcome: RunOutcome) -> str:
    """The client history of the run, one completed or invoked operation per line (DESIGN.md)."""
    lines = []
    ops = (op for step in outcome.steps for op in step.ops)
    for index, op in enumerate(ops):
        record = {
            "index": index,
            "time_ms": op.time_ms,
            "process": op.process,
            "type": op.type,
            "f": op.f,
            "value": jsonable(op.value),
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)
