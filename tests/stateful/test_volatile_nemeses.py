"""Each volatile-window nemesis crashes its node at the moment it aims at, on the correct cluster.

The nemeses are driven directly, as a schedule would call them, from a cluster
that has run normally for a while. Every crash a nemesis aims is recorded with
the checked state at that instant: at least one must be in the window the
nemesis names, and the SOMETIMES counter of its situation (where there is one)
must move. The correct broker must stay clean throughout (a violation raises).
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.harness.machine import FAULT_MIXES, ClusterMachine, Recorder, make_machine
from kafka_verify.impl import events as ev
from kafka_verify.model.state import Role, State

ATTEMPTS = 12

Aimed = tuple[int, State]  # the crashed broker and the checked state just before its crash


def started_machine(aimed: list[Aimed]) -> ClusterMachine:
    machine = make_machine(reference_cluster(), Recorder())()
    machine.mix = FAULT_MIXES["volatile"]
    machine.rules_left = 10**6  # driven by hand: no example length applies
    original = machine._crash_losing

    def recorded(node: str, restart: bool) -> None:
        if node.startswith("b") and machine.checker.world.is_up(node):
            aimed.append((int(node[1:]), machine.checker.state))
        original(node, restart)

    machine._crash_losing = recorded  # type: ignore[method-assign]
    machine._run_network(8)
    for consumer in range(3):
        machine.subscribe(consumer, consumer)
    machine._run_network(20)
    return machine


def recover(machine: ClusterMachine) -> None:
    """Restart what is down and let the cluster work a little before the next attempt."""
    world = machine.checker.world
    for node in world.nodes():
        if not world.is_up(node):
            machine._do(ev.Restart(node))
    machine._run_network(12)


def hw_past_checkpoint(broker: int, state: State) -> bool:
    """A leader whose high watermark moved since its last checkpoint: acks sent, not durable."""
    return any(
        p.leader == broker and p.replica(broker).hw > p.replica(broker).checkpoint_hw
        for p in state.partitions
    )


def reloading(broker: int, state: State) -> bool:
    """A broker with a replica that has not yet taken up its role since it restarted."""
    return any(
        r.broker == broker and r.role in (Role.UNKNOWN, Role.TRUNCATING)
        for p in state.partitions
        for r in p.replicas
    )


def anything(broker: int, state: State) -> bool:
    return True


# nemesis -> (its SOMETIMES situation or None, what an aimed crash's moment must be, the call)
NEMESES: dict[
    str, tuple[str | None, Callable[[int, State], bool], Callable[[ClusterMachine, int], None]]
] = {
    "crash_after_fetch": (
        "crash-lost-acked-unflushed",
        anything,
        lambda m, i: m.crash_after_fetch(partition=i, crash_leader=i % 2 == 0, restart=True),
    ),
    "crash_sole_isr_leader": (
        "sole-isr-leader-crashed-unflushed",
        anything,
        lambda m, i: m.crash_sole_isr_leader(partition=i, restart=True),
    ),
    "crash_readmitted_follower": (
        "readmitted-follower-crashed",
        anything,
        lambda m, i: m.crash_readmitted_follower(partition=i, pick=i, restart=True),
    ),
    "crash_coordinator_mid_commit": (
        "coordinator-moved-commits-in-flight",
        anything,
        lambda m, i: m.crash_coordinator_mid_commit(consumer=i, restart=True),
    ),
    "crash_leader_after_commit": (
        None,
        hw_past_checkpoint,
        lambda m, i: m.crash_leader_after_commit(partition=i, restart=True),
    ),
    "crash_during_restart": (
        None,
        reloading,
        lambda m, i: m.crash_during_restart(pick=i, events=i % 4),
    ),
}


@pytest.mark.parametrize("nemesis", sorted(NEMESES))
def test_each_volatile_nemesis_crashes_in_its_window(nemesis: str) -> None:
    situation, in_window, attack = NEMESES[nemesis]
    aimed: list[Aimed] = []
    machine = started_machine(aimed)
    counts = machine.checker.coverage.counts
    before = counts[situation] if situation else 0
    for attempt in range(ATTEMPTS):
        attack(machine, attempt)
        recover(machine)
    assert any(in_window(broker, state) for broker, state in aimed), f"{nemesis}: {len(aimed)}"
    if situation is not None:
        assert counts[situation] > before, f"{nemesis} never reached {situation}"
    assert machine.checker.full_comparison() == []
