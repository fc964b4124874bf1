"""`kafka-verify serve` as a test fixture: a real cluster of real OS processes on loopback.

Rules of this module:
- The cluster is started exactly as a user starts it, with the console script,
  on free loopback ports, in a temporary data directory.
- `stop()` sends SIGTERM to `serve` (a clean shutdown flushes and stops every
  node), waits, then SIGKILLs whatever is left; afterwards no process the
  cluster started is alive. Tests call it in a `finally` block or use the
  context manager.
- Node processes are signalled by the pids `cluster.json` names, as an operator
  (or the black box's nemesis) would.
- With `--proxy` among its arguments, its bootstrap is the fault proxy's (read
  from `cluster.json`), and the proxy's pid is among those that must be gone.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka_verify.wire.cluster import free_port_run
from kafka_verify.workload.nemesis import process_alive

START_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 30.0
WAIT_S = 120.0


@dataclass
class ServedCluster:
    data_dir: Path
    brokers: int = 3
    topics: Sequence[str] = ("t:3:3",)
    extra_args: Sequence[str] = ()
    port: int = 0
    process: subprocess.Popen[str] | None = None
    output: list[str] = field(default_factory=list)
    seen_pids: set[int] = field(default_factory=set)

    # -- starting and stopping ----------------------------------------------------------------

    def start(self) -> ServedCluster:
        if not self.port:
            self.port = free_port_run(self.brokers)
        command = [
            _console_script(),
            "serve",
            "--brokers",
            str(self.brokers),
            "--data-dir",
            str(self.data_dir),
            "--port",
            str(self.port),
            *[arg for topic in self.topics for arg in ("--topic", topic)],
            *self.extra_args,
        ]
        self.process = subprocess.Popen(
            command,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
            start_new_session=True,  # Ctrl-C in the test runner is not also sent to the cluster
        )
        deadline = time.monotonic() + START_TIMEOUT_S
        assert self.process.stdout is not None
        while time.monotonic() < deadline:
            line = self.process.stdout.readline()
            if not line:
                break
            self.output.append(line.rstrip())
            if self.direct_bootstrap in line or (self.proxied and line.startswith("127.0.0.1:")):
                self._remember_pids()
                return self
        self.stop()
        raise RuntimeError("kafka-verify serve did not start:\n" + "\n".join(self.output[-40:]))

    def stop(self) -> None:
        """SIGTERM serve, wait, SIGKILL anything left; then assert nothing is alive."""
        self._remember_pids()
        if self.process is not None and self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT_S)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT_S)
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(process_alive(pid) for pid in self.seen_pids) and time.monotonic() < deadline:
            time.sleep(0.1)
        for pid in self.seen_pids:
            if process_alive(pid):
                os.kill(pid, signal.SIGKILL)
        # Gone, not only signalled: a start right after this one must find its ports free.
        deadline = time.monotonic() + STOP_TIMEOUT_S
        while any(process_alive(pid) for pid in self.seen_pids) and time.monotonic() < deadline:
            time.sleep(0.05)
        if self.process is not None and self.process.stdout is not None:
            self.output.extend(line.rstrip() for line in self.process.stdout)
            self.process.stdout.close()
        self.process = None

    def __enter__(self) -> ServedCluster:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()

    # -- what it is ---------------------------------------------------------------------------

    @property
    def proxied(self) -> bool:
        return "--proxy" in self.extra_args

    @property
    def direct_bootstrap(self) -> str:
        """The brokers' own Kafka ports, past any proxy."""
        return ",".join(f"127.0.0.1:{self.port + i}" for i in range(self.brokers))

    @property
    def bootstrap(self) -> str:
        if self.proxied:
            return str(self.cluster_json()["bootstrap"])
        return self.direct_bootstrap

    def proxy(self) -> dict[str, Any]:
        """cluster.json's `proxy`: its pid, control address and links."""
        described = self.cluster_json()["proxy"]
        assert isinstance(described, dict)
        return described

    def cluster_json(self) -> dict[str, object]:
        data: dict[str, object] = json.loads((self.data_dir / "cluster.json").read_text())
        return data

    def nodes(self) -> list[dict[str, object]]:
        nodes = self.cluster_json()["nodes"]
        assert isinstance(nodes, list)
        return nodes

    def pid_of(self, name: str) -> int:
        (pid,) = [int(str(n["pid"])) for n in self.nodes() if n["name"] == name]
        return pid

    def _remember_pids(self) -> None:
        if (self.data_dir / "cluster.json").exists():
            self.seen_pids.update(int(str(n["pid"])) for n in self.nodes() if n.get("pid"))
            if self.proxied:
                self.seen_pids.add(int(self.proxy()["pid"]))

    def restart_down_nodes(self) -> None:
        """Ask serve (SIGUSR1) to start every node that is not running, and wait until each is
        running again under a new pid, and its Kafka port answers."""
        assert self.process is not None
        dead = {str(n["name"]) for n in self.nodes() if not process_alive(int(str(n["pid"])))}
        old = {name: self.pid_of(name) for name in dead}
        self.process.send_signal(signal.SIGUSR1)
        deadline = time.monotonic() + START_TIMEOUT_S
        while time.monotonic() < deadline:
            try:
                fresh = all(
                    self.pid_of(n) != old[n] and process_alive(self.pid_of(n)) for n in dead
                )
            except (ValueError, json.JSONDecodeError):
                fresh = False  # cluster.json is being rewritten
            if fresh and all(self._kafka_port_open(n) for n in dead if n.startswith("b")):
                self._remember_pids()
                return
            time.sleep(0.2)
        raise RuntimeError(f"serve did not start {sorted(dead)} again")

    def _kafka_port_open(self, name: str) -> bool:
        port = self.port + int(name[1:])
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return True
        except OSError:
            return False

    def signal_node(self, name: str, signum: int) -> int:
        pid = self.pid_of(name)
        os.kill(pid, signum)
        return pid


