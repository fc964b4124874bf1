"""Shrunk action counts compare like with like: only the actions in the violation's scope count."""

from __future__ import annotations

from kafka_verify.harness.campaign import CampaignResult
from kafka_verify.harness.mutants import Scope, model_actions, violation_scope
from kafka_verify.impl import events as ev
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.model.actions import (
    ControllerFailover,
    Crash,
    ElectLeader,
    LeaderWrite,
    Restart,
    ShrinkIsr,
)
from kafka_verify.model.groups import CommitOffset, JoinGroup
from kafka_verify.properties.catalogue import Violation

ISR = frozenset({0})


def test_a_partition_scope_counts_its_partition_and_the_cluster_wide_actions() -> None:
    scope = Scope(partition=0)
    assert scope.covers(ElectLeader(0, 1, ISR, controller_epoch=2))
    assert scope.covers(Crash(2)) and scope.covers(Restart(2))
    assert scope.covers(ControllerFailover(1))
    assert not scope.covers(ShrinkIsr(1, 0, ISR))  # another partition's
    assert not scope.covers(JoinGroup("g0", "c0"))


def test_a_group_scope_counts_that_group_alone() -> None:
    scope = Scope(group="g1")
    assert scope.covers(JoinGroup("g1", "c0"))
    assert not scope.covers(JoinGroup("g0", "c0"))
    assert not scope.covers(Crash(0))
    assert not scope.covers(LeaderWrite(2, 0, record_id=1, acks=-1))  # the offsets topic's


def test_the_scope_comes_from_the_group_fact_before_the_partition() -> None:
    # A group property's partition is a partition of the group's topic, not a replicated one.
    grouped = Violation("single-member-per-partition", "x", partition=1, details=(("group", "g1"),))
    assert violation_scope(grouped, JoinGroup("g1", "c0")) == Scope(group="g1")
    replicated = Violation("log-agreement", "x", partition=1)
    assert violation_scope(replicated, ShrinkIsr(1, 0, ISR)) == Scope(partition=1)


def test_a_refinement_failure_is_scoped_by_the_action_it_failed_on() -> None:
    refused = Violation("refinement", "the broker did something the protocol does not allow")
    commit = CommitOffset("g0", "c0", generation=1, partition=0, offset=0)
    assert violation_scope(refused, commit) == Scope(group="g0")
    election = ElectLeader(0, 1, ISR, controller_epoch=2)
    assert violation_scope(refused, election) == Scope(partition=0)
    assert violation_scope(refused, Crash(0)) == Scope()  # no scope: everything counts


def test_model_actions_leave_out_the_other_partitions_actions() -> None:
    # Followers of both partitions fall out of the ISR; b0 dies; b1 is elected for partition 0
    # though it is not in its ISR. The ISR shrink of partition 1 is not part of the story.
    config = ClusterConfig(partitions=2, bugs=frozenset({"unclean-election"}))
    events: list[object] = [ev.Tick(8_000), ev.Crash("b0", lose_unflushed=False), ev.Tick(12_000)]
    result = CampaignResult(config, 0.0, 1, 3, {}, events=events)
    counts = model_actions(result)
    # ShrinkIsr x2, Crash, ControllerFailover, ElectLeader: partition 0's story has four.
    assert (counts.scoped, counts.all) == (4, 5)
