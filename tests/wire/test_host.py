"""The real host: `kafka-verify serve` as real processes, signals and sockets on loopback."""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import random
import signal
import socket
import struct
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.impl.bootstrap import initial_coordination, initial_topics
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.effects import ZkCall
from kafka_verify.impl.messages import Metadata, MetadataResponse
from kafka_verify.impl.zk import CONNECTION_LOSS, ZkCluster, ZkError, ZkRead
from kafka_verify.wire.cluster import OFFSETS_PARTITIONS, api_versions_answered
from kafka_verify.wire.host import KAFKA_REQUEST_BASE, BrokerHost, Topology, ZkHost
from kafka_verify.wire.node_client import node_request
from kafka_verify.wire.node_codec import Hello, encode_node_frame
from kafka_verify.wire.zk_state import encode_state, restore

BROKERS = 3
PARTITIONS = 3
WAIT_S = 60.0


def _port_free(port: int) -> bool:
    with socket.socket() as probe:
        probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            probe.bind(("127.0.0.1", port))
        except OSError:
            return False
        return True


def _free_base_port(count: int) -> int:
    for _ in range(200):
        # Below Linux's ephemeral range, as serve picks its node ports (never one of these).
        base = random.randrange(20_000, 32_000)
        if all(_port_free(base + i) for i in range(count)):
            return base
    raise RuntimeError("no run of free ports found")


def _pid_alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie has exited; only its parent's wait is missing.
    with contextlib.suppress(OSError):
        if Path(f"/proc/{pid}/stat").read_text().split(") ")[1].startswith("Z"):
            return False
    return True


def _wait_until(condition: Any, what: str, timeout_s: float = WAIT_S) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        time.sleep(0.1)


class Served:
    """One `kafka-verify serve` process and the node pids it reported."""

    def __init__(self, directory: Path, port: int) -> None:
        self.directory = directory
        self.port = port
        self.process: subprocess.Popen[str] | None = None
        self.pids: set[int] = set()
        self.bootstrap = ""

    def start(self, timeout_s: float = WAIT_S) -> None:
        command = [sys.executable, "-m", "kafka_verify.harness.cli", "serve"]
        command += ["--data-dir", str(self.directory), "--port", str(self.port)]
        command += ["--brokers", str(BROKERS), "--topic", f"t:{PARTITIONS}:3"]
        self.process = subprocess.Popen(
            command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        lines: list[str] = []
        reader = threading.Thread(
            target=lambda: lines.append(self.process.stdout.readline()),  # type: ignore[union-attr]
            daemon=True,
        )
        reader.start()
        reader.join(timeout_s)
        assert lines and lines[0].strip(), f"serve printed no bootstrap: {self.stderr()}"
        self.bootstrap = lines[0].strip()
        self.pids |= {node["pid"] for node in self.cluster_json()["nodes"]}

    def stderr(self) -> str:
        if self.process is None or self.process.poll() is None:
            return "(still running)"
        return self.process.stderr.read() if self.process.stderr else ""

    def cluster_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.directory / "cluster.json").read_text())
        return data

    def config_json(self) -> dict[str, Any]:
        data: dict[str, Any] = json.loads((self.directory / "config.json").read_text())
        return data

    def node_port(self, name: str) -> int:
        return int(next(n for n in self.config_json()["nodes"] if n["name"] == name)["node_port"])

    def pid(self, name: str) -> int:
        return int(next(n for n in self.cluster_json()["nodes"] if n["name"] == name)["pid"])

    def terminate(self) -> int:
        assert self.process is not None
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(30)
        self.process = None
        return code

    def kill_everything(self) -> None:
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
            self.process = None
        for pid in self.pids:
            with contextlib.suppress(ProcessLookupError):
                os.kill(pid, signal.SIGKILL)


@pytest.fixture
def served(tmp_path: Path) -> Iterator[Served]:
    cluster = Served(tmp_path / "cluster", _free_base_port(BROKERS))
    try:
        cluster.start()
        yield cluster
    finally:
        cluster.kill_everything()


def _metadata(port: int) -> MetadataResponse:
    answer = asyncio.run(node_request("127.0.0.1", port, Metadata(7), 10.0, name="test-client"))
    assert isinstance(answer, MetadataResponse)
    return answer


def _leaders_known(port: int) -> bool:
    leaders = _metadata(port).leaders
    return len(leaders) == PARTITIONS + OFFSETS_PARTITIONS and all(
        leader is not None for _, leader, _ in leaders
    )


