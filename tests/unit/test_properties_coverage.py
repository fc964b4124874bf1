"""SOMETIMES counters: each one counts the situation it names and nothing else."""

from __future__ import annotations

from dataclasses import replace

from kafka_verify.model.actions import (
    ControllerFailover,
    Crash,
    ElectLeader,
    ExpandIsr,
    Flush,
    LeaderWrite,
    RetentionDelete,
    ShrinkIsr,
    Truncate,
)
from kafka_verify.model.state import Config, Record, Role, State, initial_state
from kafka_verify.model.step import step
from kafka_verify.properties.coverage import Coverage
from kafka_verify.properties.history import Op
from kafka_verify.properties.registry import PROPERTIES, Kind

CONFIG = Config(brokers=3, replication=3, min_insync=1)


def apply(coverage: Coverage, state: State, action: object) -> State:
    after = step(state, action, CONFIG)  # type: ignore[arg-type]
    coverage.observe_step(state, action, after)
    return after


def written(state: State, count: int) -> State:
    for record_id in range(count):
        state = step(state, LeaderWrite(0, 0, record_id, 1), CONFIG)
    return state


def test_counts_start_at_zero_for_every_sometimes_property() -> None:
    coverage = Coverage()
    sometimes = {n for n, info in PROPERTIES.items() if info.kind is Kind.SOMETIMES}
    assert set(coverage.counts) == sometimes
    assert all(count == 0 for count in coverage.counts.values())
    assert coverage.unreached() == sorted(sometimes)


def test_leader_reelected_only_for_a_different_leader() -> None:
    coverage = Coverage()
    state = initial_state(CONFIG)
    state = apply(coverage, state, ElectLeader(0, 0, frozenset({0, 1, 2}), 1))
    assert coverage.counts["leader-reelected"] == 0
    apply(coverage, state, ElectLeader(0, 1, frozenset({1, 2}), 1))
    assert coverage.counts["leader-reelected"] == 1


def test_isr_shrank_and_grew_back() -> None:
    coverage = Coverage()
    state = apply(coverage, initial_state(CONFIG), ShrinkIsr(0, 0, frozenset({0, 1})))
    assert coverage.counts["isr-shrank-and-grew-back"] == 0
    apply(coverage, state, ExpandIsr(0, 0, frozenset({0, 1, 2})))
    assert coverage.counts["isr-shrank-and-grew-back"] == 1


def test_follower_truncated_only_when_records_are_cut() -> None:
    coverage = Coverage()
    state = initial_state(CONFIG)
    part = state.partitions[0]
    # Its leader unknown, so the model takes any truncation offset (the counter is the point).
    follower = replace(part.replica(1), log=(Record(1, 0),), role=Role.TRUNCATING, leader=None)
    state = state.with_partition(0, part.with_replica(follower))
    apply(coverage, state, Truncate(0, 1, 1))
    assert coverage.counts["follower-truncated"] == 0
    apply(coverage, state, Truncate(0, 1, 0))
    assert coverage.counts["follower-truncated"] == 1


def test_retention_crash_and_controller_counters() -> None:
    coverage = Coverage()
    state = written(initial_state(CONFIG), 2)
    part = state.partitions[0]
    state = state.with_partition(0, part.with_replica(replace(part.replica(0), hw=2)))
    apply(coverage, state, RetentionDelete(0, 0, 1))
    apply(coverage, state, Crash(0))  # the leader, holding unflushed records
    flushed = step(state, Flush(0, 1), CONFIG)
    apply(coverage, flushed, Crash(1))  # a follower with nothing unflushed
    apply(coverage, state, ControllerFailover(1))
    assert coverage.counts["retention-deleted"] == 1
    assert coverage.counts["crash-lost-unflushed"] == 1
    assert coverage.counts["leader-crashed"] == 1
    assert coverage.counts["controller-failover"] == 1


