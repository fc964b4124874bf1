"""The nemesis's aimed plans, each forced on a real `kafka-verify serve` cluster.

Each test starts a 3-broker cluster (RF 3, min ISR 2) on free loopback ports,
aims one plan at a partition the cluster's metadata names, and reads what the
nemesis recorded and what the processes and the proxy show afterwards. The
fixtures stop the cluster and leave no process behind.
"""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.workload import ClusterFile, Nemesis, Recorder
from kafka_verify.workload import nemesis as nemesis_module
from kafka_verify.workload.clients import (
    ClientFactory,
    PartitionView,
    ask_metadata,
    find_coordinator,
)
from kafka_verify.workload.nemesis import process_alive
from kafka_verify.workload.proxy import ProxyControl
from served import ServedCluster


def _served(tmp_path: Path, *extra: str) -> Iterator[ServedCluster]:
    served = ServedCluster(tmp_path / "cluster", topics=["t:3:3"], extra_args=list(extra))
    served.start()
    try:
        yield served
    finally:
        served.stop()


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ServedCluster]:
    yield from _served(tmp_path)


@pytest.fixture
def proxied(tmp_path: Path) -> Iterator[ServedCluster]:
    yield from _served(tmp_path, "--proxy")


class _Draws(random.Random):
    """A generator whose `random()` gives these values first, then its seeded ones."""

    def __init__(self, *first: float) -> None:
        super().__init__(5)
        self.first = list(first)

    def random(self) -> float:
        return self.first.pop(0) if self.first else super().random()


GROUP = "plans"


def _nemesis(
    served: ServedCluster, rng: random.Random | None = None, **plans: float
) -> tuple[Nemesis, Recorder, ClientFactory]:
    factory = ClientFactory("confluent", served.bootstrap, {})
    recorder = Recorder()
    nemesis = Nemesis(
        ClusterFile.load(served.data_dir / "cluster.json"),
        recorder,
        rng or random.Random(5),
        layout=lambda: factory.layout("t"),
        coordinator=lambda: find_coordinator(served.bootstrap, GROUP),
    )
    if plans:
        nemesis.kill_plans = {name.replace("_", "-"): weight for name, weight in plans.items()}
    return nemesis, recorder, factory


def _done(recorder: Recorder) -> list[dict[str, Any]]:
    """The values of the nemesis's completed operations, in order."""
    return [
        line["value"]  # type: ignore[misc]
        for line in recorder.lines()
        if line["process"] == "nemesis" and line["type"] == "ok"
    ]


# The leader-return tests need a successor elected; on a loaded machine that can take longer
# than the nemesis's own wait (a session timeout and an election), and they judge the plan,
# not how fast the cluster elects.
ELECTION_WAIT_S = 60.0


def _heir(view: PartitionView) -> int:
    assert view.leader is not None
    return next(b for b in view.replicas if b != view.leader)


def _dies(pid: int, timeout_s: float = 10.0) -> bool:
    """Whether `pid` is gone within the timeout: SIGKILL takes effect a moment after it is
    sent."""
    deadline = time.monotonic() + timeout_s
    while process_alive(pid):
        if time.monotonic() > deadline:
            return False
        time.sleep(0.05)
    return True


def _assert_all_running(served: ServedCluster) -> None:
    for node in served.nodes():
        assert process_alive(int(str(node["pid"]))), node["name"]


def test_the_metadata_names_each_partitions_leader_among_its_replicas(
    cluster: ServedCluster,
) -> None:
    layout = ClientFactory("confluent", cluster.bootstrap, {}).layout("t")
    assert sorted(layout) == [0, 1, 2]
    for view in layout.values():
        assert sorted(view.replicas) == [0, 1, 2]
        assert view.leader in view.replicas


def test_heir_bounce_restarts_the_heir_then_kills_the_leader(cluster: ServedCluster) -> None:
    nemesis, recorder, factory = _nemesis(cluster, heir_bounce=1.0)
    before = factory.layout("t")
    try:
        nemesis.inject("kill")
        heir_kill, heir_start, leader_kill = _done(recorder)
        partition = leader_kill["leader_of"]
        assert leader_kill["node"] == f"b{before[partition].leader}"
        assert heir_kill["node"] == f"b{_heir(before[partition])}"
        assert heir_start == {**heir_start, "fault": "start", "nodes": [heir_kill["node"]]}
        assert heir_start["pids"][heir_kill["node"]] != heir_kill["pid"]
        assert process_alive(heir_start["pids"][heir_kill["node"]])
        assert _dies(leader_kill["pid"])
        assert nemesis.faulty == [leader_kill["node"]]
    finally:
        nemesis.heal_all()
    _assert_all_running(cluster)