def test_serve_writes_cluster_json_and_every_broker_answers(served: Served) -> None:
    described = served.cluster_json()
    ports = [served.port + i for i in range(BROKERS)]
    assert described["bootstrap"] == ",".join(f"127.0.0.1:{p}" for p in ports)
    assert served.bootstrap == described["bootstrap"]
    nodes = described["nodes"]
    assert [n["name"] for n in nodes] == ["zk", "b0", "b1", "b2"]
    assert [n["role"] for n in nodes] == ["zk", "broker", "broker", "broker"]
    for node in nodes:
        assert set(node) == {"name", "role", "host", "port", "pid", "data_dir"}
        assert _pid_alive(node["pid"])
        assert Path(node["data_dir"]).is_dir()
    assert [n["port"] for n in nodes[1:]] == ports
    assert all(api_versions_answered("127.0.0.1", port) for port in ports)
    # A node client (hello frame, then an impl request) gets the leader table from b0.
    answer = _metadata(served.node_port("b0"))
    assert answer.request_id == 7
    # The topic's partitions, then the internal offsets topic's.
    assert sorted(p for p, _, _ in answer.leaders) == list(range(PARTITIONS + OFFSETS_PARTITIONS))
    assert all(leader is not None for _, leader, _ in answer.leaders)


def test_a_killed_broker_comes_back_with_a_new_incarnation_and_registration(
    served: Served,
) -> None:
    def registrations() -> dict[int, list[int]]:
        state = json.loads((served.directory / "zk" / "zk-state.json").read_text())["state"]
        return {broker: entry for broker, entry in state["registrations"]}

    before = registrations()[1]
    victim = served.pid("b1")
    os.kill(victim, signal.SIGKILL)
    _wait_until(lambda: not _pid_alive(victim), "b1 to die")
    assert served.terminate() == 0
    served.start()  # the same data directory: every node restarts from its files
    assert served.pid("b1") != victim
    assert (served.directory / "b1" / "incarnation").read_text().strip() == "1"
    _wait_until(lambda: registrations()[1][1] > before[1], "b1 to register again")
    _wait_until(lambda: _leaders_known(served.node_port("b0")), "b0 to know every leader")


def test_sigterm_of_serve_stops_every_child(served: Served) -> None:
    pids = [node["pid"] for node in served.cluster_json()["nodes"]]
    assert all(_pid_alive(pid) for pid in pids)
    assert served.terminate() == 0
    assert not any(_pid_alive(pid) for pid in pids)
    assert not (served.directory / "cluster.json").exists()  # no stale pids are left to kill


def test_a_garbage_frame_closes_that_connection_only(served: Served) -> None:
    port = served.node_port("b0")

    async def scenario() -> None:
        bystander_reader, bystander = await asyncio.open_connection("127.0.0.1", port)
        bystander.write(encode_node_frame("bystander", Hello()))
        garbage_reader, garbage = await asyncio.open_connection("127.0.0.1", port)
        garbage.write(struct.pack(">i", 9) + b"not json!")
        await garbage.drain()
        assert await asyncio.wait_for(garbage_reader.read(), 10) == b""  # closed by b0
        garbage.close()
        # A first frame that is no hello is refused too.
        rude_reader, rude = await asyncio.open_connection("127.0.0.1", port)
        rude.write(encode_node_frame("rude", Metadata(1)))
        assert await asyncio.wait_for(rude_reader.read(), 10) == b""
        rude.close()
        # The bystander's connection is still served.
        bystander.write(encode_node_frame("bystander", Metadata(9)))
        await bystander.drain()
        data = await asyncio.wait_for(bystander_reader.read(4), 10)
        assert len(data) == 4
        bystander.close()

    asyncio.run(scenario())
    assert _leaders_known(port)
    log = (served.directory / "b0" / "node.log").read_text()
    assert "closing the connection" in log and "not JSON" in log
    assert "its first frame is a Metadata" in log


def test_a_data_directory_of_another_cluster_is_refused(served: Served) -> None:
    command = [sys.executable, "-m", "kafka_verify.harness.cli", "serve"]
    command += ["--data-dir", str(served.directory), "--brokers", "4", "--port", str(served.port)]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "holds another cluster's data (brokers 3 there, 4 asked)" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


