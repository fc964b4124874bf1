"""The consumer-group model: the transition table, each action's rules, and exhaustive search."""

from __future__ import annotations

from collections import deque
from collections.abc import Iterator
from dataclasses import replace

import pytest
from kafka_verify.model import variants
from kafka_verify.model.groups import (
    GROUP_ACTION_TYPES,
    SIMPLE_GENERATION,
    SIMPLE_MEMBER,
    TRANSITIONS,
    Accept,
    CommitOffset,
    CompleteRebalance,
    CoordinatorFailover,
    DeleteGroup,
    ExpireMember,
    GroupState,
    JoinGroup,
    LeaveGroup,
    MemberView,
    Phase,
    Reject,
    SyncAssignment,
    complete_assignments,
    step_group,
)
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import NotAllowed, enabled, step
from kafka_verify.properties.groups import check_group_state, check_group_step

# One broker, one replica, no writes and no crashes: `enabled` yields group actions only.
SMALL = Config(
    brokers=1,
    replication=1,
    min_insync=1,
    max_log=0,
    explore_crashes=False,
    groups=1,
    members=2,
    group_partitions=2,
    group_generations=3,
    explore_groups=True,
)


def run(config: Config, *actions: object) -> State:
    state = initial_state(config)
    for action in actions:
        state = step(state, action, config)
    return state


def stable_pair() -> State:
    """c0 owns partition 0 and c1 partition 1 in generation 1."""
    return run(
        SMALL,
        JoinGroup("g0", "c0"),
        JoinGroup("g0", "c1"),
        CompleteRebalance("g0", "c0"),
        SyncAssignment("g0", "c0", 1, ((0, "c0"), (1, "c1"))),
    )


# -- the table ---------------------------------------------------------------------------


def test_every_phase_and_action_type_is_handled_or_deliberately_rejected() -> None:
    assert set(TRANSITIONS) == set(Phase)
    for phase in Phase:
        row = TRANSITIONS[phase]
        assert set(row) == set(GROUP_ACTION_TYPES), phase
        for action_type, entry in row.items():
            assert isinstance(entry, Accept | Reject), (phase, action_type)
            if isinstance(entry, Accept):
                assert entry.targets, (phase, action_type)
            else:
                assert entry.reason, (phase, action_type)


def reachable(config: Config) -> dict[State, int]:
    """Every state the model reaches from the initial one, with its BFS depth."""
    start = initial_state(config)
    depth = {start: 0}
    queue = deque([start])
    while queue:
        state = queue.popleft()
        for action in enabled(state, config):
            after = step(state, action, config)
            if after not in depth:
                depth[after] = depth[state] + 1
                queue.append(after)
    return depth


def probes(g: GroupState, config: Config) -> Iterator[object]:
    """Actions of every type, with fields that suit the group as far as the phase allows."""
    member = min(g.members) if g.members else "c0"
    for m in ("c0", "c1"):
        yield JoinGroup(g.group, m)
        yield ExpireMember(g.group, m)
        yield LeaveGroup(g.group, m)
    yield CompleteRebalance(g.group, min(g.joined) if g.joined else member)
    for assignment in complete_assignments(g.members or frozenset({member}), 2):
        yield SyncAssignment(g.group, g.leader or member, g.generation, assignment)
    for p, owner in g.assignment or ((0, member),):
        yield CommitOffset(g.group, owner, g.generation, p, 1)
    yield CommitOffset(g.group, SIMPLE_MEMBER, SIMPLE_GENERATION, 0, 1)  # from outside the group
    yield CoordinatorFailover(g.group)
    yield DeleteGroup(g.group)


def test_the_table_is_what_step_does_in_every_reachable_phase() -> None:
    seen_targets: dict[tuple[Phase, type], set[Phase]] = {}
    for state in reachable(SMALL):
        (g,) = state.groups
        for action in probes(g, SMALL):
            entry = TRANSITIONS[g.phase][type(action)]
            key = (g.phase, type(action))
            if isinstance(entry, Reject):
                with pytest.raises(NotAllowed) as refused:
                    step_group(g, action, SMALL)
                assert g.phase.value in refused.value.reason
                assert type(action).__name__ in str(refused.value)
                continue
            try:
                after = step_group(g, action, SMALL)
            except NotAllowed:
                continue
            assert after.phase in entry.targets
            seen_targets.setdefault(key, set()).add(after.phase)
    # Every phase is reached, and every Accept entry is exercised to each of its targets.
    for phase, row in TRANSITIONS.items():
        for action_type, entry in row.items():
            if isinstance(entry, Accept):
                assert seen_targets.get((phase, action_type)) == set(entry.targets), (
                    phase,
                    action_type,
                )


# -- each action's rules ---------------------------------------------------------------------


def test_groups_are_off_by_default() -> None:
    config = Config()
    assert initial_state(config).groups == ()
    state = initial_state(replace(config, groups=1))
    assert not any(isinstance(a, GROUP_ACTION_TYPES) for a in enabled(state, config))


