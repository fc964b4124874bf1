"""`kafka-verify workload`: Jepsen's Kafka workload on any Kafka-protocol cluster, then `check`.

Real clients (confluent-kafka by default, or kafka-python) send and poll
while, on a managed cluster (`--cluster FILE`), a nemesis kills and pauses
nodes and cuts or slows the links of its fault proxy (`serve --proxy`); the
history goes to the same checker as `kafka-verify check`.

Exit codes, as `check`: 0 valid; 1 anomalies found (reports written to
`--reports DIR`, by default `reports/workload-<time>/`); 2 bad input (a
usage error, a bad cluster file or client setting, or a run that recorded no
client operation). An interrupted run (SIGINT, SIGTERM) heals every fault,
writes `--history` if asked, and exits 130 without a verdict.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path
from typing import Any

from kafka_verify.harness.check_cli import _summary
from kafka_verify.harness.cli_common import UsageError, positive, write_json

SUB_VIA = ("assign", "subscribe")


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a number of seconds") from None
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{value} must be more than 0")
    return value


def _kinds(text: str) -> tuple[str, ...]:
    from kafka_verify.workload.nemesis import parse_kinds

    try:
        return parse_kinds(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(str(error)) from None


def add_workload_parser(subparsers: Any) -> None:
    """Add the `workload` command to the CLI's subparsers."""
    w = subparsers.add_parser(
        "workload", help="drive a Kafka-protocol cluster with real clients and faults, then check"
    )
    w.add_argument(
        "--bootstrap",
        default=None,
        metavar="HOST:PORT[,...]",
        help="the cluster (default: the cluster file's bootstrap)",
    )
    w.add_argument(
        "--cluster",
        type=Path,
        default=None,
        metavar="FILE",
        help="serve's cluster.json, or a file of nodes with kill/start/pause/resume commands",
    )
    w.add_argument("--client", choices=("confluent", "kafka-python"), default="confluent")
    w.add_argument("--duration-s", type=_seconds, default=30.0, metavar="S")
    w.add_argument(
        "--nemesis",
        type=_kinds,
        default=(),
        metavar="KIND,...",
        help="faults to inject: kill, pause, partition, slow (needs --cluster; partition and "
        "slow need serve --proxy)",
    )
    w.add_argument("--topic", default="t", help="the topic (default t, serve's default topic)")
    w.add_argument("--partitions", type=positive, default=3, help="its partitions (default 3)")
    w.add_argument("--producers", type=positive, default=4)
    w.add_argument("--consumers", type=positive, default=2)
    w.add_argument("--rate", type=_seconds, default=200.0, help="sends per second (default 200)")
    w.add_argument(
        "--sub-via",
        choices=SUB_VIA,
        default="assign",
        help="how consumers take partitions (default assign)",
    )
    w.add_argument(
        "--fault-s",
        type=_seconds,
        default=3.0,
        help="how long a fault lasts on average: each is held for 0.5 to 1.5 times this (3)",
    )
    w.add_argument("--quiet-s", type=_seconds, default=3.0, help="quiet before a fault (3)")
    w.add_argument("--drain-s", type=_seconds, default=5.0, help="quiet drain at the end (5)")
    w.add_argument("--seed", type=int, default=None)
    w.add_argument(
        "-X",
        dest="settings",
        action="append",
        default=[],
        metavar="KEY=VALUE",
        help="a client setting, passed through (repeatable)",
    )
    w.add_argument("--history", type=Path, default=None, metavar="FILE")
    w.add_argument("--json", type=Path, default=None, metavar="FILE")
    w.add_argument("--reports", type=Path, default=None, metavar="DIR")


def _log(text: str) -> None:
    print(f"workload: {text}", file=sys.stderr, flush=True)


def run_workload_command(args: argparse.Namespace) -> int:
    """Run `kafka-verify workload`; returns the exit code."""
    from kafka_verify.workload import (
        ClusterFile,
        ClusterFileError,
        WorkloadError,
        WorkloadOptions,
        run_workload,
    )
    from kafka_verify.workload.clients import ClientSettingError, parse_settings

    if args.nemesis and args.cluster is None:
        raise UsageError(
            "--nemesis needs --cluster FILE: faults are injected only on managed clusters"
        )
    try:
        cluster = ClusterFile.load(args.cluster) if args.cluster is not None else None
        settings = parse_settings(args.settings)
    except (ClusterFileError, ClientSettingError) as error:
        raise UsageError(str(error)) from None
    bootstrap = args.bootstrap or (cluster.bootstrap if cluster is not None else None)
    if not bootstrap:
        raise UsageError("--bootstrap HOST:PORT is needed (or a --cluster file that names it)")
    options = WorkloadOptions(
        bootstrap=bootstrap,
        topic=args.topic,
        partitions=args.partitions,
        client=args.client,
        settings=settings,
        duration_s=args.duration_s,
        producers=args.producers,
        consumers=args.consumers,
        rate=args.rate,
        sub_via=args.sub_via,
        cluster=cluster,
        nemesis=args.nemesis,
        fault_s=args.fault_s,
        quiet_s=args.quiet_s,
        drain_s=args.drain_s,
        seed=args.seed,
        log=_log,
    )
    try:
        outcome = run_workload(options)
    except WorkloadError as error:
        raise UsageError(str(error)) from None
    for problem in outcome.errors:
        _log(problem)
    if args.history is not None:
        outcome.recorder.write(args.history)
    if outcome.interrupted or outcome.result is None:
        print("workload: interrupted; every fault healed", file=sys.stderr)
        return 130
    result = outcome.result
    write_json(args.json, {**result.as_dict(), "workload": outcome.summary()})
    if result.valid is False:
        from kafka_verify.harness.history_report import write_reports

        reports = args.reports or Path("reports") / f"workload-{time.strftime('%Y%m%d-%H%M%S')}"
        try:
            print(f"report: {write_reports(result, reports, history=args.history) / 'report.md'}")
        except OSError as error:
            raise UsageError(f"cannot write the reports: {error.strerror}") from None
    print(_summary(result))
    if not outcome.final_read_complete:
        print("workload: the final read did not reach every partition's end", file=sys.stderr)
    if result.valid == "unknown":
        return 2
    return 0 if result.valid else 1
