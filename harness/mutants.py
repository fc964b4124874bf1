"""`kafka-verify mutants`: the suite's own quality bar.

Each seeded bug is switched on in turn and the CI-profile campaign runs against
it, in rounds of a few examples with fresh seeds, until a property fails or the
per-bug time budget is spent. The result is a kill matrix (bugs x properties)
in `reports/mutants.md` and the JSON of DESIGN.md. A clean run (no bug) is
measured too: it must find nothing, so there are no false alarms.
"""

from __future__ import annotations

import dataclasses
import sys
import time
from pathlib import Path
from typing import Any

from harness.campaign import run_campaign
from harness.cli import UsageError, write_json
from harness.cluster import reference_cluster
from harness.commands import write_failure
from harness.profiles import PROFILES

ROUND_EXAMPLES = 12
SHRINK_BUDGET_S = 30.0


def hunt(bug: str | None, budget_s: float, reports_root: Path) -> dict[str, Any]:
    """Run rounds of the CI campaign against one bug until it is caught or the budget is gone."""
    bugs = frozenset({bug}) if bug else frozenset()
    config = reference_cluster(bugs)
    profile = dataclasses.replace(PROFILES["ci"], targeting=False)
    started = time.perf_counter()
    round_index = 0
    while True:
        round_started = time.perf_counter()
        result = run_campaign(
            config,
            profile,
            seed=round_index,
            examples=ROUND_EXAMPLES,
            shrink_budget_s=SHRINK_BUDGET_S,
        )
        if result.violation is not None:
            offset = round_started - started
            detect = offset + (result.seconds_to_detect or result.seconds)
            report, _ = write_failure(result, reports_root, {"seed": round_index, "profile": "ci"})
            return {
                "name": bug or "none",
                "caught": True,
                "property": result.violation.property,
                "seconds_to_detect": round(detect, 2),
                "shrunk_steps": len(result.events),
                "minimal_steps": minimal_steps(bug),
                "report": str(report),
            }
        round_index += 1
        if time.perf_counter() - started >= budget_s:
            return {
                "name": bug or "none",
                "caught": False,
                "property": None,
                "seconds_to_detect": None,
                "shrunk_steps": None,
                "minimal_steps": minimal_steps(bug),
                "report": None,
            }


def minimal_steps(bug: str | None) -> int | None:
    """The shortest counterexample the exhaustive engines know for this bug, if it is a model variant."""
    if bug is None:
        return None
    try:
        from model.explore import minimal_counterexample_length
    except ImportError:
        return None
    return minimal_counterexample_length(bug)


def _kill_matrix(rows: list[dict[str, Any]], root: Path) -> str:
    properties = sorted({row["property"] for row in rows if row["property"]})
    header = (
        "| bug | caught | "
        + " | ".join(f"`{p}`" for p in properties)
        + " | seconds | shrunk | minimal |"
    )
    lines = [
        "# Mutation campaign: the kill matrix",
        "",
        "Each row is a seeded bug from the catalogue; a mark shows the property that caught it.",
        "",
        header,
        "|" + "---|" * (len(properties) + 5),
    ]
    for row in rows:
        marks = []
        for prop in properties:
            if row["property"] == prop:
                link = Path(row["report"]).relative_to(root) if row["report"] else None
                marks.append(f"[x]({link})" if link else "x")
            else:
                marks.append("")
        caught = "yes" if row["caught"] else "**no**"
        lines.append(
            f"| `{row['name']}` | {caught} | "
            + " | ".join(marks)
            + f" | {row['seconds_to_detect']} | {row['shrunk_steps']} | {row['minimal_steps']} |"
        )
    return "\n".join(lines) + "\n"


def run_mutants(
    requested: list[str], budget_s: int, json_path: Path | None, reports: Path | None
) -> int:
    from impl.bugs import BUGS

    unknown = sorted(set(requested) - set(BUGS))
    if unknown:
        raise UsageError(
            f"unknown bug name(s) {', '.join(unknown)}; 'kafka-verify bugs' lists them"
        )
    names = requested or [name for name, bug in BUGS.items() if getattr(bug, "implemented", True)]
    root = reports or Path("reports")
    rows = []
    for name in names:
        row = hunt(name, budget_s, root)
        rows.append(row)
        verdict = (
            f"caught by {row['property']} in {row['seconds_to_detect']} s"
            if row["caught"]
            else "NOT caught"
        )
        print(f"{name:32} {verdict}", file=sys.stderr)
    clean = hunt(None, min(budget_s, 30), root)
    print(
        f"{'(no bug)':32} {'FALSE ALARM: ' + str(clean['property']) if clean['caught'] else 'clean'}",
        file=sys.stderr,
    )
    caught = sum(1 for row in rows if row["caught"])
    root.mkdir(parents=True, exist_ok=True)
    (root / "mutants.md").write_text(_kill_matrix(rows, root))
    payload = {
        "bugs": rows,
        "caught": caught,
        "total": len(rows),
        "false_alarm": clean if clean["caught"] else None,
    }
    write_json(json_path, payload)
    return 0 if caught == len(rows) and not clean["caught"] else 1