def test_join_complete_and_sync_form_a_stable_generation() -> None:
    state = stable_pair()
    (g,) = state.groups
    assert (g.phase, g.generation, g.members, g.leader) == (
        Phase.STABLE,
        1,
        frozenset({"c0", "c1"}),
        "c0",
    )
    assert g.views == (
        MemberView("c0", 1, frozenset({0})),
        MemberView("c1", 1, frozenset({1})),
    )
    assert check_group_state(state, SMALL) == []


def test_rejoining_revokes_first_and_members_that_do_not_rejoin_are_dropped() -> None:
    state = stable_pair()
    state = step(state, JoinGroup("g0", "c0"), SMALL)
    (g,) = state.groups
    assert g.phase is Phase.PREPARING_REBALANCE
    assert g.view("c0") == MemberView("c0", 1, frozenset())
    assert g.view("c1") == MemberView("c1", 1, frozenset({1}))  # not yet told
    state = step(state, CompleteRebalance("g0", "c0"), SMALL)
    (g,) = state.groups
    assert (g.phase, g.generation, g.members) == (Phase.COMPLETING_REBALANCE, 2, {"c0"})


def test_double_assignment_variant_keeps_old_partitions_on_rejoin() -> None:
    buggy = replace(SMALL, bugs=frozenset({variants.DOUBLE_ASSIGNMENT}))
    state = step(stable_pair(), JoinGroup("g0", "c0"), buggy)
    assert state.groups[0].view("c0") == MemberView("c0", 1, frozenset({0}))


def test_a_duplicate_join_is_refused() -> None:
    state = run(SMALL, JoinGroup("g0", "c0"))
    with pytest.raises(NotAllowed, match="already joined"):
        step(state, JoinGroup("g0", "c0"), SMALL)


def test_sync_needs_the_current_generation_and_the_leader() -> None:
    state = run(SMALL, JoinGroup("g0", "c0"), CompleteRebalance("g0", "c0"))
    with pytest.raises(NotAllowed, match="ILLEGAL_GENERATION"):
        step(state, SyncAssignment("g0", "c0", 0, ((0, "c0"),)), SMALL)
    with pytest.raises(NotAllowed, match="NOT_LEADER"):
        step(state, SyncAssignment("g0", "c1", 1, ((0, "c0"),)), SMALL)
    with pytest.raises(NotAllowed, match="UNKNOWN_MEMBER_ID"):
        step(state, SyncAssignment("g0", "c0", 1, ((0, "c9"),)), SMALL)
    with pytest.raises(NotAllowed, match="UNKNOWN_TOPIC_OR_PARTITION"):
        step(state, SyncAssignment("g0", "c0", 1, ((5, "c0"),)), SMALL)


def test_expiry_leaves_a_zombie_view_and_leaving_revokes() -> None:
    expired = step(stable_pair(), ExpireMember("g0", "c1"), SMALL)
    (g,) = expired.groups
    assert (g.phase, g.members, g.joined) == (
        Phase.PREPARING_REBALANCE,
        frozenset({"c0"}),
        frozenset(),
    )
    assert g.view("c1") == MemberView("c1", 1, frozenset({1}))
    left = step(stable_pair(), LeaveGroup("g0", "c1"), SMALL)
    assert left.groups[0].view("c1") == MemberView("c1", 1, frozenset())
    empty = step(left, LeaveGroup("g0", "c0"), SMALL)
    assert (empty.groups[0].phase, empty.groups[0].leader) == (Phase.EMPTY, None)


def test_commits_are_accepted_only_from_the_owner_in_the_current_generation() -> None:
    state = stable_pair()
    after = step(state, CommitOffset("g0", "c1", 1, 1, 4), SMALL)
    assert after.groups[0].committed == ((1, 4),)
    for bad, error in (
        (CommitOffset("g0", "c0", 1, 1, 4), "NOT_OWNER"),
        (CommitOffset("g0", "c1", 0, 1, 4), "ILLEGAL_GENERATION"),
        (CommitOffset("g0", "c7", 1, 1, 4), "UNKNOWN_MEMBER_ID"),
    ):
        with pytest.raises(NotAllowed, match=error):
            step(state, bad, SMALL)
    rebalancing = step(state, JoinGroup("g0", "c0"), SMALL)
    with pytest.raises(NotAllowed, match="REBALANCE_IN_PROGRESS: group g0 is PreparingRebalance"):
        step(rebalancing, CommitOffset("g0", "c1", 1, 1, 4), SMALL)


def test_zombie_commit_variant_accepts_an_older_generation() -> None:
    buggy = replace(SMALL, bugs=frozenset({variants.ZOMBIE_COMMIT}))
    state = run(
        buggy,
        JoinGroup("g0", "c0"),
        CompleteRebalance("g0", "c0"),
        SyncAssignment("g0", "c0", 1, ((0, "c0"), (1, "c0"))),
        JoinGroup("g0", "c1"),
        CompleteRebalance("g0", "c1"),
        SyncAssignment("g0", "c1", 2, ((0, "c1"), (1, "c1"))),
    )
    stale = CommitOffset("g0", "c0", 1, 0, 1)
    with pytest.raises(NotAllowed, match="UNKNOWN_MEMBER_ID"):
        step(state, stale, SMALL)
    assert step(state, stale, buggy).groups[0].committed == ((0, 1),)


