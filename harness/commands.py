"""The subcommands behind `kafka-verify run`, `replay`, `mutants` and `bench`."""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka_verify.harness.campaign import CampaignResult, run_campaign
from kafka_verify.harness.cli_common import (
    UsageError,
    cluster_config_from,
    plain_output,
    write_json,
    write_text,
)
from kafka_verify.harness.config_swarm import drawn_values
from kafka_verify.harness.example_db import parse_example_db, parse_shard, shard_seed
from kafka_verify.harness.failures import write_failure
from kafka_verify.harness.profiles import PROFILES, selected_profile_name
from kafka_verify.harness.trace import violation_record
from kafka_verify.properties.coverage import coverage_short, coverage_thresholds


@contextmanager
def _progress(budget: int) -> Iterator[Callable[[Any], None] | None]:
    """A live progress line on a terminal (examples, steps per second, phase); nothing otherwise."""
    if plain_output():
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
    swarm = args.engine == "swarm"
    _check_engine_flags(args, swarm)
    profile = PROFILES[selected_profile_name(args.profile)]
    config = cluster_config_from(args, args.bug)
    database = parse_example_db(args.example_db) if args.example_db is not None else None
    seed = args.seed
    shard_note = ""
    if args.shard is not None:
        shard, shards = parse_shard(args.shard)
        seed = shard_seed(args.seed or 0, shard, shards)
        shard_note = f", shard {shard}/{shards} (seed {seed})"
    reports_root = args.reports or Path("reports")
    print(
        f"kafka-verify run: profile {profile.name}, {config.brokers} brokers, {config.partitions} partitions, "
        f"RF {config.replication}, min ISR {config.min_insync}, bugs {sorted(config.bugs) or 'none'}"
        f"{shard_note}, engine {args.engine}{', config swarm' if args.config_swarm else ''}",
        file=sys.stderr,
    )
    budget = args.examples or profile.examples
    result: CampaignResult
    with _progress(budget) as on_example:
        common: dict[str, Any] = {
            "seed": seed,
            "examples": args.examples,
            "steps": args.steps,
            "on_example": on_example,
            "config_swarm": args.config_swarm,
        }
        if swarm:
            # Imported here: the swarm reads Hypothesis's strategy classes, which the
            # Hypothesis engine itself never needs.
            from kafka_verify.harness.swarm import run_swarm

            result = run_swarm(
                config,
                profile,
                budget_s=args.budget_s,
                first_example=args.first_example,
                **common,
            )
        else:
            result = run_campaign(config, profile, database=database, **common)
    if args.budget_s is not None and args.examples is None:
        budget = result.examples  # a timed run is owed the coverage of what it ran
    if result.error:
        raise UsageError(result.error)
    violations = []
    if result.violation is not None:
        meta = {"seed": seed, "profile": profile.name, **(_engine_meta(result) if swarm else {})}
        report_path, trace_path = write_failure(result, reports_root, meta)
        violations.append(
            {
                **violation_record(result.violation, len(result.events)),
                "report": str(report_path),
                "trace": str(trace_path),
                "steps": len(result.events),
            }
        )
        print(f"VIOLATION {result.violation.property}: {result.violation.message}", file=sys.stderr)
        if result.config != config:
            drawn = ", ".join(
                f"{name}={value}"
                for name, value in drawn_values(result.config).items()
                if getattr(config, name) != value
            )
            print(f"  on the example's drawn settings: {drawn}", file=sys.stderr)
        print(f"  shrunk to {len(result.events)} events; report: {report_path}", file=sys.stderr)
        print(f"  replay: kafka-verify replay {trace_path}", file=sys.stderr)
        if meta.get("example") is not None:
            bug_flags = "".join(f" --bug {bug}" for bug in sorted(config.bugs))
            print(
                f"  example {meta['example']} of seed {meta['seed']} alone: kafka-verify run "
                f"--engine swarm --profile {profile.name} --seed {meta['seed']} "
                f"--first-example {meta['example']} --examples 1{bug_flags} "
                "(and this run's cluster shape flags)",
                file=sys.stderr,
            )
        if args.save_regression:
            saved = _save_regression(trace_path)
            print(f"  saved regression trace {saved}", file=sys.stderr)
    thresholds = coverage_thresholds(budget)
    short = coverage_short(result.coverage, thresholds)
    status = "violation" if violations else ("pass, coverage short" if short else "pass")
    payload = {
        "status": status,
        "engine": args.engine,
        "steps": result.steps,
        "examples": result.examples,
        "seconds": round(result.seconds, 3),
        "violations": violations,
        "coverage": result.coverage,
        "coverage_thresholds": thresholds,
        "coverage_short": short,
        "config_draws": result.config_draws,
    }
    unreached = sorted(name for name, count in result.coverage.items() if count == 0)
    swarm_seed = f", swarm seed {_engine_meta(result)['seed']}" if swarm else ""
    print(
        f"{status}: {result.examples} examples, {result.steps} steps in {result.seconds:.1f} s "
        f"({result.steps / max(result.seconds, 1e-9):.0f} steps/s){swarm_seed}",
        file=sys.stderr,
    )
    print(f"coverage: {_coverage_line(result.coverage)}", file=sys.stderr)
    if unreached:
        print(
            f"warning: SOMETIMES properties never reached: {', '.join(unreached)}", file=sys.stderr
        )
    for name in short:
        print(
            f"coverage short: {name} reached {result.coverage.get(name, 0)} times, "
            f"below its threshold of {thresholds[name]}",
            file=sys.stderr,
        )
    _write_summary(reports_root, payload, config)
    write_json(args.json, payload)
    return 1 if violations or (short and args.strict_coverage) else 0


