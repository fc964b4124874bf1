"""State and step properties: each one fires on a planted violation and stays quiet on its clean twin."""

from __future__ import annotations

import dataclasses
import sys
from collections import deque
from dataclasses import replace

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_verify.model import variants
from kafka_verify.model.actions import (
    ControllerFailover,
    Crash,
    ElectLeader,
    Flush,
    FollowerReplicate,
    IncHighWatermark,
    LeaderWrite,
    ResetLog,
    RetentionDelete,
    Truncate,
)
from kafka_verify.model.state import Config, Record, Replica, Role, State, initial_state
from kafka_verify.model.step import NotAllowed, enabled, step
from kafka_verify.properties.incremental import IncrementalChecker, check_step
from kafka_verify.properties.invariants import (
    STATE_PROPERTIES,
    check_state,
    hw_within_isr,
    leader_in_isr,
    log_agreement,
    monotonic_epochs,
    monotonic_high_watermark,
    no_duplicate_record,
    retention_prefix_only,
    single_leader_per_epoch,
    well_formed_log,
)

CONFIG = Config(brokers=3, replication=3, min_insync=2)


def log(*ids_and_epochs: tuple[int, int]) -> tuple[Record, ...]:
    return tuple(Record(i, e) for i, e in ids_and_epochs)


def with_replica(state: State, broker: int, partition: int = 0, **changes: object) -> State:
    part = state.partitions[partition]
    updated = replace(part.replica(broker), **changes)  # type: ignore[arg-type]
    return state.with_partition(partition, part.with_replica(updated))


def committed_state() -> State:
    """Three replicas holding records 1 and 2, both committed everywhere."""
    state = initial_state(CONFIG)
    for broker in range(3):
        state = with_replica(
            state, broker, log=log((1, 0), (2, 0)), hw=2, flushed=2, checkpoint_hw=2
        )
    return state


def names(violations: list) -> set[str]:  # type: ignore[type-arg]
    return {v.property for v in violations}


# -- state properties: planted and clean -------------------------------------------------


def test_the_clean_fixture_is_clean() -> None:
    assert check_state(committed_state(), CONFIG) == []
    assert check_state(initial_state(CONFIG), CONFIG) == []


def test_log_agreement_reports_a_committed_record_that_differs() -> None:
    state = with_replica(committed_state(), 2, log=log((1, 0), (9, 0)))
    found = log_agreement(state, CONFIG)
    assert found and found[0].property == "log-agreement"
    assert dict(found[0].details)["offset"] == 1


def test_log_agreement_reports_an_isr_member_missing_a_committed_record() -> None:
    state = with_replica(committed_state(), 2, log=log((1, 0)), hw=1, flushed=1, checkpoint_hw=1)
    assert names(log_agreement(state, CONFIG)) == {"log-agreement"}


def test_log_agreement_ignores_a_lagging_replica_outside_the_isr() -> None:
    state = with_replica(committed_state(), 2, log=log((1, 0)), hw=1, flushed=1, checkpoint_hw=1)
    state = state.with_partition(0, replace(state.partitions[0], isr=frozenset({0, 1})))
    assert log_agreement(state, CONFIG) == []


def test_log_agreement_allows_divergence_above_the_high_watermarks() -> None:
    state = with_replica(committed_state(), 2, log=log((1, 0), (2, 0), (7, 0)))
    state = with_replica(state, 1, log=log((1, 0), (2, 0), (8, 0)))
    assert log_agreement(state, CONFIG) == []


def test_log_agreement_compares_two_replicas_below_both_high_watermarks_outside_the_isr() -> None:
    state = with_replica(committed_state(), 2, log=log((1, 0), (9, 0)))
    state = state.with_partition(0, replace(state.partitions[0], isr=frozenset({0, 1})))
    assert names(log_agreement(state, CONFIG)) == {"log-agreement"}


def test_single_leader_per_epoch() -> None:
    state = initial_state(CONFIG)
    assert single_leader_per_epoch(state, CONFIG) == []
    twin = with_replica(state, 1, role=Role.LEADER)
    found = single_leader_per_epoch(twin, CONFIG)
    assert [v.property for v in found] == ["single-leader-per-epoch"]
    assert dict(found[0].details)["brokers"] == (0, 1)


