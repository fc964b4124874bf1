"""Seeded bugs, each aimed at one volatile window or at the exact truncation rule.

- `isr-expand-at-hw` (KAFKA-7128): a follower just readmitted to the ISR.
- `no-epoch-keeps-log` (KIP-279): the exact truncation rule, where the leader
  knows no epoch as old as the follower's last.
- `offsets-loaded-to-hw`: a group coordinator between applying a commit and its
  followers learning the new high watermark.
- `fetch-before-recovery`: a broker restarting after it lost records it never
  flushed.

As in test_epoch_and_offset_bugs.py, each scenario writes its event list on an
unchecked world (deciding message by message what the network loses), then
`Replay` runs it through the harness's `Checker`: refinement and every property
after every event. The same story runs clean on the correct broker, and the bug
is named by the property the catalogue says catches it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka_verify.harness.bug_catalogue import STORIES
from kafka_verify.impl import events as ev
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.coordinator import offsets_partition
from kafka_verify.impl.world import Envelope
from kafka_verify.model.actions import ElectLeader, ExpandIsr, IncHighWatermark, Truncate
from kafka_verify.model.groups import CommitOffset, CoordinatorFailover
from kafka_verify.properties.catalogue import Violation
from test_epoch_and_offset_bugs import Replay, Schedule, records_to, with_bugs

CAUGHT_BY = {story.name: story.caught_by for story in STORIES}


def first_violation(replay: Replay, bug: str, expected: str) -> Violation:
    """The first violation the bug caused: the property expected, one its catalogue entry names."""
    assert replay.violations, f"{bug} went unnoticed"
    first = replay.violations[0]
    assert first.property == expected and expected in CAUGHT_BY[bug], replay.violations
    return first


def leader_and_isr_to(broker: str, epoch: int) -> Callable[[Envelope], bool]:
    return lambda e: (
        isinstance(e.message, m.LeaderAndIsr)
        and e.dst == broker
        and e.message.leader_epoch == epoch
    )


def _fetch_answer(wanted: Callable[[m.FetchResponse, str], bool]) -> Callable[[Envelope], bool]:
    return lambda e: isinstance(e.message, m.FetchResponse) and wanted(e.message, e.dst)


# -- isr-expand-at-hw (KAFKA-7128): a follower just readmitted to the ISR ----------------------


def isr_expand_at_hw_events(config: ClusterConfig) -> list[ev.Event]:
    """b1 leads with a high watermark that lags what b0 committed; b2 fetches at that mark."""
    s = Schedule(config)
    # 1. p0's record 1 reaches b0 at offset 0. b2 gets no fetch answer, so it lags out of the
    #    ISR; b1 fetches the record, b0 commits it with ISR {b0, b1}, but every answer that
    #    would tell b1 the new high watermark is lost: b1 holds the record at high watermark 0.
    starve = _fetch_answer(lambda r, dst: dst == "b2" or (dst == "b1" and r.high_watermark >= 1))
    s.do(ev.Produce("p0", partition=0))
    s.run(8_000, lost=starve)
    # 2. b0 crashes (its disk whole); b1 leads epoch 1, alone in the ISR, at high watermark 0.
    #    b2 follows it and fetches at offset 0. Correct: offset 0 is short of where epoch 1
    #    began (1), so b2 is readmitted only once it holds record 1. With the bug, offset 0
    #    reaches b1's high watermark and b2 is readmitted with an empty log.
    s.do(ev.Crash("b0", lose_unflushed=False))
    s.run(8_000)
    s.do(ev.Restart("b0"))
    s.run(3_000)
    return s.events


@pytest.mark.parametrize("bug", [None, "isr-expand-at-hw"])
def test_isr_expand_at_hw_readmits_a_follower_that_lacks_a_committed_record(
    bug: str | None,
) -> None:
    config = with_bugs(*([bug] if bug else []))
    replay = Replay(config, isr_expand_at_hw_events(config))
    assert ElectLeader(0, 1, frozenset({1}), controller_epoch=2) in replay.actions
    assert ExpandIsr(0, 1, frozenset({1, 2})) in replay.actions  # b2 readmitted by b1
    if bug is None:
        assert replay.violations == [] and replay.eventually == []
        return
    first = first_violation(replay, bug, "log-agreement")
    assert "ISR member 2 must hold what broker 0 committed" in first.message


# -- no-epoch-keeps-log (KIP-279): the exact truncation rule ---------------------------------


def no_epoch_events(config: ClusterConfig) -> list[ev.Event]:
    """b0 keeps an uncommitted epoch-0 record and follows b1, whose log has no epoch that old."""
    s = Schedule(config)
    # 1. b0 appends record 1 at offset 0 in epoch 0; no follower fetches it.
    s.do(ev.Produce("p0", partition=0))
    s.run(100, lost=records_to("b1", "b2"))
    # 2. b0 bounces keeping it: b1 leads epoch 1 with an empty log. b0 asks b1 for the end of
    #    epoch 0 and b1 answers that it has no such epoch. Correct: b0 falls back to its high
    #    watermark and cuts record 1. With the bug b0 keeps it and fetches from offset 1.
    s.bounce("b0")
    s.run(2_000)
    return s.events


def test_no_epoch_answer_cuts_to_the_high_watermark_on_the_correct_broker() -> None:
    config = with_bugs()
    replay = Replay(config, no_epoch_events(config))
    assert replay.violations == [] and replay.eventually == []
    assert ElectLeader(0, 1, frozenset({0, 1, 2}), controller_epoch=2) in replay.actions
    assert Truncate(0, 0, offset=0, complete=True) in replay.actions  # b0 cuts record 1


def test_no_epoch_keeps_log_is_refused_on_the_truncation_step() -> None:
    config = with_bugs("no-epoch-keeps-log")
    replay = Replay(config, no_epoch_events(config))
    first = first_violation(replay, "no-epoch-keeps-log", "refinement")
    assert dict(first.details)["action"] == repr(Truncate(0, 0, offset=1, complete=True))
    assert "the protocol cuts broker 0's log at 0, not at 1" in first.message


# -- KIP-279's second round, on the correct broker --------------------------------------------


def second_round_events(config: ClusterConfig) -> list[ev.Event]:
    """b0 holds an epoch-0 record and an epoch-2 record; b1 leads epoch 3 with an epoch-1 record.

    Three leader changes, each leader taking a write the next lacks: b0 writes record 2
    (epoch 0), b1 leads epoch 1 and writes record 3, b0 leads epoch 2 (never having heard of
    epoch 1) and writes record 4, and b1 leads epoch 3. b0 asks b1 for the end of its last
    epoch, 2; b1 answers with its largest epoch below it, 1, ending at 2. b0 has no epoch 1,
    so KIP-279 cuts it to the end of its own epoch 0 (offset 2, record 4 goes) and asks again:
    b1's epoch 0 ends at 1, so record 2 goes too.
    """
    s = Schedule(config)
    s.do(ev.Produce("p0", partition=0))  # record 1, committed everywhere
    s.run(1_000)
    s.do(ev.Produce("p0", partition=0))  # record 2 at offset 1, b0's alone
    s.run(100, lost=records_to("b1", "b2"))
    hide_epoch_1 = leader_and_isr_to("b0", epoch=1)
    s.bounce("b0")  # b1 leads epoch 1; b0 never hears of it
    s.run(1_000, lost=hide_epoch_1)
    s.do(ev.Produce("p1", partition=0))  # record 3 at offset 1 on b1 (and b2), epoch 1
    s.run(500, lost=hide_epoch_1)
    hide_epoch_2 = leader_and_isr_to("b1", epoch=2)
    s.bounce("b1")  # b0 leads epoch 2; b1 never hears of it
    s.run(1_000, lost=lambda e: hide_epoch_1(e) or hide_epoch_2(e))
    s.do(ev.Produce("p2", partition=0))  # record 4 at offset 2, b0's alone, epoch 2
    s.run(1_000, lost=lambda e: hide_epoch_2(e) or records_to("b1", "b2")(e))
    s.bounce("b0")  # b1 leads epoch 3; b0 follows and truncates
    s.run(2_000)
    return s.events


def test_truncation_asks_again_on_the_correct_broker() -> None:
    config = ClusterConfig(producers=3)  # p2 writes record 4 while p0 and p1 still retry
    replay = Replay(config, second_round_events(config))
    assert replay.violations == [] and replay.eventually == []
    cuts = [a for a in replay.actions if isinstance(a, Truncate) and a.broker == 0]
    assert cuts == [
        Truncate(0, 0, offset=2, complete=False),  # record 4 goes; b0 asks again
        Truncate(0, 0, offset=1, complete=True),  # record 2 goes
    ]
    assert all(
        [rec.id for rec in r.log] == [1, 3] for r in replay.checker.state.partitions[0].replicas
    )


# -- offsets-loaded-to-hw: a coordinator that applied a commit its followers have not learned --


def offsets_loaded_to_hw_events(config: ClusterConfig) -> list[ev.Event]:
    """c0's commit takes effect at the coordinator; no follower learns the new high watermark."""
    s = Schedule(config)
    s.do(ev.Subscribe("c0", "g0"))
    s.run(4_000)
    for _ in range(2):
        s.do(ev.Produce("p0", partition=0))
    s.run(1_000)
    for _ in range(2):  # the first poll commits position 0, the second reads both records
        s.do(ev.Poll("c0"))
        s.run(500)
    offsets = offsets_partition("g0", config)
    coordinator = s.world.zk.partitions[offsets].leader
    leader = s.world.broker(coordinator) if coordinator is not None else None
    assert leader is not None
    hw = leader.replicas[offsets].hw
    # c0 commits position 2. Both followers fetch the commit record and the coordinator's high
    # watermark passes it: the commit takes effect and is answered. Every fetch answer that
    # would tell a follower the new high watermark is lost.
    s.do(ev.CommitOffsets("c0"))
    s.run(300, lost=_fetch_answer(lambda r, dst: r.partition == offsets and r.high_watermark > hw))
    # The coordinator crashes; a follower leads the offsets partition with the commit record in
    # its log but below its high watermark. Correct: it loads every commit that took effect.
    # With the bug it loads only those below its high watermark and loses position 2.
    s.do(ev.Crash(f"b{coordinator}", lose_unflushed=True))
    s.run(12_000)
    s.do(ev.Restart(f"b{coordinator}"))
    s.run(3_000)
    return s.events


