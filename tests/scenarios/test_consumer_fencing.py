"""A consumer cut off from its coordinator must stop reading before the group hands its partitions on.

The schedule: c0 owns the only partition of t; c1 is an idle second member.
Every group request c0 sends is then lost (its fetches still reach the
partition leader), so the coordinator expires c0's session and gives the
partition to c1. When c0 polls again, the correct consumer has already given
its partitions up by its own clock; with `no-generation-fencing-on-fetch` it
reads on as the owner, and `poll-by-non-owner` reports it.
"""

from __future__ import annotations

from collections.abc import Callable

from kafka_verify.harness.runner import Checker
from kafka_verify.impl import events as ev
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import Envelope
from kafka_verify.model.groups import Phase
from kafka_verify.properties.catalogue import Violation

GROUP_REQUESTS = (gm.FindCoordinator, gm.JoinGroup, gm.SyncGroup, gm.Heartbeat, gm.OffsetCommit)


class Scenario:
    def __init__(self, bugs: frozenset[str], **shape: int) -> None:
        settings = {"groups": 1, "consumers": 2, "partitions": 1, **shape}
        self.checker = Checker(ClusterConfig(bugs=bugs, **settings))
        self.violations: list[Violation] = []

    def do(self, event: object) -> None:
        _, found = self.checker.apply(event)
        self.violations.extend(found)

    def run_for(
        self, ms: int, cut_off: str | None = None, lost: Callable[[Envelope], bool] | None = None
    ) -> None:
        """Deliver everything (losing `cut_off`'s group requests, and what `lost` picks) and fire
        timers for `ms`."""
        world = self.checker.world
        until = world.now_ms + ms
        while True:
            inflight = world.inflight()
            if inflight:
                oldest = inflight[0]
                dropped = (
                    oldest.src == cut_off and isinstance(oldest.message, GROUP_REQUESTS)
                ) or (lost is not None and lost(oldest))
                self.do(ev.Drop(oldest.id) if dropped else ev.Deliver(oldest.id))
                continue
            if world.now_ms >= until:
                return
            self.do(ev.Tick(min(100, until - world.now_ms)))


def expelled_consumer_polls(bugs: frozenset[str]) -> Scenario:
    s = Scenario(bugs)
    s.do(ev.Subscribe("c0", "g0"))
    s.run_for(3_000)
    s.do(ev.Subscribe("c1", "g0"))
    s.run_for(3_000)
    group = s.checker.state.groups[0]
    assert group.phase is Phase.STABLE and group.assignment == ((0, "c0"),)
    s.do(ev.Produce("p0", partition=0))
    for _ in range(3):  # commit position 0, read the record, commit position 1
        s.do(ev.Poll("c0"))
        s.run_for(500)
    assert s.checker.state.groups[0].committed == ((0, 1),)
    s.run_for(10_000, cut_off="c0")  # c0's session expires at the coordinator
    group = s.checker.state.groups[0]
    assert group.members == frozenset({"c1"}) and group.assignment == ((0, "c1"),)
    s.do(ev.Produce("p0", partition=0))
    s.run_for(2_000, cut_off="c0")
    s.do(ev.Poll("c0"))
    s.run_for(500, cut_off="c0")
    return s


def test_expelled_consumer_stops_reading_before_its_partition_moves() -> None:
    s = expelled_consumer_polls(frozenset())
    assert s.violations == []
    expelled_at = next(
        op.index for op in s.checker.ops if op.process == "c1" and op.f == "assign" and op.value
    )
    reads = [op for op in s.checker.ops[expelled_at:] if op.process == "c0" and op.f == "poll"]
    assert reads == [], "c0 read although its session had lapsed"


def test_no_generation_fencing_on_fetch_is_reported_as_poll_by_non_owner() -> None:
    s = expelled_consumer_polls(frozenset({"no-generation-fencing-on-fetch"}))
    names = {v.property for v in s.violations}
    assert names == {"poll-by-non-owner"}, names
    assert "c0 read partition 0" in s.violations[0].message
