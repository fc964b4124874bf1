"""`kafka-verify prove`: proofs of the model's state properties (see DESIGN.md, "CLI contract").

Each replication property goes to the engine `--engine` names: by default a
portfolio of the layered explicit search and Z3, whichever answers first (the JSON and
the table say which, under `engine`). Group properties have their own prover.

Exit codes: 0 when nothing is violated, 1 on a counterexample (a trace file is
written for each), 2 on bad input (one sentence on stderr, no traceback).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from kafka_verify.harness.proof_trace import write_proof_trace
from kafka_verify.harness.prove_groups_cli import (
    GROUP_PROPERTIES,
    GROUP_VARIANTS,
    only_group_variants,
    prove_group_property,
)
from kafka_verify.model import variants
from kafka_verify.model.state import Config, initial_state
from kafka_verify.model.step import step
from kafka_verify.model.symbolic import ENCODED_VARIANTS
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.prove import (
    DEFAULT_DEPTH,
    VIOLATED,
    ProofResult,
    default_config,
    prove,
)
from kafka_verify.properties.prove_explicit import LAYERED
from kafka_verify.properties.prove_groups import DEFAULT_DEPTH as GROUP_DEFAULT_DEPTH
from kafka_verify.properties.prove_portfolio import ALL_ENGINES, ENGINES, portfolio
from kafka_verify.properties.symbolic import BREAKS
from rich.console import Console
from rich.table import Table

DEFAULT_TIMEOUT_S = 600.0
PORTFOLIO = "portfolio"


class _BadInput(Exception):
    """A flag the prover cannot act on: one sentence, exit code 2."""


def add_prove_arguments(parser: argparse.ArgumentParser) -> None:
    """The flags of `kafka-verify prove`."""
    parser.add_argument(
        "--property",
        default="all",
        help=f"a property with a Z3 formula ({', '.join([*BREAKS, *GROUP_PROPERTIES])}) or 'all'",
    )
    parser.add_argument(
        "--depth",
        type=int,
        default=None,
        help=f"BMC depth for what induction does not prove (default {DEFAULT_DEPTH})",
    )
    parser.add_argument(
        "--bug",
        action="append",
        default=[],
        help="a protocol variant to switch on (repeatable); see 'kafka-verify bugs'",
    )
    parser.add_argument("--json", type=Path, default=None, help="write the results as JSON here")
    parser.add_argument(
        "--reports", type=Path, default=Path("reports"), help="where counterexample traces go"
    )
    parser.add_argument("--brokers", type=int, default=3, help="brokers, each with a replica (2-6)")
    parser.add_argument("--log-size", type=int, default=2, help="log slots per replica (1-6)")
    parser.add_argument("--epochs", type=int, default=3, help="largest leader epoch (1-7)")
    parser.add_argument(
        "--engine",
        choices=[PORTFOLIO, *ALL_ENGINES],
        default=PORTFOLIO,
        help=(
            "portfolio (default): breadth-first search a layer at a time (layered) and Z3 (bmc) "
            "side by side, one process each, the first proof or minimal counterexample wins; "
            "or one engine alone (bfs: the same search one state at a time)"
        ),
    )
    parser.add_argument(
        "--timeout-s",
        type=float,
        default=DEFAULT_TIMEOUT_S,
        help="solver time per property; running out reports 'unknown'",
    )


def _selected(args: argparse.Namespace) -> tuple[list[str], Config]:
    provable = [*BREAKS, *GROUP_PROPERTIES]
    names = provable if args.property == "all" else [args.property]
    for name in names:
        if name not in provable:
            raise _BadInput(
                f"unknown property {name!r}: prove knows {', '.join(provable)} (or 'all')"
            )
    bugs = frozenset(b for b in args.bug if b != "none")
    unknown = sorted(bugs - set(variants.PROTOCOL_VARIANTS))
    if unknown:
        known = ", ".join(sorted(variants.PROTOCOL_VARIANTS))
        raise _BadInput(f"unknown protocol bug(s) {unknown}: prove knows {known}")
    not_encoded = sorted(bugs - ENCODED_VARIANTS - GROUP_VARIANTS)
    if not_encoded:
        encoded = ", ".join(sorted(ENCODED_VARIANTS | GROUP_VARIANTS))
        raise _BadInput(f"prove does not encode {not_encoded}; it encodes {encoded}")
    if args.depth is not None and args.depth < 0:
        raise _BadInput(f"--depth must be at least 0, not {args.depth}")
    for flag, value, low, high in (
        ("--brokers", args.brokers, 2, 6),
        ("--log-size", args.log_size, 1, 6),
        ("--epochs", args.epochs, 1, 7),
    ):
        if not low <= value <= high:
            raise _BadInput(f"{flag} must be between {low} and {high}, not {value}")
    if args.timeout_s <= 0:
        raise _BadInput(f"--timeout-s must be positive, not {args.timeout_s}")
    if args.engine in ("bfs", LAYERED) and args.property in GROUP_PROPERTIES:
        raise _BadInput(
            f"--engine {args.engine} searches the replication properties; {args.property} is a group "
            "property, proved by the group prover (use --engine portfolio or bmc)"
        )
    if args.property == "all" and only_group_variants(bugs):
        # Group variants change only the group model: the replication results would not move.
        names = list(GROUP_PROPERTIES)
    return names, default_config(bugs, args.brokers, args.log_size, args.epochs)


def write_counterexample(result: ProofResult, config: Config, root: Path) -> Path:
    """Replay the counterexample on the model and write it as a model-engine trace."""
    state = initial_state(config)
    for action in result.actions:
        state = step(state, action, config)
    violations = STATE_PROPERTIES[result.property](state, config)
    if not violations:
        raise RuntimeError(f"the counterexample for {result.property} does not replay")
    return write_proof_trace(result, config, violations[0], root)


def _print_table(results: list[tuple[ProofResult, Path | None]], config: Config) -> None:
    bugs = ", ".join(sorted(config.bugs)) or "none"
    table = Table(
        title=(
            f"prove: {config.brokers} brokers, RF {config.replication}, {config.max_log} log "
            f"slots, epochs <= {config.max_epoch}, bugs: {bugs}"
        )
    )
    for column in ("property", "status", "depth", "seconds", "engine", "detail"):
        table.add_column(column)
    for result, trace in results:
        detail = "; ".join(part for part in (result.message, *result.notes) if part)
        if trace is not None:
            detail = f"{detail} (trace: {trace})"
        table.add_row(
            result.property,
            result.status,
            str(result.depth),
            f"{result.seconds:.2f}",
            result.engine,
            detail,
        )
    Console(width=160).print(table)


def run_prove(args: argparse.Namespace) -> int:
    """Run the prover as the flags say; the exit code of `kafka-verify prove`."""
    try:
        names, config = _selected(args)
    except _BadInput as error:
        print(f"kafka-verify: {error}", file=sys.stderr)
        return 2
    results: list[tuple[ProofResult, Path | None]] = []
    for name in names:
        if name in GROUP_PROPERTIES:
            depth = GROUP_DEFAULT_DEPTH if args.depth is None else args.depth
            group = prove_group_property(name, config.bugs, depth, args.timeout_s, args.reports)
            results.append(group)
            continue
        depth = DEFAULT_DEPTH if args.depth is None else args.depth
        result = _prove_replication(name, config, depth, args)
        trace = None
        if result.status == VIOLATED:
            trace = write_counterexample(result, config, args.reports)
        results.append((result, trace))
    _print_table(results, config)
    if args.json is not None:
        _write_json(args.json, results)
    return 1 if any(r.status == VIOLATED for r, _ in results) else 0


def _prove_replication(
    name: str, config: Config, depth: int, args: argparse.Namespace
) -> ProofResult:
    """A replication property, by the engine the flags name (Z3 alone runs in this process)."""
    if args.engine == "bmc":
        return prove(name, config, depth=depth, timeout_s=args.timeout_s)
    engines = ENGINES if args.engine == PORTFOLIO else (args.engine,)
    return portfolio(name, config, depth, args.timeout_s, engines)


def _write_json(path: Path, results: list[tuple[ProofResult, Path | None]]) -> None:
    payload: dict[str, Any] = {
        "results": [
            {
                "property": r.property,
                "status": r.status,
                "depth": r.depth,
                "seconds": round(r.seconds, 3),
                "trace": None if trace is None else str(trace),
                "engine": r.engine,
            }
            for r, trace in results
        ]
    }
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
