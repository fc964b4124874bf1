"""Consumer-group properties: what no group state, group step or consumer history may show.

Rules of this module:
- A state property is `(state, config) -> list[Violation]` and scans every
  group; a step property is `(before, action, after) -> list[Violation]`.
  `check_group_state` runs the state properties on a whole state;
  `check_group_step` runs after one step, re-checks the state properties only
  on the groups the step changed, and adds the step properties.
- History properties read only what consumers saw, as operations with the
  fields of `history.jsonl` (index, time_ms, process, type, f, value):
  - `subscribe` value: `{"group": "g0", "topics": ["t"]}` (a bare topic list
    means the one default group "");
  - `assign` value: the partitions the consumer owns from now on, `["t/0", ...]`;
  - `commit` value: `{"t/0": next_offset, ...}`;
  - `poll` value: `{"t/0": [[offset, record], ...]}`; `send` value:
    `[topic, partition, offset, record]`.
- SOMETIMES properties are predicates on one step; `after` is None when the
  model refused the action. `group_coverage` names the ones a step reaches.
- Nothing here changes a state or decides what may happen next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Protocol

from kafka_verify.model.groups import (
    CommitOffset,
    CoordinatorFailover,
    DeleteGroup,
    ExpireMember,
    GroupState,
    Phase,
    SyncAssignment,
    is_simple_commit,
)
from kafka_verify.model.state import Config, State
from kafka_verify.properties.catalogue import Kind, Violation, facts, prop

# -- state properties ----------------------------------------------------------------------


def _owned_twice(g: GroupState) -> list[Violation]:
    found: list[Violation] = []
    claims: dict[tuple[int, int], list[str]] = {}
    for view in g.views:
        if view.member in g.members:
            for partition in view.owned:
                claims.setdefault((view.generation, partition), []).append(view.member)
    for (generation, partition), owners in sorted(claims.items()):
        if len(owners) > 1:
            found.append(
                Violation(
                    property="single-member-per-partition",
                    message=(
                        f"group {g.group}: members {sorted(owners)} all own partition {partition} "
                        f"in generation {generation}"
                    ),
                    partition=partition,
                    details=facts(group=g.group, generation=generation, members=sorted(owners)),
                )
            )
    return found


def _owned_against_assignment(g: GroupState) -> list[Violation]:
    # ValidMemberEpoch: in a Stable group, a member of the current generation
    # holds exactly what the coordinator assigned it, no more.
    if g.phase is not Phase.STABLE:
        return []
    found: list[Violation] = []
    for view in g.views:
        if view.member not in g.members or view.generation != g.generation:
            continue
        for partition in sorted(view.owned - g.assigned_to(view.member)):
            found.append(
                Violation(
                    property="single-member-per-partition",
                    message=(
                        f"group {g.group}: {view.member} owns partition {partition} in generation "
                        f"{g.generation}, which assigns it to {g.owner(partition)}"
                    ),
                    partition=partition,
                    details=facts(
                        group=g.group,
                        generation=g.generation,
                        member=view.member,
                        assigned_to=g.owner(partition),
                    ),
                )
            )
    return found


def _single_member(g: GroupState, config: Config) -> list[Violation]:
    return _owned_twice(g) + _owned_against_assignment(g)


@prop("single-member-per-partition", Kind.ALWAYS, "state")
def partition_owned_twice(state: State, config: Config) -> list[Violation]:
    """Forbids: two current members of a group owning one partition in the same generation, or a
    current member of a Stable group owning a partition its generation's assignment does not give
    it (KIP-848's NoDoubleClientAssignment and ValidMemberEpoch)."""
    return [v for g in state.groups for v in _single_member(g, config)]


def _complete_assignment(g: GroupState, config: Config) -> list[Violation]:
    if g.phase is not Phase.STABLE:
        return []
    found: list[Violation] = []
    for partition in range(config.group_partitions):
        owner = g.owner(partition)
        problem = None
        if owner is None:
            problem = "is assigned to nobody"
        elif owner not in g.members:
            problem = f"is assigned to {owner}, who is not a member"
        if problem is not None:
            found.append(
                Violation(
                    property="complete-assignment-when-stable",
                    message=(
                        f"group {g.group} is Stable in generation {g.generation} but partition "
                        f"{partition} {problem}"
                    ),
                    partition=partition,
                    details=facts(group=g.group, generation=g.generation, owner=owner),
                )
            )
    return found


@prop("complete-assignment-when-stable", Kind.ALWAYS, "state")
def incomplete_stable_assignment(state: State, config: Config) -> list[Violation]:
    """Forbids: a Stable group whose assignment leaves a subscribed partition unassigned or gives
    it to someone who is not a member."""
    return [v for g in state.groups for v in _complete_assignment(g, config)]


_GROUP_STATE_CHECKS: tuple[Callable[[GroupState, Config], list[Violation]], ...] = (
    _single_member,
    _complete_assignment,
)


def check_group_state(state: State, config: Config) -> list[Violation]:
    """Every group state property on every group."""
    return [v for g in state.groups for check in _GROUP_STATE_CHECKS for v in check(g, config)]


@prop("groups-converged", Kind.EVENTUALLY, "final")
def unsettled_group(state: State, config: Config) -> list[Violation]:
    """Forbids: a group with members that, once the run is healed and drained, is not Stable with
    every partition assigned to one of its members."""
    found: list[Violation] = []
    for g in state.groups:
        if g.members and g.phase is not Phase.STABLE:
            found.append(
                Violation(
                    property="groups-converged",
                    message=(
                        f"group {g.group} has members {sorted(g.members)} but is still "
                        f"{g.phase.value} in generation {g.generation}"
                    ),
                    details=facts(group=g.group, phase=g.phase.value, generation=g.generation),
                )
            )
        elif g.members:
            found.extend(
                replace(v, property="groups-converged") for v in _complete_assignment(g, config)
            )
    return found


# -- step properties ---------------------------------------------------------------------------


def _pairs(before: State, after: State) -> list[tuple[GroupState, GroupState | None]]:
    """Each group before the step with the same group after it (None if it vanished)."""
    later = {g.group: g for g in after.groups}
    return [(g, later.get(g.group)) for g in before.groups]


def _explained_offset_change(action: object, group: str, partition: int, new: int | None) -> bool:
    if isinstance(action, CommitOffset):
        return (action.group, action.partition, action.offset) == (group, partition, new)
    return isinstance(action, DeleteGroup) and action.group == group and new is None


@prop("committed-offsets-durable", Kind.ALWAYS, "step")
def committed_offset_lost(before: State, action: object, after: State) -> list[Violation]:
    """Forbids: a committed offset that changes or disappears other than by an accepted commit of
    that partition (or by deleting the group), in particular across a coordinator failover."""
    found: list[Violation] = []
    for old, new in _pairs(before, after):
        partitions = {p for p, _ in old.committed} | {p for p, _ in (new.committed if new else ())}
        for partition in sorted(partitions):
            was = old.committed_offset(partition)
            now = new.committed_offset(partition) if new else None
            if was == now or _explained_offset_change(action, old.group, partition, now):
                continue
            found.append(
                Violation(
                    property="committed-offsets-durable",
                    message=(
                        f"group {old.group} partition {partition}: the committed offset went from "
                        f"{was} to {now} on {action!r}"
                    ),
                    partition=partition,
                    details=facts(group=old.group, before=was, after=now),
                )
            )
    return found


def _why_stale(g: GroupState, a: CommitOffset) -> str | None:
    if is_simple_commit(g, a):
        return None  # an empty group's commit from outside it: no generation to be stale in
    if g.phase is not Phase.STABLE:
        return f"the group is {g.phase.value}"
    if a.member not in g.members:
        return f"{a.member} is not a member"
    if a.generation != g.generation:
        return f"it carries generation {a.generation}, the group is in {g.generation}"
    if g.owner(a.partition) != a.member:
        return f"partition {a.partition} belongs to {g.owner(a.partition)}"
    return None


@prop("no-stale-generation-commit", Kind.ALWAYS, "step")
def stale_generation_commit(before: State, action: object, after: State) -> list[Violation]:
    """Forbids: an accepted offset commit from a member that is not in the group, from another
    generation than the current one, outside the Stable phase, or for a partition the member does
    not own in the current generation."""
    if not isinstance(action, CommitOffset):
        return []
    for g in before.groups:
        if g.group != action.group:
            continue
        why = _why_stale(g, action)
        if why is not None:
            return [
                Violation(
                    property="no-stale-generation-commit",
                    message=f"group {g.group} accepted {action!r} although {why}",
                    partition=action.partition,
                    details=facts(
                        group=g.group,
                        member=action.member,
                        commit_generation=action.generation,
                        group_generation=g.generation,
                    ),
                )
            ]
    return []


def _generation_drops(old: GroupState, new: GroupState | None) -> Iterable[str]:
    if new is None:
        yield f"group {old.group} vanished in generation {old.generation}"
        return
    if new.generation < old.generation:
        yield f"group {old.group} went from generation {old.generation} to {new.generation}"
    for view in old.views:
        later = new.view(view.member)
        if later is not None and later.generation < view.generation:
            yield (
                f"member {view.member} of group {old.group} went from generation "
                f"{view.generation} to {later.generation}"
            )


@prop("generation-monotonic", Kind.ALWAYS, "step")
def generation_regressed(before: State, action: object, after: State) -> list[Violation]:
    """Forbids: a group's generation, or the generation one of its consumers is in, going down."""
    return [
        Violation(
            property="generation-monotonic",
            message=f"{drop} on {action!r}",
            details=facts(group=old.group),
        )
        for old, new in _pairs(before, after)
        for drop in _generation_drops(old, new)
    ]


_GROUP_STEP_CHECKS: tuple[Callable[[State, object, State], list[Violation]], ...] = (
    committed_offset_lost,
    stale_generation_commit,
    generation_regressed,
)


def check_group_step(
    before: State, action: object, after: State, config: Config
) -> list[Violation]:
    """The group properties after one accepted step, assuming `before` satisfied them.

    Only groups the step changed are re-checked; a step of the replication
    protocol leaves the groups tuple untouched and costs one comparison.
    """
    if before.groups == after.groups:
        return []
    old = {g.group: g for g in before.groups}
    found = [
        v
        for g in after.groups
        if old.get(g.group) != g
        for check in _GROUP_STATE_CHECKS
        for v in check(g, config)
    ]
    return found + [v for check in _GROUP_STEP_CHECKS for v in check(before, action, after)]


# -- SOMETIMES: interesting group steps are reached at all ----------------------------------------


def _group(state: State, group: str) -> GroupState | None:
    for g in state.groups:
        if g.group == group:
            return g
    return None


@prop("rebalance-completed", Kind.SOMETIMES, "coverage")
def rebalance_completed(before: State, action: object, after: State | None) -> bool:
    """Reaches: a rebalance that completes, the leader's assignment accepted and the group Stable."""
    return isinstance(action, SyncAssignment) and after is not None


@prop("member-expired", Kind.SOMETIMES, "coverage")
def member_expired(before: State, action: object, after: State | None) -> bool:
    """Reaches: a member dropped from its group because its session timed out."""
    return isinstance(action, ExpireMember) and after is not None


@prop("coordinator-moved", Kind.SOMETIMES, "coverage")
def coordinator_moved(before: State, action: object, after: State | None) -> bool:
    """Reaches: a group coordinator moving to another broker and reloading the group."""
    return isinstance(action, CoordinatorFailover) and after is not None


@prop("stale-commit-rejected", Kind.SOMETIMES, "coverage")
def stale_commit_rejected(before: State, action: object, after: State | None) -> bool:
    """Reaches: an offset commit refused because its member or generation is no longer current."""
    if not isinstance(action, CommitOffset) or after is not None:
        return False
    g = _group(before, action.group)
    return g is not None and (action.member not in g.members or action.generation < g.generation)


_COVERAGE: tuple[tuple[str, Callable[[State, object, State | None], bool]], ...] = (
    ("rebalance-completed", rebalance_completed),
    ("member-expired", member_expired),
    ("coordinator-moved", coordinator_moved),
    ("stale-commit-rejected", stale_commit_rejected),
)


def group_coverage(before: State, action: object, after: State | None) -> list[str]:
    """The names of the group SOMETIMES properties this step reaches (after None: refused)."""
    return [name for name, reached in _COVERAGE if reached(before, action, after)]


# -- history properties ------------------------------------------------------------------------


class OpLike(Protocol):
    """One line of a client history, as `history.jsonl` holds it."""

    @property
    def index(self) -> int: ...
    @property
    def process(self) -> object: ...
    @property
    def type(self) -> str: ...
    @property
    def f(self) -> str: ...
    @property
    def value(self) -> object: ...


@dataclass(frozen=True, slots=True)
class _Completed:
    """A completed operation with the index at which it was invoked (its own index if unknown)."""

    invoked: int
    op: OpLike


def _completions(history: Sequence[OpLike]) -> list[_Completed]:
    # A process has at most one operation in flight, so its invoke is the
    # last one it made before the completion.
    pending: dict[object, int] = {}
    done: list[_Completed] = []
    for op in history:
        if op.type == "invoke":
            pending[op.process] = op.index
        else:
            done.append(_Completed(pending.pop(op.process, op.index), op))
    return done


def _group_of(subscribe: object) -> str:
    return str(subscribe.get("group", "")) if isinstance(subscribe, Mapping) else ""


def _group_at(done: Sequence[_Completed]) -> dict[int, str]:
    """For each completed operation (by index), the group its consumer was in at that moment:
    a consumer may leave one group and subscribe to another, so membership is per moment."""
    current: dict[object, str] = {}
    at: dict[int, str] = {}
    for c in done:
        if c.op.f == "subscribe" and c.op.type == "ok":
            current[c.op.process] = _group_of(c.op.value)
        at[c.op.index] = current.get(c.op.process, "")
    return at


def _commit_offset(c: _Completed, key: str) -> int | None:
    value = c.op.value
    if c.op.f != "commit" or c.op.type not in ("ok", "info") or not isinstance(value, Mapping):
        return None
    offset = value.get(key)
    return offset if isinstance(offset, int) else None


def _resume_bound(commits: Sequence[tuple[_Completed, int]], at: int) -> int | None:
    """The largest offset the last acknowledged commit before `at` (or one racing it) may have left.

    Commits that overlap the last acknowledged one may have been applied after
    it, so they raise the bound. So does any commit invoked before `at` whose
    outcome is unknown: its request may still be in the network and take effect
    at any later moment, as an indeterminate operation in Jepsen's sense.
    """
    acked = [(c, o) for c, o in commits if c.op.type == "ok" and c.op.index < at]
    if not acked:
        return None
    last, bound = max(acked, key=lambda pair: pair[0].op.index)
    for c, offset in commits:
        if c.invoked < at and (c.op.index > last.invoked or c.op.type == "info"):
            bound = max(bound, offset)
    return bound


def _first_read(done: Sequence[_Completed], process: object, key: str, after: int) -> int | None:
    """The first offset `process` read from `key` after index `after`, before it was reassigned."""
    for c in done:
        op = c.op
        if op.process != process or op.index <= after or op.type != "ok":
            continue
        if op.f == "assign":
            return None
        if op.f == "poll" and isinstance(op.value, Mapping):
            pairs = op.value.get(key) or []
            if pairs:
                return int(pairs[0][0])
    return None


def _assigned_keys(value: object) -> list[str]:
    return [str(key) for key in value] if isinstance(value, list | tuple) else []


@prop("resume-without-skipping", Kind.ALWAYS, "history")
def poll_skipped_after_resume(
    history: Sequence[OpLike], final_state: State | None = None
) -> list[Violation]:
    """Forbids: a consumer that, once (re)assigned a partition after a restart or a rebalance,
    first reads it from beyond the last committed offset of its group, skipping records nobody
    processed."""
    # Records retention deleted could not be read by anyone: a resume that starts at
    # the retained log start skipped nothing that was still there.
    retained_from = _retained_from(final_state)
    done = _completions(history)
    groups = _group_at(done)
    found: list[Violation] = []
    for c in done:
        if c.op.f != "assign" or c.op.type != "ok":
            continue
        group = groups[c.op.index]
        for key in _assigned_keys(c.op.value):
            commits = [
                (d, offset)
                for d in done
                if groups[d.op.index] == group and (offset := _commit_offset(d, key)) is not None
            ]
            bound = _resume_bound(commits, c.op.index)
            start = _first_read(done, c.op.process, key, c.op.index)
            if (
                bound is not None
                and start is not None
                and start > max(bound, retained_from.get(key, 0))
            ):
                found.append(_skip(c.op, group, key, bound, start))
    return found


def _retained_from(final_state: State | None) -> dict[str, int]:
    """Per partition key, the offset below which retention has deleted records by the end."""
    if final_state is None:
        return {}
    return {
        f"t/{index}": max(r.log_start for r in part.replicas)
        for index, part in enumerate(final_state.partitions)
    }


def _skip(assign: OpLike, group: str, key: str, bound: int, start: int) -> Violation:
    return Violation(
        property="resume-without-skipping",
        message=(
            f"{assign.process} (group {group or 'default'}) was assigned {key} at op {assign.index} "
            f"with offset {bound} committed, but first read it at offset {start}: offsets "
            f"{bound}..{start - 1} were skipped"
        ),
        details=facts(
            process=str(assign.process), group=group, key=key, committed=bound, first_read=start
        ),
    )


def _sent_records(done: Sequence[_Completed]) -> list[tuple[str, int, object]]:
    """("topic/partition", offset, record) of every acknowledged send with a known offset."""
    sent: list[tuple[str, int, object]] = []
    for c in done:
        value = c.op.value
        if c.op.f != "send" or c.op.type != "ok" or not isinstance(value, list | tuple):
            continue
        if len(value) == 4 and isinstance(value[2], int):
            topic, partition, offset, record = value
            sent.append((f"{topic}/{partition}", offset, record))
    return sent


def _reads_by_group(
    done: Sequence[_Completed], groups: Mapping[int, str]
) -> dict[str, set[tuple[str, int]]]:
    reads: dict[str, set[tuple[str, int]]] = {}
    for c in done:
        if c.op.f == "poll" and c.op.type == "ok" and isinstance(c.op.value, Mapping):
            seen = reads.setdefault(groups[c.op.index], set())
            for key, pairs in c.op.value.items():
                seen.update((str(key), int(pair[0])) for pair in pairs)
    return reads


def _topics_by_group(done: Sequence[_Completed]) -> dict[str, set[str]]:
    topics: dict[str, set[str]] = {}
    for c in done:
        if c.op.f == "subscribe" and c.op.type == "ok":
            value = c.op.value
            names = value.get("topics", ()) if isinstance(value, Mapping) else value
            listed = names if isinstance(names, list | tuple) else ()
            topics.setdefault(_group_of(value), set()).update(str(t) for t in listed)
    return topics


def _kept_in_final_log(final_state: State | None, key: str, offset: int, record: object) -> bool:
    """Whether the final log (the quorum leader's) still holds `record` at `offset` of `key`."""
    topic, _, index = key.partition("/")
    if final_state is None or topic != "t" or not index.isdigit():
        return True
    if int(index) >= len(final_state.partitions):
        return True
    part = final_state.partitions[int(index)]
    leader = next((r for r in part.replicas if r.broker == part.leader), None)
    if leader is None:
        return True
    held = leader.record_at(offset)
    return held is not None and held.id == record


@prop("groups-independent", Kind.EVENTUALLY, "history")
def group_missed_records(
    history: Sequence[OpLike], final_state: State | None = None, acks: int = -1
) -> list[Violation]:
    """Forbids: a consumer group that, once the run is healed and drained, never read an
    acknowledged record of a topic it subscribes to, whatever other groups read (reset policy
    earliest).

    With acks other than all (-1) an acknowledged record may be lost (history's
    `lost-write` says so, as allowed); a group need only have read what the final log kept.
    """
    done = _completions(history)
    groups = _group_at(done)
    reads = _reads_by_group(done, groups)
    # A group every member left is not expected to read on (given the final state).
    live = None if final_state is None else {g.group for g in final_state.groups if g.members}
    # Retention may delete records before a group reads them; only what is still
    # retained at the end must have been read.
    retained_from = _retained_from(final_state)
    found: list[Violation] = []
    for group, topics in sorted(_topics_by_group(done).items()):
        if live is not None and group not in live:
            continue
        missed = [
            (key, offset, record)
            for key, offset, record in _sent_records(done)
            if key.split("/")[0] in topics
            and (key, offset) not in reads.get(group, set())
            and offset >= retained_from.get(key, 0)
            and (acks == -1 or _kept_in_final_log(final_state, key, offset, record))
        ]
        if missed:
            key, offset, record = missed[0]
            found.append(
                Violation(
                    property="groups-independent",
                    message=(
                        f"group {group or 'default'} never read {len(missed)} acknowledged "
                        f"record(s), the first {record!r} at {key} offset {offset}"
                    ),
                    details=facts(group=group, missed=[[k, o] for k, o, _ in missed[:5]]),
                )
            )
    return found


# -- checked one operation at a time -----------------------------------------------------------


def _polled_partitions(value: object) -> list[int]:
    """The partitions of the user topic a poll returned records from."""
    if not isinstance(value, Mapping):
        return []
    found = []
    for key, pairs in value.items():
        topic, _, partition = str(key).partition("/")
        if topic == "t" and partition.isdigit() and pairs:
            found.append(int(partition))
    return sorted(found)


def _not_owner(g: GroupState, member: str, partition: int) -> str | None:
    """Why `member` may not read `partition` in `g` right now, or None if it may."""
    if member not in g.members:
        return "is not a member of the group"
    if g.phase is Phase.STABLE and partition not in g.assigned_to(member):
        owner = g.owner(partition)
        return f"is not its owner in generation {g.generation} (the assignment gives it to {owner})"
    return None


@prop("poll-by-non-owner", Kind.ALWAYS, "history")
def poll_by_non_owner(process: str, group: GroupState, op: OpLike) -> list[Violation]:
    """Forbids: a group consumer's poll returning records of a partition while the coordinator no
    longer counts the consumer as a member, or while the group is Stable and its current
    generation assigns the partition to another member (KIP-848's ValidMemberEpoch, for fetches)."""
    found: list[Violation] = []
    for partition in _polled_partitions(op.value):
        why = _not_owner(group, process, partition)
        if why is not None:
            found.append(
                Violation(
                    property="poll-by-non-owner",
                    message=(
                        f"group {group.group}: {process} read partition {partition} at operation "
                        f"{op.index} but {why}"
                    ),
                    partition=partition,
                    details=facts(
                        op_index=op.index,
                        group=group.group,
                        member=process,
                        generation=group.generation,
                        phase=group.phase.value,
                        members=sorted(group.members),
                    ),
                )
            )
    return found


class OwnershipChecker:
    """Checks each group consumer's polls against the group state at the moment they return."""

    def __init__(self) -> None:
        self.group_of: dict[str, str] = {}

    def restarted(self, process: str) -> None:
        """`process` crashed or started again: a new client process, in no group until it
        subscribes (a restarted consumer reads in assign mode, which no group governs)."""
        self.group_of.pop(process, None)

    def observe(self, op: OpLike, state: State | None) -> list[Violation]:
        """The violations `op` reveals; `state` is the model state right after it (None: unknown)."""
        process = str(op.process)
        if op.type != "ok":
            return []
        if op.f == "subscribe" and isinstance(op.value, Mapping):
            self.group_of[process] = _group_of(op.value)
            return []
        if op.f != "poll" or state is None or process not in self.group_of:
            return []
        group = _group(state, self.group_of[process])
        return [] if group is None else poll_by_non_owner(process, group, op)