def test_leader_return_brings_the_leader_back_then_kills_its_successor(
    cluster: ServedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis_module, "CASCADE_WAIT_S", ELECTION_WAIT_S)
    nemesis, recorder, factory = _nemesis(cluster, leader_return=1.0)
    before = factory.layout("t")
    try:
        nemesis.inject("kill")
        first, start, second = _done(recorder)
        partition = first["leader_of"]
        assert first["node"] == f"b{before[partition].leader}"
        assert start["fault"] == "start" and start["nodes"] == [first["node"]]
        assert process_alive(start["pids"][first["node"]])
        # The successor is the leader the metadata named after the first kill.
        assert second["leader_of"] == partition and second["node"] != first["node"]
        assert _dies(second["pid"])
        assert nemesis.faulty == [second["node"]]
    finally:
        nemesis.heal_all()
    _assert_all_running(cluster)


def test_heir_cut_cuts_the_heir_from_the_leader_then_kills_the_leader(
    proxied: ServedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis_module, "FOLLOWERS_CUT_CHANCE", 0.0)
    nemesis, recorder, factory = _nemesis(proxied, heir_cut=1.0)
    before = factory.layout("t")
    control = ProxyControl(proxied.proxy()["control"])
    try:
        nemesis.inject("kill")
        cut, kill, *cascade = _done(recorder)
        partition = kill["leader_of"]
        leader, heir = f"b{before[partition].leader}", f"b{_heir(before[partition])}"
        assert kill["node"] == leader and _dies(kill["pid"])
        # Sometimes the successor dies too, and then the heir is the last replica up.
        assert [c["node"] for c in cascade] in (
            [],
            [f"b{b}" for b in range(3) if f"b{b}" not in (leader, heir)],
        )
        assert cut["fault"] == "partition" and cut["isolated"] == [leader]
        assert cut["apart_from"] == heir
        assert sorted(cut["links"]) == sorted([f"{heir}->{leader}", f"{leader}->{heir}"])
        assert sorted(control.faults()) == sorted(cut["links"])
    finally:
        nemesis.heal_all()
    assert control.faults() == {}
    _assert_all_running(proxied)


def test_a_partition_can_cut_one_broker_from_the_coordination_service(
    proxied: ServedCluster,
) -> None:
    # 0.5: past the leader's draws, within the coordination cut's.
    nemesis, recorder, _ = _nemesis(proxied, _Draws(0.5))
    coordination = {n.name for n in nemesis.cluster.nodes if n.role != "broker"}
    try:
        nemesis.inject("partition")
        (cut,) = _done(recorder)
        (broker,) = cut["isolated"]
        assert cut["apart_from"] == ", ".join(sorted(coordination))
        ends = [set(link.split("->")) for link in cut["links"]]
        assert ends and all(broker in pair and len(pair & coordination) == 1 for pair in ends), cut[
            "links"
        ]
    finally:
        nemesis.heal_all()
    heals = [v for v in _done(recorder) if v["fault"] == "heal"]
    assert [h["links"] for h in heals] == [cut["links"]]


def test_an_isolated_leader_keeps_its_clients_and_heals_coordination_first(
    proxied: ServedCluster,
) -> None:
    # 0.1: within the isolated-leader draw.
    nemesis, recorder, factory = _nemesis(proxied, _Draws(0.1))
    before = factory.layout("t")
    coordination = {n.name for n in nemesis.cluster.nodes if n.role != "broker"}
    control = ProxyControl(proxied.proxy()["control"])
    try:
        nemesis.inject("partition")
        (cut,) = _done(recorder)
        (leader,) = cut["isolated"]
        assert leader in {f"b{view.leader}" for view in before.values()}
        assert cut["clients_cut"] == [] and all(
            not link.startswith("client") for link in cut["links"]
        )
        assert any(set(link.split("->")) & coordination for link in cut["links"])
    finally:
        nemesis.heal_all()
    first, rest = (v["links"] for v in _done(recorder) if v["fault"] == "heal")
    assert all(set(link.split("->")) & coordination for link in first)
    assert sorted(rest) == sorted(cut["links"])  # the second heal heals every link
    assert control.faults() == {}
    _assert_all_running(proxied)


