"""The launcher behind `kafka-verify serve`: one OS process per node, on loopback, until interrupted.

Rules of this module:
- DIR/config.json is written at the first start and checked at every later
  one: a data directory made for another cluster is refused with one sentence.
- Brokers serve Kafka on --port P, P+1, ...; node ports (the zk's too) are
  picked free at the first start and kept in config.json, so a restarted
  cluster keeps its addresses. A port in use is one sentence.
- Each node is `sys.executable -m kafka_verify.wire.node`, its output in
  DIR/NAME/node.log. DIR/cluster.json names every node as DESIGN.md's CLI
  contract says, once the zk answers a read, every broker answers ApiVersions
  and b0 answers an impl Metadata with a leader for every partition (a fresh
  broker knows the first leaders without the zk); it is removed at the stop, so
  no stale pid outlives the cluster.
- The configured topics share the cluster's replication factor (the model's
  assignment has one); a `--topic` of another RF is created through the
  impl's CreateTopic once the cluster is up, as a client's CreateTopics is.
- Stopping sends SIGTERM to every child, waits, SIGKILLs stragglers and
  reaps them all: no process is left behind.
- `--proxy` starts the fault proxy first (proxy_process.py) and routes
  every node and client link through it; cluster.json then names it under
  `proxy`, and its bootstrap is the proxy's.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import dataclasses
import errno
import os
import random
import re
import signal
import socket
import struct
import subprocess
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from types import FrameType
from typing import IO

from kafka_verify.impl.config import TOPIC, ClusterConfig
from kafka_verify.impl.messages import (
    NONE,
    CreateTopic,
    CreateTopicResponse,
    Metadata,
    MetadataResponse,
)
from kafka_verify.impl.zk import TOPIC_EXISTS, ZkCluster, ZkRead
from kafka_verify.wire import cluster_file
from kafka_verify.wire.apis import decode_response, encode_request
from kafka_verify.wire.cluster_file import ClusterFile, NodeSpec
from kafka_verify.wire.errors import FrameError
from kafka_verify.wire.host import ZK
from kafka_verify.wire.node_client import NodeClientError, node_request, zk_request
from kafka_verify.wire.proxy_process import ProxyProcess, ProxyStartError
from kio.schema.api_versions.v0 import ApiVersionsRequest
from kio.schema.errors import ErrorCode

CLUSTER_JSON = "cluster.json"
DEFAULT_PORT = 9092
OFFSETS_PARTITIONS = (
    3  # of the internal offsets topic (Kafka has 50; three spread it over the brokers)
)
READY_TIMEOUT_S = 60.0
STOP_TIMEOUT_S = 10.0
PROBE_TIMEOUT_S = 2.0
POLL_S = 0.1
WILDCARD_ADDRESSES = ("0.0.0.0", "::", "")


class ClusterError(Exception):
    """The cluster cannot start or run as asked: the reason is one sentence."""


@dataclass(frozen=True, slots=True)
class ServeSettings:
    brokers: int = 3
    topics: tuple[tuple[str, int], ...] = ((TOPIC, 3),)  # configured, of RF `replication`
    replication: int = 3
    min_insync: int = 2
    bugs: frozenset[str] = frozenset()
    port: int = DEFAULT_PORT
    bind: str = "127.0.0.1"
    # (name, partitions, RF) of the --topic flags of another RF: created once the cluster is up.
    created_topics: tuple[tuple[str, int, int], ...] = ()
    auto_create_topics: bool = True  # Kafka's default
    default_partitions: int = 1  # Kafka's num.partitions


# Settings a restart may change: they shape no stored data.
RESTART_MAY_CHANGE = frozenset({"auto_create_topics", "default_partitions"})


# Kafka's legal topic names: letters, digits, '.', '_' and '-', at most 249 characters.
_TOPIC_NAME = re.compile(r"[A-Za-z0-9._-]{1,249}")


def parse_topics(specs: list[str]) -> tuple[tuple[str, int, int], ...]:
    """The topics named by `--topic NAME:PARTITIONS:RF` flags, in order, as (name, partitions, RF)."""
    topics: list[tuple[str, int, int]] = []
    for spec in specs:
        parts = spec.split(":")
        if len(parts) != 3 or not parts[1].isdigit() or not parts[2].isdigit():
            raise ClusterError(f"--topic {spec!r} is not NAME:PARTITIONS:RF")
        name, partitions, rf = parts[0], int(parts[1]), int(parts[2])
        if not _TOPIC_NAME.fullmatch(name) or name in (".", ".."):
            raise ClusterError(f"--topic {spec!r}: {name!r} is not a legal Kafka topic name")
        if partitions < 1:
            raise ClusterError(f"--topic {spec!r}: a topic needs at least one partition")
        if rf < 1:
            raise ClusterError(f"--topic {spec!r}: the replication factor is at least 1")
        if any(existing == name for existing, _, _ in topics):
            raise ClusterError(f"--topic names topic {name!r} twice")
        topics.append((name, partitions, rf))
    return tuple(topics)


def serve_config(settings: ServeSettings) -> ClusterConfig:
    """The ClusterConfig of a served cluster: no simulated clients, and retention for real use.

    The simulation's defaults keep 40 records and two minutes per partition, to keep
    its states small; a served broker keeps records a week, by time only.
    """
    try:
        return ClusterConfig(
            brokers=settings.brokers,
            partitions=sum(count for _, count in settings.topics),
            topics=settings.topics,
            replication=settings.replication,
            min_insync=settings.min_insync,
            bugs=settings.bugs,
            producers=0,
            consumers=0,
            retention_ms=7 * 24 * 3_600_000,
            retention_records=None,
            segment_records=10_000,
            fetch_max_records=500,
            # Consumer groups of any name, their offsets in an internal topic of
            # OFFSETS_PARTITIONS partitions replicated like the others.
            groups=1,
            any_group=True,
            offsets_partitions=OFFSETS_PARTITIONS,
            auto_create_topics=settings.auto_create_topics,
            default_partitions=settings.default_partitions,
            default_replication=settings.replication,
        )
    except ValueError as error:
        raise ClusterError(str(error)) from None


# Ports are picked below the kernel's ephemeral range: a port in that range can be taken
# by any outgoing connection's local end, so a cluster restarted on its persisted ports
# could find one of them in use.
LOWEST_PICKED_PORT = 10_000
EPHEMERAL_RANGE_FILE = Path("/proc/sys/net/ipv4/ip_local_port_range")
DEFAULT_EPHEMERAL_START = 32_768


def _ephemeral_start() -> int:
    try:
        return int(EPHEMERAL_RANGE_FILE.read_text().split()[0])
    except (OSError, ValueError, IndexError):
        return DEFAULT_EPHEMERAL_START


def _port_is_free(port: int, host: str = "127.0.0.1") -> bool:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as probe:
        try:
            probe.bind((host, port))
        except OSError:
            return False
        return True


def _free_port(taken: set[int]) -> int:
    """A free port that is none of `taken` (the cluster's other ports, bound or not yet)."""
    for _ in range(100):
        port = free_port_run(1)
        if port not in taken:
            taken.add(port)
            return port
    raise ClusterError("found no free port for a node")


def _advertised_host(bind: str) -> str:
    return socket.gethostname() if bind in WILDCARD_ADDRESSES else bind


def prepare(directory: Path, settings: ServeSettings) -> ClusterFile:
    """The cluster file of `directory`: the one there, if it matches `settings`, or a new one
    (not yet written: see `save`)."""
    config = serve_config(settings)
    try:
        existing = cluster_file.load(directory)
    except cluster_file.ClusterFileError as error:
        raise ClusterError(str(error)) from None
    kafka_ports = [settings.port + i for i in range(settings.brokers)]
    if existing is not None:
        differences = _differences(existing, config, settings.bind, kafka_ports)
        if differences:
            raise ClusterError(
                f"{directory} holds another cluster's data ({'; '.join(differences)}): "
                "start it with the options it was made with, or use another --data-dir"
            )
        _check_node_data(directory, existing)
        policy = {name: getattr(config, name) for name in RESTART_MAY_CHANGE}
        return dataclasses.replace(existing, config=dataclasses.replace(existing.config, **policy))
    if kafka_ports[-1] > 65_535:
        raise ClusterError(f"--port {settings.port} leaves no room for {settings.brokers} brokers")
    # Node ports are picked from the same range as a user's Kafka ports may be: never one of them.
    taken = set(kafka_ports)
    nodes = [NodeSpec(ZK, "zk", _free_port(taken), None)]
    nodes += [
        NodeSpec(f"b{i}", "broker", _free_port(taken), port) for i, port in enumerate(kafka_ports)
    ]
    return ClusterFile(config, settings.bind, _advertised_host(settings.bind), tuple(nodes))


def save(directory: Path, cluster: ClusterFile) -> None:
    """Write config.json (once the ports are known to be free, so a refused start leaves none)."""
    directory.mkdir(parents=True, exist_ok=True)
    cluster_file.write_json_atomically(directory / cluster_file.CONFIG_FILE, cluster.to_json())


# What a node writes in its data directory at its first start: without it, a restarted node
# would take the fresh path and claim the cluster's first state, which the others left.
_STARTED_MARKERS = {"zk": "zk-state.json", "broker": "incarnation"}


def _check_node_data(directory: Path, cluster: ClusterFile) -> None:
    markers = [directory / spec.name / _STARTED_MARKERS[spec.role] for spec in cluster.nodes]
    if not any(marker.exists() for marker in markers):
        return  # never started: every node takes the fresh path together
    for spec, marker in zip(cluster.nodes, markers):
        if not marker.exists():
            raise ClusterError(
                f"{directory} is a started cluster but {marker} is missing: "
                f"{spec.name}'s data is lost, so start a new cluster in another --data-dir"
            )


def _differences(
    existing: ClusterFile, config: ClusterConfig, bind: str, kafka_ports: list[int]
) -> list[str]:
    found = []
    old, new = cluster_file.config_to_json(existing.config), cluster_file.config_to_json(config)
    for name in old:
        if old[name] != new[name] and name not in RESTART_MAY_CHANGE:
            found.append(f"{name} {old[name]} there, {new[name]} asked")
    if existing.bind != bind:
        found.append(f"bound to {existing.bind} there, {bind} asked")
    ports = [spec.kafka_port for spec in existing.brokers()]
    if ports != kafka_ports and len(ports) == len(kafka_ports):
        found.append(f"Kafka ports from {ports[0]} there, from {kafka_ports[0]} asked")
    return found


def check_ports_free(cluster: ClusterFile) -> None:
    wanted = [("127.0.0.1", spec.node_port) for spec in cluster.nodes]
    wanted += [(cluster.bind, s.kafka_port) for s in cluster.brokers() if s.kafka_port is not None]
    for host, port in wanted:
        family = socket.AF_INET6 if ":" in host else socket.AF_INET
        with socket.socket(family, socket.SOCK_STREAM) as probe:
            # As asyncio's servers do, so a port in TIME_WAIT after a restart is not "in use".
            probe.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                probe.bind((host, port))
            except OSError as error:
                if error.errno == errno.EADDRINUSE:
                    raise ClusterError(
                        f"port {port} on {host or '*'} is in use; stop what holds it or choose another --port"
                    ) from None
                raise ClusterError(f"cannot listen on {host}:{port}: {error.strerror}") from None


@dataclass
class Cluster:
    """The processes of one served cluster."""

    directory: Path
    file: ClusterFile
    processes: dict[str, subprocess.Popen[bytes]] = field(default_factory=dict)
    restarts_on_sigusr1: bool = False  # `serve`: it restarts killed nodes when asked
    proxy: ProxyProcess | None = None  # `serve --proxy`: every link goes through it
    _logs: dict[str, IO[bytes]] = field(default_factory=dict)

    def node_dir(self, name: str) -> Path:
        return self.directory / name

    def start(self) -> None:
        for spec in self.file.nodes:
            self.start_node(spec.name)

    def start_node(self, name: str) -> subprocess.Popen[bytes]:
        """Start (or restart) node `name`; its output is appended to DIR/NAME/node.log."""
        running = self.processes.get(name)
        if running is not None and running.poll() is None:
            raise ClusterError(f"{name} is already running (pid {running.pid})")
        self.file.node(name)
        self.node_dir(name).mkdir(parents=True, exist_ok=True)
        old_log = self._logs.pop(name, None)
        if old_log is not None:
            old_log.close()
        output = open(self.node_dir(name) / "node.log", "ab")  # noqa: SIM115 (kept open for the child)
        self._logs[name] = output
        command = [
            sys.executable,
            "-m",
            "kafka_verify.wire.node",
            "--cluster-dir",
            str(self.directory),
            "--node",
            name,
            "--parent-pid",
            str(os.getpid()),
        ]
        if self.proxy is not None:
            command += self.proxy.node_arguments(self.file, name)
        process = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=output, stderr=output)
        self.processes[name] = process
        return process

    def start_proxy(self) -> None:
        """Start the fault proxy, before any node: the nodes are told its link ports."""
        self.proxy = ProxyProcess(self.directory)
        kafka_host = "127.0.0.1" if self.file.bind in WILDCARD_ADDRESSES else self.file.bind
        try:
            self.proxy.start(self.file, kafka_host)
        except (ProxyStartError, OSError) as error:
            raise ClusterError(f"the fault proxy did not start: {error}") from None

    def bootstrap(self) -> str:
        if self.proxy is not None:
            return self.proxy.bootstrap(self.file)
        host = self.file.advertised_host
        return ",".join(f"{host}:{s.kafka_port}" for s in self.file.brokers())

    def describe(self) -> dict[str, object]:
        """cluster.json: the bootstrap string and every node (DESIGN.md, "CLI contract")."""
        nodes = []
        for spec in self.file.nodes:
            process = self.processes.get(spec.name)
            port = spec.kafka_port if spec.kafka_port is not None else spec.node_port
            host = self.file.advertised_host if spec.kafka_port is not None else "127.0.0.1"
            nodes.append(
                {
                    "name": spec.name,
                    "role": spec.role,
                    "host": host,
                    "port": port,
                    "pid": None if process is None else process.pid,
                    "data_dir": str(self.node_dir(spec.name).resolve()),
                }
            )
        described: dict[str, object] = {"bootstrap": self.bootstrap(), "nodes": nodes}
        if self.proxy is not None:
            described["proxy"] = self.proxy.described
        if self.restarts_on_sigusr1:
            # The launcher itself, which SIGUSR1 asks to start every killed node again.
            described["serve_pid"] = os.getpid()
        return described

    def write_cluster_json(self) -> Path:
        path = self.directory / CLUSTER_JSON
        cluster_file.write_json_atomically(path, self.describe())
        return path

    def exited(self) -> dict[str, int]:
        """The nodes whose process has ended, with its exit code (negative: the signal)."""
        codes = {name: p.poll() for name, p in self.processes.items()}
        return {name: code for name, code in codes.items() if code is not None}

    def wait_ready(
        self, timeout_s: float = READY_TIMEOUT_S, stopping: Stopping | None = None
    ) -> bool:
        """Wait until every broker answers; False if a stop was asked meanwhile."""
        deadline = time.monotonic() + timeout_s
        waiting = {spec.name for spec in self.file.nodes} | {"metadata"}
        while waiting:
            if stopping is not None and stopping.asked:
                return False
            for name, code in self.exited().items():
                raise ClusterError(
                    f"{name} exited with code {code} while starting: {self.last_words(name)}"
                )
            for name in sorted(waiting):
                if self._answers(name):
                    waiting.discard(name)
            if not waiting:
                break
            if time.monotonic() > deadline:
                raise ClusterError(
                    f"the cluster was not ready within {timeout_s:.0f} s (waiting for {', '.join(sorted(waiting))})"
                )
            time.sleep(POLL_S)
        return True

    def _answers(self, name: str) -> bool:
        if name == "metadata":
            return self.leaders_known()
        if name == ZK:
            return self.zk_answers()
        spec = self.file.node(name)
        assert spec.kafka_port is not None
        host = "127.0.0.1" if self.file.bind in WILDCARD_ADDRESSES else self.file.bind
        return api_versions_answered(host, spec.kafka_port)

    def zk_answers(self) -> bool:
        """Whether the coordination node answers a read (its state is on disk by then)."""
        zk = self.file.node(ZK)
        try:
            reply = asyncio.run(zk_request("127.0.0.1", zk.node_port, ZkRead(), PROBE_TIMEOUT_S))
        except NodeClientError:
            return False
        return isinstance(reply, ZkCluster)

    def leaders_known(self) -> bool:
        """Whether b0 answers an impl Metadata naming a leader for every partition."""
        b0 = self.file.node("b0")
        try:
            answer = asyncio.run(
                node_request("127.0.0.1", b0.node_port, Metadata(1), PROBE_TIMEOUT_S)
            )
        except NodeClientError:
            return False
        partitions = self.file.config.model_config().partitions
        return (
            isinstance(answer, MetadataResponse)
            and len(answer.leaders) >= partitions  # and any created since
            and all(leader is not None for _, leader, _ in answer.leaders)
        )

    def create_topics(self, topics: tuple[tuple[str, int, int], ...]) -> None:
        """Create each (name, partitions, RF) through b0, as a client's CreateTopics would; one
        that exists already is kept as it is. Then wait until each has its leaders."""
        b0 = self.file.node("b0")
        for i, (name, partitions, rf) in enumerate(topics):
            request = CreateTopic(i + 1, name, partitions, rf)
            try:
                answer = asyncio.run(
                    node_request("127.0.0.1", b0.node_port, request, READY_TIMEOUT_S)
                )
            except NodeClientError as error:
                raise ClusterError(f"cannot create topic {name!r}: {error}") from None
            if not isinstance(answer, CreateTopicResponse):
                raise ClusterError(f"b0 answered the creation of {name!r} with {answer!r}")
            if answer.error not in (NONE, TOPIC_EXISTS):
                raise ClusterError(f"--topic {name}:{partitions}:{rf} is refused: {answer.error}")
        names = {name for name, _, _ in topics}
        deadline = time.monotonic() + READY_TIMEOUT_S
        while names and not all(self._knows(spec, names) for spec in self.file.brokers()):
            if time.monotonic() > deadline:
                raise ClusterError("the created topics were not announced to every broker in time")
            time.sleep(POLL_S)

    def _knows(self, broker: NodeSpec, names: set[str]) -> bool:
        """Whether `broker` names every topic of `names`, and a leader for every partition."""
        try:
            answer = asyncio.run(
                node_request("127.0.0.1", broker.node_port, Metadata(1), PROBE_TIMEOUT_S)
            )
        except NodeClientError:
            return False
        return (
            isinstance(answer, MetadataResponse)
            and names <= {topic.name for topic in answer.topics}
            and all(leader is not None for _, leader, _ in answer.leaders)
        )

    def last_words(self, name: str) -> str:
        try:
            lines = (self.node_dir(name) / "node.log").read_text(errors="replace").splitlines()
        except OSError:
            return "no log"
        return lines[-1] if lines else "no output"

    def stop_node(
        self, name: str, signum: int = signal.SIGTERM, timeout_s: float = STOP_TIMEOUT_S
    ) -> int | None:
        process = self.processes.get(name)
        if process is None:
            return None
        if process.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                process.send_signal(signum)
        try:
            return process.wait(timeout_s)
        except subprocess.TimeoutExpired:
            process.kill()
            return process.wait()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        """SIGTERM every child, wait, SIGKILL stragglers, reap them all."""
        try:
            for process in self.processes.values():
                if process.poll() is None:
                    with contextlib.suppress(ProcessLookupError):
                        process.terminate()
            deadline = time.monotonic() + timeout_s
            for process in self.processes.values():
                try:
                    process.wait(max(0.0, deadline - time.monotonic()))
                except subprocess.TimeoutExpired:
                    process.kill()
        finally:
            for process in self.processes.values():
                if process.poll() is None:
                    process.kill()
                process.wait()
            for output in self._logs.values():
                output.close()
            self._logs.clear()
            if self.proxy is not None:
                self.proxy.stop()
            with contextlib.suppress(FileNotFoundError):
                (self.directory / CLUSTER_JSON).unlink()


