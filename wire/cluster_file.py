"""A `serve` cluster's config.json: the ClusterConfig and every node's ports, shared by all its processes.

Rules of this module:
- Plain JSON, never pickle; a file that does not read back is a
  `ClusterFileError` with one sentence naming the problem.
- The ClusterConfig is written field by field from its dataclass fields
  (frozensets and tuples as lists), and read back through its constructor,
  so its own checks run on what a file says.
"""

from __future__ import annotations

import json
import os
import typing
from dataclasses import dataclass, fields
from pathlib import Path
from typing import Any

from kafka_verify.impl.config import ClusterConfig
from kafka_verify.wire.host import ZK, Topology

CONFIG_FILE = "config.json"
FORMAT = 1


class ClusterFileError(Exception):
    """config.json cannot be used: the reason is one sentence."""


@dataclass(frozen=True, slots=True)
class NodeSpec:
    name: str  # "zk", "b0", ...
    role: str  # "zk" or "broker"
    node_port: int  # where its peers reach it (loopback)
    kafka_port: int | None  # a broker's Kafka port


@dataclass(frozen=True, slots=True)
class ClusterFile:
    config: ClusterConfig
    bind: str  # the address Kafka ports listen on
    advertised_host: str  # the host clients are told to connect to
    nodes: tuple[NodeSpec, ...]

    def node(self, name: str) -> NodeSpec:
        for spec in self.nodes:
            if spec.name == name:
                return spec
        raise ClusterFileError(f"the cluster has no node named {name!r}")

    def brokers(self) -> tuple[NodeSpec, ...]:
        return tuple(spec for spec in self.nodes if spec.role == "broker")

    def topology(self) -> Topology:
        return Topology(
            {spec.name: ("127.0.0.1", spec.node_port) for spec in self.nodes},
            {
                int(spec.name[1:]): (self.advertised_host, spec.kafka_port)
                for spec in self.brokers()
                if spec.kafka_port is not None
            },
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "format": FORMAT,
            "cluster": config_to_json(self.config),
            "bind": self.bind,
            "advertised_host": self.advertised_host,
            "nodes": [
                {
                    "name": s.name,
                    "role": s.role,
                    "node_port": s.node_port,
                    "kafka_port": s.kafka_port,
                }
                for s in self.nodes
            ],
        }

    @classmethod
    def from_json(cls, data: Any) -> ClusterFile:
        if not isinstance(data, dict) or data.get("format") != FORMAT:
            raise ClusterFileError(f"it is not a cluster file of format {FORMAT}")
        try:
            nodes = tuple(
                NodeSpec(n["name"], n["role"], int(n["node_port"]), n["kafka_port"])
                for n in data["nodes"]
            )
            bind, advertised = data["bind"], data["advertised_host"]
        except (KeyError, TypeError, ValueError) as error:
            raise ClusterFileError(f"its nodes are not described right ({error})") from None
        if not isinstance(bind, str) or not isinstance(advertised, str):
            raise ClusterFileError("its bind and advertised_host must be strings")
        names = [n.name for n in nodes]
        if names.count(ZK) != 1 or len(set(names)) != len(names):
            raise ClusterFileError("it must name one zk node and each node once")
        return cls(config_from_json(data.get("cluster")), bind, advertised, nodes)


def config_to_json(config: ClusterConfig) -> dict[str, Any]:
    def plain(value: object) -> object:
        if isinstance(value, frozenset):
            return sorted(value)
        if isinstance(value, tuple):
            return [plain(v) for v in value]
        return value

    return {f.name: plain(getattr(config, f.name)) for f in fields(ClusterConfig)}


def config_from_json(data: Any) -> ClusterConfig:
    if not isinstance(data, dict):
        raise ClusterFileError("its cluster config is not an object")
    hints = typing.get_type_hints(ClusterConfig)
    known = {f.name for f in fields(ClusterConfig)}
    unknown = sorted(set(data) - known)
    if unknown:
        raise ClusterFileError(f"its cluster config has an unknown setting {unknown[0]!r}")
    values: dict[str, Any] = {}
    for name, value in data.items():
        origin = typing.get_origin(hints[name])
        if name == "topics" and isinstance(value, list):
            if not all(
                isinstance(t, list) and len(t) == 2 and isinstance(t[0], str) and type(t[1]) is int
                for t in value
            ):
                raise ClusterFileError("its topics are not a list of [name, partitions]")
            value = tuple((t[0], t[1]) for t in value)
        elif origin is frozenset and isinstance(value, list):
            value = frozenset(value)
        elif origin is tuple and isinstance(value, list):
            value = tuple(value)
        values[name] = value
    try:
        return ClusterConfig(**values)
    except (TypeError, ValueError) as error:
        raise ClusterFileError(f"its cluster config is not valid: {error}") from None


def load(directory: Path) -> ClusterFile | None:
    """The cluster file of `directory`, or None when there is none yet."""
    path = directory / CONFIG_FILE
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        return None
    try:
        data = json.loads(text)
    except ValueError:
        raise ClusterFileError(f"{path} is not JSON") from None
    try:
        return ClusterFile.from_json(data)
    except ClusterFileError as error:
        raise ClusterFileError(f"{path} cannot be used: {error}") from None


def write_json_atomically(path: Path, data: object) -> None:
    temporary = path.with_name(path.name + ".tmp")
    with open(temporary, "w", encoding="utf-8") as file:
        json.dump(data, file, indent=2)
        file.write("\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
