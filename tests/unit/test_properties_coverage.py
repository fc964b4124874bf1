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
    follower = replace(part.replica(1), log=(Record(1, 0),), role=Role.TRUNCATING)
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