@pytest.mark.parametrize("bug", [None, "offsets-loaded-to-hw"])
def test_offsets_loaded_to_hw_loses_an_acknowledged_commit(bug: str | None) -> None:
    config = ClusterConfig(bugs=frozenset([bug] if bug else []), groups=1, consumers=1)
    replay = Replay(config, offsets_loaded_to_hw_events(config))
    answered = [op.value for op in replay.checker.ops if op.f == "commit" and op.type == "ok"]
    assert answered == [{"t/0": 0}, {"t/0": 2}]  # position 2 was acknowledged
    assert CommitOffset("g0", "c0", 1, 0, 2) in replay.actions
    assert CoordinatorFailover("g0") in replay.actions
    if bug is None:
        assert replay.violations == [] and replay.eventually == []
        assert replay.checker.state.groups[0].committed == ((0, 2),)
        return
    first = first_violation(replay, bug, "refinement")
    # The new coordinator's group has position 0 where the model's has the acknowledged 2.
    assert "committed=((0, 0),)" in first.message and "committed=((0, 2),)" in first.message


# -- fetch-before-recovery: a broker restarting after it lost what it never flushed ----------


def fetch_before_recovery_events(config: ClusterConfig) -> list[ev.Event]:
    """b0 crashes on the event its followers append record 1, which b0 never flushed."""
    s = Schedule(config)
    s.do(ev.Produce("p0", partition=0))
    for _ in range(100):
        appended = [s.world.broker(b) for b in (1, 2)]
        if all(b is not None and b.replicas[0].log.leo == 1 for b in appended):
            break
        inflight = s.world.inflight()
        s.do(ev.Deliver(inflight[0].id) if inflight else ev.Tick(50))
    # b0 loses record 1 and restarts at once, still in the ISR; b1 leads epoch 1 with it.
    # Correct: b0 fetches from offset 0, the end of the log it recovered. With the bug its
    # first fetch names offset 1, the end before the crash, and b1 counts b0 as holding
    # record 1: the high watermark passes it while an ISR member lacks it.
    s.do(ev.Crash("b0", lose_unflushed=True), ev.Restart("b0"))
    s.run(2_000)
    return s.events


@pytest.mark.parametrize("bug", [None, "fetch-before-recovery"])
def test_fetch_before_recovery_commits_a_record_the_restarted_follower_lost(
    bug: str | None,
) -> None:
    config = with_bugs(*([bug] if bug else []))
    replay = Replay(config, fetch_before_recovery_events(config))
    assert ElectLeader(0, 1, frozenset({0, 1, 2}), controller_epoch=2) in replay.actions
    assert IncHighWatermark(0, 1, 1) in replay.actions  # b1 commits record 1
    if bug is None:
        assert replay.violations == [] and replay.eventually == []
        return
    first = first_violation(replay, bug, "log-agreement")
    assert "ISR member 0 must hold what broker 1 committed" in first.message
