"""The subcommands behind `kafka-verify run`, `replay`, `mutants` and `bench`."""

from __future__ import annotations

import argparse
import json
import os
import shlex
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from kafka_verify.harness.campaign import CampaignResult, run_campaign
from kafka_verify.harness.cli import UsageError, cluster_config_from, write_json
from kafka_verify.harness.profiles import PROFILES, selected_profile_name
from kafka_verify.properties.catalogue import Violation


def _plain_output() -> bool:
    return os.environ.get("CI", "").lower() == "true" or not sys.stderr.isatty()


def _violation_dict(violation: Violation) -> dict[str, Any]:
    return {
        "property": violation.property,
        "message": violation.message,
        "details": {key: _jsonable(value) for key, value in violation.details},
    }


def _jsonable(value: Any) -> Any:
    if isinstance(value, frozenset | set):
        return sorted(_jsonable(v) for v in value)
    if isinstance(value, tuple | list):
        return [_jsonable(v) for v in value]
    if isinstance(value, dict):
        return {str(k): _jsonable(v) for k, v in value.items()}
    if isinstance(value, int | float | str | bool) or value is None:
        return value
    return repr(value)


def write_failure(
    result: CampaignResult, reports_root: Path, meta: dict[str, Any]
) -> tuple[Path, Path]:
    """Replay the shrunk schedule once more, and write report.md, report.html and trace.json."""
    from kafka_verify.harness.report import report_directory, write_report
    from kafka_verify.harness.runner import execute
    from kafka_verify.harness.trace import SCHEMA_VERSION, Trace
    from kafka_verify.properties.catalogue import PROPERTIES, Kind

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
        violation={**_violation_dict(found), "step": len(outcome.steps)},
        meta=meta,
    )
    directory = report_directory(reports_root, found.property, datetime.now(UTC))
    trace_path = directory / "trace.json"
    report_path = write_report(outcome, trace, directory, replay_command_for(directory))
    return report_path, trace_path


def replay_command_for(directory: Path) -> str:
    """The command that replays the trace in `directory`, relative to here when it can be."""
    trace_path = (directory / "trace.json").resolve()
    try:
        shown = trace_path.relative_to(Path.cwd())
    except ValueError:
        shown = trace_path
    return f"kafka-verify replay {shlex.quote(str(shown))}"


@contextmanager
def _progress(budget: int) -> Iterator[Callable[[Any], None] | None]:
    """A live progress line on a terminal (examples, steps per second, phase); nothing otherwise."""
    if _plain_output():
        yield None
        return
    from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn

    columns = (
        TextColumn("{task.fields[phase]:9}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total} examples"),
        TextColumn("{task.fields[rate]:>8} steps/s"),
        TimeElapsedColumn(),
    )
    with Progress(*columns, transient=True) as progress:
        task = progress.add_task("run", total=budget, phase="searching", rate="-")

        def on_example(recorder: Any) -> None:
            elapsed = max(time.perf_counter() - recorder.started, 1e-9)
            phase = "shrinking" if recorder.failure is not None else "searching"
            progress.update(
                task,
                completed=min(recorder.examples, budget),
                phase=phase,
                rate=f"{recorder.steps / elapsed:.0f}",
            )

        yield on_example


def _coverage_line(coverage: dict[str, int]) -> str:
    return ", ".join(f"{name}={count}" for name, count in sorted(coverage.items()))