def test_a_partial_partition_cuts_a_leader_from_some_of_its_peers_only(
    proxied: ServedCluster,
) -> None:
    # 0.3: within the partial partition's draw.
    nemesis, recorder, factory = _nemesis(proxied, _Draws(0.3))
    before = factory.layout("t")
    try:
        nemesis.inject("partition")
        (cut,) = _done(recorder)
        (leader,) = cut["isolated"]
        assert leader in {f"b{view.leader}" for view in before.values()}
        apart = set(cut["apart_from"].split(", "))
        peers = {n.name for n in nemesis.cluster.nodes} - {leader}
        assert apart and apart < peers, apart  # some peers, not all
        expected = {f"{leader}->{n}" for n in apart} | {
            f"{n}->{leader}" for n in apart if n.startswith("b")
        }
        assert set(cut["links"]) == expected
    finally:
        nemesis.heal_all()
    _assert_all_running(proxied)


def test_leader_return_can_cut_the_leader_off_instead_and_heal_it_once_another_leads(
    proxied: ServedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis_module, "LEADER_RETURN_CUT_CHANCE", 1.0)
    monkeypatch.setattr(nemesis_module, "CASCADE_WAIT_S", ELECTION_WAIT_S)
    nemesis, recorder, factory = _nemesis(proxied, leader_return=1.0)
    before = factory.layout("t")
    pids = {str(n["name"]): int(str(n["pid"])) for n in proxied.nodes()}
    control = ProxyControl(proxied.proxy()["control"])
    try:
        nemesis.inject("kill")
        cut, heal, kill = _done(recorder)
        partition = kill["leader_of"]
        leader = f"b{before[partition].leader}"
        assert cut["fault"] == "partition" and cut["isolated"] == [leader]
        assert cut["clients_cut"] == [] and all(leader in link for link in cut["links"])
        assert heal == {"fault": "heal", "links": cut["links"]}
        assert control.faults() == {}  # healed before the successor dies
        assert kill["node"] != leader and _dies(kill["pid"])
        assert process_alive(pids[leader])  # cut off, never killed
        assert nemesis.faulty == [kill["node"]]
    finally:
        nemesis.heal_all()
    _assert_all_running(proxied)


def test_heir_cut_can_cut_the_leader_from_every_follower_and_keep_the_coordination_service(
    proxied: ServedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis_module, "FOLLOWERS_CUT_CHANCE", 1.0)
    nemesis, recorder, factory = _nemesis(proxied, heir_cut=1.0)
    before = factory.layout("t")
    try:
        nemesis.inject("kill")
        cut, kill = _done(recorder)  # no successor is killed: the heir is not the last one up
        partition = kill["leader_of"]
        leader = f"b{before[partition].leader}"
        followers = sorted(f"b{b}" for b in range(3) if f"b{b}" != leader)
        assert cut["isolated"] == [leader] and cut["apart_from"] == ", ".join(followers)
        assert sorted(cut["links"]) == sorted(
            [f"{leader}->{f}" for f in followers] + [f"{f}->{leader}" for f in followers]
        )
        assert kill["node"] == leader and _dies(kill["pid"])
    finally:
        nemesis.heal_all()
    _assert_all_running(proxied)


def test_find_coordinator_names_a_broker_and_none_without_a_cluster(
    cluster: ServedCluster,
) -> None:
    deadline = time.monotonic() + 60
    found = find_coordinator(cluster.bootstrap, GROUP)
    while found is None and time.monotonic() < deadline:  # the offsets topic's leaders
        time.sleep(0.5)
        found = find_coordinator(cluster.bootstrap, GROUP)
    assert found in (0, 1, 2)
    assert find_coordinator(cluster.bootstrap, GROUP) == found  # a group's is stable
    assert find_coordinator("127.0.0.1:1", GROUP, timeout_s=1.0) is None


def test_the_coordinator_plan_kills_the_groups_coordinator(
    cluster: ServedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis_module, "CASCADE_CHANCE", 0.0)
    nemesis, recorder, _ = _nemesis(cluster, coordinator=1.0)
    deadline = time.monotonic() + 60
    while find_coordinator(cluster.bootstrap, GROUP) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    coordinator = find_coordinator(cluster.bootstrap, GROUP)
    try:
        nemesis.inject("kill")
        (kill,) = _done(recorder)
        assert kill["coordinator"] is True and kill["plan"] == "coordinator"
        assert kill["node"] == f"b{coordinator}" and _dies(kill["pid"])
    finally:
        nemesis.heal_all()
    _assert_all_running(cluster)


