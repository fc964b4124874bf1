"""Every consumer-group property reports a planted violation and stays quiet on a clean case."""

from __future__ import annotations

from dataclasses import dataclass, replace

from kafka_verify.model import variants
from kafka_verify.model.actions import Flush
from kafka_verify.model.groups import (
    CommitOffset,
    CompleteRebalance,
    CoordinatorFailover,
    DeleteGroup,
    ExpireMember,
    GroupState,
    JoinGroup,
    MemberView,
    Phase,
    SyncAssignment,
)
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import step
from kafka_verify.properties.groups import (
    OwnershipChecker,
    check_group_state,
    check_group_step,
    committed_offset_lost,
    coordinator_moved,
    generation_regressed,
    group_coverage,
    group_missed_records,
    incomplete_stable_assignment,
    member_expired,
    partition_owned_twice,
    poll_skipped_after_resume,
    rebalance_completed,
    stale_commit_rejected,
    stale_generation_commit,
    unsettled_group,
)
from kafka_verify.properties.registry import PROPERTIES, Kind

CONFIG = Config(brokers=1, replication=1, min_insync=1, groups=1, group_partitions=2)


def stable(**changes: object) -> GroupState:
    """Generation 2: c0 owns partition 0, c1 partition 1; offset 3 committed on partition 0."""
    group = GroupState(
        group="g0",
        phase=Phase.STABLE,
        generation=2,
        members=frozenset({"c0", "c1"}),
        leader="c0",
        assignment=((0, "c0"), (1, "c1")),
        committed=((0, 3),),
        views=(MemberView("c0", 2, frozenset({0})), MemberView("c1", 2, frozenset({1}))),
    )
    return replace(group, **changes)  # type: ignore[arg-type]


def with_group(group: GroupState) -> State:
    return replace(initial_state(CONFIG), groups=(group,))


CLEAN = with_group(stable())


def names(violations: list) -> set[str]:  # type: ignore[type-arg]
    return {v.property for v in violations}


def test_every_group_property_is_in_the_catalogue() -> None:
    expected = {
        "single-member-per-partition": Kind.ALWAYS,
        "complete-assignment-when-stable": Kind.ALWAYS,
        "committed-offsets-durable": Kind.ALWAYS,
        "no-stale-generation-commit": Kind.ALWAYS,
        "generation-monotonic": Kind.ALWAYS,
        "resume-without-skipping": Kind.ALWAYS,
        "poll-by-non-owner": Kind.ALWAYS,
        "groups-independent": Kind.EVENTUALLY,
        "groups-converged": Kind.EVENTUALLY,
        "rebalance-completed": Kind.SOMETIMES,
        "member-expired": Kind.SOMETIMES,
        "coordinator-moved": Kind.SOMETIMES,
        "stale-commit-rejected": Kind.SOMETIMES,
    }
    assert {name: PROPERTIES[name].kind for name in expected} == expected


# -- single-member-per-partition ---------------------------------------------------------------


def test_two_current_members_owning_one_partition_is_reported() -> None:
    views = (MemberView("c0", 2, frozenset({0, 1})), MemberView("c1", 2, frozenset({1})))
    found = partition_owned_twice(with_group(stable(views=views)), CONFIG)
    messages = [v.message for v in found]
    assert "group g0: members ['c0', 'c1'] all own partition 1 in generation 2" in messages
    assert "group g0: c0 owns partition 1 in generation 2, which assigns it to c1" in messages
    assert partition_owned_twice(CLEAN, CONFIG) == []


def test_a_zombie_that_is_no_longer_a_member_is_not_a_current_owner() -> None:
    zombie = stable(
        members=frozenset({"c0"}),
        assignment=((0, "c0"), (1, "c0")),
        views=(MemberView("c0", 2, frozenset({0, 1})), MemberView("c1", 1, frozenset({1}))),
    )
    assert partition_owned_twice(with_group(zombie), CONFIG) == []


# -- complete-assignment-when-stable -----------------------------------------------------------


def test_a_stable_group_with_a_partition_unassigned_or_given_to_a_stranger_is_reported() -> None:
    missing = with_group(stable(assignment=((0, "c0"),)))
    assert [v.partition for v in incomplete_stable_assignment(missing, CONFIG)] == [1]
    stranger = with_group(stable(assignment=((0, "c0"), (1, "c9"))))
    (found,) = incomplete_stable_assignment(stranger, CONFIG)
    assert "assigned to c9, who is not a member" in found.message
    assert incomplete_stable_assignment(CLEAN, CONFIG) == []
    rebalancing = with_group(stable(phase=Phase.PREPARING_REBALANCE, assignment=()))
    assert incomplete_stable_assignment(rebalancing, CONFIG) == []