def _check_engine_flags(args: argparse.Namespace, swarm: bool) -> None:
    if swarm and args.example_db is not None:
        raise UsageError("--example-db stores Hypothesis examples: it is for --engine hypothesis")
    if not swarm and args.budget_s is not None:
        raise UsageError("--budget-s is for --engine swarm (Hypothesis counts --examples)")
    if not swarm and args.first_example:
        raise UsageError("--first-example is for --engine swarm")


def _engine_meta(result: CampaignResult) -> dict[str, Any]:
    """The trace's meta for a swarm result: the engine and the failing example, to re-run it."""
    from kafka_verify.harness.swarm import SwarmResult

    if not isinstance(result, SwarmResult):
        return {}
    return {
        "engine": "swarm",
        "seed": result.seed,
        "example": result.failing_example,
        "example_seed": result.failing_example_seed,
    }


def _write_summary(root: Path, payload: dict[str, Any], config: Any) -> None:
    from kafka_verify.properties.registry import PROPERTIES

    root.mkdir(parents=True, exist_ok=True)
    checked = sorted(name for name, info in PROPERTIES.items() if info.kind.value != "sometimes")
    summary = {**payload, "properties_checked": checked, "bugs": sorted(config.bugs)}
    write_text(root / "summary.json", json.dumps(summary, indent=2) + "\n")
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
    lines += [
        "",
        "## SOMETIMES coverage",
        "",
        "| property | reached | threshold |",
        "|---|---|---|",
    ]
    thresholds = payload["coverage_thresholds"]
    for name, count in sorted(payload["coverage"].items()):
        least = thresholds.get(name)
        shown = "" if least is None else f"{least}{' (short)' if count < least else ''}"
        lines.append(f"| {name} | {count} | {shown} |")
    write_text(root / "summary.md", "\n".join(lines) + "\n")


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
    if args.wire:
        if args.engine != "hypothesis":
            raise UsageError("--engine chooses the simulation's engine: it is not for --wire")
        if args.seed is not None:
            raise UsageError(
                "--seed picks the simulation's schedules: rounds --wire run in real time and "
                "are not replayed"
            )
        from kafka_verify.harness.mutants_wire import run_mutants_wire
        from kafka_verify.workload.nemesis import parse_kinds

        try:
            nemeses = parse_kinds(args.nemesis)
        except ValueError as error:
            raise UsageError(str(error)) from None
        return run_mutants_wire(
            args.bug, args.budget_s, args.json, args.reports, float(args.round_s), nemeses
        )
    from kafka_verify.harness.mutants import run_mutants

    return run_mutants(
        args.bug, args.budget_s, args.json, args.reports, args.engine, args.seed or 0
    )


def cmd_bench(args: argparse.Namespace) -> int:
    from kafka_verify.harness.bench import run_bench, run_prove_bench

    started = time.perf_counter()
    if getattr(args, "wire", False):
        from kafka_verify.harness.bench_wire import run_wire_bench

        if args.prove:
            raise UsageError("--wire and --prove measure different things: ask for one")
        if args.replication > args.brokers:
            raise UsageError(
                f"--replication {args.replication} needs at least as many --brokers ({args.brokers})"
            )
        try:
            figures = run_wire_bench(args.bootstrap, args.records, args.brokers, args.replication)
        except RuntimeError as error:
            raise UsageError(str(error)) from None
    elif args.bootstrap is not None:
        raise UsageError("--bootstrap is for bench --wire")
    else:
        figures = run_prove_bench() if getattr(args, "prove", False) else run_bench(args.steps)
    figures["seconds"] = round(time.perf_counter() - started, 2)
    for key, value in figures.items():
        print(f"{key:24} {value}")
    write_json(args.json, figures)
    return 0