def test_acked_write_read_in_either_order() -> None:
    coverage = Coverage()
    coverage.observe_op(Op(0, 0, "p0", "ok", "send", ["t", 0, 0, 1]))
    coverage.observe_op(Op(1, 0, "c0", "ok", "poll", {"t/0": [[0, 1], [1, 2]]}))
    assert coverage.counts["acked-write-read"] == 1
    coverage.observe_op(Op(2, 0, "p0", "ok", "send", ["t", 0, 1, 2]))
    assert coverage.counts["acked-write-read"] == 2
    coverage.observe_op(Op(3, 0, "p0", "info", "send", ["t", 0, None, 3]))
    coverage.observe_op(Op(4, 0, "c0", "ok", "poll", {"t/0": [[0, 1], [2, 3]]}))
    assert coverage.counts["acked-write-read"] == 2


def committed_unflushed(state: State, broker: int, records: int) -> State:
    """`state` with `records` records on `broker`'s replica, all below its high watermark, none flushed."""
    part = state.partitions[0]
    log = tuple(Record(i, 0) for i in range(records))
    replica = replace(part.replica(broker), log=log, hw=records, flushed=0)
    return state.with_partition(0, part.with_replica(replica))


def test_crash_lost_acked_unflushed_needs_records_acted_on() -> None:
    coverage = Coverage()
    state = written(initial_state(CONFIG), 2)  # unflushed, unacknowledged, on no other replica
    apply(coverage, state, Crash(0))
    assert coverage.counts["crash-lost-acked-unflushed"] == 0
    assert coverage.counts["crash-lost-unflushed"] == 1
    apply(coverage, committed_unflushed(state, 0, 2), Crash(0))  # acknowledged, unflushed
    assert coverage.counts["crash-lost-acked-unflushed"] == 1
    part = state.partitions[0]
    served = replace(part.replica(1), log=part.replica(0).log[:1], flushed=1)
    apply(coverage, state.with_partition(0, part.with_replica(served)), Crash(0))
    assert coverage.counts["crash-lost-acked-unflushed"] == 2  # a follower copied one
    flushed = step(state.with_partition(0, part.with_replica(served)), Flush(0, 0), CONFIG)
    apply(coverage, flushed, Crash(0))
    assert coverage.counts["crash-lost-acked-unflushed"] == 2


def test_sole_isr_leader_crashed_unflushed_needs_the_leader_alone_in_the_isr() -> None:
    coverage = Coverage()
    state = committed_unflushed(initial_state(CONFIG), 0, 2)
    apply(coverage, state, Crash(0))  # ISR {0, 1, 2}: other copies may exist
    assert coverage.counts["sole-isr-leader-crashed-unflushed"] == 0
    alone = state.with_partition(0, replace(state.partitions[0], isr=frozenset({0})))
    apply(coverage, alone, Crash(1))  # a follower, not the leader
    assert coverage.counts["sole-isr-leader-crashed-unflushed"] == 0
    apply(coverage, alone, Crash(0))
    assert coverage.counts["sole-isr-leader-crashed-unflushed"] == 1
    durable = step(alone, Flush(0, 0), CONFIG)  # records and high watermark checkpointed
    apply(coverage, durable, Crash(0))
    assert coverage.counts["sole-isr-leader-crashed-unflushed"] == 1
    leader = durable.partitions[0].replica(0)
    advanced = replace(leader, log=(*leader.log, Record(9, 0)), flushed=3, hw=3)
    unchecked = durable.with_partition(0, durable.partitions[0].with_replica(advanced))
    apply(coverage, unchecked, Crash(0))  # records durable, the high watermark not
    assert coverage.counts["sole-isr-leader-crashed-unflushed"] == 2


def test_epoch_changed_same_leader_only_when_the_leader_stays() -> None:
    coverage = Coverage()
    state = apply(coverage, initial_state(CONFIG), ElectLeader(0, 0, frozenset({0, 1, 2}), 1))
    assert coverage.counts["epoch-changed-same-leader"] == 1  # leader 0 again, epoch bumped
    apply(coverage, state, ElectLeader(0, 1, frozenset({1, 2}), 1))
    assert coverage.counts["epoch-changed-same-leader"] == 1