def test_groups_converged_requires_stable_and_complete_at_the_end() -> None:
    stuck = with_group(stable(phase=Phase.PREPARING_REBALANCE, assignment=()))
    (found,) = unsettled_group(stuck, CONFIG)
    assert "still PreparingRebalance" in found.message
    incomplete = with_group(stable(assignment=((0, "c0"),)))
    assert names(unsettled_group(incomplete, CONFIG)) == {"groups-converged"}
    assert unsettled_group(CLEAN, CONFIG) == []
    assert unsettled_group(with_group(GroupState("g0")), CONFIG) == []


# -- committed-offsets-durable -----------------------------------------------------------------


def test_a_failover_that_loses_a_committed_offset_is_reported() -> None:
    lost = with_group(stable(committed=()))
    (found,) = committed_offset_lost(CLEAN, CoordinatorFailover("g0"), lost)
    assert "went from 3 to None" in found.message
    moved = with_group(stable(committed=((0, 3), (1, 7))))
    assert names(committed_offset_lost(CLEAN, CommitOffset("g0", "c0", 2, 0, 7), moved)) == {
        "committed-offsets-durable"
    }


def test_commits_and_deletes_explain_their_offset_changes() -> None:
    committed = step(CLEAN, CommitOffset("g0", "c1", 2, 1, 5), CONFIG)
    assert committed_offset_lost(CLEAN, CommitOffset("g0", "c1", 2, 1, 5), committed) == []
    failed_over = step(CLEAN, CoordinatorFailover("g0"), CONFIG)
    assert committed_offset_lost(CLEAN, CoordinatorFailover("g0"), failed_over) == []
    empty = with_group(GroupState("g0", committed=((0, 3),)))
    deleted = step(empty, DeleteGroup("g0"), CONFIG)
    assert committed_offset_lost(empty, DeleteGroup("g0"), deleted) == []


# -- no-stale-generation-commit ----------------------------------------------------------------


def test_an_accepted_commit_from_an_older_generation_is_reported() -> None:
    zombie = CommitOffset("g0", "c1", 1, 1, 9)
    buggy = replace(CONFIG, bugs=frozenset({variants.ZOMBIE_COMMIT}))
    after = step(CLEAN, zombie, buggy)
    (found,) = stale_generation_commit(CLEAN, zombie, after)
    assert "carries generation 1, the group is in 2" in found.message
    not_owner = CommitOffset("g0", "c0", 2, 1, 9)
    planted = with_group(stable(committed=((0, 3), (1, 9))))
    (found,) = stale_generation_commit(CLEAN, not_owner, planted)
    assert "partition 1 belongs to c1" in found.message


def test_a_commit_from_the_owner_in_the_current_generation_is_clean() -> None:
    good = CommitOffset("g0", "c1", 2, 1, 9)
    assert stale_generation_commit(CLEAN, good, step(CLEAN, good, CONFIG)) == []


# -- generation-monotonic ----------------------------------------------------------------------


def test_a_generation_going_down_is_reported() -> None:
    lower = with_group(stable(generation=1))
    assert "from generation 2 to 1" in generation_regressed(CLEAN, Flush(0, 0), lower)[0].message
    views = (MemberView("c0", 1, frozenset({0})), MemberView("c1", 2, frozenset({1})))
    (found,) = generation_regressed(CLEAN, Flush(0, 0), with_group(stable(views=views)))
    assert "member c0 of group g0 went from generation 2 to 1" in found.message
    vanished = replace(CLEAN, groups=())
    assert "vanished" in generation_regressed(CLEAN, Flush(0, 0), vanished)[0].message


def test_a_completed_rebalance_raises_the_generation_cleanly() -> None:
    joining = step(CLEAN, JoinGroup("g0", "c0"), CONFIG)
    done = step(joining, CompleteRebalance("g0", "c0"), CONFIG)
    assert done.groups[0].generation == 3
    assert generation_regressed(joining, CompleteRebalance("g0", "c0"), done) == []


# -- the incremental check ---------------------------------------------------------------------


