"""Consumer groups: the group coordinator's state machine, as a table.

Rules of this module:
- Everything that decides what a group coordinator may do lives here: the
  TRANSITIONS table that says, for every
  (phase, action type) pair, either where the group may go next or why the
  action is refused. The group's state (`GroupState`, its phases and
  members' views) lives in `state.py` and its actions in `actions.py`, beside
  the replication ones, so `step` dispatches them like any other action.
- The table is data: `TRANSITIONS[phase][ActionType]` is an `Accept` (the
  phases the group may move to, and the effect that computes the new group) or
  a `Reject` (the Kafka error a member would get, and the reason). An effect may
  still refuse an action whose phase is right but whose fields are not (an old
  generation, an unknown member); those refusals raise `NotAllowed` as well.
- The rebalance protocol is the classic eager one: a member revokes everything
  it owns before it joins, the coordinator closes the join phase and bumps the
  generation, the leader's assignment is accepted for that generation, and
  every member learns its share at once.
- A group also records what each consumer *believes* (`MemberView`): the
  generation it last synced in and the partitions it owns. A consumer that was
  expired without knowing it keeps its view: that zombie is where the
  historical group bugs live.
- Offsets are "next offset to read", as in Kafka's OffsetCommit.
- An empty group takes commits from outside it, as Kafka's do from consumers
  that assign their partitions themselves: member `SIMPLE_MEMBER` (no member
  id) in generation `SIMPLE_GENERATION`. The exhaustive engines draw only
  group members, so they never make one.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, replace

from kafka_verify.model import variants
from kafka_verify.model.actions import (
    GROUP_ACTION_TYPES,
    CommitOffset,
    CompleteRebalance,
    CoordinatorFailover,
    DeleteGroup,
    ExpireMember,
    GroupAction,
    JoinGroup,
    LeaveGroup,
    NotAllowed,
    SyncAssignment,
)
from kafka_verify.model.state import Config, GroupState, MemberView, Phase, State, initial_groups

# The group vocabulary lives beside the rest of the model's state and actions; these
# names are re-exported so that a reader of the group rules finds them here too.
__all__ = [
    "GROUP_ACTION_TYPES",
    "TRANSITIONS",
    "Accept",
    "CommitOffset",
    "CompleteRebalance",
    "CoordinatorFailover",
    "DeleteGroup",
    "ExpireMember",
    "GroupAction",
    "GroupState",
    "JoinGroup",
    "LeaveGroup",
    "MemberView",
    "Phase",
    "Reject",
    "SyncAssignment",
    "complete_assignments",
    "enabled_group_actions",
    "find_group",
    "initial_groups",
    "member_ids",
    "step_group",
    "step_group_in_state",
]


# -- effects: each computes the next group once the table has accepted the phase -----------


def _require(condition: bool, action: object, error: str, reason: str) -> None:
    if not condition:
        raise NotAllowed(action, f"{error}: {reason}")


def _revoke_on_join(view: MemberView, config: Config) -> MemberView:
    # Eager rebalancing: a member gives up everything before it joins.
    if variants.DOUBLE_ASSIGNMENT in config.bugs:
        return view
    return replace(view, owned=frozenset())


def _join(g: GroupState, a: JoinGroup, config: Config) -> GroupState:
    _require(
        a.member not in g.joined,
        a,
        "MEMBER_ALREADY_JOINED",
        f"{a.member} has already joined the pending generation",
    )
    joined = (
        g.joined | {a.member} if g.phase is Phase.PREPARING_REBALANCE else frozenset({a.member})
    )
    view = g.view(a.member) or MemberView(a.member)
    g = replace(
        g,
        phase=Phase.PREPARING_REBALANCE,
        members=g.members | {a.member},
        joined=joined,
        assignment=(),
    )
    return g.with_view(_revoke_on_join(view, config))


def _complete_rebalance(g: GroupState, a: CompleteRebalance, config: Config) -> GroupState:
    _require(bool(g.joined), a, "NO_MEMBERS", "nobody has joined the pending generation")
    _require(
        a.leader in g.joined,
        a,
        "UNKNOWN_MEMBER_ID",
        f"the leader {a.leader} has not joined (joined: {sorted(g.joined)})",
    )
    # Members that did not rejoin in time are dropped; they are not told.
    return replace(
        g,
        phase=Phase.COMPLETING_REBALANCE,
        generation=g.generation + 1,
        members=g.joined,
        joined=frozenset(),
        leader=a.leader,
        assignment=(),
    )


def _sync_assignment(g: GroupState, a: SyncAssignment, config: Config) -> GroupState:
    _require(
        a.generation == g.generation,
        a,
        "ILLEGAL_GENERATION",
        f"generation {a.generation} is not the group's generation {g.generation}",
    )
    _require(a.member == g.leader, a, "NOT_LEADER", f"{a.member} is not the leader {g.leader}")
    strangers = sorted({m for _, m in a.assignment} - g.members)
    _require(not strangers, a, "UNKNOWN_MEMBER_ID", f"{strangers} are not members")
    bad = sorted(p for p, _ in a.assignment if not 0 <= p < config.group_partitions)
    _require(not bad, a, "UNKNOWN_TOPIC_OR_PARTITION", f"there are no partitions {bad}")
    g = replace(g, phase=Phase.STABLE, assignment=a.assignment)
    for member in sorted(g.members):
        view = g.view(member) or MemberView(member)
        # A member adds its new share to what it still holds: under eager
        # rebalancing it holds nothing here, having revoked everything to join.
        owned = view.owned | g.assigned_to(member)
        g = g.with_view(MemberView(member, g.generation, owned))
    return g


def _drop_member(g: GroupState, member: str) -> GroupState:
    members = g.members - {member}
    if not members:
        return replace(
            g, phase=Phase.EMPTY, members=members, joined=frozenset(), leader=None, assignment=()
        )
    # Any change of membership opens a new join phase; a join phase already open stays open.
    joined = g.joined - {member} if g.phase is Phase.PREPARING_REBALANCE else frozenset()
    leader = None if g.leader == member else g.leader
    return replace(
        g,
        phase=Phase.PREPARING_REBALANCE,
        members=members,
        joined=joined,
        leader=leader,
        assignment=(),
    )


def _expire_member(g: GroupState, a: ExpireMember, config: Config) -> GroupState:
    _require(a.member in g.members, a, "UNKNOWN_MEMBER_ID", f"{a.member} is not a member")
    # The member's own view is untouched: it does not know it was expired.
    return _drop_member(g, a.member)


def _leave_group(g: GroupState, a: LeaveGroup, config: Config) -> GroupState:
    _require(a.member in g.members, a, "UNKNOWN_MEMBER_ID", f"{a.member} is not a member")
    view = g.view(a.member) or MemberView(a.member)
    return _drop_member(g, a.member).with_view(replace(view, owned=frozenset()))


SIMPLE_MEMBER = ""  # the member id of a commit from outside any group: none
SIMPLE_GENERATION = -1


def is_simple_commit(g: GroupState, a: CommitOffset) -> bool:
    """A commit from a consumer that is no member, to a group with no members (Kafka's simple
    consumers, which assign partitions themselves)."""
    return g.phase is Phase.EMPTY and (a.member, a.generation) == (SIMPLE_MEMBER, SIMPLE_GENERATION)


def _simple_commit(g: GroupState, a: CommitOffset, config: Config) -> GroupState:
    _require(is_simple_commit(g, a), a, "UNKNOWN_MEMBER_ID", "an empty group has no members")
    return g.with_committed(a.partition, a.offset)


def _commit_offset(g: GroupState, a: CommitOffset, config: Config) -> GroupState:
    stale = a.generation < g.generation
    if not (stale and variants.ZOMBIE_COMMIT in config.bugs):
        _require(a.member in g.members, a, "UNKNOWN_MEMBER_ID", f"{a.member} is not a member")
        _require(
            a.generation == g.generation,
            a,
            "ILLEGAL_GENERATION",
            f"generation {a.generation} is not the group's generation {g.generation}",
        )
        _require(
            g.owner(a.partition) == a.member,
            a,
            "NOT_OWNER",
            f"partition {a.partition} belongs to {g.owner(a.partition)} in generation {g.generation}",
        )
    return g.with_committed(a.partition, a.offset)


def _reload(g: GroupState, a: CoordinatorFailover, config: Config) -> GroupState:
    # The offsets topic holds the committed offsets and the group's metadata as
    # of the last generation bump and the last accepted assignment. An open
    # join phase or a pending sync lives only in memory: the members must rejoin.
    if g.phase in (Phase.EMPTY, Phase.STABLE):
        return g
    return replace(g, phase=Phase.PREPARING_REBALANCE, joined=frozenset(), assignment=())


def _delete(g: GroupState, a: DeleteGroup, config: Config) -> GroupState:
    return replace(g, phase=Phase.DEAD, committed=())


# -- the table -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Accept:
    """The action is handled in this phase; the group moves to one of `targets`."""

    targets: frozenset[Phase]
    effect: Callable[..., GroupState]


@dataclass(frozen=True, slots=True)
class Reject:
    """The action is refused in this phase, always.

    `error` is the Kafka error code a member's request gets; None when the
    action is the coordinator's own, so taking it would be a coordinator bug.
    """

    error: str | None
    reason: str


def _to(*phases: Phase) -> frozenset[Phase]:
    return frozenset(phases)


_EMPTY, _PREPARING = Phase.EMPTY, Phase.PREPARING_REBALANCE
_COMPLETING, _STABLE, _DEAD = Phase.COMPLETING_REBALANCE, Phase.STABLE, Phase.DEAD

_DEAD_ROW: dict[type, Accept | Reject] = {
    action_type: Reject("GROUP_ID_NOT_FOUND", "the group was deleted")
    for action_type in GROUP_ACTION_TYPES
}

TRANSITIONS: dict[Phase, dict[type, Accept | Reject]] = {
    _EMPTY: {
        JoinGroup: Accept(_to(_PREPARING), _join),
        CompleteRebalance: Reject(None, "no join phase is open"),
        SyncAssignment: Reject("UNKNOWN_MEMBER_ID", "an empty group has no members"),
        ExpireMember: Reject(None, "an empty group has no sessions to expire"),
        LeaveGroup: Reject("UNKNOWN_MEMBER_ID", "an empty group has no members"),
        CommitOffset: Accept(_to(_EMPTY), _simple_commit),
        CoordinatorFailover: Accept(_to(_EMPTY), _reload),
        DeleteGroup: Accept(_to(_DEAD), _delete),
    },
    _PREPARING: {
        JoinGroup: Accept(_to(_PREPARING), _join),
        CompleteRebalance: Accept(_to(_COMPLETING), _complete_rebalance),
        SyncAssignment: Reject("REBALANCE_IN_PROGRESS", "the join phase is still open"),
        ExpireMember: Accept(_to(_PREPARING, _EMPTY), _expire_member),
        LeaveGroup: Accept(_to(_PREPARING, _EMPTY), _leave_group),
        CommitOffset: Reject("REBALANCE_IN_PROGRESS", "the group is rebalancing"),
        CoordinatorFailover: Accept(_to(_PREPARING), _reload),
        DeleteGroup: Reject("NON_EMPTY_GROUP", "the group has members"),
    },
    _COMPLETING: {
        JoinGroup: Accept(_to(_PREPARING), _join),
        CompleteRebalance: Reject(None, "the join phase is already closed"),
        SyncAssignment: Accept(_to(_STABLE), _sync_assignment),
        ExpireMember: Accept(_to(_PREPARING, _EMPTY), _expire_member),
        LeaveGroup: Accept(_to(_PREPARING, _EMPTY), _leave_group),
        CommitOffset: Reject("REBALANCE_IN_PROGRESS", "the assignment is not fixed yet"),
        CoordinatorFailover: Accept(_to(_PREPARING), _reload),
        DeleteGroup: Reject("NON_EMPTY_GROUP", "the group has members"),
    },
    _STABLE: {
        JoinGroup: Accept(_to(_PREPARING), _join),
        CompleteRebalance: Reject(None, "no join phase is open"),
        SyncAssignment: Reject(
            "ILLEGAL_GENERATION", "this generation's assignment is already fixed"
        ),
        ExpireMember: Accept(_to(_PREPARING, _EMPTY), _expire_member),
        LeaveGroup: Accept(_to(_PREPARING, _EMPTY), _leave_group),
        CommitOffset: Accept(_to(_STABLE), _commit_offset),
        CoordinatorFailover: Accept(_to(_STABLE), _reload),
        DeleteGroup: Reject("NON_EMPTY_GROUP", "the group has members"),
    },
    _DEAD: _DEAD_ROW,
}


# -- step --------------------------------------------------------------------------------


def find_group(state: State, action: object, group: str) -> tuple[int, GroupState]:
    """The index and state of group `group`, or NotAllowed if the state has no such group."""
    for index, candidate in enumerate(state.groups):
        if candidate.group == group:
            return index, candidate
    raise NotAllowed(action, f"GROUP_ID_NOT_FOUND: there is no group {group!r}")


def step_group(group: GroupState, action: GroupAction, config: Config) -> GroupState:
    """The group after `action`, or NotAllowed naming the phase, the action and the rule."""
    entry = TRANSITIONS[group.phase][type(action)]
    if isinstance(entry, Reject):
        error = entry.error or "COORDINATOR_MUST_NOT"
        raise NotAllowed(
            action, f"{error}: group {group.group} is {group.phase.value}: {entry.reason}"
        )
    after: GroupState = entry.effect(group, action, config)
    # The table is the contract: an effect that lands elsewhere is a bug of this module.
    assert after.phase in entry.targets, (group.phase, type(action).__name__, after.phase)
    return after


def step_group_in_state(state: State, action: GroupAction, config: Config) -> State:
    """The state after a group action: `step` hands every group action to this."""
    index, group = find_group(state, action, action.group)
    groups = list(state.groups)
    groups[index] = step_group(group, action, config)
    return replace(state, groups=tuple(groups))


# -- the atomic-interleaving model for the exhaustive engines -------------------------------


def member_ids(config: Config) -> tuple[str, ...]:
    """The consumers the exhaustive engines draw on: c0, c1, ..."""
    return tuple(f"c{i}" for i in range(config.members))


def complete_assignments(
    members: frozenset[str], partitions: int
) -> Iterator[tuple[tuple[int, str], ...]]:
    """Every assignment that gives each partition to exactly one of `members`."""
    for owners in itertools.product(sorted(members), repeat=partitions):
        yield tuple(enumerate(owners))


def _commits(g: GroupState, config: Config) -> Iterator[CommitOffset]:
    # Each consumer commits one record further on every partition it believes it
    # owns, in the generation it believes current; the coordinator decides.
    for view in g.views:
        for partition in sorted(view.owned):
            offset = (g.committed_offset(partition) or 0) + 1
            if offset <= config.group_max_offset:
                yield CommitOffset(g.group, view.member, view.generation, partition, offset)


def _candidates(g: GroupState, config: Config) -> Iterator[GroupAction]:
    can_rebalance = g.generation < config.group_generations
    if can_rebalance:
        for member in member_ids(config):
            if member not in g.joined:
                yield JoinGroup(g.group, member)
        if g.phase is Phase.PREPARING_REBALANCE and g.joined:
            yield CompleteRebalance(g.group, min(g.joined))
    if g.phase is Phase.COMPLETING_REBALANCE and g.leader is not None:
        for assignment in complete_assignments(g.members, config.group_partitions):
            yield SyncAssignment(g.group, g.leader, g.generation, assignment)
    for member in sorted(g.members):
        yield ExpireMember(g.group, member)
        yield LeaveGroup(g.group, member)
    yield from _commits(g, config)
    yield CoordinatorFailover(g.group)
    yield DeleteGroup(g.group)


def enabled_group_actions(state: State, config: Config) -> Iterator[GroupAction]:
    """The group actions that may happen next: every candidate that `step_group` accepts."""
    for g in state.groups:
        for action in _candidates(g, config):
            try:
                step_group(g, action, config)
            except NotAllowed:
                continue
            yield action