def test_leader_in_isr() -> None:
    state = initial_state(CONFIG)
    assert leader_in_isr(state, CONFIG) == []
    planted = state.with_partition(0, replace(state.partitions[0], isr=frozenset({1, 2})))
    assert names(leader_in_isr(planted, CONFIG)) == {"leader-in-isr"}


def test_hw_within_isr() -> None:
    state = committed_state()
    assert hw_within_isr(state, CONFIG) == []
    # The leader's high watermark covers offset 2, which follower 2 never got.
    state = with_replica(state, 0, log=log((1, 0), (2, 0), (3, 0)), hw=3)
    state = with_replica(state, 1, log=log((1, 0), (2, 0), (3, 0)))
    assert names(hw_within_isr(state, CONFIG)) == {"hw-within-isr"}
    # A deposed leader (not in the quorum epoch) is not held to it.
    bumped = state.with_partition(0, replace(state.partitions[0], epoch=1))
    assert hw_within_isr(bumped, CONFIG) == []


def test_hw_within_isr_accepts_a_member_behind_the_leaders_log_start() -> None:
    state = initial_state(CONFIG)
    state = with_replica(state, 0, log=(), log_start=1, hw=1, flushed=1, checkpoint_hw=1)
    assert hw_within_isr(state, CONFIG) == []


@pytest.mark.parametrize(
    "changes",
    [
        {"hw": 3},  # above the log end
        {"flushed": 3},
        {"checkpoint_hw": 2, "hw": 1},  # checkpoint above the high watermark
        {"log": log((1, 1), (2, 0))},  # epochs go down
        {"log": log((1, 0), (2, 5))},  # epoch beyond the quorum epoch
    ],
)
def test_well_formed_log(changes: dict[str, object]) -> None:
    assert well_formed_log(committed_state(), CONFIG) == []
    planted = with_replica(committed_state(), 1, **changes)
    assert names(well_formed_log(planted, CONFIG)) == {"well-formed-log"}


def test_no_duplicate_record() -> None:
    assert no_duplicate_record(committed_state(), CONFIG) == []
    planted = with_replica(committed_state(), 1, log=log((1, 0), (2, 0), (1, 0)))
    found = no_duplicate_record(planted, CONFIG)
    assert names(found) == {"no-duplicate-record"}
    assert dict(found[0].details)["offsets"] == (0, 2)


# -- step properties: planted and clean --------------------------------------------------


def test_monotonic_high_watermark_flags_a_drop_but_not_a_crash_to_the_checkpoint() -> None:
    before = committed_state()
    after = with_replica(before, 1, hw=1)
    found = monotonic_high_watermark(before, Flush(0, 1), after)
    assert names(found) == {"monotonic-high-watermark"}
    crashed = step(before, Crash(1), CONFIG)
    assert monotonic_high_watermark(before, Crash(1), crashed) == []


def test_monotonic_high_watermark_flags_a_truncation_below_the_high_watermark() -> None:
    # Its leader unknown, so the model takes any truncation offset: the invariant is the point.
    before = with_replica(committed_state(), 1, role=Role.TRUNCATING, leader=None)
    action = Truncate(0, 1, 1)
    after = step(before, action, CONFIG)
    assert names(monotonic_high_watermark(before, action, after)) == {"monotonic-high-watermark"}
    at_hw = Truncate(0, 1, 2)
    assert monotonic_high_watermark(before, at_hw, step(before, at_hw, CONFIG)) == []


def test_monotonic_high_watermark_flags_a_crash_below_the_checkpoint() -> None:
    before = committed_state()
    after = replace(with_replica(before, 1, hw=0, checkpoint_hw=0), running=frozenset({0, 2}))
    assert names(monotonic_high_watermark(before, Crash(1), after)) == {"monotonic-high-watermark"}


def test_monotonic_epochs() -> None:
    before = committed_state()
    elected = step(before, ElectLeader(0, 1, frozenset({1, 2}), 1), CONFIG)
    assert monotonic_epochs(before, ElectLeader(0, 1, frozenset({1, 2}), 1), elected) == []
    assert names(monotonic_epochs(elected, Flush(0, 0), before)) == {"monotonic-epochs"}
    failed_over = step(before, ControllerFailover(1), CONFIG)
    assert names(monotonic_epochs(failed_over, ControllerFailover(0), before)) == {
        "monotonic-epochs"
    }
    replica_back = with_replica(before, 2, epoch=-1)
    assert names(monotonic_epochs(before, Flush(0, 2), replica_back)) == {"monotonic-epochs"}
    crashed = step(before, Crash(2), CONFIG)
    assert monotonic_epochs(before, Crash(2), crashed) == []


