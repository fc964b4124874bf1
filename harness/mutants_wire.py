"""`kafka-verify mutants --wire`: the mutation campaign from outside, through real clients.

For each seeded bug, rounds of the black box run until its history shows an
anomaly or the bug's time budget is spent. A round starts a fresh `serve
--bug NAME` cluster (3 brokers, RF 3, min ISR 2) in a temporary directory,
runs `kafka-verify workload` against it with the nemeses, and checks the
history. The same rounds against the correct broker, for the same total
time, must find nothing.

Rules of this module:
- The black box knows the cluster only through the Kafka protocol, its
  cluster.json and real signals; the bug is switched on in the cluster it
  starts, and nothing else of the impl is consulted.
- Rounds alternate the consumers between assign and subscribe mode, so that
  group bugs meet rebalances and commits, and each round has its own seed.
  Every other pair of rounds runs with min ISR 1 instead of 2 (`MIN_INSYNC`):
  a leader alone in its ISR acknowledges on its own disk, a state min ISR 2
  never reaches, and acks=all must still lose nothing. Subscribed consumers
  are crashed less often (`SUBSCRIBE_CRASH_EVERY_S`), so that their group is
  stable between rebalances.
- A bug no client history can show is reported as not observable, with the
  reason in one sentence (`UNOBSERVABLE`); it is still run, and a catch of it
  would be reported as a catch.
- Each cluster is `kafka-verify serve` in a process of its own, started as a
  user starts it; it is stopped (SIGTERM, then SIGKILL) and reaped whatever
  happens, and it stops its nodes.
"""

from __future__ import annotations

import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka_verify.harness.cli_common import UsageError, write_json, write_text
from kafka_verify.harness.history_report import write_reports
from kafka_verify.properties.history import CheckResult
from kafka_verify.wire.cluster import CLUSTER_JSON, free_port_run
from kafka_verify.workload import ClusterFile, WorkloadOptions, run_workload

TOPIC = "t"
PARTITIONS = 3
BROKERS = 3
SERVE_STOP_TIMEOUT_S = 60.0  # serve flushes and stops its nodes first
ROUND_S = 40.0
DEFAULT_NEMESES = ("kill", "pause", "partition")
# Faults are held 3 to 9 s (the workload's spread around FAULT_S): across the served
# cluster's replica lag time (5 s) and session timeout (6 s), so some outlast them.
FAULT_S = 6.0
QUIET_S = 2.0
MIN_INSYNC = (2, 2, 1, 1)  # by round, in turn
PROXY_NEMESES = frozenset({"partition", "slow"})  # they need serve --proxy
# A subscribed consumer's crash costs its group a rebalance of about a session timeout (6 s);
# crashed as often as in assign mode, the group spends most of a round rebalancing and rarely
# begins reading again after a coordinator fault, which is where lost commits show.
SUBSCRIBE_CRASH_EVERY_S = 20.0
CRASH_EVERY_S = WorkloadOptions.crash_every_s

# Bugs whose effect no client can see in a served cluster, and why.
UNOBSERVABLE: dict[str, str] = {
    "no-generation-fencing-on-fetch": (
        "it is a bug of the simulated consumer, and on the wire the consumers are real clients,"
        " which bring their own fencing"
    ),
    "session-from-unanswered-heartbeat": (
        "it is a bug of the simulated consumer, and on the wire the consumers are real clients,"
        " which keep their own sessions"
    ),
    "retention-deletes-unreplicated": (
        "a served cluster keeps records for a week, so retention deletes nothing during a run"
    ),
}


