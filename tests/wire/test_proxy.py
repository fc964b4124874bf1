"""The fault proxy (workload/proxy.py) as a real process, and `serve --proxy` with real clients.

The proxy runs as `python -m kafka_verify.workload.proxy`, in front of an echo
server on a free loopback port; the tests speak to its links with plain
sockets and to its control port with JSON lines, as the nemesis does.
"""

from __future__ import annotations

import json
import signal
import socket
import socketserver
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager, suppress
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.workload.nemesis import process_alive
from kafka_verify.workload.proxy import ProxyControl, ProxyError
from served import ServedCluster, read_all

READY_TIMEOUT_S = 30.0
STALL_PROBE_S = 1.0  # how long a stalled connection is watched for bytes that must not come
WAIT_S = 10.0


class _Echo(socketserver.BaseRequestHandler):
    def handle(self) -> None:
        with suppress(ConnectionError):
            while data := self.request.recv(65_536):
                self.request.sendall(data)


@contextmanager
def _echo_server() -> Iterator[int]:
    server = socketserver.ThreadingTCPServer(("127.0.0.1", 0), _Echo)
    server.daemon_threads = True
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield server.server_address[1]
    finally:
        server.shutdown()
        server.server_close()
        thread.join()


@dataclass
class RunningProxy:
    process: subprocess.Popen[bytes]
    described: dict[str, Any]

    @property
    def control(self) -> ProxyControl:
        return ProxyControl(self.described["control"])

    def port(self, name: str) -> int:
        (listen,) = [k["listen"] for k in self.described["links"] if k["name"] == name]
        return int(listen.rpartition(":")[2])

    def connect(self, name: str) -> socket.socket:
        connection = socket.create_connection(("127.0.0.1", self.port(name)), timeout=WAIT_S)
        return connection