def api_versions_answered(host: str, port: int, timeout_s: float = PROBE_TIMEOUT_S) -> bool:
    """Whether a Kafka ApiVersions v0 request to host:port gets a response without error."""
    try:
        with socket.create_connection((host, port), timeout=timeout_s) as connection:
            connection.sendall(encode_request(1, "kafka-verify-serve", ApiVersionsRequest()))
            size = struct.unpack(">i", _read_exactly(connection, 4))[0]
            payload = _read_exactly(connection, size)
        correlation_id, response = decode_response(payload, 18, 0)
    except (OSError, EOFError, FrameError, struct.error):
        return False
    return correlation_id == 1 and getattr(response, "error_code", None) == ErrorCode.none


def _read_exactly(connection: socket.socket, size: int) -> bytes:
    chunks = bytearray()
    while len(chunks) < size:
        chunk = connection.recv(size - len(chunks))
        if not chunk:
            raise EOFError("the connection closed")
        chunks += chunk
    return bytes(chunks)


class Stopping:
    """SIGINT and SIGTERM ask the launcher to stop; it finishes what it is doing first.

    SIGUSR1 asks it to start again every node that is not running: after a node was
    killed (SIGKILL is a crash), this is how an operator or a nemesis restarts it.
    """

    def __init__(self) -> None:
        self.asked = False
        self.restart_asked = False
        self._previous = {
            signum: signal.signal(signum, self._ask) for signum in (signal.SIGINT, signal.SIGTERM)
        }
        self._previous[signal.SIGUSR1] = signal.signal(signal.SIGUSR1, self._ask_restart)

    def _ask(self, signum: int, frame: FrameType | None) -> None:
        self.asked = True

    def _ask_restart(self, signum: int, frame: FrameType | None) -> None:
        self.restart_asked = True

    def restore(self) -> None:
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)


