"""Hand-written replication scenarios on the reference cluster, refinement-checked after every event."""

from __future__ import annotations

from kafka_verify.impl import events as ev
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.messages import ProduceResponse
from kafka_verify.model.actions import (
    ElectLeader,
    LeaderWrite,
    ResetLog,
    RetentionDelete,
    ShrinkIsr,
    Truncate,
)
from replication_driver import Run

BROKERS_AND_ZK = ("zk", "b0", "b1", "b2")


def test_leader_crashes_after_acks_all_write_rf3_min_isr2() -> None:
    run = Run(ClusterConfig())
    run.do(ev.Produce("p0", partition=0))
    run.drain(1_000)
    (acked,) = run.sends("ok")
    offset, record = acked.value[2], acked.value[3]
    run.do(ev.Crash("b0", lose_unflushed=True))  # the leader, and the controller
    run.drain(12_000)  # its session expires; a new controller elects from the ISR
    part = run.state.partitions[0]
    assert part.leader in (1, 2) and part.epoch == 1
    survivor = run.replica(part.leader)
    assert survivor.record_at(offset) is not None and survivor.record_at(offset).id == record
    for _ in range(6):  # the first fetch goes to the dead leader and times out
        run.do(ev.Poll("c0"))
        run.drain(1_000)
    assert (offset, record) in run.polled()


def test_follower_isolated_then_rejoins_and_truncates() -> None:
    run = Run(ClusterConfig())
    run.do(ev.Partition((("b2",), ("zk", "b0", "b1", "p0", "p1", "c0"))))
    for _ in range(3):
        run.do(ev.Produce("p0", partition=0))
    run.drain(8_000)  # b2 lags past replica.lag.time.max and leaves the ISR
    assert run.state.partitions[0].isr == frozenset({0, 1})
    assert len(run.sends("ok")) == 3  # min ISR 2 still holds with b0 and b1
    assert run.replica(2).leo == 0
    run.do(ev.Crash("b0", lose_unflushed=False))  # b1 takes over in epoch 1 while b2 is away
    run.drain(12_000)
    assert run.state.partitions[0].leader == 1
    run.do(ev.Heal())
    run.do(ev.Restart("b0"))
    run.drain(12_000)
    # b2 learns epoch 1, asks where its log diverges, truncates (nothing to cut) and catches up.
    assert [a for a in run.named(Truncate) if a.broker == 2]
    b2 = run.replica(2)
    assert b2.log == run.replica(1).log and b2.role.value == "following" and b2.leo == 3
    assert run.state.partitions[0].isr == frozenset({0, 1, 2})


def test_isolated_leader_rejoins_and_truncates_its_uncommitted_write() -> None:
    run = Run(ClusterConfig())
    run.do(ev.Partition((("b0", "p0"), ("zk", "b1", "b2", "p1", "c0"))))
    run.do(ev.Produce("p0", partition=0))
    run.deliver_where(lambda e: e.src == "p0")
    assert run.replica(0).leo == 1  # appended on the isolated leader, never replicated
    run.drain(12_000)
    assert run.state.partitions[0].leader in (1, 2)
    run.do(ev.Heal())
    run.drain(12_000)
    cut = [a for a in run.named(Truncate) if a.broker == 0 and a.offset == 0]
    assert cut, "the old leader never cut its uncommitted record"
    assert run.replica(0).log == run.replica(run.state.partitions[0].leader).log


def test_retention_by_size_on_a_lagging_consumer() -> None:
    run = Run(ClusterConfig(retention_records=4, segment_records=2))
    for _ in range(12):
        run.do(ev.Produce("p0", partition=0))
        run.drain(300)
    assert len(run.sends("ok")) == 12
    run.drain(3_000)  # retention runs on every replica
    leader = run.replica(0)
    assert leader.log_start >= 8 and run.named(RetentionDelete)
    run.do(ev.Poll("c0"))  # position 0 is gone: out of range, reset to earliest
    run.drain(500)
    run.do(ev.Poll("c0"))
    run.drain(500)
    polled = run.polled()
    assert polled and polled[0][0] == leader.log_start
    assert [o for o, _ in polled] == list(range(leader.log_start, 12))


