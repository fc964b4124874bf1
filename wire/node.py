"""One node's process: `python -m kafka_verify.wire.node --cluster-dir DIR --node NAME`.

Rules of this module:
- It reads DIR/config.json (cluster_file.py), opens DIR/NAME as its data
  directory and runs that one node (host.py); a broker also serves the Kafka
  protocol on its Kafka port through the front end.
- `--peer NAME=HOST:PORT` sends what it sends to NAME there instead of to
  NAME's node port, and `--advertise INDEX=HOST:PORT` tells Kafka clients to
  reach broker INDEX there: how `serve --proxy` routes every link through the
  fault proxy. The node still listens on its own ports.
- SIGTERM and SIGINT stop it gracefully: every log flushed, exit 0. A node
  whose launcher is gone (`--parent-pid` no longer its parent) stops the same way.
- Exit codes: 0 after a graceful stop, 1 if the node's own handlers failed,
  2 when it cannot start (bad config, a port in use), with one sentence.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.log import PartitionLog
from kafka_verify.wire import cluster_file
from kafka_verify.wire.frontend import KafkaFrontend, NodePort
from kafka_verify.wire.host import (
    ZK,
    Address,
    BrokerHost,
    LogFactory,
    NodeHost,
    Topology,
    ZkHost,
    partition_dir,
)
from kafka_verify.wire.server import Handler, KafkaServer
from kafka_verify.wire.storage import DurableLog

log = logging.getLogger("kafka_verify.wire.node")

PARENT_CHECK_INTERVAL_S = 0.5


def kafka_handler(port: NodePort) -> Handler:
    """The Kafka front end's handler for this broker."""
    handler: Handler = KafkaFrontend(port).handle
    return handler


def log_factory(data_dir: Path, config: ClusterConfig) -> LogFactory:
    """How a broker opens its partitions' logs: segment files in its data directory, recovered
    as after a crash (a torn tail is cut at the last complete batch)."""

    def open_log(partition: int) -> PartitionLog:
        durable: PartitionLog = DurableLog.open(
            partition_dir(data_dir, partition), config.segment_records
        )
        return durable

    return open_log


def build_host(
    cluster: cluster_file.ClusterFile, name: str, data_dir: Path, topology: Topology | None = None
) -> NodeHost:
    topology = topology or cluster.topology()
    if name == ZK:
        return ZkHost(cluster.config, topology, data_dir)
    index = int(name[1:])
    return BrokerHost(
        index, cluster.config, topology, data_dir, log_factory(data_dir, cluster.config)
    )


def routed_topology(
    topology: Topology, name: str, peers: dict[str, Address], advertised: dict[int, Address]
) -> Topology:
    """`topology` with node `name`'s peers and the advertised Kafka addresses replaced as given
    (its own node address stays: that is where it listens)."""
    unknown = sorted(set(peers) - set(topology.node_addresses))
    if unknown:
        raise cluster_file.ClusterFileError(f"--peer names {unknown[0]!r}, not a node")
    if name in peers:
        raise cluster_file.ClusterFileError(f"--peer cannot route {name} to itself")
    unknown_brokers = sorted(set(advertised) - set(topology.kafka_addresses))
    if unknown_brokers:
        raise cluster_file.ClusterFileError(
            f"--advertise names broker {unknown_brokers[0]}, not a broker"
        )
    return Topology(
        {**topology.node_addresses, **peers}, {**topology.kafka_addresses, **advertised}
    )


def _address_flag(text: str) -> tuple[str, Address]:
    """`KEY=HOST:PORT`, as --peer and --advertise take it."""
    key, _, address = text.partition("=")
    host, _, port = address.rpartition(":")
    if not key or not host or not port.isdigit() or not 0 < int(port) < 65_536:
        raise argparse.ArgumentTypeError(f"{text!r} is not KEY=HOST:PORT")
    return key, (host, int(port))


def _broker_index(key: str) -> int:
    if not key.isdigit():
        raise cluster_file.ClusterFileError(f"--advertise {key}=...: a broker index is a number")
    return int(key)


async def serve(
    cluster: cluster_file.ClusterFile,
    name: str,
    data_dir: Path,
    parent: int,
    topology: Topology | None = None,
) -> int:
    spec = cluster.node(name)
    try:
        host = build_host(cluster, name, data_dir, topology)
    except (OSError, ValueError) as error:
        print(f"{name}: cannot open its data directory {data_dir}: {error}", file=sys.stderr)
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    try:
        await host.start()
    except OSError as error:
        print(
            f"{name}: cannot listen on node port {spec.node_port}: {error.strerror}",
            file=sys.stderr,
        )
        await host.close()
        return 2
    server: KafkaServer | None = None
    if isinstance(host, BrokerHost) and spec.kafka_port is not None:
        server = KafkaServer(kafka_handler(host), host=cluster.bind, port=spec.kafka_port)
        try:
            await server.start()
        except OSError as error:
            print(
                f"{name}: cannot listen on Kafka port {cluster.bind}:{spec.kafka_port}: {error.strerror}",
                file=sys.stderr,
            )
            await host.shutdown()
            return 2
    log.info("%s is up (pid %d)", name, os.getpid())
    watch = loop.create_task(_watch_parent(parent, stop))
    stopped = loop.create_task(stop.wait())
    worker = host.worker if isinstance(host, BrokerHost) else None
    await asyncio.wait(
        [stopped] if worker is None else [stopped, worker], return_when=asyncio.FIRST_COMPLETED
    )
    code = 0
    if worker is not None and worker.done() and not worker.cancelled() and worker.exception():
        log.error("%s failed", name, exc_info=worker.exception())
        code = 1
    watch.cancel()
    stopped.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    if server is not None:
        await server.close()
    await host.shutdown()
    log.info("%s stopped", name)
    return code


async def _watch_parent(parent: int, stop: asyncio.Event) -> None:
    if parent <= 0:
        return
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_INTERVAL_S)
    log.warning("the launcher (pid %d) is gone; stopping", parent)
    stop.set()


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafka_verify.wire.node")
    parser.add_argument("--cluster-dir", type=Path, required=True)
    parser.add_argument("--node", required=True)
    parser.add_argument("--parent-pid", type=int, default=0)
    parser.add_argument("--peer", type=_address_flag, action="append", default=[])
    parser.add_argument("--advertise", type=_address_flag, action="append", default=[])
    args = parser.parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format=f"%(asctime)s {args.node} %(levelname)s %(message)s"
    )
    try:
        cluster = cluster_file.load(args.cluster_dir)
        if cluster is None:
            raise cluster_file.ClusterFileError(
                f"{args.cluster_dir} has no {cluster_file.CONFIG_FILE}"
            )
        cluster.node(args.node)
        topology = routed_topology(
            cluster.topology(),
            args.node,
            dict(args.peer),
            {_broker_index(key): address for key, address in args.advertise},
        )
    except cluster_file.ClusterFileError as error:
        print(f"{args.node}: {error}", file=sys.stderr)
        return 2
    data_dir = args.cluster_dir / args.node
    data_dir.mkdir(exist_ok=True)
    return asyncio.run(serve(cluster, args.node, data_dir, args.parent_pid, topology))


if __name__ == "__main__":
    sys.exit(main())
