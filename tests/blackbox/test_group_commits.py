"""Lost commits seen from outside: a consumer group's committed offsets across a coordinator kill.

One consumer of a subscribed group reads and commits, the group coordinator's
broker is SIGKILLed (found with FindCoordinator, as any client finds it), and a
fresh consumer of the group reads again. The history is recorded by the
workload's own recording code and judged by the same checker as
`kafka-verify check`: with `--bug offsets-in-memory` the new coordinator has no
offsets and the fresh consumer starts from the beginning (`lost-commit`); the
correct broker's offsets survive in the replicated offsets topic.
"""

from __future__ import annotations

import signal
import socket
import struct
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from kafka_verify.properties.history import CheckResult
from kafka_verify.wire.apis import decode_response, encode_request
from kafka_verify.workload.clients import ConsumerClient
from kafka_verify.workload.run import Workload, WorkloadOptions
from served import ServedCluster, read_exactly, served

TOPIC = "t"
PARTITIONS = 3
RECORDS = 60
WAIT_S = 60.0
FIND_COORDINATOR = 10  # Kafka's api key


@pytest.fixture
def bugged(tmp_path: Path) -> Iterator[ServedCluster]:
    bug = ["--bug", "offsets-in-memory"]
    with served(tmp_path / "cluster", topics=["t:3:3"], extra_args=bug) as cluster:
        yield cluster


@pytest.fixture
def correct(tmp_path: Path) -> Iterator[ServedCluster]:
    with served(tmp_path / "cluster", topics=["t:3:3"]) as cluster:
        yield cluster


def _coordinator(bootstrap: str, group: str) -> int:
    """The broker id FindCoordinator (v0, as any client asks it) names for `group`."""
    import kio.schema.find_coordinator.v0.request as request

    host, port = bootstrap.split(",")[0].rsplit(":", 1)
    deadline = time.monotonic() + WAIT_S
    while True:
        ask = request.FindCoordinatorRequest(key=group)  # type: ignore[arg-type]
        with socket.create_connection((host, int(port)), timeout=10) as conn:
            conn.sendall(encode_request(1, "kafka-verify-test", ask))
            size = struct.unpack(">i", read_exactly(conn, 4))[0]
            _, answer = decode_response(read_exactly(conn, size), FIND_COORDINATOR, 0)
        if int(answer.error_code) == 0:  # type: ignore[attr-defined]
            return int(answer.node_id)  # type: ignore[attr-defined]
        assert time.monotonic() < deadline, f"FindCoordinator kept answering {answer}"
        time.sleep(0.5)  # the coordinator is still being elected


def _read_until(workload: Workload, process: str, client: ConsumerClient, records: int) -> None:
    """Poll (recorded) until `records` records of this run were read or the wait is over."""
    read = 0
    deadline = time.monotonic() + WAIT_S
    while read < records and time.monotonic() < deadline:
        workload._poll(process, client, 0.5)
        read = sum(
            len(pairs)
            for line in workload.recorder.lines()
            if line["process"] == process and line["f"] == "poll" and line["type"] == "ok"
            for pairs in dict(line["value"]).values()  # type: ignore[call-overload]
        )
    assert read >= records, f"{process} read {read} of {records} records in {WAIT_S:.0f} s"


def _send(workload: Workload, numbers: range) -> None:
    """Send each number (recorded) to the partitions in turn, each waiting for its answer."""
    producer = workload.factory.producer()
    try:
        for n in numbers:
            partition = n % PARTITIONS
            workload.recorder.record("p0", "invoke", "send", [TOPIC, partition, None, n])
            kind, offset = producer.send(TOPIC, partition, workload.prefix + str(n).encode(), 15)
            value = offset if kind == "ok" and isinstance(offset, int) else None
            workload.recorder.record("p0", kind, "send", [TOPIC, partition, value, n])
    finally:
        producer.close()


def _commit_kill_restart(cluster: ServedCluster, sub_via: str = "subscribe") -> CheckResult:
    """c0 reads and commits, more is sent, the group's coordinator is killed, c1 reads."""
    workload = Workload(WorkloadOptions(bootstrap=cluster.bootstrap, topic=TOPIC, sub_via=sub_via))
    _send(workload, range(RECORDS))
    first = workload.factory.consumer(workload.group)
    try:
        workload._cover("c0", first)
        _read_until(workload, "c0", first, RECORDS)
        workload._commit("c0", first)
    finally:
        first.close()
    commits = [line for line in workload.recorder.lines() if line["f"] == "commit"]
    assert [line["type"] for line in commits] == ["invoke", "ok"], commits
    _send(workload, range(RECORDS, RECORDS + 2 * PARTITIONS))  # for c1 to read past the commit
    coordinator = _coordinator(cluster.bootstrap, workload.group)
    cluster.signal_node(f"b{coordinator}", signal.SIGKILL)
    second = workload.factory.consumer(workload.group)
    try:
        workload._cover("c1", second)
        _read_until(workload, "c1", second, 1)
    finally:
        second.close()
    cluster.restart_down_nodes()
    return workload.check()


def test_offsets_in_memory_loses_commits_when_the_coordinator_dies(
    bugged: ServedCluster,
) -> None:
    result = _commit_kill_restart(bugged)
    assert "lost-commit" in result.anomaly_types, result.anomaly_types
    case = next(j.case for j in result.judged if j.case.anomaly == "lost-commit")
    floor, read = case.fact("committed_floor"), case.fact("read_offset")
    assert isinstance(floor, int) and isinstance(read, int) and read < floor
    assert result.valid is False


def test_the_correct_broker_keeps_commits_across_a_coordinator_kill(
    correct: ServedCluster,
) -> None:
    result = _commit_kill_restart(correct)
    assert result.valid is True, result.anomaly_types


def test_assigned_consumers_commit_and_the_correct_broker_keeps_it_across_a_kill(
    correct: ServedCluster,
) -> None:
    result = _commit_kill_restart(correct, sub_via="assign")
    assert result.valid is True, result.anomaly_types


def test_offsets_in_memory_loses_an_assigned_consumers_commit_when_the_coordinator_dies(
    bugged: ServedCluster,
) -> None:
    result = _commit_kill_restart(bugged, sub_via="assign")
    assert "lost-commit" in result.anomaly_types, result.anomaly_types