def test_idempotent_retry_after_lost_ack_does_not_duplicate() -> None:
    run = Run(ClusterConfig())
    run.do(ev.Produce("p0", partition=0))
    run.drain(2_000, drop=lambda e: isinstance(e.message, ProduceResponse))  # the ack is lost
    run.drain(6_000)  # request timeout, retry, deduplicated answer
    writes = run.named(LeaderWrite)
    assert len(writes) == 1
    (acked,) = run.sends("ok")
    assert acked.value[2] == 0
    assert [r.id for r in run.replica(0).log] == [writes[0].record_id]


def test_stale_leader_cannot_get_acks_all_acknowledged() -> None:
    run = Run(ClusterConfig())
    run.do(ev.Partition((("b0", "p0"), ("zk", "b1", "b2", "p1", "c0"))))
    run.drain(12_000)  # b0's session expires; b1 or b2 leads epoch 1
    assert run.state.partitions[0].epoch == 1
    # b0 reaches the coordination service again, but not the other brokers.
    run.do(ev.Partition((("b0", "p0", "zk"), ("b1", "b2", "p1", "c0"))))
    run.do(ev.Produce("p0", partition=0))
    run.drain(12_000)
    stale = [a for a in run.named(LeaderWrite) if a.broker == 0]
    assert stale, "the stale leader should still append (acks=all with its stale ISR)"
    assert not [a for a in run.named(ShrinkIsr) if a.broker == 0]  # fenced by leader epoch
    assert not run.sends("ok")
    run.do(ev.Heal())
    run.drain(20_000)  # b0 learns epoch 1, truncates; the producer retries on the new leader
    (acked,) = run.sends("ok")
    leader = run.state.partitions[0].leader
    assert leader != 0 and run.replica(leader).record_at(acked.value[2]).id == acked.value[3]
    assert not run.named(ResetLog) and run.named(ElectLeader)


def test_min_insync_is_checked_before_an_idempotent_retry_is_deduplicated() -> None:
    """RF=3, min ISR=2: a retry of a written record is refused while the ISR is the leader alone.

    Kafka checks min.insync.replicas (Partition.appendRecordsToLeader) before the log
    looks the producer's sequence up, so an acks=all retry cannot be acknowledged
    through duplicate detection while the ISR is too small.
    """
    run = Run(ClusterConfig())
    run.do(ev.Produce("p0", partition=0))
    run.drain(2_000, drop=lambda e: isinstance(e.message, ProduceResponse))  # the ack is lost
    assert run.state.partitions[0].replica(0).hw == 1  # the record is committed
    # The followers lose the leader; the producer's retries are held back meanwhile.
    run.do(ev.Partition((("b0", "zk", "p0"), ("b1", "b2", "p1", "c0"))))
    run.drain(9_000, drop=lambda e: e.src == "p0" or e.dst == "p0")
    assert run.state.partitions[0].isr == frozenset({0})
    # Now the retry reaches the leader, alone in the ISR.
    answers: list[str] = []
    until = run.world.now_ms + 4_000
    while run.world.now_ms < until:
        inflight = run.world.inflight()
        result = run.do(ev.Deliver(inflight[0].id) if inflight else ev.Tick(50))
        delivered = result.delivered
        if delivered is not None and isinstance(delivered.message, ProduceResponse):
            answers.append(delivered.message.error)
    assert "NOT_ENOUGH_REPLICAS" in answers
    assert "NONE" not in answers, "an acks=all retry was acknowledged with the ISR below min ISR"
    assert not run.sends("ok")
    assert len(run.named(LeaderWrite)) == 1
