"""`serve --proxy`: the fault proxy's process in front of every link of a served cluster.

Rules of this module:
- The proxy is the black box's (`python -m kafka_verify.workload.proxy`):
  it is started by module name, as a process, so wire never imports workload.
- Its links are every connection a node opens (each broker to the zk and to
  every other broker, one link per direction) and, per broker, the clients'
  connections to its Kafka port. Every link listens on a loopback port the
  proxy picks; its ready file names them all, and serve waits for it.
- A node started behind the proxy is told, by `--peer` and `--advertise`,
  to reach each peer through its link and to advertise its clients' link;
  the node still listens on its own ports. Clients that follow the
  cluster's metadata always go through the proxy, and a killed node's links
  keep listening (their connections are reset until it is back).
- Stopping sends SIGTERM, waits, SIGKILLs a straggler and reaps it.
"""

from __future__ import annotations

import contextlib
import json
import os
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any

from kafka_verify.wire.cluster_file import ClusterFile

PROXY_MODULE = "kafka_verify.workload.proxy"
PROXY_DIR = "proxy"
READY_FILE = "ready.json"
CLIENT = "client"
READY_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
POLL_S = 0.05
LOOPBACK = "127.0.0.1"


class ProxyStartError(Exception):
    """The proxy did not start: the reason is one sentence."""


def proxy_links(cluster: ClusterFile, kafka_host: str) -> list[tuple[str, str, str, int]]:
    """(src, dst, target host, target port) of every link: node to node, then client to broker."""
    links: list[tuple[str, str, str, int]] = []
    brokers = cluster.brokers()
    for src in brokers:
        for dst in cluster.nodes:
            if dst.name != src.name:
                links.append((src.name, dst.name, LOOPBACK, dst.node_port))
    for broker in brokers:
        assert broker.kafka_port is not None
        links.append((CLIENT, broker.name, kafka_host, broker.kafka_port))
    return links


@dataclass
class ProxyProcess:
    """The running proxy of one served cluster, and what its ready file said."""

    directory: Path  # the cluster's data directory
    process: subprocess.Popen[bytes] | None = None
    described: dict[str, Any] = field(default_factory=dict)
    _log: IO[bytes] | None = None

    def start(self, cluster: ClusterFile, kafka_host: str, seed: int = 0) -> None:
        where = self.directory / PROXY_DIR
        where.mkdir(parents=True, exist_ok=True)
        ready = where / READY_FILE
        with contextlib.suppress(FileNotFoundError):
            ready.unlink()
        command = [sys.executable, "-m", PROXY_MODULE, "--seed", str(seed)]
        command += ["--ready-file", str(ready), "--parent-pid", str(os.getpid())]
        for src, dst, host, port in proxy_links(cluster, kafka_host):
            command += ["--link", f"{src},{dst},{host}:{port}"]
        self._log = open(where / "proxy.log", "ab")  # noqa: SIM115 (kept open for the child)
        self.process = subprocess.Popen(
            command, stdin=subprocess.DEVNULL, stdout=self._log, stderr=self._log
        )
        deadline = time.monotonic() + READY_TIMEOUT_S
        while not ready.exists():
            code = self.process.poll()
            if code is not None:
                raise ProxyStartError(f"the fault proxy exited with code {code} while starting")
            if time.monotonic() > deadline:
                raise ProxyStartError(f"the fault proxy was not ready within {READY_TIMEOUT_S} s")
            time.sleep(POLL_S)
        try:
            self.described = json.loads(ready.read_text(encoding="utf-8"))
        except ValueError:
            raise ProxyStartError(f"the fault proxy's {ready} is not JSON") from None

    def listen(self, src: str, dst: str) -> str:
        """The HOST:PORT of link src->dst."""
        name = f"{src}->{dst}"
        for link in self.described["links"]:
            if link["name"] == name:
                address: str = link["listen"]
                return address
        raise KeyError(name)

    def node_arguments(self, cluster: ClusterFile, name: str) -> list[str]:
        """`--peer` and `--advertise` flags that route node `name` through the proxy."""
        if cluster.node(name).role != "broker":
            return []  # the zk opens no connection, and has no Kafka clients
        arguments: list[str] = []
        for peer in cluster.nodes:
            if peer.name != name:
                arguments += ["--peer", f"{peer.name}={self.listen(name, peer.name)}"]
        for broker in cluster.brokers():
            arguments += ["--advertise", f"{broker.name[1:]}={self.listen(CLIENT, broker.name)}"]
        return arguments

    def bootstrap(self, cluster: ClusterFile) -> str:
        return ",".join(self.listen(CLIENT, broker.name) for broker in cluster.brokers())

    def exited(self) -> int | None:
        return None if self.process is None else self.process.poll()

    def stop(self, timeout_s: float = STOP_TIMEOUT_S) -> None:
        try:
            if self.process is not None:
                if self.process.poll() is None:
                    self.process.terminate()
                try:
                    self.process.wait(timeout_s)
                except subprocess.TimeoutExpired:
                    self.process.kill()
                    self.process.wait()
        finally:
            if self._log is not None:
                self._log.close()
                self._log = None
            with contextlib.suppress(FileNotFoundError):
                (self.directory / PROXY_DIR / READY_FILE).unlink()
