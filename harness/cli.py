"""`kafka-verify`: the command line (see DESIGN.md, "CLI contract").

Exit codes: 0 nothing violated, 1 a violation (report written), 2 a usage or
input error, which always gets exactly one clear sentence on stderr.
"""

from __future__ import annotations

import argparse
import os
import sys
from collections.abc import Callable, Sequence
from pathlib import Path

from kafka_verify.harness import check_cli, workload_cli
from kafka_verify.harness.cli_common import (
    Parser,
    UsageError,
    check_output_paths,
    non_negative,
    positive,
)

# Who draws the simulation campaign's schedules (`run --engine`, `mutants --engine`).
ENGINES = ("hypothesis", "swarm")


def _add_cluster_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument(
        "--brokers", type=positive, default=3, help="brokers in the cluster (default 3)"
    )
    parser.add_argument(
        "--partitions", type=non_negative, default=2, help="partitions of topic t (default 2)"
    )
    parser.add_argument(
        "--replication", type=non_negative, default=3, help="replication factor (default 3)"
    )
    parser.add_argument(
        "--min-insync", type=non_negative, default=2, help="min.insync.replicas (default 2)"
    )
    parser.add_argument(
        "--groups", type=non_negative, default=2, help="consumer groups on topic t (default 2)"
    )
    parser.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a seeded bug (repeatable)",
    )


def _build_parser() -> Parser:
    parser = Parser(
        prog="kafka-verify", description="Verify a Kafka-style broker against its model."
    )
    sub = parser.add_subparsers(dest="command", parser_class=Parser)

    run = sub.add_parser("run", help="run the stateful campaign against the reference cluster")
    run.add_argument("--profile", choices=["dev", "ci", "nightly"], default=None)
    run.add_argument("--seed", type=non_negative, default=None)
    run.add_argument("--examples", type=positive, default=None)
    run.add_argument("--steps", type=positive, default=None)
    run.add_argument(
        "--engine",
        choices=ENGINES,
        default="hypothesis",
        help="who draws the schedules: Hypothesis, or the seeded swarm (harness/swarm.py)",
    )
    run.add_argument(
        "--budget-s",
        type=positive,
        default=None,
        metavar="S",
        help="with --engine swarm: start examples for S seconds (capped by --examples if given)",
    )
    run.add_argument(
        "--first-example",
        type=non_negative,
        default=0,
        metavar="N",
        help="with --engine swarm: start at example N of the seed (re-run one with --examples 1)",
    )
    _add_cluster_arguments(run)
    run.add_argument("--reports", type=Path, default=None, metavar="DIR")
    run.add_argument("--json", type=Path, default=None, metavar="FILE")
    run.add_argument(
        "--save-regression", action="store_true", help="add a found trace to tests/regressions/"
    )
    run.add_argument(
        "--strict-coverage",
        action="store_true",
        help="exit 1 when a SOMETIMES property is reached fewer times than its threshold",
    )
    run.add_argument(
        "--example-db",
        default=None,
        metavar="SPEC",
        help="where found failures are stored and replayed first: DIR, redis://HOST:PORT/N, "
        "multi:SPEC,SPEC..., or readonly:SPEC",
    )
    run.add_argument(
        "--shard",
        default=None,
        metavar="I/N",
        help="run the I-th of N disjoint slices of the campaign's seeds (a CI matrix of N jobs)",
    )
    run.add_argument(
        "--no-config-swarm",
        dest="config_swarm",
        action="store_false",
        help="run every example on the one cluster config the flags give (by default each "
        "example draws its flush interval, timeouts, RF and min ISR, acks and retention)",
    )

    replay = sub.add_parser(
        "replay", help="re-execute a trace and report whether its violation reproduces"
    )
    replay.add_argument("trace", type=Path)
    replay.add_argument("--bug", action="append", default=None, metavar="NAME")
    replay.add_argument("--reports", type=Path, default=None, metavar="DIR")

    prove = sub.add_parser(
        "prove", help="prove the model's invariants with Z3 (BMC and k-induction)"
    )
    try:
        from kafka_verify.harness.prove_cli import add_prove_arguments

        add_prove_arguments(prove)
    except ImportError:
        prove.set_defaults(prove_missing=True)

    mutants = sub.add_parser("mutants", help="run the campaign against every seeded bug")
    mutants.add_argument("--bug", action="append", default=[], metavar="NAME")
    mutants.add_argument("--budget-s", type=positive, default=60)
    mutants.add_argument(
        "--engine",
        choices=ENGINES,
        default="hypothesis",
        help="the simulation campaign's engine (not for --wire)",
    )
    mutants.add_argument(
        "--seed",
        type=non_negative,
        default=None,
        metavar="N",
        help="the first round's seed (default 0; round k runs N+k), to repeat a campaign "
        "or run another one (not for --wire)",
    )
    mutants.add_argument("--json", type=Path, default=None, metavar="FILE")
    mutants.add_argument("--reports", type=Path, default=None, metavar="DIR")
    mutants.add_argument(
        "--wire",
        action="store_true",
        help="from outside: each bug in a real `serve` cluster under the workload and nemeses",
    )
    mutants.add_argument(
        "--round-s",
        type=positive,
        default=40,
        metavar="S",
        help="with --wire: each round's workload duration (default 40)",
    )
    mutants.add_argument(
        "--nemesis",
        default="kill,pause,partition",
        metavar="KIND,...",
        help="with --wire: the nemeses of every round (default kill,pause,partition)",
    )

    bench = sub.add_parser("bench", help="measure checking speed and overhead")
    bench.add_argument("--json", type=Path, default=None, metavar="FILE")
    bench.add_argument("--steps", type=positive, default=12_000)
    bench.add_argument(
        "--prove", action="store_true", help="measure the prover alone (engines and variants)"
    )
    bench.add_argument(
        "--wire",
        action="store_true",
        help="measure the real host with confluent-kafka (a 3-broker serve, RF 3, acks=all)",
    )
    bench.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT[,...]",
        help="with --wire: measure this cluster instead of starting one",
    )
    bench.add_argument(
        "--records", type=positive, default=200_000, help="with --wire: records produced (200,000)"
    )
    bench.add_argument(
        "--brokers", type=positive, default=3, help="with --wire: brokers of the cluster started"
    )
    bench.add_argument(
        "--replication", type=positive, default=3, help="with --wire: its replication factor"
    )

    check_cli.add_check_parser(sub)
    workload_cli.add_workload_parser(sub)
    bugs = sub.add_parser("bugs", help="list the seeded-bug catalogue")
    bugs.add_argument(
        "--long",
        action="store_true",
        help="the whole catalogue: each switch, its history, scenario and catching properties",
    )
    sub.add_parser("properties", help="list every property and what it forbids")
    _add_serve_parser(sub)
    return parser