def test_retention_prefix_only() -> None:
    before = committed_state()
    action = RetentionDelete(0, 1, 1)
    assert retention_prefix_only(before, action, step(before, action, CONFIG)) == []
    # What the retention-deletes-unreplicated variant does: delete above the hw.
    grown = with_replica(before, 1, log=log((1, 0), (2, 0), (3, 0)))
    beyond = with_replica(grown, 1, log=log((3, 0)), log_start=2 + 1, flushed=3, checkpoint_hw=2)
    beyond = with_replica(beyond, 1, hw=2)
    found = retention_prefix_only(grown, RetentionDelete(0, 1, 3), beyond)
    assert names(found) == {"retention-prefix-only"}
    # A log start that moves on some other action, or moves back.
    moved = with_replica(before, 1, log=log((2, 0)), log_start=1)
    assert names(retention_prefix_only(before, Flush(0, 1), moved)) == {"retention-prefix-only"}
    assert names(retention_prefix_only(moved, action, before)) == {"retention-prefix-only"}
    # What remains must be the old suffix.
    rewritten = with_replica(before, 1, log=log((5, 0)), log_start=1)
    assert names(retention_prefix_only(before, action, rewritten)) == {"retention-prefix-only"}


def test_a_reset_log_may_move_the_log_start_and_the_high_watermark() -> None:
    before = with_replica(initial_state(CONFIG), 1, role=Role.FOLLOWING)
    action = ResetLog(0, 1, 5)
    after = step(before, action, CONFIG)
    assert check_step(before, action, after, CONFIG) == []


def test_check_step_reports_step_and_state_properties_together() -> None:
    before = committed_state()
    action = LeaderWrite(0, 0, 1, -1)  # record 1 again: a duplicate on the leader
    after = step(before, action, CONFIG)
    assert names(check_step(before, action, after, CONFIG)) == {"no-duplicate-record"}
    assert names(check_state(after, CONFIG)) == {"no-duplicate-record"}


@pytest.mark.parametrize(
    ("action", "changes", "expected"),
    [
        (IncHighWatermark(0, 1, 2), {"epoch": -1}, "monotonic-epochs"),
        (Flush(0, 1), {"epoch": -1}, "monotonic-epochs"),
        (
            FollowerReplicate(0, 1, Record(3, 0)),
            {"log": log((1, 0), (2, 0), (3, 0)), "epoch": -1},
            "monotonic-epochs",
        ),
        (IncHighWatermark(0, 1, 1), {"hw": 1, "checkpoint_hw": 1}, "monotonic-high-watermark"),
        (
            LeaderWrite(0, 0, 3, -1),
            {"log": log((2, 0), (3, 0)), "log_start": 1},
            "retention-prefix-only",
        ),
    ],
)
def test_check_step_reports_step_properties_on_one_replica_common_actions(
    action: IncHighWatermark | Flush | FollowerReplicate | LeaderWrite,
    changes: dict[str, object],
    expected: str,
) -> None:
    """The common one-replica actions take check_step's fast path; a step property still fires."""
    before = replace(committed_state(), running=frozenset({0, 1, 2}))
    before = with_replica(before, 0, role=Role.LEADER, epoch=0, isr=frozenset({0, 1, 2}))
    before = with_replica(before, 1, role=Role.FOLLOWING, epoch=0, leader=0)
    after = with_replica(before, action.broker, **changes)
    assert expected in names(check_step(before, action, after, CONFIG))
    assert expected in names(STEP_CHECKERS[expected](before, action, after))


STEP_CHECKERS = {
    "monotonic-high-watermark": monotonic_high_watermark,
    "monotonic-epochs": monotonic_epochs,
    "retention-prefix-only": retention_prefix_only,
}


# -- the correct model is clean, and each protocol variant is caught ------------------------

SMALL = Config(brokers=2, replication=2, min_insync=1, max_log=2, max_epoch=2, durable=True)