def test_a_port_in_use_is_one_sentence(tmp_path: Path) -> None:
    with socket.socket() as holder:
        holder.bind(("127.0.0.1", 0))
        holder.listen()
        port = holder.getsockname()[1]
        command = [sys.executable, "-m", "kafka_verify.harness.cli", "serve"]
        command += ["--data-dir", str(tmp_path / "c"), "--brokers", "1", "--port", str(port)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert f"port {port} on 127.0.0.1 is in use" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c" / "config.json").exists()  # a later start is a first start


def test_a_started_cluster_that_lost_a_node_s_data_is_refused(served: Served) -> None:
    assert served.terminate() == 0
    (served.directory / "b2" / "incarnation").unlink()
    command = [sys.executable, "-m", "kafka_verify.harness.cli", "serve"]
    command += ["--data-dir", str(served.directory), "--port", str(served.port)]
    command += ["--topic", f"t:{PARTITIONS}:3"]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert "b2's data is lost" in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.parametrize(
    ("flags", "sentence"),
    [
        (["--topic", "t:3"], "--topic 't:3' is not NAME:PARTITIONS:RF"),
        (["--topic", "t:0:1"], "a topic needs at least one partition"),
        (["--topic", "bad name:1:1"], "is not a legal Kafka topic name"),
        (["--topic", "t:1:1", "--topic", "t:2:1"], "names topic 't' twice"),
        (["--topic", "t:1:1", "--replication", "3"], "--replication 3 is the RF of no --topic"),
        (["--topic", "t:1:3", "--topic", "u:1:4"], "asks RF 4 of a cluster of 3 brokers"),
    ],
)
def test_a_bad_topic_spec_is_one_sentence(tmp_path: Path, flags: list[str], sentence: str) -> None:
    command = [sys.executable, "-m", "kafka_verify.harness.cli", "serve"]
    command += ["--data-dir", str(tmp_path / "c"), *flags]
    done = subprocess.run(command, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2
    assert sentence in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "c").exists()


# -- one process: the hosts on one loop ---------------------------------------------------


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port


def test_in_process_hosts_answer_the_front_end_and_lose_the_zk_as_the_world_does(
    tmp_path: Path,
) -> None:
    from kafka_verify.impl.log import PartitionLog

    config = ClusterConfig(
        brokers=1, partitions=2, replication=1, min_insync=1, producers=0, consumers=0
    )
    topology = Topology({"zk": ("127.0.0.1", _free_port()), "b0": ("127.0.0.1", _free_port())}, {})
    (tmp_path / "zk").mkdir()
    (tmp_path / "b0").mkdir()

    async def scenario() -> None:
        zk = ZkHost(config, topology, tmp_path / "zk")
        broker = BrokerHost(
            0, config, topology, tmp_path / "b0", lambda p: PartitionLog(config.segment_records)
        )
        await zk.start()
        await broker.start()
        try:
            request_id = broker.next_request_id()
            assert request_id > KAFKA_REQUEST_BASE
            answer = await broker.call(Metadata(request_id), 10)
            # The lone broker leads both partitions, ISR itself, and is the controller.
            assert answer == MetadataResponse(
                request_id,
                ((0, 0, 0), (1, 0, 0)),
                initial_topics(config),
                ((0, (0,)), (1, (0,))),
                0,
            )
            assert isinstance(await broker._zk_call(ZkCall(ZkRead())), ZkCluster)
            broker.cast(Metadata(broker.next_request_id()))  # its answer is awaited by nobody
            await zk.close()
            await asyncio.sleep(0.3)  # the connection's loss reaches the broker
            assert await broker._zk_call(ZkCall(ZkRead())) == ZkError(CONNECTION_LOSS)
        finally:
            await broker.shutdown()
            await zk.close()

    asyncio.run(scenario())
    assert (tmp_path / "b0" / "incarnation").read_text().strip() == "0"


def test_the_zk_state_file_round_trips() -> None:
    config = ClusterConfig(groups=2, partitions=2)
    zk = initial_coordination(config)
    from kafka_verify.impl.bootstrap import initial_group_store

    store = initial_group_store(config)
    payload = encode_state(zk, store)
    back, back_store = restore(payload, config, now_ms=123)
    assert encode_state(back, back_store) == payload
    assert back.registrations == zk.registrations and back_store == store
    assert all(s.last_heartbeat_ms == 123 for s in back.sessions.values())