def cmd_run(args: argparse.Namespace) -> int:
    profile = PROFILES[selected_profile_name(args.profile)]
    config = cluster_config_from(args, args.bug)
    reports_root = args.reports or Path("reports")
    print(
        f"kafka-verify run: profile {profile.name}, {config.brokers} brokers, {config.partitions} partitions, "
        f"RF {config.replication}, min ISR {config.min_insync}, bugs {sorted(config.bugs) or 'none'}",
        file=sys.stderr,
    )
    budget = args.examples or profile.examples
    with _progress(budget) as on_example:
        result = run_campaign(
            config,
            profile,
            seed=args.seed,
            examples=args.examples,
            steps=args.steps,
            on_example=on_example,
        )
    if result.error:
        raise UsageError(result.error)
    violations = []
    if result.violation is not None:
        meta = {"seed": args.seed, "profile": profile.name}
        report_path, trace_path = write_failure(result, reports_root, meta)
        violations.append(
            {
                "property": result.violation.property,
                "message": result.violation.message,
                "report": str(report_path),
                "trace": str(trace_path),
                "steps": len(result.events),
            }
        )
        print(f"VIOLATION {result.violation.property}: {result.violation.message}", file=sys.stderr)
        print(f"  shrunk to {len(result.events)} events; report: {report_path}", file=sys.stderr)
        print(f"  replay: kafka-verify replay {trace_path}", file=sys.stderr)
        if args.save_regression:
            saved = _save_regression(trace_path)
            print(f"  saved regression trace {saved}", file=sys.stderr)
    status = "violation" if violations else "pass"
    payload = {
        "status": status,
        "steps": result.steps,
        "examples": result.examples,
        "seconds": round(result.seconds, 3),
        "violations": violations,
        "coverage": result.coverage,
    }
    unreached = sorted(name for name, count in result.coverage.items() if count == 0)
    print(
        f"{status}: {result.examples} examples, {result.steps} steps in {result.seconds:.1f} s "
        f"({result.steps / max(result.seconds, 1e-9):.0f} steps/s)",
        file=sys.stderr,
    )
    print(f"coverage: {_coverage_line(result.coverage)}", file=sys.stderr)
    if unreached:
        print(
            f"warning: SOMETIMES properties never reached: {', '.join(unreached)}", file=sys.stderr
        )
    _write_summary(reports_root, payload, config)
    write_json(args.json, payload)
    return 1 if violations else 0


def _write_summary(root: Path, payload: dict[str, Any], config: Any) -> None:
    from kafka_verify.properties.catalogue import PROPERTIES

    root.mkdir(parents=True, exist_ok=True)
    checked = sorted(name for name, info in PROPERTIES.items() if info.kind.value != "sometimes")
    summary = {**payload, "properties_checked": checked, "bugs": sorted(config.bugs)}
    (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    lines = [
        "# kafka-verify run summary",
        "",
        f"- status: **{payload['status']}**",
        f"- examples: {payload['examples']}, steps: {payload['steps']}, seconds: {payload['seconds']}",
        f"- seeded bugs: {', '.join(sorted(config.bugs)) or 'none'}",
        f"- properties checked: {len(checked)} ({', '.join(checked)})",
        "",
        "## Violations",
        "",
    ]
    if not payload["violations"]:
        lines.append("None.")
    for v in payload["violations"]:
        report = Path(v["report"])
        try:
            link = report.relative_to(root)
        except ValueError:
            link = report
        lines.append(f"- `{v['property']}`: {v['message']} ([report]({link}), {v['steps']} events)")
    lines += ["", "## SOMETIMES coverage", "", "| property | reached |", "|---|---|"]
    for name, count in sorted(payload["coverage"].items()):
        lines.append(f"| {name} | {count} |")
    (root / "summary.md").write_text("\n".join(lines) + "\n")


def _save_regression(trace_path: Path) -> Path:
    target_dir = Path("tests") / "regressions"
    target_dir.mkdir(parents=True, exist_ok=True)
    data = json.loads(trace_path.read_text())
    name = f"{data['violation']['property']}-{'-'.join(data['config'].get('bugs', [])) or 'clean'}"
    target = target_dir / f"{name}.json"
    counter = 2
    while target.exists():
        target = target_dir / f"{name}-{counter}.json"
        counter += 1
    target.write_text(trace_path.read_text())
    return target


def cmd_replay(args: argparse.Namespace) -> int:
    from kafka_verify.harness.replay import replay_trace

    return replay_trace(args.trace, args.bug, args.reports)


def cmd_mutants(args: argparse.Namespace) -> int:
    from kafka_verify.harness.mutants import run_mutants

    return run_mutants(args.bug, args.budget_s, args.json, args.reports)


def cmd_bench(args: argparse.Namespace) -> int:
    from kafka_verify.harness.bench import run_bench, run_prove_bench

    started = time.perf_counter()
    figures = run_prove_bench() if getattr(args, "prove", False) else run_bench(args.steps)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    for key, value in figures.items():
        print(f"{key:24} {value}")
    write_json(args.json, figures)
    return 0