def test_coordinator_failover_keeps_offsets_and_drops_the_open_join_phase() -> None:
    state = step(stable_pair(), CommitOffset("g0", "c0", 1, 0, 3), SMALL)
    assert step(state, CoordinatorFailover("g0"), SMALL) == state
    joining = step(state, JoinGroup("g0", "c0"), SMALL)
    completing = step(joining, CompleteRebalance("g0", "c0"), SMALL)
    for before in (joining, completing):
        (g,) = step(before, CoordinatorFailover("g0"), SMALL).groups
        assert (g.phase, g.joined, g.committed) == (
            Phase.PREPARING_REBALANCE,
            frozenset(),
            ((0, 3),),
        )
        assert g.generation == before.groups[0].generation


def test_a_deleted_group_is_dead_and_refuses_everything() -> None:
    state = run(SMALL, DeleteGroup("g0"))
    assert state.groups[0].phase is Phase.DEAD
    with pytest.raises(NotAllowed, match="GROUP_ID_NOT_FOUND: group g0 is Dead"):
        step(state, JoinGroup("g0", "c0"), SMALL)
    with pytest.raises(NotAllowed, match="there is no group 'g9'"):
        step(state, JoinGroup("g9", "c0"), SMALL)


def test_actions_validate_themselves() -> None:
    assert SyncAssignment("g0", "c0", 1, ((1, "c1"), (0, "c0"))).assignment == (
        (0, "c0"),
        (1, "c1"),
    )
    with pytest.raises(ValueError, match="each partition once"):
        SyncAssignment("g0", "c0", 1, ((0, "c0"), (0, "c1")))
    with pytest.raises(ValueError, match="never negative"):
        CommitOffset("g0", "c0", 1, 0, -1)


# -- exhaustive search at small bounds ----------------------------------------------------------


def first_violation(config: Config) -> tuple[int, int, int, str | None]:
    """BFS over the group model: (states, transitions, depth of first violation, its property)."""
    start = initial_state(config)
    depth = {start: 0}
    queue = deque([start])
    edges = 0
    found: tuple[int, str] | None = None
    assert check_group_state(start, config) == []
    while queue:
        state = queue.popleft()
        for action in enabled(state, config):
            after = step(state, action, config)
            edges += 1
            violations = check_group_step(state, action, after, config)
            if violations and found is None:
                found = (depth[state] + 1, violations[0].property)
            if after not in depth:
                depth[after] = depth[state] + 1
                queue.append(after)
    if found is None:
        return len(depth), edges, -1, None
    return len(depth), edges, found[0], found[1]


def test_the_correct_model_never_violates_a_group_property() -> None:
    states, edges, depth, prop = first_violation(SMALL)
    assert (depth, prop) == (-1, None)
    # Stateright-style pinned facts: 2 members, 2 partitions, generations <= 3, offsets <= 1.
    assert (states, edges) == (3123, 14318)
    for state in reachable(SMALL):
        assert check_group_state(state, SMALL) == []


def test_the_correct_model_reaches_every_phase_and_a_zombie_to_refuse() -> None:
    states = reachable(SMALL)
    assert {s.groups[0].phase for s in states} == set(Phase)
    assert max(s.groups[0].generation for s in states) == 3

    def refusable_zombie(g: GroupState) -> bool:
        for view in g.views:
            if view.owned and view.member not in g.members and g.phase is Phase.STABLE:
                return True
        return False

    assert any(refusable_zombie(s.groups[0]) for s in states)


@pytest.mark.parametrize(
    ("bug", "depth", "prop"),
    [
        (variants.ZOMBIE_COMMIT, 7, "no-stale-generation-commit"),
        (variants.DOUBLE_ASSIGNMENT, 7, "single-member-per-partition"),
    ],
)
def test_each_group_variant_reaches_a_violation(bug: str, depth: int, prop: str) -> None:
    buggy = replace(SMALL, bugs=frozenset({bug}))
    assert first_violation(buggy)[2:] == (depth, prop)


def test_an_empty_group_takes_commits_from_outside_it_and_only_then() -> None:
    empty = GroupState("g0")
    simple = CommitOffset("g0", SIMPLE_MEMBER, SIMPLE_GENERATION, 1, 4)
    assert step_group(empty, simple, SMALL).committed_offset(1) == 4
    for outsider in (
        CommitOffset("g0", "c0", SIMPLE_GENERATION, 1, 4),
        replace(simple, generation=0),
    ):
        with pytest.raises(NotAllowed, match="UNKNOWN_MEMBER_ID"):
            step_group(empty, outsider, SMALL)
    (stable,) = stable_pair().groups
    with pytest.raises(NotAllowed, match="UNKNOWN_MEMBER_ID"):
        step_group(stable, simple, SMALL)  # a group with members takes commits from them only