def settings_from(args: argparse.Namespace) -> ServeSettings:
    specs = parse_topics(list(args.topic))
    replication = args.replication if args.replication is not None else None
    if replication is None and specs:
        replication = specs[0][2]
    topics: tuple[tuple[str, int], ...] = ()
    if specs:
        topics = tuple((name, count) for name, count, rf in specs if rf == replication)
        if not topics:
            raise ClusterError(
                f"--replication {replication} is the RF of no --topic: the configured topics "
                "share the cluster's replication factor, so at least one --topic must have it"
            )
    created = tuple(spec for spec in specs if spec[2] != replication)
    if not topics:
        # No --topic: an existing data directory keeps its own; a new one gets TOPIC.
        try:
            existing = cluster_file.load(args.data_dir)
        except cluster_file.ClusterFileError as error:
            raise ClusterError(str(error)) from None
        if existing is not None:
            topics = existing.config.topic_layout()
            replication = replication or existing.config.replication
        else:
            topics = ((TOPIC, 3),)
    if replication is None:
        replication = min(3, args.brokers)
    min_insync = args.min_insync if args.min_insync is not None else min(2, replication)
    bugs = frozenset(name for name in args.bug if name != "none")
    for name, _, rf in created:
        if rf > args.brokers:
            raise ClusterError(
                f"--topic {name!r} asks RF {rf} of a cluster of {args.brokers} brokers"
            )
    return ServeSettings(
        args.brokers,
        topics,
        replication,
        min_insync,
        bugs,
        args.port,
        args.bind,
        created_topics=created,
        auto_create_topics=not args.no_auto_create_topics,
        default_partitions=args.default_partitions,
    )


