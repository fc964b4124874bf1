"""The docker-compose example and its cluster file agree: every broker can be faulted.

There is no Docker engine here, so the compose file is not run; these tests read
both files as `docker compose` and `kafka-verify workload --cluster` would, and
check that the cluster file drives every service of the compose file, each
through commands that name that service and no other.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Any

import yaml
from kafka_verify.workload.nemesis import COMMANDS, ClusterFile

EXAMPLE = Path(__file__).resolve().parents[2] / "examples" / "docker-compose"
COMPOSE = EXAMPLE / "docker-compose.yml"
# What each of the nemesis's commands asks docker compose to do, after the service.
VERBS = {
    "kill": ["kill", "-s", "SIGKILL"],
    "start": ["start"],
    "pause": ["pause"],
    "resume": ["unpause"],
}


def _compose() -> dict[str, Any]:
    data = yaml.safe_load(COMPOSE.read_text(encoding="utf-8"))
    assert isinstance(data, dict)
    return data


def test_the_cluster_file_names_every_service_of_the_compose_file() -> None:
    cluster = ClusterFile.load(EXAMPLE / "cluster.json")
    services = _compose()["services"]
    assert len(services) == 3
    assert sorted(node.name for node in cluster.nodes) == sorted(services)
    assert all(node.role == "broker" for node in cluster.nodes)


def test_each_node_s_commands_fault_its_own_service() -> None:
    for node in ClusterFile.load(EXAMPLE / "cluster.json").nodes:
        assert set(node.commands) == set(COMMANDS), node.name
        for action, command in node.commands.items():
            words = shlex.split(command)
            # -f with the path from the repository's root, where the workload is run.
            assert words[:4] == [
                "docker",
                "compose",
                "-f",
                str(COMPOSE.relative_to(EXAMPLE.parents[1])),
            ]
            assert words[4:] == [*VERBS[action], node.name], (node.name, command)


def test_the_bootstrap_reaches_every_broker_where_it_advertises_itself() -> None:
    cluster = ClusterFile.load(EXAMPLE / "cluster.json")
    services = _compose()["services"]
    assert cluster.bootstrap is not None
    bootstrap = cluster.bootstrap.split(",")
    for name, service in services.items():
        env = service["environment"]
        external = [
            listener.removeprefix("EXTERNAL://")
            for listener in env["KAFKA_ADVERTISED_LISTENERS"].split(",")
            if listener.startswith("EXTERNAL://")
        ]
        assert len(external) == 1 and external[0] in bootstrap, name
        port = external[0].rsplit(":", 1)[1]
        assert f"{port}:{port}" in service["ports"], name
        assert f"EXTERNAL://:{port}" in env["KAFKA_LISTENERS"].split(","), name


def test_every_broker_keeps_its_log_on_its_own_named_volume() -> None:
    compose = _compose()
    mounts = {}
    for name, service in compose["services"].items():
        assert service["image"].startswith("apache/kafka:"), name
        assert "broker" in service["environment"]["KAFKA_PROCESS_ROLES"].split(","), name
        (volume,) = service["volumes"]
        source, target = volume.split(":")
        assert target == service["environment"]["KAFKA_LOG_DIRS"], name
        mounts[name] = source
    assert len(set(mounts.values())) == len(mounts)
    assert set(mounts.values()) <= set(compose["volumes"])
    ids = {service["environment"]["KAFKA_NODE_ID"] for service in compose["services"].values()}
    assert len(ids) == len(mounts)
