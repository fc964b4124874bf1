"""Counterexample reports: `report.md`, `report.html` and `trace.json` for one violation.

A report must let an engineer understand a failure in two minutes and replay
it with one command. Its content is a pure function of (outcome, trace, the
name of the report's folder): no clock, no absolute paths, no trace `meta`, so
replaying the same trace writes the same bytes, and the replay commands it
shows stay right when the folder is copied or moved.

One module per job; imports run one way, from the top of this list down:
- `writer`: the report folder (`report_directory`, `write_report`, `history.jsonl`);
- `html_page`: report.html and its SVG timeline;
- `markdown`: report.md and its Mermaid sequence diagram;
- `content`: what a report says, gathered once into a `Content` value;
- `state_listing`: a state as listed lines, and the diff around one step;
- `wording`: events and model actions in words.

This package's `__init__` only re-exports; no module in it imports it back.
"""

from kafka_verify.harness.report.content import (
    Content,
    Mark,
    ReplayCommand,
    build_content,
    listed_steps,
    replay_commands,
)
from kafka_verify.harness.report.html_page import render_html, timeline_svg
from kafka_verify.harness.report.markdown import mermaid, render_markdown
from kafka_verify.harness.report.state_listing import StateLine, state_diff, state_listing
from kafka_verify.harness.report.wording import describe
from kafka_verify.harness.report.writer import history_jsonl, report_directory, write_report

__all__ = [
    "Content",
    "Mark",
    "ReplayCommand",
    "StateLine",
    "build_content",
    "describe",
    "history_jsonl",
    "listed_steps",
    "mermaid",
    "render_html",
    "render_markdown",
    "replay_commands",
    "report_directory",
    "state_diff",
    "state_listing",
    "timeline_svg",
    "write_report",
]