def _add_serve_parser(sub: argparse._SubParsersAction[Parser]) -> None:
    serve = sub.add_parser(
        "serve", help="run the reference broker as a cluster of real processes until interrupted"
    )
    serve.add_argument("--brokers", type=positive, default=3, help="brokers (default 3)")
    serve.add_argument(
        "--data-dir",
        type=Path,
        default=Path("kafka-verify-cluster"),
        metavar="DIR",
        help="the cluster's data directory; cluster.json is written there (default ./kafka-verify-cluster)",
    )
    serve.add_argument(
        "--port", type=positive, default=9092, help="first broker's Kafka port (default 9092)"
    )
    serve.add_argument(
        "--bind",
        default="127.0.0.1",
        metavar="ADDR",
        help="address to listen on (default 127.0.0.1)",
    )
    serve.add_argument(
        "--bug",
        action="append",
        default=[],
        metavar="NAME",
        help="switch on a seeded bug (repeatable)",
    )
    serve.add_argument(
        "--topic",
        action="append",
        default=[],
        metavar="NAME:PARTITIONS:RF",
        help="the topic's partitions and replication factor (default t:3:3)",
    )
    serve.add_argument(
        "--no-auto-create-topics",
        action="store_true",
        help="refuse a Metadata request's unknown topic instead of creating it, as Kafka's"
        " auto.create.topics.enable=false does",
    )
    serve.add_argument(
        "--default-partitions",
        type=positive,
        default=1,
        metavar="N",
        help="partitions of a topic created without a count (Kafka's num.partitions; default 1)",
    )
    serve.add_argument(
        "--replication",
        type=positive,
        default=None,
        help="replication factor of the configured and auto-created topics"
        " (default: the first --topic's, else min(3, brokers))",
    )
    serve.add_argument("--min-insync", type=positive, default=None, help="min.insync.replicas")
    serve.add_argument(
        "--proxy",
        action="store_true",
        help="put the fault proxy (on loopback) in front of every link, for the partition and slow nemeses",
    )


def _cmd_serve(args: argparse.Namespace) -> int:
    from kafka_verify.wire.cluster import ClusterError, run_serve

    try:
        return run_serve(args)
    except ClusterError as error:
        raise UsageError(str(error)) from None


def _cmd_bugs(args: argparse.Namespace) -> int:
    from kafka_verify.impl.bugs import BUGS

    if args.long:
        from kafka_verify.harness.bug_catalogue import render_markdown

        print(render_markdown(), end="")
        return 0

    width = max(len(name) for name in BUGS)
    for name, bug in BUGS.items():
        print(f"{name.ljust(width)}  {bug.description}")
    return 0


def _cmd_properties(args: argparse.Namespace) -> int:
    from kafka_verify.properties.registry import PROPERTIES

    width = max(len(name) for name in PROPERTIES)
    for name, info in sorted(PROPERTIES.items(), key=lambda item: (item[1].kind.value, item[0])):
        print(f"{name.ljust(width)}  {info.kind.value.upper():10}  {info.forbids}")
    return 0


def _cmd_prove(args: argparse.Namespace) -> int:
    if getattr(args, "prove_missing", False):
        raise UsageError("the prove command is not available in this installation")
    from kafka_verify.harness.prove_cli import run_prove

    return int(run_prove(args))


def _commands() -> dict[str, Callable[[argparse.Namespace], int]]:
    from kafka_verify.harness import commands

    return {
        "run": commands.cmd_run,
        "replay": commands.cmd_replay,
        "prove": _cmd_prove,
        "mutants": commands.cmd_mutants,
        "bench": commands.cmd_bench,
        "check": check_cli.run_check,
        "workload": workload_cli.run_workload_command,
        "bugs": _cmd_bugs,
        "properties": _cmd_properties,
        "serve": _cmd_serve,
    }


def main(argv: Sequence[str] | None = None) -> int:
    parser = _build_parser()
    try:
        args = parser.parse_args(argv)
        if args.command is None:
            parser.print_help()
            return 2
        check_output_paths(args)
        return _commands()[args.command](args)
    except UsageError as error:
        print(f"kafka-verify: {error}", file=sys.stderr)
        return 2
    except BrokenPipeError:
        os._exit(0)


if __name__ == "__main__":
    sys.exit(main())