def free_port_run(count: int, host: str = "127.0.0.1") -> int:
    """A base port P such that P .. P+count-1 are all free on `host` right now, below the
    ephemeral range (see LOWEST_PICKED_PORT)."""
    top = min(_ephemeral_start(), 65_536) - count
    if top <= LOWEST_PICKED_PORT:
        raise ClusterError(f"no room for {count} ports below the ephemeral port range")
    picker = random.SystemRandom()
    for _ in range(500):
        base = picker.randrange(LOWEST_PICKED_PORT, top)
        if all(_port_is_free(port, host) for port in range(base, base + count)):
            return base
    raise ClusterError(f"found no {count} free consecutive ports on {host}")


@contextlib.contextmanager
def running_cluster(directory: Path, settings: ServeSettings) -> Iterator[Cluster]:
    """A served cluster, started and ready, for as long as the `with` lasts; then every process
    is stopped (the bench and the black box use this; `serve` itself is `run_serve`)."""
    spec = prepare(directory, settings)
    check_ports_free(spec)
    save(directory, spec)
    cluster = Cluster(directory, spec)
    try:
        cluster.start()
        cluster.wait_ready()
        cluster.create_topics(settings.created_topics)
        cluster.write_cluster_json()
        yield cluster
    finally:
        cluster.stop()


