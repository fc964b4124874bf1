"""`kafka-verify workload` against real `kafka-verify serve` clusters, as a user runs it.

Each test starts a 3-broker cluster (RF 3, min ISR 2) on free loopback ports,
runs the console script as a subprocess, and reads what it wrote: its exit
code, its JSON, its history. The fixture stops the cluster and leaves no
process behind.
"""

from __future__ import annotations

import json
import os
import random
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.workload.nemesis import process_alive
from kafka_verify.workload.proxy import ProxyControl
from served import ServedCluster, _console_script

RUN_TIMEOUT_S = 240.0
# Enough for a history to mean something, far below what a loaded 2-core machine does in
# these runs: how fast a run goes is the bench's business, not a test's.
MEANINGFUL_OPS = 400
MEANINGFUL_ACKS = 100


def _cluster(tmp_path: Path, *extra: str) -> Iterator[ServedCluster]:
    served = ServedCluster(tmp_path / "cluster", topics=["t:3:3"], extra_args=extra)
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ServedCluster]:
    yield from _cluster(tmp_path)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ServedCluster]:
    """A cluster behind the fault proxy (`serve --proxy`); after it stops, the proxy is gone."""
    served = ServedCluster(tmp_path / "cluster", topics=["t:3:3"], extra_args=["--proxy"])
    served.start()
    proxy_pid = int(served.proxy()["pid"])
    try:
        yield served
    finally:
        served.stop()
    assert not process_alive(proxy_pid)


def _workload(*args: str, timeout: float = RUN_TIMEOUT_S) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [_console_script(), "workload", *args],
        capture_output=True,
        text=True,
        timeout=timeout,
        check=False,
    )


