"""The broad variants of the seeded group bugs, each in its minimal scenario against the reference broker.

Each scenario is a hand-written schedule run through the checker (refinement
and every step and history property after each event). With its bug off the
schedule passes with no violation; with the bug on, the property that the
catalogue (docs/bugs.md) names reports it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka_verify.impl import events as ev
from kafka_verify.impl.coordinator import offsets_partition
from kafka_verify.impl.world import Envelope
from kafka_verify.model.groups import Phase
from test_consumer_fencing import GROUP_REQUESTS
from test_consumer_fencing import Scenario as FencingScenario


class Scenario(FencingScenario):
    def read(self, consumer: str, polls: int = 3) -> None:
        for _ in range(polls):  # commit the start position, fetch, commit what was read
            self.do(ev.Poll(consumer))
            self.run_for(500)

    def properties(self) -> set[str]:
        return {v.property for v in self.violations}


def commit_while_rebalancing(bugs: frozenset[str]) -> Scenario:
    """c0 has read a record when c1 joins: c0 commits before it rejoins, mid-rebalance."""
    s = Scenario(bugs)
    s.do(ev.Subscribe("c0", "g0"))
    s.run_for(3_000)
    s.do(ev.Produce("p0", partition=0))
    s.run_for(500)
    s.do(ev.Poll("c0"))  # commits position 0
    s.run_for(500)
    s.do(ev.Poll("c0"))  # reads the record
    s.run_for(500)
    s.do(ev.Subscribe("c1", "g0"))
    s.run_for(4_000)
    return s


def member_leaves(bugs: frozenset[str]) -> Scenario:
    """c0 owns the partition and leaves; in the coordinator's record it should own nothing."""
    s = Scenario(bugs)
    s.do(ev.Subscribe("c0", "g0"))
    s.run_for(3_000)
    assert s.checker.state.groups[0].assignment == ((0, "c0"),)
    s.do(ev.Close("c0"))
    s.run_for(1_000)
    return s


def coordinator_crashes_before_replication(bugs: frozenset[str]) -> Scenario:
    """c0 commits while the coordinator's followers are cut off; the coordinator's broker then
    crashes, losing what it had not flushed, and comes back with its log shorter."""
    s = Scenario(bugs, flush_interval_ms=5_000)
    config = s.checker.world.config
    coordinator = f"b{s.checker.state.partitions[offsets_partition('g0', config)].leader}"
    s.do(ev.Subscribe("c0", "g0"))
    s.run_for(3_000)
    s.do(ev.Produce("p0", partition=0))
    s.read("c0", polls=2)  # commits position 0, then reads the record
    followers = tuple(f"b{i}" for i in range(config.brokers) if f"b{i}" != coordinator)
    rest = tuple(n for n in s.checker.world.nodes() if n not in followers)
    s.do(ev.Partition((followers, rest)))
    s.do(ev.Poll("c0"))  # commits position 1, which nobody replicates
    s.run_for(300)
    s.do(ev.Crash(coordinator, lose_unflushed=True))
    s.do(ev.Restart(coordinator))
    s.do(ev.Heal())
    s.run_for(15_000)
    return s


def heartbeats_lost(bugs: frozenset[str]) -> Scenario:
    """c0's requests to its coordinator are lost while its fetches still reach the partition
    leader; the coordinator expires c0 and hands its partition to c1 (as in
    test_consumer_fencing.py, but the coordinator is not the partition's leader)."""
    s = Scenario(bugs, partitions=1)
    config = s.checker.world.config
    coordinator = f"b{s.checker.state.partitions[offsets_partition('g0', config)].leader}"
    assert coordinator != f"b{s.checker.state.partitions[0].leader}"
    s.do(ev.Subscribe("c0", "g0"))
    s.run_for(3_000)
    s.do(ev.Subscribe("c1", "g0"))
    s.run_for(3_000)
    assert s.checker.state.groups[0].assignment == ((0, "c0"),)
    s.do(ev.Produce("p0", partition=0))
    s.read("c0")

    def to_coordinator(e: Envelope) -> bool:
        return e.src == "c0" and e.dst == coordinator and isinstance(e.message, GROUP_REQUESTS)

    s.run_for(10_000, lost=to_coordinator)  # c0's session expires at the coordinator
    group = s.checker.state.groups[0]
    assert group.phase is Phase.STABLE and group.assignment == ((0, "c1"),)
    s.do(ev.Produce("p0", partition=0))
    s.run_for(500, lost=to_coordinator)
    s.do(ev.Poll("c0"))
    s.run_for(500, lost=to_coordinator)
    return s


SCENARIOS: dict[str, tuple[Callable[[frozenset[str]], Scenario], str]] = {
    "unfenced-offset-commit": (commit_while_rebalancing, "refinement"),
    "ownership-never-revoked": (member_leaves, "refinement"),
    "commit-before-replication": (coordinator_crashes_before_replication, "refinement"),
    "session-from-unanswered-heartbeat": (heartbeats_lost, "poll-by-non-owner"),
}


@pytest.mark.parametrize("bug", sorted(SCENARIOS))
def test_the_correct_broker_passes_the_scenario(bug: str) -> None:
    scenario, _ = SCENARIOS[bug]
    assert scenario(frozenset()).violations == []


@pytest.mark.parametrize("bug", sorted(SCENARIOS))
def test_the_bug_is_reported_by_its_property(bug: str) -> None:
    scenario, expected = SCENARIOS[bug]
    assert expected in scenario(frozenset({bug})).properties()