def test_check_group_step_sees_state_and_step_violations_of_the_changed_group() -> None:
    assert check_group_step(CLEAN, Flush(0, 0), CLEAN, CONFIG) == []
    views = (MemberView("c0", 2, frozenset({0, 1})), MemberView("c1", 2, frozenset({1})))
    doubled = with_group(stable(views=views))
    found = check_group_step(CLEAN, SyncAssignment("g0", "c0", 2, ()), doubled, CONFIG)
    assert names(found) == {"single-member-per-partition"}
    assert names(found) == names(check_group_state(doubled, CONFIG))
    regressed = with_group(stable(generation=1, committed=()))
    assert names(check_group_step(CLEAN, CoordinatorFailover("g0"), regressed, CONFIG)) == {
        "committed-offsets-durable",
        "generation-monotonic",
    }


# -- SOMETIMES -----------------------------------------------------------------------------


def test_each_coverage_predicate_fires_on_its_step_only() -> None:
    preparing = step(CLEAN, JoinGroup("g0", "c0"), CONFIG)
    completing = step(preparing, CompleteRebalance("g0", "c0"), CONFIG)
    sync = SyncAssignment("g0", "c0", 3, ((0, "c0"), (1, "c0")))
    synced = step(completing, sync, CONFIG)
    assert rebalance_completed(completing, sync, synced)
    assert not rebalance_completed(completing, sync, None)
    expire = ExpireMember("g0", "c1")
    assert member_expired(CLEAN, expire, step(CLEAN, expire, CONFIG))
    assert coordinator_moved(CLEAN, CoordinatorFailover("g0"), CLEAN)
    assert not coordinator_moved(CLEAN, expire, CLEAN)
    assert group_coverage(completing, sync, synced) == ["rebalance-completed"]


def test_stale_commit_rejected_needs_a_refused_commit_from_a_stale_member() -> None:
    stale = CommitOffset("g0", "c1", 1, 1, 9)
    assert stale_commit_rejected(CLEAN, stale, None)
    assert group_coverage(CLEAN, stale, None) == ["stale-commit-rejected"]
    assert not stale_commit_rejected(CLEAN, stale, CLEAN)  # accepted: a bug, not coverage
    not_owner = CommitOffset("g0", "c0", 2, 1, 9)
    assert not stale_commit_rejected(CLEAN, not_owner, None)


# -- history properties --------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Op:
    index: int
    time_ms: int
    process: str
    type: str
    f: str
    value: object


def history(*completions: tuple[str, str, str, object]) -> list[Op]:
    """Each (process, type, f, value) as an invoke line followed by its completion."""
    ops: list[Op] = []
    for process, kind, f, value in completions:
        ops.append(Op(len(ops), len(ops), process, "invoke", f, None))
        ops.append(Op(len(ops), len(ops), process, kind, f, value))
    return ops


def consumed_then_handed_over(first_read: int, commit_type: str = "ok") -> list[Op]:
    return history(
        ("c0", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),
        ("c0", "ok", "assign", ["t/0"]),
        ("c0", "ok", "poll", {"t/0": [[0, 10], [1, 11], [2, 12]]}),
        ("c0", commit_type, "commit", {"t/0": 3}),
        ("c1", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),
        ("c1", "ok", "assign", ["t/0"]),
        ("c1", "ok", "poll", {"t/0": [[first_read, 10 + first_read]]}),
    )


def test_a_consumer_resuming_past_the_committed_offset_is_reported() -> None:
    (found,) = poll_skipped_after_resume(consumed_then_handed_over(5))
    assert found.property == "resume-without-skipping"
    assert "offsets 3..4 were skipped" in found.message


def test_resuming_at_or_before_the_committed_offset_is_clean() -> None:
    assert poll_skipped_after_resume(consumed_then_handed_over(3)) == []
    assert poll_skipped_after_resume(consumed_then_handed_over(1)) == []
    # A failed commit left nothing committed, so the reset policy decides.
    assert poll_skipped_after_resume(consumed_then_handed_over(5, "fail")) == []


def test_a_commit_with_unknown_outcome_may_have_moved_the_offset() -> None:
    ops = consumed_then_handed_over(5)
    # After c0's acknowledged commit of 3, a second commit of 5 times out.
    maybe = history(("c0", "info", "commit", {"t/0": 5}))
    ops = [replace(op, index=i) for i, op in enumerate(ops[:8] + maybe + ops[8:])]
    assert poll_skipped_after_resume(ops) == []