def leader_of(bootstrap: str, topic: str, partition: int) -> int:
    from confluent_kafka.admin import AdminClient

    admin = AdminClient({"bootstrap.servers": bootstrap})
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        metadata = admin.list_topics(topic, timeout=10)
        leader = metadata.topics[topic].partitions[partition].leader
        if leader >= 0:
            return int(leader)
        time.sleep(0.2)
    raise AssertionError(f"{topic}/{partition} has no leader")


def read_all(bootstrap: str, topic: str, partitions: int) -> list[tuple[int, int, bytes]]:
    """(partition, offset, value) of every committed record, read with confluent-kafka."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": "fault-reader", "enable.auto.commit": False}
    )
    ends = {p: _high_watermark(consumer, topic, p) for p in range(partitions)}
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(partitions)])
    read: list[tuple[int, int, bytes]] = []
    positions = dict.fromkeys(range(partitions), 0)
    deadline = time.monotonic() + WAIT_S
    while any(positions[p] < ends[p] for p in ends) and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=1000, timeout=0.5):
            if m.error() is None:
                read.append((m.partition(), m.offset(), m.value()))
                positions[m.partition()] = m.offset() + 1
    consumer.close()
    assert all(positions[p] >= ends[p] for p in ends), (positions, ends)
    return read


def _high_watermark(consumer: Any, topic: str, partition: int) -> int:
    """The partition's high watermark, asked until its leader answers (it may be moving)."""
    from confluent_kafka import KafkaException, TopicPartition

    deadline = time.monotonic() + WAIT_S
    while True:
        try:
            _, high = consumer.get_watermark_offsets(TopicPartition(topic, partition), timeout=10)
            return int(high)
        except KafkaException:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)
            # librdkafka answers "unknown partition" until its metadata names the topic, and
            # a watermark query alone does not always ask for it: ask explicitly.
            consumer.list_topics(topic, timeout=10)


def read_exactly(conn: socket.socket, size: int) -> bytes:
    """`size` bytes off a connection (a frame, or its size prefix)."""
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        assert chunk, "the broker closed the connection"
        data += chunk
    return data


def _console_script() -> str:
    found = shutil.which("kafka-verify", path=os.path.dirname(sys.executable))
    return found or "kafka-verify"


@contextmanager
def served(data_dir: Path, **kwargs: object) -> Iterator[ServedCluster]:
    cluster = ServedCluster(data_dir, **kwargs)  # type: ignore[arg-type]
    cluster.start()
    try:
        yield cluster
    finally:
        cluster.stop()