def _report_proxy_exit(cluster: Cluster, reported: set[str]) -> None:
    code = cluster.proxy.exited() if cluster.proxy is not None else None
    if code is not None and "proxy" not in reported:
        reported.add("proxy")
        print(f"kafka-verify: the fault proxy exited with code {code}", file=sys.stderr, flush=True)


def run_serve(args: argparse.Namespace) -> int:
    """`kafka-verify serve`: start the cluster, print its bootstrap string, run until interrupted."""
    settings = settings_from(args)
    if settings.bind in WILDCARD_ADDRESSES or not settings.bind.startswith("127."):
        print(
            f"kafka-verify: warning: brokers listen on {settings.bind or '*'}, and they have no "
            "authentication: anyone who can reach the ports can read and write",
            file=sys.stderr,
        )
    directory: Path = args.data_dir
    cluster_spec = prepare(directory, settings)
    check_ports_free(cluster_spec)
    save(directory, cluster_spec)
    stopping = Stopping()
    cluster = Cluster(directory, cluster_spec, restarts_on_sigusr1=True)
    try:
        if getattr(args, "proxy", False):
            cluster.start_proxy()
        cluster.start()
        if not cluster.wait_ready(stopping=stopping):
            return 0
        cluster.create_topics(settings.created_topics)
        cluster.write_cluster_json()
        print(cluster.bootstrap(), flush=True)
        reported: set[str] = set()
        while not stopping.asked:
            for name, code in cluster.exited().items():
                if name not in reported:
                    reported.add(name)
                    print(
                        f"kafka-verify: {name} exited with code {code}", file=sys.stderr, flush=True
                    )
            _report_proxy_exit(cluster, reported)
            if stopping.restart_asked:
                stopping.restart_asked = False
                for name in sorted(cluster.exited()):
                    cluster.start_node(name)
                    reported.discard(name)
                    print(f"kafka-verify: {name} started again", file=sys.stderr, flush=True)
                cluster.write_cluster_json()
            time.sleep(POLL_S)
        return 0
    finally:
        cluster.stop()
        stopping.restore()