def test_readmitted_follower_crashed_only_while_still_in_the_isr() -> None:
    coverage = Coverage()
    state = apply(coverage, initial_state(CONFIG), ShrinkIsr(0, 0, frozenset({0, 1})))
    readmitted = apply(coverage, state, ExpandIsr(0, 0, frozenset({0, 1, 2})))
    apply(coverage, readmitted, Crash(1))  # never left the ISR: not readmitted
    assert coverage.counts["readmitted-follower-crashed"] == 0
    dropped = apply(coverage, readmitted, ShrinkIsr(0, 0, frozenset({0, 1})))
    apply(coverage, dropped, Crash(2))  # readmitted, but dropped again before the crash
    assert coverage.counts["readmitted-follower-crashed"] == 0
    again = apply(coverage, dropped, ExpandIsr(0, 0, frozenset({0, 1, 2})))
    apply(coverage, again, Crash(2))
    assert coverage.counts["readmitted-follower-crashed"] == 1
    apply(coverage, again, Crash(2))  # one readmission ends with one crash
    assert coverage.counts["readmitted-follower-crashed"] == 1


def test_follower_truncated_replicated_only_for_records_another_leader_wrote() -> None:
    coverage = Coverage()
    state = initial_state(CONFIG)  # broker 0 leads epoch 0
    state = apply(coverage, state, ElectLeader(0, 1, frozenset({1, 2}), 1))  # broker 1: epoch 1
    part = state.partitions[0]
    own = replace(part.replica(1), log=(Record(7, 1),), role=Role.TRUNCATING, leader=None)
    state = state.with_partition(0, part.with_replica(own))
    apply(coverage, state, Truncate(0, 1, 0))  # a record broker 1 wrote itself, as leader
    assert coverage.counts["follower-truncated-replicated"] == 0
    fetched = replace(own, log=(Record(6, 0), Record(7, 1)))
    state = state.with_partition(0, state.partitions[0].with_replica(fetched))
    apply(coverage, state, Truncate(0, 1, 1))  # cuts only its own again
    assert coverage.counts["follower-truncated-replicated"] == 0
    apply(coverage, state, Truncate(0, 1, 0))  # cuts broker 0's record of epoch 0 too
    assert coverage.counts["follower-truncated-replicated"] == 1


def test_coordinator_moved_commits_in_flight_reads_the_groups_offsets_partition() -> None:
    from kafka_verify.model.actions import CoordinatorFailover
    from kafka_verify.model.state import GroupState

    config = Config(brokers=3, replication=3, min_insync=1, groups=1)
    state = replace(initial_state(config), groups=(GroupState("g0"),))
    coverage = Coverage({"g0": 0})
    failover = CoordinatorFailover("g0")
    coverage.observe_step(state, failover, step(state, failover, config))
    assert coverage.counts["coordinator-moved-commits-in-flight"] == 0  # nothing appended
    part = state.partitions[0]
    leader = replace(part.replica(0), log=(Record(1, 0),), hw=0)
    pending = state.with_partition(0, part.with_replica(leader))
    coverage.observe_step(pending, failover, step(pending, failover, config))
    assert coverage.counts["coordinator-moved-commits-in-flight"] == 1


def test_thresholds_scale_with_the_run_and_name_what_is_short() -> None:
    from kafka_verify.properties.coverage import (
        COVERAGE_TARGETS,
        TARGET_EXAMPLES,
        coverage_short,
        coverage_thresholds,
    )

    assert coverage_thresholds(TARGET_EXAMPLES) == COVERAGE_TARGETS
    assert all(least == 0 for least in coverage_thresholds(1).values())
    thresholds = {"crash-lost-unflushed": 5, "leader-crashed": 1}
    counts = {"crash-lost-unflushed": 4, "leader-crashed": 1}
    assert coverage_short(counts, thresholds) == ["crash-lost-unflushed"]
    assert coverage_short({"crash-lost-unflushed": 5, "leader-crashed": 9}, thresholds) == []