@contextmanager
def _served(directory: Path, bug: str | None, proxy: bool, min_insync: int = 2) -> Iterator[str]:
    """`kafka-verify serve --bug NAME` as its own process, as a user starts it (its SIGUSR1
    restarts what the kill nemesis killed), with the fault proxy when `proxy`; the bootstrap
    string while it runs."""
    port = free_port_run(BROKERS)
    command = [sys.executable, "-m", "kafka_verify.harness.cli", "serve"]
    command += ["--data-dir", str(directory), "--port", str(port), "--brokers", str(BROKERS)]
    command += ["--topic", f"{TOPIC}:{PARTITIONS}:{BROKERS}", "--min-insync", str(min_insync)]
    command += ["--bug", bug] if bug else []
    command += ["--proxy"] if proxy else []
    log = open(directory.parent / "serve.log", "w+b")  # noqa: SIM115 (the child writes it)
    process = subprocess.Popen(command, stdout=subprocess.PIPE, stderr=log, start_new_session=True)
    try:
        assert process.stdout is not None
        line = process.stdout.readline().decode().strip()
        if not line:
            log.seek(0)
            tail = log.read().decode(errors="replace").strip().splitlines()[-1:]
            raise RuntimeError(f"serve did not start: {' '.join(tail) or 'no output'}")
        yield line
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(SERVE_STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(SERVE_STOP_TIMEOUT_S)
        if process.stdout is not None:
            process.stdout.close()
        log.close()


def _round(bug: str | None, index: int, round_s: float, nemeses: tuple[str, ...]) -> CheckResult:
    """One round on a fresh cluster: what the checker made of its history."""
    with tempfile.TemporaryDirectory(prefix="kafka-verify-mutants-wire-") as scratch:
        directory = Path(scratch) / "cluster"
        proxied = bool(set(nemeses) & PROXY_NEMESES)
        min_insync = MIN_INSYNC[index % len(MIN_INSYNC)]
        subscribed = index % 2 == 1
        with _served(directory, bug, proxied, min_insync) as bootstrap:
            options = WorkloadOptions(
                bootstrap=bootstrap,
                topic=TOPIC,
                partitions=PARTITIONS,
                duration_s=round_s,
                sub_via="subscribe" if subscribed else "assign",
                crash_every_s=SUBSCRIBE_CRASH_EVERY_S if subscribed else CRASH_EVERY_S,
                cluster=ClusterFile.load(directory / CLUSTER_JSON),
                nemesis=nemeses,
                seed=index,
                fault_s=FAULT_S,
                quiet_s=QUIET_S,
            )
            outcome = run_workload(options)
    if outcome.result is None:
        raise KeyboardInterrupt  # the workload was interrupted: so is the campaign
    return outcome.result


def hunt_wire(
    bug: str | None, budget_s: float, root: Path, round_s: float, nemeses: tuple[str, ...]
) -> dict[str, Any]:
    """Rounds against one bug (None: the correct broker) until an anomaly or the budget's end."""
    started = time.perf_counter()
    rounds = 0
    ops = 0
    while True:
        result = _round(bug, rounds, round_s, nemeses)
        rounds += 1
        ops += result.ops
        elapsed = time.perf_counter() - started
        if result.valid is False:
            reports = write_reports(result, root / f"wire-{bug or 'no-bug'}")
            return _row(bug, True, result.anomaly_types, elapsed, rounds, ops, reports)
        if elapsed + round_s > budget_s:
            return _row(bug, False, [], elapsed, rounds, ops, None)


def _row(
    bug: str | None,
    caught: bool,
    anomalies: list[str],
    seconds: float,
    rounds: int,
    ops: int,
    reports: Path | None,
) -> dict[str, Any]:
    reason = UNOBSERVABLE.get(bug or "")
    return {
        "name": bug,
        "caught": caught,
        "property": ", ".join(sorted(anomalies)) if caught else None,
        "seconds_to_detect": round(seconds, 1) if caught else None,
        "seconds": round(seconds, 1),
        # A black-box history is not shrunk, and the model's minimum does not apply to it.
        "shrunk_steps": None,
        "minimal_steps": None,
        "report": str(reports / "report.md") if reports is not None else None,
        "observable": reason is None,
        "reason": reason,
        "rounds": rounds,
        "ops": ops,
    }


def _table(rows: list[dict[str, Any]], clean: dict[str, Any]) -> str:
    lines = [
        "# The mutation campaign from outside (`kafka-verify mutants --wire`)",
        "",
        "| bug | caught | anomaly | seconds | rounds | ops |",
        "|---|---|---|---|---|---|",
    ]
    for row in [*rows, clean]:
        if row["caught"]:
            verdict = "yes"
        elif not row["observable"]:
            verdict = f"no (not observable: {row['reason']})"
        else:
            verdict = "no"
        seconds = row["seconds_to_detect"] if row["caught"] else row["seconds"]
        lines.append(
            f"| {row['name'] or '(no bug)'} | {verdict} | {row['property'] or ''} | {seconds}"
            f" | {row['rounds']} | {row['ops']} |"
        )
    return "\n".join(lines) + "\n"


def run_mutants_wire(
    requested: list[str],
    budget_s: int,
    json_path: Path | None,
    reports: Path | None,
    round_s: float = ROUND_S,
    nemeses: tuple[str, ...] = DEFAULT_NEMESES,
) -> int:
    from kafka_verify.impl.bugs import BUGS

    unknown = sorted(set(requested) - set(BUGS))
    if unknown:
        raise UsageError(
            f"unknown bug name(s) {', '.join(unknown)}; 'kafka-verify bugs' lists them"
        )
    if budget_s < round_s:
        raise UsageError(f"--budget-s {budget_s} is shorter than one round ({round_s:.0f} s)")
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        return _campaign(requested or list(BUGS), budget_s, json_path, reports, round_s, nemeses)
    except KeyboardInterrupt:
        # Every round's cluster and faults are gone by now: `_served` and the workload
        # stop and heal what they started on the way out.
        print("kafka-verify: interrupted; every cluster is stopped", file=sys.stderr)
        return 130
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _campaign(
    bugs: list[str],
    budget_s: int,
    json_path: Path | None,
    reports: Path | None,
    round_s: float,
    nemeses: tuple[str, ...],
) -> int:
    root = reports or Path("reports")
    rows = []
    for name in bugs:
        row = hunt_wire(name, budget_s, root, round_s, nemeses)
        rows.append(row)
        if row["caught"]:
            verdict = f"caught by {row['property']} in {row['seconds_to_detect']} s"
        else:
            verdict = "NOT caught" + ("" if row["observable"] else f" ({row['reason']})")
        print(f"{name:32} {verdict}", file=sys.stderr, flush=True)
    clean = hunt_wire(None, budget_s, root, round_s, nemeses)
    print(
        f"{'(no bug)':32} "
        f"{'FALSE ALARM: ' + str(clean['property']) if clean['caught'] else 'clean'}",
        file=sys.stderr,
    )
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "mutants-wire.md", _table(rows, clean))
    observable = [row for row in rows if row["observable"]]
    caught = sum(1 for row in rows if row["caught"])
    payload = {
        "bugs": rows,
        "caught": caught,
        "total": len(rows),
        "observable": len(observable),
        "observable_caught": sum(1 for row in observable if row["caught"]),
        "false_alarm": clean if clean["caught"] else None,
        "clean": clean,
    }
    write_json(json_path, payload)
    every_observable = all(row["caught"] for row in observable)
    return 0 if every_observable and not clean["caught"] else 1
