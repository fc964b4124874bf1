"""Offset commits and consumer starts: what a group may have had committed when a consumer began.

Rules of this module:
- A group's committed offset of a partition is a register. A commit's value
  is "topic/partition" -> offset (the next offset to read), as the client
  answered it (ok) or as it was asked (its invoke: for fail and info, which
  may still have been applied, since clients retry commits). A commit whose
  offsets the history does not give (an old history's value None) makes its
  group unjudgeable: nothing is decided for that group.
- A consumer of a group begins reading a partition after an assign (not a
  seek), a subscribe, or an `assigned` rebalance event naming it; its first
  read of the partition after that is where the group's register sent it. An
  assign that seeks (the final read) and a consumer whose group the history
  does not name are not judged.
- `assigned`, `revoked` and `lost` are single ok lines recorded inside the
  call (usually a poll) whose rebalance callback they report; the checker
  dates an event no earlier than that call's invoke and no later than its
  own line. The first read after an `assigned` may be in that same call, and
  counts even when the call revoked the partition first: records fetched
  before the revoke lie at or above the member's own position, which is at
  or above anything it committed.
- Fencing (`CheckConfig.eager_groups`): under the eager rebalance protocol a
  member gives up everything (revoked or lost) before it rejoins, and a
  commit carries the generation it was sent in. So a commit that was not
  acknowledged cannot take effect once its member has revoked and been
  assigned again, and a commit acknowledged after another member joined and
  was assigned, with no rejoin of its own in between, was surely from an
  ended generation. Without eager groups neither bound is used.
- Everything is decided once the whole history is in (`lost_commit`,
  `stale_commit`): a commit's outcome may complete after the read it bounds.
- Ownership (two members owning a partition at once) is not judged: a member
  whose session lapsed keeps its partitions until it hears so, and the
  clients do not say which generation an assignment belongs to, so two
  `assigned` events naming one partition cannot be told apart from a zombie
  and its successor.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

from kafka_verify.properties.catalogue import Kind, prop
from kafka_verify.properties.history.memory import Case
from kafka_verify.properties.history.ops import (
    HistoryError,
    Op,
    Read,
    covered_keys,
    key_covered,
    partition_key,
)

REBALANCE_EVENTS = frozenset({"assigned", "revoked", "lost"})


@dataclass(slots=True)
class Commit:
    """One commit attempt of a group: when it was asked, when (if ever) acknowledged, and what."""

    group: str
    process: str
    invoke: Op
    offsets: dict[str, int] | None  # None: the history does not say
    completion: Op | None = None
    # The index after which it can no longer take effect (None: no bound).
    fenced: int | None = None
    # The index of the member's last `assigned` event before it was invoked (None: none).
    assigned_before: int | None = None

    @property
    def ok(self) -> bool:
        return self.completion is not None and self.completion.type == "ok"

    def last_effect(self) -> float:
        """The latest index at which this commit may have taken effect."""
        if self.ok:
            assert self.completion is not None
            return self.completion.index
        return math.inf if self.fenced is None else self.fenced


@dataclass(slots=True)
class Start:
    """A consumer beginning to read a partition: from which line its position may have been set."""

    group: str
    process: str
    key: str
    opened: int  # the earliest index at which its position was fetched
    cause: Op  # the assign, subscribe or assigned event


@dataclass(slots=True)
class Began:
    """A start and the first read that followed it."""

    start: Start
    offset: int
    read: Op


@dataclass(slots=True)
class Member:
    """One consumer process, as the commit checks follow it."""

    group: str | None = None
    subscribed_topics: frozenset[str] = frozenset()
    subscribed_at: Op | None = None
    subscribed_index: int = 0
    decided: set[str] = field(default_factory=set)  # keys the subscribe start no longer covers
    starts: dict[str, Start] = field(default_factory=dict)
    call: Op | None = None  # the invoke of the call in progress
    last_assigned: int | None = None
    # Commits waiting for a revoke (then an assign) of this member to fence them.
    before_revoke: list[Commit] = field(default_factory=list)
    before_assign: list[Commit] = field(default_factory=list)


@dataclass(slots=True)
class JoinAssign:
    """A member's join (no earlier than `joined`) followed by an assignment (by `assigned`)."""

    process: str
    joined: int
    assigned: int