def _probe(served: ServedCluster) -> Any:
    return lambda broker: ask_metadata(served.bootstrap, "t", broker)


def test_every_broker_names_the_same_controller_and_a_leader_its_full_isr(
    cluster: ServedCluster,
) -> None:
    answers = [ask_metadata(cluster.bootstrap, "t", b) for b in range(3)]
    assert all(a is not None for a in answers)
    assert {a.controller for a in answers if a is not None} == {0}  # b0 holds the first lease
    for a in answers:
        assert a is not None and a.isrs == {0: (0, 1, 2), 1: (0, 1, 2), 2: (0, 1, 2)}


def test_sole_isr_leaves_the_leader_alone_in_its_isr_then_kills_it(
    proxied: ServedCluster,
) -> None:
    nemesis, recorder, factory = _nemesis(proxied, sole_isr=1.0)
    nemesis.probe = _probe(proxied)
    before = factory.layout("t")
    control = ProxyControl(proxied.proxy()["control"])
    try:
        nemesis.inject("kill")
        cut, kill, heal = _done(recorder)
        partition = kill["leader_of"]
        leader = f"b{before[partition].leader}"
        followers = sorted(f"b{b}" for b in range(3) if f"b{b}" != leader)
        assert cut["isolated"] == [leader] and cut["apart_from"] == ", ".join(followers)
        # The leader's own metadata showed it alone in the ISR before it was killed.
        assert kill["node"] == leader and kill["alone"] is True and _dies(kill["pid"])
        assert heal == {"fault": "heal", "links": cut["links"]}
        assert control.faults() == {}  # the followers are back before the leader is
        assert nemesis.faulty == [leader]
    finally:
        nemesis.heal_all()
    _assert_all_running(proxied)


def test_the_controller_plan_aims_at_the_controller_the_metadata_names(
    cluster: ServedCluster, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(nemesis_module, "CONTROLLER_FAULTS", ("kill",))
    monkeypatch.setattr(nemesis_module, "CONTROLLER_MOVE_CHANCE", 0.0)
    nemesis, recorder, _ = _nemesis(cluster, controller=1.0)
    nemesis.probe = _probe(cluster)
    try:
        nemesis.inject("kill")
        (kill,) = _done(recorder)
        assert kill["plan"] == "controller" and kill["node"] == "b0" and _dies(kill["pid"])
        # Another broker takes the lease, and the metadata says so.
        deadline = time.monotonic() + 60
        named = None
        while time.monotonic() < deadline and named in (None, 0):
            found = ask_metadata(cluster.bootstrap, "t", 1)
            named = found.controller if found is not None else None
            time.sleep(0.5)
        assert named in (1, 2)
    finally:
        nemesis.heal_all()
    _assert_all_running(cluster)


def test_power_loss_kills_every_broker_and_the_heal_starts_them_all(
    cluster: ServedCluster,
) -> None:
    nemesis, recorder, _ = _nemesis(cluster, power_loss=1.0)
    nemesis.probe = _probe(cluster)
    try:
        nemesis.inject("kill")
        kills = _done(recorder)
        assert sorted(k["node"] for k in kills) == ["b0", "b1", "b2"]
        assert all(k["plan"] == "power-loss" and _dies(k["pid"]) for k in kills)
    finally:
        nemesis.heal_all()
    _assert_all_running(cluster)


def test_the_offsets_plan_leaves_the_coordinator_alone_then_kills_it(
    proxied: ServedCluster,
) -> None:
    nemesis, recorder, _ = _nemesis(proxied, offsets=1.0)
    nemesis.probe = _probe(proxied)
    deadline = time.monotonic() + 60
    while find_coordinator(proxied.bootstrap, GROUP) is None and time.monotonic() < deadline:
        time.sleep(0.5)
    coordinator = f"b{find_coordinator(proxied.bootstrap, GROUP)}"
    try:
        nemesis.inject("kill")
        cut, kill, heal = _done(recorder)
        assert cut["isolated"] == [coordinator]
        assert cut["apart_from"] == ", ".join(sorted({"b0", "b1", "b2"} - {coordinator}))
        # The partitions it leads showed it alone in their ISR before it died.
        assert kill["node"] == coordinator and kill["coordinator"] is True
        assert kill["alone"] is True and _dies(kill["pid"])
        assert heal["fault"] == "heal" and nemesis.faulty == [coordinator]
    finally:
        nemesis.heal_all()
    _assert_all_running(proxied)