@contextmanager
def _proxy(tmp_path: Path, target_port: int, seed: int = 1) -> Iterator[RunningProxy]:
    ready = tmp_path / f"ready-{seed}.json"
    command = [sys.executable, "-m", "kafka_verify.workload.proxy", "--seed", str(seed)]
    command += ["--ready-file", str(ready)]
    command += ["--link", f"a,b,127.0.0.1:{target_port}", "--link", f"c,b,127.0.0.1:{target_port}"]
    process = subprocess.Popen(command, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    try:
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.exists():
            assert process.poll() is None, process.communicate()[1]
            assert time.monotonic() < deadline, "the proxy did not start"
            time.sleep(0.05)
        yield RunningProxy(process, json.loads(ready.read_text()))
        assert process.poll() is None, "the proxy died under the test"
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(WAIT_S)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait()
        assert process.stderr is not None
        process.stderr.close()


@pytest.fixture
def proxy(tmp_path: Path) -> Iterator[RunningProxy]:
    with _echo_server() as port, _proxy(tmp_path, port) as running:
        yield running


def _echo(connection: socket.socket, data: bytes) -> bytes:
    connection.sendall(data)
    received = bytearray()
    while len(received) < len(data):
        chunk = connection.recv(65_536)
        if not chunk:
            break
        received += chunk
    return bytes(received)


def _nothing_arrives(connection: socket.socket) -> bool:
    connection.settimeout(STALL_PROBE_S)
    try:
        connection.recv(1)  # bytes, or the end: either way something came
        return False
    except TimeoutError:
        return True
    finally:
        connection.settimeout(WAIT_S)


def _is_reset(connection: socket.socket) -> bool:
    """Whether the connection was reset (or closed) by the proxy."""
    try:
        connection.sendall(b"probe")
        return connection.recv(16) == b""
    except (ConnectionResetError, BrokenPipeError):
        return True


def test_the_proxy_forwards_bytes_both_ways(proxy: RunningProxy) -> None:
    payload = bytes(range(256)) * 4096  # 1 MiB
    with proxy.connect("a->b") as connection:
        assert _echo(connection, payload) == payload
    stats = proxy.control.request("stats")["stats"]["a->b"]
    assert stats["up_bytes"] >= len(payload) and stats["down_bytes"] >= len(payload)
    assert proxy.described["pid"] == proxy.process.pid
    names = {(k["name"], k["src"], k["dst"]) for k in proxy.described["links"]}
    assert names == {("a->b", "a", "b"), ("c->b", "c", "b")}


def test_a_stalled_cut_holds_every_byte_until_the_heal(proxy: RunningProxy) -> None:
    with proxy.connect("a->b") as old, proxy.connect("c->b") as other:
        assert _echo(old, b"before") == b"before"
        answer = proxy.control.cut(["a->b"], "stall")
        assert answer["faults"] == {"a->b": {"cut": "stall", "delay_ms": 0, "drop": 0.0}}
        old.sendall(b"during")
        assert _nothing_arrives(old)
        with proxy.connect("a->b") as new:  # accepted, and held unanswered
            new.sendall(b"new")
            assert _nothing_arrives(new)
            assert _echo(other, b"other link") == b"other link"  # only a->b is cut
            assert proxy.control.heal(["a->b"])["faults"] == {}
            assert new.recv(16) == b"new"
        assert old.recv(16) == b"during"
        assert _echo(old, b"after") == b"after"
    assert proxy.control.faults() == {}


def test_a_reset_cut_resets_its_connections_and_new_ones_until_healed(
    proxy: RunningProxy,
) -> None:
    with proxy.connect("a->b") as old:
        assert _echo(old, b"before") == b"before"
        proxy.control.cut(["a->b"], "reset")
        assert _is_reset(old)
    assert not _passes(proxy, "a->b")
    proxy.control.heal()
    with proxy.connect("a->b") as healed:
        assert _echo(healed, b"healed") == b"healed"
    stats = proxy.control.request("stats")["stats"]["a->b"]
    assert stats["reset"] >= 2


def test_a_slow_link_adds_at_least_its_delay_each_way(proxy: RunningProxy) -> None:
    delay_ms = 200
    with proxy.connect("a->b") as connection:
        assert _echo(connection, b"warm") == b"warm"
        proxy.control.slow(["a->b"], delay_ms)
        started = time.monotonic()
        assert _echo(connection, b"slow") == b"slow"
        round_trip_s = time.monotonic() - started
        assert round_trip_s >= 2 * delay_ms / 1000  # once up, once down
        assert proxy.control.faults()["a->b"]["delay_ms"] == delay_ms


def test_a_heal_releases_bytes_already_waiting_out_a_delay(proxy: RunningProxy) -> None:
    with proxy.connect("a->b") as connection:
        proxy.control.slow(["a->b"], 60_000)
        connection.sendall(b"waiting")
        assert _nothing_arrives(connection)
        proxy.control.heal()
        # Without the heal the bytes would come back after two minutes; WAIT_S is the timeout.
        assert connection.recv(16) == b"waiting"


def test_drop_one_resets_every_connection_and_drop_zero_none(proxy: RunningProxy) -> None:
    proxy.control.slow(["a->b"], 0, drop=1.0)
    assert not any(_passes(proxy, "a->b") for _ in range(3))
    assert _passes(proxy, "c->b")
    proxy.control.slow(["a->b"], 0, drop=0.0)
    with proxy.connect("a->b") as connection:
        assert _echo(connection, b"kept") == b"kept"


def _passes(running: RunningProxy, name: str) -> bool:
    """Whether one new connection through link `name` echoes a byte (a reset may come as
    early as the connect)."""
    try:
        with running.connect(name) as connection:
            return _echo(connection, b"x") == b"x"
    except (ConnectionResetError, BrokenPipeError):
        return False


def _drop_pattern(running: RunningProxy, seed: int) -> list[bool]:
    running.control.request("slow", links=["a->b"], delay_ms=0, drop=0.5, seed=seed)
    return [_passes(running, "a->b") for _ in range(24)]


def test_drops_follow_the_seed_they_are_given(tmp_path: Path) -> None:
    with _echo_server() as port, _proxy(tmp_path, port, 5) as one, _proxy(tmp_path, port, 6) as two:
        first, second = _drop_pattern(one, 42), _drop_pattern(two, 42)
        assert first == second
        assert True in first and False in first
        assert _drop_pattern(one, 43) != first


def test_a_bad_control_line_gets_an_error_answer_and_the_proxy_goes_on(
    proxy: RunningProxy,
) -> None:
    host, _, port = proxy.described["control"].rpartition(":")
    bad_lines = [
        b"not json",
        b"[1, 2]",
        b'{"op": "explode"}',
        b'{"op": "cut", "links": ["nope"]}',
        b'{"op": "cut", "links": "a->b"}',
        b'{"op": "cut", "links": ["a->b"], "mode": "sideways"}',
        b'{"op": "slow", "links": ["a->b"], "delay_ms": -1}',
        b'{"op": "slow", "links": ["a->b"], "delay_ms": 10, "drop": 2}',
        b'{"op": "slow", "links": ["a->b"], "delay_ms": 10, "seed": "x"}',
        b"\xff\xfe",
    ]
    with socket.create_connection((host, int(port)), timeout=WAIT_S) as control:
        lines = control.makefile("rb")
        for bad in bad_lines:
            control.sendall(bad + b"\n")
            answer = json.loads(lines.readline())
            assert answer["ok"] is False and isinstance(answer["error"], str), bad
        control.sendall(b'{"op": "faults"}\n')
        assert json.loads(lines.readline()) == {"ok": True, "faults": {}}
        control.sendall(b"x" * 100_000 + b"\n")  # past the line limit: answered, then closed
        assert json.loads(lines.readline())["ok"] is False
        assert lines.readline() == b""
    with pytest.raises(ProxyError, match="no link named"):
        proxy.control.cut(["nope"])
    with proxy.connect("a->b") as connection:
        assert _echo(connection, b"still serving") == b"still serving"


# -- serve --proxy -----------------------------------------------------------------------------


def test_serve_proxy_puts_every_link_behind_the_proxy_for_real_clients(tmp_path: Path) -> None:
    from confluent_kafka import Producer

    cluster = ServedCluster(tmp_path / "cluster", topics=["t:3:3"], extra_args=["--proxy"])
    cluster.start()
    try:
        described = cluster.proxy()
        proxy_pid = int(described["pid"])
        links = {k["name"]: k for k in described["links"]}
        brokers = ["b0", "b1", "b2"]
        expected = {f"{s}->{d}" for s in brokers for d in [*brokers, "zk"] if s != d}
        assert set(links) == expected | {f"client->{b}" for b in brokers}
        assert cluster.bootstrap == ",".join(links[f"client->{b}"]["listen"] for b in brokers)
        assert cluster.bootstrap != cluster.direct_bootstrap
        for b, node in zip(brokers, cluster.nodes()[1:], strict=True):
            assert links[f"client->{b}"]["target"] == f"127.0.0.1:{node['port']}"

        producer = Producer({"bootstrap.servers": cluster.bootstrap, "acks": "all"})
        for n in range(60):
            producer.produce("t", value=f"v{n}".encode(), partition=n % 3)
        assert producer.flush(30) == 0
        advertised = producer.list_topics("t", timeout=10).brokers
        assert {f"{m.host}:{m.port}" for m in advertised.values()} == {
            links[f"client->{b}"]["listen"] for b in brokers
        }
        read = read_all(cluster.bootstrap, "t", 3)
        assert sorted(value for _, _, value in read) == sorted(f"v{n}".encode() for n in range(60))

        control = ProxyControl(described["control"])
        stats = control.request("stats")["stats"]
        # Replication and the brokers' zk calls went through their links, clients through theirs.
        assert all(stats[f"client->{b}"].get("up_bytes", 0) > 0 for b in brokers)
        assert all(stats[f"{b}->zk"].get("down_bytes", 0) > 0 for b in brokers)
        assert sum(stats[name].get("up_bytes", 0) for name in expected if "zk" not in name) > 0

        # A killed broker's links keep listening; restarted, it is reached through them again.
        cluster.signal_node("b1", signal.SIGKILL)
        assert process_alive(proxy_pid)
        cluster.restart_down_nodes()
        for n in range(60, 90):
            producer.produce("t", value=f"v{n}".encode(), partition=n % 3)
        assert producer.flush(60) == 0
        assert control.faults() == {}
    finally:
        cluster.stop()
    assert not process_alive(proxy_pid)
    assert not (tmp_path / "cluster" / "cluster.json").exists()


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (["--peer", "nope=127.0.0.1:1"], "'nope', not a node"),
        (["--peer", "b0=127.0.0.1:1"], "cannot route b0 to itself"),
        (["--advertise", "7=127.0.0.1:1"], "broker 7, not a broker"),
        (["--advertise", "x=127.0.0.1:1"], "a broker index is a number"),
        (["--peer", "b1=no-port"], "is not KEY=HOST:PORT"),
    ],
)
def test_a_node_refuses_routes_that_name_no_node_in_one_sentence(
    tmp_path: Path, flags: list[str], says: str
) -> None:
    from kafka_verify.wire.cluster import ServeSettings, prepare, save

    save(tmp_path, prepare(tmp_path, ServeSettings(brokers=2, replication=2, min_insync=1)))
    node = [sys.executable, "-m", "kafka_verify.wire.node", "--cluster-dir", str(tmp_path)]
    done = subprocess.run(
        [*node, "--node", "b0", *flags],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert says in done.stderr and "Traceback" not in done.stderr, done.stderr


def test_a_cluster_file_with_a_bad_proxy_is_refused_in_one_sentence(tmp_path: Path) -> None:
    from kafka_verify.workload.nemesis import ClusterFile, ClusterFileError

    path = tmp_path / "cluster.json"
    node = {"name": "b0", "role": "broker", "pid": 1}
    for proxy, says in [
        ({"links": []}, "control address"),
        ({"control": "nowhere", "links": []}, "is not HOST:PORT"),
        ({"control": "127.0.0.1:1", "links": [{"name": "a->b"}]}, "name, src and dst"),
    ]:
        path.write_text(json.dumps({"nodes": [node], "serve_pid": 1, "proxy": proxy}))
        with pytest.raises(ClusterFileError, match=says):
            ClusterFile.load(path)
    path.write_text(json.dumps({"nodes": [node], "serve_pid": 1, "proxy": None}))
    assert ClusterFile.load(path).proxy is None
