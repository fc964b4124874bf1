"""Each seeded broker bug, switched on, shows itself on a short hand-written schedule.

Where the bug makes the broker take a step the protocol forbids, the
refinement check itself raises `NotAllowed`; elsewhere the test points at the
damage (an acknowledgment, a read or a log the correct broker never produces).
The same schedules without the bug run clean in test_replication_scenarios.py.
"""

from __future__ import annotations

import pytest
from kafka_verify import model
from kafka_verify.impl import events as ev
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.messages import ProduceResponse
from kafka_verify.model.actions import LeaderWrite
from replication_driver import Run

ISOLATE_B0_WITH_CLIENTS = ev.Partition((("b0", "p0", "c0"), ("zk", "b1", "b2", "p1")))


def test_ack_before_commit_acknowledges_an_uncommitted_write() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"ack-before-commit"})))
    run.do(ISOLATE_B0_WITH_CLIENTS)
    run.do(ev.Produce("p0", partition=0))
    run.drain(500)
    assert run.sends("ok") and run.replica(0).hw == 0


def test_read_uncommitted_serves_records_above_the_high_watermark() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"read-uncommitted"})))
    run.do(ISOLATE_B0_WITH_CLIENTS)
    run.do(ev.Produce("p0", partition=0))
    run.drain(100)
    run.do(ev.Poll("c0"))
    run.drain(100)
    assert run.polled() == [(0, 1)] and run.replica(0).hw == 0


def test_stale_leader_accepts_writes_shrinks_the_isr_unfenced() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"stale-leader-accepts-writes"})))
    run.do(ev.Partition((("b0", "p0"), ("zk", "b1", "b2", "p1", "c0"))))
    run.drain(12_000)
    run.do(ev.Partition((("b0", "p0", "zk"), ("b1", "b2", "p1", "c0"))))
    run.do(ev.Produce("p0", partition=0))
    with pytest.raises(model.NotAllowed, match="fenced"):
        run.drain(12_000)


def test_non_idempotent_retry_appends_the_record_twice() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"non-idempotent-retry"})))
    run.do(ev.Produce("p0", partition=0))
    run.drain(2_000, drop=lambda e: isinstance(e.message, ProduceResponse))
    run.drain(6_000)
    assert [a.record_id for a in run.named(LeaderWrite)] == [1, 1]
    assert [r.id for r in run.replica(0).log] == [1, 1]


def test_retention_deletes_unreplicated_records() -> None:
    config = ClusterConfig(
        acks=1,
        idempotent=False,
        retention_records=1,
        bugs=frozenset({"retention-deletes-unreplicated"}),
    )
    run = Run(config)
    run.do(ISOLATE_B0_WITH_CLIENTS)
    for _ in range(3):
        run.do(ev.Produce("p0", partition=0))
    with pytest.raises(model.NotAllowed, match="high watermark"):
        run.drain(3_000)


def test_unclean_election_elects_a_replica_outside_the_isr() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"unclean-election"})))
    run.do(ev.Partition((("b2",), ("zk", "b0", "b1", "p0", "p1", "c0"))))
    run.do(ev.Produce("p0", partition=0))
    run.drain(8_000)
    assert run.state.partitions[0].isr == frozenset({0, 1})
    run.do(ev.Heal())
    run.do(ev.Crash("b0", lose_unflushed=False))
    run.do(ev.Crash("b1", lose_unflushed=False))
    with pytest.raises(model.NotAllowed, match="unclean election"):
        run.drain(12_000)


def test_truncate_to_hw_drops_a_committed_record_on_restart() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"truncate-to-hw"})))
    run.do(ev.Produce("p0", partition=0))
    # b1 fetches the record, but every answer that would tell it the new high watermark is lost.
    run.drain(
        300,
        drop=lambda e: (
            e.kind == "FetchResponse" and e.dst == "b1" and e.message.high_watermark >= 1
        ),
    )
    assert run.replica(1).leo == 1 and run.replica(1).hw == 0
    run.do(ev.Crash("b1", lose_unflushed=False))
    # The protocol has a restarted replica learn its role before it cuts anything: the
    # restart's truncation to the stale high watermark is refused on the spot.
    with pytest.raises(model.NotAllowed, match="broker 1 is unknown"):
        run.do(ev.Restart("b1"))
    b1 = run.world.broker(1)
    assert b1 is not None and b1.replicas[0].log.leo == 0  # the committed record is gone
    assert run.replica(0).hw == 1 and 1 in run.state.partitions[0].isr


def test_hw_ahead_of_isr_commits_past_a_crashed_isr_member() -> None:
    run = Run(ClusterConfig(bugs=frozenset({"hw-ahead-of-isr"})))
    run.do(ev.Crash("b2", lose_unflushed=True))
    run.do(ev.Produce("p0", partition=0))
    run.drain(1_000)
    part = run.state.partitions[0]
    assert 2 in part.isr and run.replica(0).hw == 1 and run.replica(2).leo == 0


@pytest.mark.parametrize("bug", ["truncate-to-hw", None])
def test_restart_keeps_the_committed_record_only_without_truncate_to_hw(bug: str | None) -> None:
    run = Run(ClusterConfig(bugs=frozenset({bug} if bug else set())))
    run.do(ev.Produce("p0", partition=0))
    run.drain(
        300,
        drop=lambda e: (
            e.kind == "FetchResponse" and e.dst == "b1" and e.message.high_watermark >= 1
        ),
    )
    run.do(ev.Crash("b1", lose_unflushed=False))
    if bug:
        with pytest.raises(model.NotAllowed, match="broker 1 is unknown"):
            run.do(ev.Restart("b1"))
    else:
        run.do(ev.Restart("b1"))
    b1 = run.world.broker(1)
    assert b1 is not None and b1.replicas[0].log.leo == (0 if bug else 1)


@pytest.mark.parametrize("bug", ["hw-ahead-of-isr", None])
def test_high_watermark_waits_for_a_crashed_isr_member_only_without_the_bug(
    bug: str | None,
) -> None:
    run = Run(ClusterConfig(bugs=frozenset({bug} if bug else set())))
    run.do(ev.Crash("b2", lose_unflushed=True))
    run.do(ev.Produce("p0", partition=0))
    run.drain(1_000)
    assert run.replica(0).hw == (1 if bug else 0)
