"""Consumer-group scenarios against the reference broker, refinement checked after every event.

Each scenario is a hand-written schedule; `Run.do` applies the model actions an
event named and asserts that the abstraction of the world equals the model
state, consumer groups included. The bug scenarios switch one seeded group bug
on and see the check fail, and pass with the bug off.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka_verify import model
from kafka_verify.impl import events as ev
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.coordinator import offsets_partition
from kafka_verify.impl.world import Envelope
from kafka_verify.model.groups import (
    SIMPLE_GENERATION,
    SIMPLE_MEMBER,
    CommitOffset,
    CoordinatorFailover,
    ExpireMember,
    Phase,
    SyncAssignment,
)
from replication_driver import Run


def group_run(bugs: frozenset[str] = frozenset(), **shape: int) -> Run:
    settings = {"groups": 1, "consumers": 2, **shape}
    return Run(ClusterConfig(bugs=bugs, **settings))


def settle(run: Run, ms: int = 4_000) -> None:
    run.drain(ms)


def group_actions(run: Run, kind: type) -> list[object]:
    return [a for a in run.actions if isinstance(a, kind)]


def produce_and_read(run: Run, consumer: str, records: int) -> None:
    for _ in range(records):
        run.do(ev.Produce("p0", partition=0))
    settle(run, 1_000)
    run.do(ev.Poll(consumer))  # commits what it read so far (nothing), then fetches next time
    settle(run, 500)
    run.do(ev.Poll(consumer))
    settle(run, 500)


def hold_back(run: Run, held: int, ms: int) -> None:
    """Deliver everything but message `held`, and fire timers, for `ms` of virtual time."""
    until = run.world.now_ms + ms
    while run.world.now_ms < until:
        others = [e for e in run.world.inflight() if e.id != held]
        if others:
            run.do(ev.Deliver(others[0].id))
        else:
            run.do(ev.Tick(min(50, until - run.world.now_ms)))


def first(run: Run, wanted: Callable[[Envelope], bool]) -> Envelope:
    return next(e for e in run.world.inflight() if wanted(e))


def test_member_session_expires_mid_rebalance() -> None:
    run = group_run(consumers=3, partitions=2)
    run.do(ev.Subscribe("c0", "g0"))
    run.do(ev.Subscribe("c1", "g0"))
    settle(run)
    assert run.state.groups[0].phase is Phase.STABLE
    run.do(ev.Subscribe("c2", "g0"))
    run.deliver_where(lambda e: "c2" in (e.src, e.dst))  # its join opens a rebalance
    assert run.state.groups[0].phase is Phase.PREPARING_REBALANCE
    run.do(ev.Crash("c1"))  # c1 never rejoins
    settle(run, 12_000)
    expired = [a for a in group_actions(run, ExpireMember) if a.member == "c1"]  # type: ignore[attr-defined]
    assert expired, "c1's session never expired"
    g = run.state.groups[0]
    assert g.phase is Phase.STABLE and g.members == frozenset({"c0", "c2"})
    assert {p for p, _ in g.assignment} == {0, 1}


def test_coordinator_broker_crashes_after_commit() -> None:
    run = group_run()
    config = run.world.config
    run.do(ev.Subscribe("c0", "g0"))
    settle(run)
    produce_and_read(run, "c0", 3)
    run.do(ev.CommitOffsets("c0"))
    settle(run, 1_000)
    commits = [op for op in run.ops if op.f == "commit" and op.type == "ok"]
    assert commits and commits[-1].value == {"t/0": 3}
    coordinator = run.state.partitions[offsets_partition("g0", config)].leader
    run.do(ev.Crash(f"b{coordinator}", lose_unflushed=True))
    settle(run, 12_000)
    assert group_actions(run, CoordinatorFailover)
    assert run.state.groups[0].committed == ((0, 3),)
    # A restarted consumer resumes from the committed offset.
    run.do(ev.Crash("c0"))
    run.do(ev.Restart("c0"))
    run.do(ev.Produce("p0", partition=0))
    run.do(ev.Subscribe("c0", "g0"))
    settle(run, 8_000)
    run.do(ev.Poll("c0"))
    settle(run, 500)
    run.do(ev.Poll("c0"))
    settle(run, 500)
    polls = [op for op in run.ops if op.process == "c0" and op.f == "poll"]
    assert polls[-1].value["t/0"][0][0] == 3


def test_late_sync_group_from_old_generation() -> None:
    run = group_run()
    run.do(ev.Subscribe("c0", "g0"))
    run.deliver_where(
        lambda e: isinstance(
            e.message,
            gm.FindCoordinator | gm.FindCoordinatorResponse | gm.JoinGroup | gm.JoinGroupResponse,
        )
    )
    late = first(run, lambda e: isinstance(e.message, gm.SyncGroup))
    run.do(ev.Duplicate(late.id))  # one copy arrives now; the original is held back
    assert run.state.groups[0].phase is Phase.STABLE
    generation = run.state.groups[0].generation
    run.do(ev.Subscribe("c1", "g0"))
    hold_back(run, late.id, 4_000)
    assert run.state.groups[0].generation > generation
    syncs = len(group_actions(run, SyncAssignment))
    run.do(ev.Deliver(late.id))
    answer = first(run, lambda e: isinstance(e.message, gm.SyncGroupResponse))
    assert answer.message.error == gm.ILLEGAL_GENERATION  # type: ignore[union-attr]
    assert len(group_actions(run, SyncAssignment)) == syncs


def test_two_groups_read_the_same_topic() -> None:
    run = group_run(groups=2)
    run.do(ev.Subscribe("c0", "g0"))
    run.do(ev.Subscribe("c1", "g1"))
    settle(run)
    produce_and_read(run, "c0", 4)
    produce_and_read(run, "c1", 0)
    for consumer in ("c0", "c1"):
        read = [
            pair[0]
            for op in run.ops
            if op.process == consumer and op.f == "poll"
            for pair in op.value["t/0"]
        ]
        assert read == [0, 1, 2, 3]
        run.do(ev.CommitOffsets(consumer))
    settle(run, 1_000)
    assert [g.committed for g in run.state.groups] == [((0, 4),), ((0, 4),)]


# -- the seeded group bugs ---------------------------------------------------------------------


def zombie_commit(bugs: frozenset[str]) -> None:
    run = group_run(bugs)
    run.do(ev.Subscribe("c0", "g0"))
    settle(run)
    produce_and_read(run, "c0", 2)
    run.do(ev.CommitOffsets("c0"))
    stale = first(run, lambda e: isinstance(e.message, gm.OffsetCommit))
    run.do(ev.Subscribe("c1", "g0"))
    hold_back(run, stale.id, 5_000)  # a new generation forms while the commit is in flight
    assert run.state.groups[0].generation == 2
    before = len(group_actions(run, CommitOffset))
    run.do(ev.Deliver(stale.id))
    settle(run, 1_000)
    late = group_actions(run, CommitOffset)[before:]
    assert all(a.generation == 2 for a in late)  # type: ignore[attr-defined]


def offsets_in_memory(bugs: frozenset[str]) -> None:
    run = group_run(bugs)
    run.do(ev.Subscribe("c0", "g0"))
    settle(run)
    produce_and_read(run, "c0", 2)
    run.do(ev.CommitOffsets("c0"))
    settle(run, 1_000)
    coordinator = run.state.partitions[offsets_partition("g0", run.world.config)].leader
    run.do(ev.Crash(f"b{coordinator}"))
    settle(run, 12_000)
    assert run.state.groups[0].committed == ((0, 2),)


def double_assignment(bugs: frozenset[str]) -> None:
    run = group_run(bugs, partitions=2)
    run.do(ev.Subscribe("c0", "g0"))
    settle(run)
    run.do(ev.Subscribe("c1", "g0"))  # c0 must give its partitions up to rejoin
    settle(run)
    g = run.state.groups[0]
    assert g.phase is Phase.STABLE and len({m for _, m in g.assignment}) == 2


BUG_SCENARIOS = {
    "zombie-commit": zombie_commit,
    "offsets-in-memory": offsets_in_memory,
    "double-assignment": double_assignment,
}


@pytest.mark.parametrize("bug", sorted(BUG_SCENARIOS))
def test_group_bug_breaks_refinement_and_its_absence_does_not(bug: str) -> None:
    scenario = BUG_SCENARIOS[bug]
    scenario(frozenset())  # the correct broker passes
    with pytest.raises(Exception, match=r"not allowed|left the world off the model"):
        scenario(frozenset({bug}))


def _simple_commit(run: Run, request_id: int, offset: int) -> None:
    """An OffsetCommit from outside the group (no member id, generation -1), as a consumer that
    assigns its partitions itself sends one, straight to the group's coordinator."""
    coordinator = run.state.partitions[offsets_partition("g0", run.world.config)].leader
    commit = gm.OffsetCommit(request_id, "g0", SIMPLE_MEMBER, SIMPLE_GENERATION, ((0, offset),))
    result = run.world.request(f"b{coordinator}", "c0", commit)
    for action in result.actions:
        run.state = model.step(run.state, action, run.cfg)
    run.actions.extend(result.actions)


def _answers(run: Run, request_id: int) -> list[str]:
    return [
        e.message.error
        for e in run.world.inflight()
        if isinstance(e.message, gm.OffsetCommitResponse) and e.message.request_id == request_id
    ]


def test_an_empty_group_takes_a_commit_from_a_consumer_outside_it_and_keeps_it() -> None:
    run = group_run()
    settle(run)
    _simple_commit(run, 9_001, 5)
    run.deliver_where(lambda e: e.dst[0] == "b")  # replication: the commit takes effect
    settle(run, 1_000)
    assert [a for a in group_actions(run, CommitOffset) if a.member == SIMPLE_MEMBER]  # type: ignore[attr-defined]
    assert run.state.groups[0].phase is Phase.EMPTY
    assert run.state.groups[0].committed == ((0, 5),)
    # Once the group has members, only they commit.
    run.do(ev.Subscribe("c1", "g0"))
    settle(run)
    _simple_commit(run, 9_002, 7)
    assert _answers(run, 9_002) == [gm.UNKNOWN_MEMBER_ID]
    settle(run, 1_000)
    assert run.state.groups[0].committed == ((0, 5),)