def test_a_commit_that_timed_out_earlier_may_still_land_after_a_later_acknowledged_one() -> None:
    ops = consumed_then_handed_over(5)
    # c0's commit of 5 times out *before* its acknowledged commit of 3; the request
    # was only delayed, so the coordinator may apply it after the 3.
    maybe = history(("c0", "info", "commit", {"t/0": 5}))
    ops = [replace(op, index=i) for i, op in enumerate(ops[:6] + maybe + ops[6:])]
    assert poll_skipped_after_resume(ops) == []
    # A commit that failed outright took no effect, and the skip is still reported.
    failed = history(("c0", "fail", "commit", {"t/0": 5}))
    ops = [replace(op, index=i) for i, op in enumerate(ops[:6] + failed + ops[8:])]
    assert names(poll_skipped_after_resume(ops)) == {"resume-without-skipping"}


def test_another_groups_commit_does_not_count() -> None:
    ops = history(
        ("c0", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),
        ("c0", "ok", "commit", {"t/0": 3}),
        ("c1", "ok", "subscribe", {"group": "g1", "topics": ["t"]}),
        ("c1", "ok", "commit", {"t/0": 1}),
        ("c1", "ok", "assign", ["t/0"]),
        ("c1", "ok", "poll", {"t/0": [[3, 13]]}),
    )
    (found,) = poll_skipped_after_resume(ops)
    assert found.details == (
        ("process", "c1"),
        ("group", "g1"),
        ("key", "t/0"),
        ("committed", 1),
        ("first_read", 3),
    )


def two_groups(second_reads: list[list[int]]) -> list[Op]:
    return history(
        ("p0", "ok", "send", ["t", 0, 0, 100]),
        ("p0", "ok", "send", ["t", 0, 1, 101]),
        ("p0", "info", "send", ["t", 0, None, 102]),
        ("c0", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),
        ("c1", "ok", "subscribe", {"group": "g1", "topics": ["t"]}),
        ("c0", "ok", "poll", {"t/0": [[0, 100], [1, 101]]}),
        ("c1", "ok", "poll", {"t/0": second_reads}),
    )


def test_a_group_that_never_reads_an_acknowledged_record_is_reported() -> None:
    (found,) = group_missed_records(two_groups([[0, 100]]))
    assert found.message == (
        "group g1 never read 1 acknowledged record(s), the first 101 at t/0 offset 1"
    )


def test_every_group_reading_every_acknowledged_record_is_clean() -> None:
    assert group_missed_records(two_groups([[0, 100], [1, 101]])) == []


# -- poll-by-non-owner -------------------------------------------------------------------------


def polls_in(state: State, process: str, partition: int) -> set[str]:
    checker = OwnershipChecker()
    subscribe = Op(0, 0, process, "ok", "subscribe", {"group": "g0", "topics": ["t"]})
    poll = Op(1, 1, process, "ok", "poll", {f"t/{partition}": [[0, 7]]})
    assert checker.observe(subscribe, state) == []
    return names(checker.observe(poll, state))


def test_a_poll_of_a_partition_the_current_generation_gives_another_member_is_reported() -> None:
    assert polls_in(CLEAN, "c1", 0) == {"poll-by-non-owner"}


def test_a_poll_by_a_consumer_the_group_expelled_is_reported() -> None:
    expelled = with_group(stable(members=frozenset({"c1"}), assignment=((0, "c1"), (1, "c1"))))
    assert polls_in(expelled, "c0", 0) == {"poll-by-non-owner"}


def test_a_poll_by_the_owner_or_mid_rebalance_is_clean() -> None:
    assert polls_in(CLEAN, "c0", 0) == set()
    preparing = with_group(stable(phase=Phase.PREPARING_REBALANCE, assignment=()))
    assert polls_in(preparing, "c1", 0) == set()


def test_a_commit_counts_for_the_group_its_consumer_was_in_when_it_committed() -> None:
    ops = history(
        ("c1", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),
        ("c1", "ok", "commit", {"t/0": 5}),
        ("c0", "ok", "subscribe", {"group": "g1", "topics": ["t"]}),
        ("c0", "ok", "commit", {"t/0": 2}),  # g1's offset, committed later
        ("c0", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),  # c0 moves to g0
        ("c0", "ok", "assign", ["t/0"]),
        ("c0", "ok", "poll", {"t/0": [[5, 15]]}),
    )
    assert poll_skipped_after_resume(ops) == []
    skipping = [*ops[:-1], replace(ops[-1], value={"t/0": [[6, 16]]})]
    assert names(poll_skipped_after_resume(skipping)) == {"resume-without-skipping"}