def _history(path: Path) -> list[dict[str, object]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def _state(pid: int) -> str:
    with open(f"/proc/{pid}/stat") as stat:
        return stat.read().rsplit(")", 1)[-1].split()[0]


def _assert_every_node_running(cluster: ServedCluster) -> None:
    for node in cluster.nodes():
        pid = int(str(node["pid"]))
        os.kill(pid, 0)  # raises if it is gone
        assert _state(pid) not in ("T", "t", "Z"), (node["name"], _state(pid))


def _assert_clean_but_for_client_resets(
    data: dict[str, Any], done: subprocess.CompletedProcess[str]
) -> None:
    # The one anomaly a correct cluster shows here is librdkafka's, not the broker's
    # (docs/findings/2026-12-01-librdkafka-stale-list-offsets.md): an assign-mode consumer
    # with no committed offset, handed a stale ListOffsets answer from a restarted broker,
    # goes back to auto.offset.reset (offset 0 here). Anything else fails the test.
    client_resets = [
        case for case in data["anomalies"].get("nonmonotonic-poll", []) if case["offsets"][1] == 0
    ]
    others = {k: v for k, v in data["anomalies"].items() if k != "nonmonotonic-poll"}
    assert others == {} and len(client_resets) == len(
        data["anomalies"].get("nonmonotonic-poll", [])
    ), data["anomaly_types"]
    assert done.returncode == (1 if client_resets else 0), done.stdout + done.stderr


def test_kill_and_pause_nemeses_on_a_correct_cluster_leave_a_valid_history(
    cluster: ServedCluster, tmp_path: Path
) -> None:
    history, result = tmp_path / "history.jsonl", tmp_path / "result.json"
    done = _workload(
        "--bootstrap", cluster.bootstrap,
        "--cluster", str(cluster.data_dir / "cluster.json"),
        "--duration-s", "30",
        "--nemesis", "kill,pause",
        "--quiet-s", "2",
        "--history", str(history),
        "--json", str(result),
        "--reports", str(tmp_path / "reports"),
        # A pause first, then a kill (the workload's generator): an aimed kill can take
        # most of a round waiting for elections, and this one needs two faults.
        "--seed", "3",
    )  # fmt: skip
    data = json.loads(result.read_text())
    _assert_clean_but_for_client_resets(data, done)
    assert data["ops"] > MEANINGFUL_OPS
    ops = _history(history)
    nemesis = [op for op in ops if op["process"] == "nemesis"]
    faults = {op["value"]["fault"] for op in nemesis if op["type"] == "ok"}  # type: ignore[index]
    assert {"kill", "start"} <= faults or {"pause", "resume"} <= faults, faults
    assert data["workload"]["faults"] >= 2
    assert data["workload"]["final_read_complete"] is True
    # Every acknowledged record was read, by someone, at the offset it was acknowledged at.
    assert data["stats"]["acked"] > MEANINGFUL_ACKS and data["stats"]["unseen"]["count"] == 0
    assert {"send", "poll", "assign", "crash"} <= set(data["workload"]["ops"])
    _assert_every_node_running(cluster)


def test_kafka_python_without_a_nemesis_leaves_a_valid_history(
    cluster: ServedCluster, tmp_path: Path
) -> None:
    result = tmp_path / "result.json"
    done = _workload(
        "--bootstrap", cluster.bootstrap,
        "--client", "kafka-python",
        "--duration-s", "20",
        "--json", str(result),
        "--reports", str(tmp_path / "reports"),
        "-X", "acks=all",
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    data = json.loads(result.read_text())
    assert data["valid"] is True
    assert data["ops"] > MEANINGFUL_OPS
    assert data["workload"]["ops"]["send"]["ok"] > MEANINGFUL_ACKS
    assert data["workload"]["final_read_complete"] is True


def test_a_nemesis_without_a_cluster_file_is_refused() -> None:
    done = _workload("--bootstrap", "127.0.0.1:1", "--nemesis", "kill", timeout=60)
    assert done.returncode == 2
    assert done.stderr.strip().count("\n") == 0
    assert "--nemesis needs --cluster" in done.stderr


def test_a_nemesis_that_needs_a_proxy_is_refused_without_one(tmp_path: Path) -> None:
    commands = {c: "true" for c in ("kill", "start", "pause", "resume")}
    cluster_file = tmp_path / "cluster.json"
    cluster_file.write_text(json.dumps({"nodes": [{"name": "n0", "role": "broker", **commands}]}))
    for kind in ("partition", "slow", "kill,slow"):
        done = _workload(
            "--bootstrap", "127.0.0.1:1", "--cluster", str(cluster_file), "--nemesis", kind,
            timeout=60,
        )  # fmt: skip
        assert done.returncode == 2
        assert done.stderr.strip().count("\n") == 0, done.stderr
        assert "needs a fault proxy" in done.stderr and "serve --proxy" in done.stderr


def _wait_for_fault(process: subprocess.Popen[str], kind: str) -> list[str]:
    """The workload's log up to its first fault of `kind`, a second after it was injected."""
    assert process.stderr is not None
    deadline = time.monotonic() + 60
    seen = []
    while time.monotonic() < deadline:
        line = process.stderr.readline()
        seen.append(line)
        if line.startswith(f"workload: nemesis: {kind}"):
            time.sleep(1.0)  # mid-fault now
            return seen
    raise AssertionError("no fault was injected:\n" + "".join(seen))


def _proxy_faults(cluster: ServedCluster) -> dict[str, Any]:
    return ProxyControl(cluster.proxy()["control"]).faults()


def test_every_nemesis_through_the_proxy_leaves_a_valid_history(
    proxied: ServedCluster, tmp_path: Path
) -> None:
    history, result = tmp_path / "history.jsonl", tmp_path / "result.json"
    done = _workload(
        "--cluster", str(proxied.data_dir / "cluster.json"),
        "--duration-s", "30",
        "--nemesis", "kill,pause,partition,slow",
        "--quiet-s", "1.5",
        "--fault-s", "2.5",
        "--history", str(history),
        "--json", str(result),
        "--reports", str(tmp_path / "reports"),
        # Its first two faults are a partition and a slow one (the workload's generator).
        "--seed", "1",
    )  # fmt: skip
    data = json.loads(result.read_text())
    _assert_clean_but_for_client_resets(data, done)
    assert data["ops"] > MEANINGFUL_OPS
    nemesis = [op for op in _history(history) if op["process"] == "nemesis"]
    done_faults = [op["value"] for op in nemesis if op["type"] == "ok"]
    kinds = {value["fault"] for value in done_faults}  # type: ignore[index]
    assert {"partition", "slow", "heal"} <= kinds, kinds
    partitions = [v for v in done_faults if v["fault"] == "partition"]  # type: ignore[index]
    assert all(v["links"] for v in partitions)  # type: ignore[index]
    assert data["workload"]["final_read_complete"] is True
    assert data["stats"]["acked"] > MEANINGFUL_ACKS and data["stats"]["unseen"]["count"] == 0
    assert _proxy_faults(proxied) == {}
    _assert_every_node_running(proxied)


def _workload_held_in_a_fault(
    cluster: ServedCluster, kind: str, history: Path
) -> subprocess.Popen[str]:
    """A long workload whose one nemesis holds each fault for a minute: an interrupt lands
    mid-fault."""
    return subprocess.Popen(
        [
            _console_script(), "workload",
            "--cluster", str(cluster.data_dir / "cluster.json"),
            "--duration-s", "120",
            "--nemesis", kind,
            "--quiet-s", "1",
            "--fault-s", "60",
            "--history", str(history),
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )  # fmt: skip


def test_an_interrupt_mid_partition_heals_the_proxy_and_leaves_no_process(
    proxied: ServedCluster, tmp_path: Path
) -> None:
    history = tmp_path / "history.jsonl"
    process = _workload_held_in_a_fault(proxied, "partition", history)
    try:
        seen = _wait_for_fault(process, "partition")
        faults = _proxy_faults(proxied)
        assert faults and all(f["cut"] in ("stall", "reset") for f in faults.values()), faults
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, "".join(seen) + err
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # reaped: no workload process is left
    assert _proxy_faults(proxied) == {}
    _assert_every_node_running(proxied)
    heals = [
        op["value"]["fault"]  # type: ignore[index]
        for op in _history(history)
        if op["process"] == "nemesis" and op["type"] == "ok"
    ]
    # The coordination service's links heal first when the cut had others too.
    last = len(heals) - 1 - heals[::-1].index("partition")
    assert heals[last + 1 :] in (["heal"], ["heal", "heal"]), heals


@pytest.mark.parametrize("kind", ["kill", "pause"])
def test_an_interrupt_mid_fault_heals_every_node(
    cluster: ServedCluster, tmp_path: Path, kind: str
) -> None:
    history = tmp_path / "history.jsonl"
    process = _workload_held_in_a_fault(cluster, kind, history)
    try:
        seen = _wait_for_fault(process, kind)
        process.send_signal(signal.SIGINT)
        _, err = process.communicate(timeout=120)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
    assert process.returncode == 130, "".join(seen) + err
    with pytest.raises(ProcessLookupError):
        os.kill(process.pid, 0)  # reaped: no workload process is left
    _assert_every_node_running(cluster)
    heals = [
        op["value"]["fault"]  # type: ignore[index]
        for op in _history(history)
        if op["process"] == "nemesis" and op["type"] == "ok"
    ]
    assert heals[-1] == ("start" if kind == "kill" else "resume"), heals


# Black-box detection of ack-before-commit needs a kill to land on a leader in the few
# milliseconds between its early acknowledgement and its followers' fetch: in 30 s it is
# caught in some runs and not in others, so it runs with the slow tests (`--run-slow`), and
# the campaign that measures detection from outside is `mutants --wire` (not yet built).
@pytest.mark.slow
def test_a_seeded_bug_under_the_kill_nemesis_is_reported(tmp_path: Path) -> None:
    """ack-before-commit: acks=all is answered before followers have the record, so a killed
    leader takes acknowledged records with it."""
    for cluster in _cluster(tmp_path, "--bug", "ack-before-commit"):
        result, reports = tmp_path / "result.json", tmp_path / "reports"
        done = _workload(
            "--cluster", str(cluster.data_dir / "cluster.json"),
            "--duration-s", "30",
            "--nemesis", "kill",
            "--quiet-s", "1",
            "--fault-s", "2",
            "--json", str(result),
            "--reports", str(reports),
        )  # fmt: skip
        assert done.returncode == 1, done.stdout + done.stderr
        data = json.loads(result.read_text())
        assert data["valid"] is False
        assert {"lost-write", "inconsistent-offsets"} & set(data["anomaly_types"])
        assert (reports / "report.md").exists()


class _AlwaysLow(random.Random):
    """A generator whose every draw is below every chance: each aimed kill cascades."""

    def random(self) -> float:
        return 0.0


def test_the_kill_nemesis_aims_at_a_leader_then_at_the_leader_after_it(
    cluster: ServedCluster,
) -> None:
    from kafka_verify.workload import ClusterFile, Nemesis, Recorder
    from kafka_verify.workload.clients import ClientFactory

    factory = ClientFactory("confluent", cluster.bootstrap, {})
    before = factory.leaders("t")
    assert sorted(before) == [0, 1, 2]
    recorder = Recorder()
    nemesis = Nemesis(
        ClusterFile.load(cluster.data_dir / "cluster.json"),
        recorder,
        _AlwaysLow(),
        layout=lambda: factory.layout("t"),
    )
    nemesis.kill_plans = {"leader": 1.0}
    try:
        said = nemesis.inject("kill")
        kills = [
            line["value"]
            for line in recorder.lines()
            if line["type"] == "ok" and line["value"]["fault"] == "kill"  # type: ignore[index]
        ]
        assert len(kills) == 2, said
        first, second = kills
        partition = first["leader_of"]  # type: ignore[index]
        assert first["node"] == f"b{before[partition]}"  # type: ignore[index]
        assert second["leader_of"] == partition  # type: ignore[index]
        assert second["node"] != first["node"]  # type: ignore[index]
        assert not process_alive(int(first["pid"]))  # type: ignore[index]
    finally:
        nemesis.heal_all()
    _assert_every_node_running(cluster)