def reachable(config: Config, stop_at_violation: bool) -> tuple[int, dict[str, int]]:
    """Breadth-first search: the number of states and, per property, how many states violate it."""
    start = initial_state(config)
    seen = {start}
    queue = deque([start])
    violated: dict[str, int] = {}
    while queue:
        state = queue.popleft()
        for action in enabled(state, config):
            successor = step(state, action, config)
            if successor in seen:
                continue
            seen.add(successor)
            found = names(check_state(successor, config))
            for name in found:
                violated[name] = violated.get(name, 0) + 1
            if not (found and stop_at_violation):
                queue.append(successor)
    return len(seen), violated


def test_every_state_of_the_correct_model_is_clean_at_small_bounds() -> None:
    count, violated = reachable(SMALL, stop_at_violation=False)
    assert violated == {}
    assert count > 5000  # the search really explored something


def test_the_correct_model_with_retention_is_clean() -> None:
    count, violated = reachable(replace(SMALL, explore_retention=True), stop_at_violation=False)
    assert violated == {}
    assert count > 10000


# Which property each protocol variant breaks first at the small bounds.
VARIANT_CATCHES = {
    variants.TRUNCATE_TO_HW: "log-agreement",
    variants.EPOCH_END_OFFSET_HOLE: "log-agreement",
    variants.UNCLEAN_ELECTION: "log-agreement",
    variants.HW_AHEAD_OF_ISR: "hw-within-isr",
    variants.STALE_LEADER_ACCEPTS_WRITES: "leader-in-isr",
}
NOT_AT_SMALL_BOUNDS = {
    variants.NO_FETCH_EPOCH_FENCING: "no violation is reachable with 2 brokers (TLC needs depth 13 with 3)",
    variants.RETENTION_DELETES_UNREPLICATED: "step() refuses every RetentionDelete at or above the hw that this variant yields",
}


@pytest.mark.parametrize("bug", sorted(VARIANT_CATCHES))
def test_each_protocol_variant_breaks_a_state_property(bug: str) -> None:
    _, violated = reachable(replace(SMALL, bugs=frozenset({bug})), stop_at_violation=True)
    assert VARIANT_CATCHES[bug] in violated


def test_every_protocol_variant_is_accounted_for() -> None:
    group_variants = {variants.ZOMBIE_COMMIT, variants.DOUBLE_ASSIGNMENT}  # properties/groups.py
    assert (
        set(variants.PROTOCOL_VARIANTS)
        == set(VARIANT_CATCHES) | set(NOT_AT_SMALL_BOUNDS) | group_variants
    )


# -- check_step agrees with check_state -------------------------------------------------------

STATE_NAMES = set(STATE_PROPERTIES)
REPLICATION_VARIANTS = sorted(set(VARIANT_CATCHES) | set(NOT_AT_SMALL_BOUNDS))


def assert_agrees(before: State, action: object, after: State, config: Config) -> None:
    reported = names(check_step(before, action, after, config)) & STATE_NAMES
    assert reported == names(check_state(after, config)), (action, after)


configs = st.builds(
    Config,
    brokers=st.just(3),
    partitions=st.integers(1, 2),
    replication=st.integers(2, 3),
    min_insync=st.just(1),
    bugs=st.frozensets(st.sampled_from(REPLICATION_VARIANTS)),
    max_log=st.integers(2, 4),
    max_epoch=st.integers(2, 4),
    durable=st.booleans(),
    explore_retention=st.booleans(),
    explore_controller=st.booleans(),
)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, data=st.data())
def test_check_step_agrees_with_check_state_on_enabled_walks(
    config: Config, data: st.DataObject
) -> None:
    state = initial_state(config)
    for _ in range(data.draw(st.integers(1, 40), label="length")):
        actions = list(enabled(state, config))
        if not actions:
            break
        action = data.draw(st.sampled_from(actions))
        try:
            after = step(state, action, config)
        except NotAllowed:
            continue  # a variant's action that step() refuses
        assert_agrees(state, action, after, config)
        if check_state(after, config):
            return
        state = after