@dataclass
class Commits:
    """What the commit checks remember of a history."""

    eager_groups: bool = True
    members: dict[str, Member] = field(default_factory=dict)
    commits: list[Commit] = field(default_factory=list)
    open_commits: dict[str, Commit] = field(default_factory=dict)
    began: list[Began] = field(default_factory=list)
    unjudgeable: set[str] = field(default_factory=set)
    # Per group, each member's joins that an assignment followed (for stale commits).
    joins: dict[str, list[JoinAssign]] = field(default_factory=dict)
    _pending_join: dict[str, int] = field(default_factory=dict)

    def member(self, process: str) -> Member:
        found = self.members.get(process)
        if found is None:
            found = self.members[process] = Member()
        return found

    # -- what the analysis feeds in ------------------------------------------------------------

    def invoked(self, op: Op) -> None:
        member = self.member(op.process)
        member.call = op
        if op.f == "commit" and member.group is not None:
            commit = Commit(
                member.group,
                op.process,
                op,
                commit_offsets(op.value, op.index),
                assigned_before=member.last_assigned,
            )
            if commit.offsets is None:
                self.unjudgeable.add(member.group)
            self.open_commits[op.process] = commit
            self.commits.append(commit)
            member.before_revoke.append(commit)

    def completed(self, op: Op, invoke: Op | None) -> None:
        member = self.member(op.process)
        member.call = None
        if op.f == "commit":
            commit = self.open_commits.pop(op.process, None)
            if commit is not None:
                commit.completion = op
                if op.type == "ok":
                    answered = commit_offsets(op.value, op.index)
                    if answered is not None:
                        commit.offsets = answered
                    elif op.value is not None:
                        self.unjudgeable.add(commit.group)

    def covered(self, op: Op, invoke: Op | None) -> None:
        """An assign or subscribe completed: the member starts afresh."""
        member = self.member(op.process)
        self._restart(member)
        opened = op.index if invoke is None else invoke.index
        group = _group_of(op.value)
        member.group = group
        if group is None or op.type not in ("ok", "info"):
            return
        keys, topics = covered_keys(op.value, op.index)
        if op.f == "assign":
            if op.seek:
                member.group = None  # it reads from the beginning: no committed offset involved
                return
            for key in keys:
                member.starts[key] = Start(group, op.process, key, opened, op)
        else:
            member.subscribed_topics = topics
            member.subscribed_at = op
            member.subscribed_index = opened
            self._pending_join[op.process] = opened

    def restarted(self, process: str) -> None:
        """A crash, a reset or a lost poll: the consumer starts again with a new client."""
        member = self.member(process)
        self._restart(member)
        member.group = None

    def _restart(self, member: Member) -> None:
        member.starts.clear()
        member.subscribed_topics = frozenset()
        member.subscribed_at = None
        member.decided = set()
        member.last_assigned = None
        # A new client is a new member: its rebalances fence none of the old one's commits.
        member.before_revoke = []
        member.before_assign = []

    def rebalanced(self, op: Op) -> None:
        """An `assigned`, `revoked` or `lost` event."""
        member = self.member(op.process)
        if member.group is None:
            return
        keys, _ = covered_keys(op.value, op.index)
        earliest = member.call.index if member.call is not None else op.index
        if op.f == "assigned":
            for key in keys:
                member.starts[key] = Start(member.group, op.process, key, earliest, op)
                member.decided.add(key)
            if self.eager_groups:
                for commit in member.before_assign:
                    commit.fenced = op.index
            member.before_assign = []
            member.last_assigned = op.index
            joined = self._pending_join.pop(op.process, None)
            if joined is not None:
                self.joins.setdefault(member.group, []).append(
                    JoinAssign(op.process, joined, op.index)
                )
        else:
            for key in keys:
                member.starts.pop(key, None)
                member.decided.add(key)
            member.last_assigned = None  # rejoining: its next commits carry a new generation
            member.before_assign += member.before_revoke
            member.before_revoke = []
            self._pending_join.setdefault(op.process, earliest)

    def read(self, op: Op, reads: list[Read]) -> None:
        """A completed poll: the first read of each partition a start awaits."""
        member = self.members.get(op.process)
        if member is None or member.group is None:
            return
        seen: set[str] = set()
        for key, offset, _ in reads:
            if offset is None or key in seen:
                continue
            seen.add(key)
            start = member.starts.get(key)
            fresh = member.subscribed_at is not None and key not in member.decided
            if start is None and fresh and key_covered(key, frozenset(), member.subscribed_topics):
                assert member.subscribed_at is not None
                start = Start(
                    member.group, op.process, key, member.subscribed_index, member.subscribed_at
                )
            member.decided.add(key)
            if start is None:
                continue
            member.starts.pop(key, None)
            self.began.append(Began(start, offset, op))


def _group_of(value: object) -> str | None:
    if isinstance(value, Mapping):
        group = value.get("group")
        if isinstance(group, str) and group:
            return group
    return None