def random_action(data: st.DataObject, state: State, config: Config) -> object:
    draw = data.draw
    partition = draw(st.integers(0, len(state.partitions) - 1))
    brokers = [r.broker for r in state.partitions[partition].replicas]
    broker = draw(st.sampled_from(brokers))
    small = st.integers(0, 5)
    record = st.builds(Record, st.integers(0, 4), st.integers(0, 3))
    return draw(
        st.one_of(
            st.builds(
                LeaderWrite,
                st.just(partition),
                st.just(broker),
                st.integers(0, 4),
                st.sampled_from([1, -1]),
            ),
            st.builds(FollowerReplicate, st.just(partition), st.just(broker), record),
            st.builds(IncHighWatermark, st.just(partition), st.just(broker), small),
            st.builds(Truncate, st.just(partition), st.just(broker), small),
            st.builds(ResetLog, st.just(partition), st.just(broker), small),
            st.builds(RetentionDelete, st.just(partition), st.just(broker), small),
            st.builds(Flush, st.just(partition), st.just(broker)),
            st.builds(
                ElectLeader,
                st.just(partition),
                st.sampled_from([None, *brokers]),
                st.frozensets(st.sampled_from(brokers), min_size=1),
                st.just(state.controller_epoch),
            ),
            st.builds(Crash, st.sampled_from(range(config.brokers))),
        )
    )


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(config=configs, data=st.data())
def test_check_step_agrees_with_check_state_on_random_steps(
    config: Config, data: st.DataObject
) -> None:
    state = initial_state(config)
    for _ in range(60):
        if data.draw(st.booleans(), label="from the protocol"):
            actions = list(enabled(state, config))
            action: object = data.draw(st.sampled_from(actions)) if actions else Flush(0, 0)
        else:
            action = random_action(data, state, config)
        try:
            after = step(state, action, config)  # type: ignore[arg-type]
        except NotAllowed:
            continue
        assert_agrees(state, action, after, config)
        if check_state(after, config):
            return
        state = after


def test_the_append_and_hw_paths_cost_the_same_on_long_logs() -> None:
    """check_step after an append or a high-watermark step must not rescan the log.

    Cost is counted, not timed: the number of Python lines check_step executes,
    which is deterministic and grows with the log only if something rescans it.
    """
    config = Config(brokers=1, replication=1, min_insync=1)
    checker = IncrementalChecker()  # one run's checker: it remembers the logs it has seen

    def lines_for(count: int, state: State) -> tuple[int, State]:
        executed = 0

        def tracer(frame: object, event: str, arg: object) -> object:
            nonlocal executed
            if event == "line":
                executed += 1
            return tracer

        for _ in range(count):
            leader = state.partitions[0].replica(0)
            for action in (
                LeaderWrite(0, 0, leader.leo, 1),
                IncHighWatermark(0, 0, leader.leo + 1),
            ):
                after = step(state, action, config)
                sys.settrace(tracer)
                try:
                    found = checker.check_step(state, action, after, config)
                finally:
                    sys.settrace(None)
                assert found == []
                state = after
        return executed, state

    short, state = lines_for(300, initial_state(config))
    _, state = lines_for(15000, state)
    long, state = lines_for(300, state)
    assert state.partitions[0].replica(0).leo == 15600
    # A rescan of the log would make each late check many times dearer than an early one.
    assert long <= short * 1.1


def test_replica_helper_builds_what_it_says() -> None:
    replica = Replica(broker=0, log=log((1, 0)), hw=1)
    assert replica.leo == 1 and replica.record_at(0) == Record(1, 0)


def test_a_run_checker_catches_a_duplicate_append_after_its_log_was_replaced() -> None:
    """The append index follows one replica slot's log: a log it did not see is read afresh."""
    config = Config(brokers=1, replication=1, min_insync=1)
    checker = IncrementalChecker()
    state = initial_state(config)
    for record_id in (1, 2):
        write = LeaderWrite(0, 0, record_id, 1)
        after = step(state, write, config)
        assert checker.check_step(state, write, after, config) == []
        state = after
    # Another log for the same replica (built, not appended): its ids must not come from the memo.
    leader = state.partitions[0].replica(0)
    other = dataclasses.replace(leader, log=(Record(7, 0), Record(8, 0)))
    before = state.with_partition(0, state.partitions[0].with_replica(other))
    action = LeaderWrite(0, 0, 7, 1)
    after = step(before, action, config)
    assert "no-duplicate-record" in names(checker.check_step(before, action, after, config))