def commit_offsets(value: object, index: int) -> dict[str, int] | None:
    """A commit's offsets ("topic/partition" -> offset); None when the value gives none."""
    if not isinstance(value, Mapping):
        return None
    offsets: dict[str, int] = {}
    for key, offset in value.items():
        if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
            raise HistoryError(
                f"op {index}: a committed offset is a non-negative integer, not {offset!r}"
            )
        offsets[partition_key(key, index)] = offset
    return offsets


# -- the anomalies ---------------------------------------------------------------------------------


def _by_partition(commits: Commits) -> dict[tuple[str, str], list[Commit]]:
    out: dict[tuple[str, str], list[Commit]] = {}
    for commit in commits.commits:
        for key in commit.offsets or {}:
            out.setdefault((commit.group, key), []).append(commit)
    return out


def _lost_commit_case(began: Began, register: list[Commit]) -> Case | None:
    start = began.start
    opened, first_read = start.opened, began.read.index
    # The latest invoke among commits surely applied before the start: anything whose
    # last possible effect precedes it was surely overwritten by then.
    applied = [c for c in register if c.ok and c.completion and c.completion.index < opened]
    if not applied:
        return None  # the register may still have been empty: the client's reset decides
    overwriter = max(c.invoke.index for c in applied)
    possible = [
        c for c in register if c.invoke.index < first_read and not overwriter > c.last_effect()
    ]
    lowest = min(possible, key=lambda c: (c.offsets or {})[start.key])
    floor = (lowest.offsets or {})[start.key]
    if began.offset >= floor:
        return None
    if lowest.completion is None:
        how = f"asked in op {lowest.invoke.index}, never answered"
    elif lowest.ok:
        how = f"asked in op {lowest.invoke.index}, acknowledged in op {lowest.completion.index}"
    else:
        how = f"asked in op {lowest.invoke.index}, {lowest.completion.type}"
    return Case(
        "lost-commit",
        f"consumer {start.process} of group {start.group} began reading {start.key} at offset "
        f"{began.offset} (op {began.read.index}), below offset {floor}, the lowest the group "
        f"may have had committed then (the commit {how})",
        tuple(o for o in (lowest.invoke, lowest.completion, start.cause, began.read) if o),
        start.key,
        (
            ("consumer", start.process),
            ("group", start.group),
            ("read_offset", began.offset),
            ("committed_floor", floor),
            ("possible_commits", len(possible)),
        ),
        severity=float(floor - began.offset),
    )


@prop("lost-commit", Kind.ALWAYS, "history")
def lost_commit(commits: Commits) -> list[Case]:
    """Forbids: a consumer of a group beginning to read a partition below every offset the group may have had committed for it then (a commit acknowledged before the consumer's assignment, and not surely overwritten, was lost).

    The values the register may hold when the consumer's position is fetched
    are those of the commits invoked before its first read that were not
    surely overwritten: a commit is surely overwritten when another one was
    invoked after the last moment it could take effect and acknowledged
    before the consumer's assignment. A read above the committed offset is
    legal (holes, records of other runs).
    """
    registers = _by_partition(commits)
    cases = []
    for began in commits.began:
        if began.start.group in commits.unjudgeable:
            continue
        register = registers.get((began.start.group, began.start.key), [])
        case = _lost_commit_case(began, register)
        if case is not None:
            cases.append(case)
    return cases


@prop("stale-commit", Kind.ALWAYS, "history")
def stale_commit(commits: Commits) -> list[Case]:
    """Forbids: a group acknowledging an offset commit from a member whose generation had surely ended (another member joined after its last assignment and was assigned before it committed, and it had not rejoined).

    Judged only under the eager rebalance protocol (`eager_groups`), where a
    member revokes everything before it rejoins.
    """
    if not commits.eager_groups:
        return []
    cases = []
    for commit in commits.commits:
        if not commit.ok or commit.assigned_before is None:
            continue
        mine = commit.assigned_before
        newer = [
            j
            for j in commits.joins.get(commit.group, [])
            if j.process != commit.process and mine < j.joined and j.assigned < commit.invoke.index
        ]
        if not newer:
            continue
        other = newer[0]
        assert commit.completion is not None
        keys = ", ".join(sorted(commit.offsets or {}))
        cases.append(
            Case(
                "stale-commit",
                f"consumer {commit.process} of group {commit.group} had its commit of {keys} "
                f"acknowledged (op {commit.completion.index}) though {other.process} joined "
                f"after its last assignment (op {mine}) and was assigned (op {other.assigned}) "
                f"before it committed (op {commit.invoke.index})",
                (commit.invoke, commit.completion),
                None,
                (
                    ("consumer", commit.process),
                    ("group", commit.group),
                    ("assigned_at", mine),
                    ("newer_member", other.process),
                    ("newer_assigned_at", other.assigned),
                ),
                severity=float(commit.invoke.index - other.assigned),
            )
        )
    return cases
