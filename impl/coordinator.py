"""The group coordinator, hosted by the broker that leads a group's partition of the offsets topic.

Rules of this module:
- Placement: group g belongs to offsets partition `offsets_partition(g)` (an
  FNV-1a hash of its name); the broker leading that partition is g's
  coordinator. It loads the partition's groups when it becomes leader and
  unloads them when it stops leading; loading names `CoordinatorFailover`.
- Membership changes are written to the coordination service's group store
  (group_store.py) with a write fenced by the partition's leader epoch, and
  named in the same handler; a write that fails changes nothing and is named
  nothing.
- Committed offsets are records appended to the offsets partition with
  acks=all semantics: a commit takes effect (is named `CommitOffset`, moves the
  store's `applied` prefix and is answered) only when the high watermark passes
  its record. While a group has commits waiting for that, its membership does
  not change (joins are refused as retriable, leaves and expiries wait), so a
  commit that was valid when appended is still valid when it takes effect,
  whichever coordinator applies it.
- The rebalance protocol is eager: JoinGroup answers wait until the join phase
  closes (every member rejoined, or the rebalance timeout passed); the leader's
  SyncGroup fixes the assignment and every waiting SyncGroup is answered.
- Sans-IO, like the broker: handlers are generators of effects.
- It reaches its host broker only through `CoordinatorHost`, which names all
  it uses, and reads replicas as replica.py's records: it never imports broker.py.
"""

from __future__ import annotations

from collections.abc import Callable, Generator, Mapping
from dataclasses import dataclass, field, replace
from typing import Protocol

from kafka_verify.impl import bugs
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl.clients import fnv1a
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.dispatch import route_from
from kafka_verify.impl.effects import Effect, Handler, Observe, Refused, Reply, Send, ZkCall
from kafka_verify.impl.group_store import (
    COMPLETING,
    EMPTY,
    PREPARING,
    STABLE,
    GroupRead,
    GroupRecord,
    GroupSnapshot,
    GroupWrite,
    MemberTold,
    OffsetRecord,
    replay_commits,
)
from kafka_verify.impl.messages import Message
from kafka_verify.impl.replica import ReplicaState
from kafka_verify.model.actions import LeaderWrite
from kafka_verify.model.groups import (
    SIMPLE_GENERATION,
    SIMPLE_MEMBER,
    CommitOffset,
    CompleteRebalance,
    CoordinatorFailover,
    ExpireMember,
    JoinGroup,
    LeaveGroup,
    SyncAssignment,
)

Writes = Generator[Effect, Reply, bool]  # a handler that says whether its write succeeded


def offsets_partition(group: str, config: ClusterConfig) -> int:
    """The model index of the offsets-topic partition that holds `group` (after the user topic's)."""
    return config.partitions + fnv1a(group) % config.offsets_partitions


def group_names(config: ClusterConfig) -> tuple[str, ...]:
    return tuple(f"g{i}" for i in range(config.groups))


# -- the group transitions, as the coordinator computes them -------------------------------------


def joined(g: GroupRecord, member: str, config: ClusterConfig) -> GroupRecord:
    pending = g.joined | {member} if g.phase == PREPARING else frozenset({member})
    told = g.told_to(member) or MemberTold()
    keeps = bugs.enabled(config, bugs.DOUBLE_ASSIGNMENT) or bugs.enabled(
        config, bugs.OWNERSHIP_NEVER_REVOKED
    )
    if not keeps:
        told = replace(told, owned=frozenset())  # eager: a member gives everything up to join
    g = replace(g, phase=PREPARING, members=g.members | {member}, joined=pending, assignment=())
    return g.with_told(member, told)


def completed(g: GroupRecord, leader: str) -> GroupRecord:
    return replace(
        g,
        phase=COMPLETING,
        generation=g.generation + 1,
        members=g.joined,
        joined=frozenset(),
        leader=leader,
        assignment=(),
    )


def synced(g: GroupRecord, assignment: tuple[tuple[int, str], ...]) -> GroupRecord:
    g = replace(g, phase=STABLE, assignment=assignment)
    for member in sorted(g.members):
        told = g.told_to(member) or MemberTold()
        share = frozenset(p for p, m in assignment if m == member)
        g = g.with_told(member, MemberTold(g.generation, told.owned | share))
    return g


def dropped(g: GroupRecord, member: str) -> GroupRecord:
    members = g.members - {member}
    if not members:
        return replace(
            g, phase=EMPTY, members=members, joined=frozenset(), leader=None, assignment=()
        )
    return replace(
        g,
        phase=PREPARING,
        members=members,
        joined=g.joined - {member} if g.phase == PREPARING else frozenset(),
        leader=None if g.leader == member else g.leader,
        assignment=(),
    )


def reloaded(g: GroupRecord) -> GroupRecord:
    """What a new coordinator makes of a group: an open join phase or pending sync starts over."""
    if g.phase in (EMPTY, STABLE):
        return g
    return replace(g, phase=PREPARING, joined=frozenset(), assignment=())


# -- the coordinator's memory --------------------------------------------------------------------


@dataclass(slots=True)
class PendingCommit:
    log_offset: int
    record: OffsetRecord
    reply_to: tuple[str, int] | None  # answered with the last record of its request


@dataclass(slots=True)
class Loaded:
    """One offsets partition this broker coordinates, in leader epoch `epoch`."""

    partition: int
    epoch: int
    groups: dict[str, GroupRecord]
    committed: dict[str, dict[int, int]]
    pending: list[PendingCommit] = field(default_factory=list)
    sessions: dict[tuple[str, str], int] = field(default_factory=dict)
    joins: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    syncs: dict[str, dict[str, tuple[str, int]]] = field(default_factory=dict)
    deadlines: dict[str, int] = field(default_factory=dict)
    leaves: list[tuple[str, str, str, int]] = field(default_factory=list)  # group, member, src, id

    def busy(self, group: str) -> bool:
        return any(c.record.group == group for c in self.pending)


class CoordinatorHost(Protocol):
    """What the coordinator uses of the broker that hosts it, and nothing more."""

    @property
    def index(self) -> int: ...

    @property
    def config(self) -> ClusterConfig: ...

    @property
    def replicas(self) -> Mapping[int, ReplicaState]: ...

    @property
    def metadata(self) -> Mapping[int, tuple[int | None, int]]:
        """Partition -> (leader or None, leader epoch), as the broker last learned them."""
        ...

    def records_appended(self, r: ReplicaState) -> Handler:
        """The coordinator appended to `r`, a partition the host leads."""
        ...


class Coordinator:
    """The group coordinator part of broker `host.index`."""

    def __init__(self, host: CoordinatorHost, incarnation: int) -> None:
        self.host = host
        self.config = host.config
        self.loaded: dict[int, Loaded] = {}
        self._next_id = 0
        self._id_base = (incarnation + 1) * 1_000_000

    def _record_id(self) -> int:
        # Negative, so never a producer's; unique per broker life and per broker.
        self._next_id += 1
        return -((self._id_base + self._next_id) * self.config.brokers + self.host.index)

    def is_offsets(self, partition: int) -> bool:
        # The offsets topic follows the configured topics; created topics come after it.
        first = self.config.partitions
        return (
            self.config.groups > 0 and first <= partition < first + self.config.offsets_partitions
        )

    def load_initial(self, partition: int, epoch: int) -> None:
        """The run's first coordinator knows the empty groups without reading them."""
        groups = {
            g: GroupRecord(g)
            for g in group_names(self.config)
            if offsets_partition(g, self.config) == partition
        }
        self.loaded[partition] = Loaded(partition, epoch, groups, {})

    # -- leadership of an offsets partition -----------------------------------------------------

    def on_become_leader(self, r: ReplicaState, now_ms: int) -> Handler:
        if not self.is_offsets(r.partition):
            return
        yield from self.unload(r.partition)
        snapshot = yield ZkCall(GroupRead(r.partition))
        if not isinstance(snapshot, GroupSnapshot):
            return  # the coordination service is out of reach: the load is retried on the timer
        groups = tuple(reloaded(g) for g in snapshot.groups)
        written = yield ZkCall(GroupWrite(r.partition, self.host.index, r.epoch, groups))
        if not isinstance(written, GroupSnapshot):
            return
        # Every commit that took effect is replayed: the applied prefix, which may reach past
        # this new leader's high watermark (it lags the previous leader's until followers fetch).
        loaded_up_to = snapshot.applied
        if bugs.enabled(self.config, bugs.OFFSETS_LOADED_TO_HW):
            loaded_up_to = min(loaded_up_to, r.hw)
        loaded = Loaded(
            r.partition,
            r.epoch,
            {g.group: g for g in groups},
            replay_commits(r.log.records, loaded_up_to, r.log.log_start),
        )
        for offset, record in r.log.producer_entries():
            if offset >= snapshot.applied and isinstance(record, OffsetRecord):
                loaded.pending.append(PendingCommit(offset, record, None))
        for g in groups:
            for member in g.members:
                loaded.sessions[(g.group, member)] = now_ms
            if g.phase == PREPARING:
                loaded.deadlines[g.group] = now_ms + self.config.rebalance_timeout_ms
            yield Observe(CoordinatorFailover(g.group))
        self.loaded[r.partition] = loaded
        yield from self.on_high_watermark(r, now_ms)

    def unload(self, partition: int) -> Handler:
        loaded = self.loaded.pop(partition, None)
        if loaded is None:
            return
        error = gm.NOT_COORDINATOR
        for group in loaded.joins.values():
            for src, request_id in group.values():
                yield Send(src, gm.JoinGroupResponse(request_id, error))
        for group in loaded.syncs.values():
            for src, request_id in group.values():
                yield Send(src, gm.SyncGroupResponse(request_id, error))
        for commit in loaded.pending:
            if commit.reply_to is not None:
                yield Send(commit.reply_to[0], gm.OffsetCommitResponse(commit.reply_to[1], error))
        for _, _, src, request_id in loaded.leaves:
            yield Send(src, gm.LeaveGroupResponse(request_id, error))

    def _partition_ready(self, r: ReplicaState | None, loaded: Loaded | None) -> bool:
        return (
            r is not None
            and loaded is not None
            and r.epoch == loaded.epoch
            and r.leader == self.host.index
        )

    # -- writes -------------------------------------------------------------------------------

    def _write(self, loaded: Loaded, *groups: GroupRecord, applied: int | None = None) -> Writes:
        reply = yield ZkCall(
            GroupWrite(loaded.partition, self.host.index, loaded.epoch, groups, applied)
        )
        if not isinstance(reply, GroupSnapshot):
            return False
        for g in groups:
            loaded.groups[g.group] = g
        return True

    def _still_coordinator(self, loaded: Loaded) -> Writes:
        """A fenced no-op write: whether the coordination service still names this broker the
        offsets partition's leader in the loaded epoch. A success answer vouches for the member's
        session, so a deposed coordinator that has not heard yet must not give one."""
        return (yield from self._write(loaded))

    # -- requests ---------------------------------------------------------------------------------

    def handle(self, src: str, message: Message, now_ms: int) -> Handler:
        handler = HANDLERS.get(type(message))
        if handler is not None:
            yield from handler(self, src, message, now_ms)

    def _serving(self, group: str) -> tuple[Loaded | None, str]:
        if not self._known_group(group):
            return None, gm.NOT_COORDINATOR
        partition = offsets_partition(group, self.config)
        loaded = self.loaded.get(partition)
        r = self.host.replicas.get(partition)
        if loaded is None:
            return None, gm.NOT_COORDINATOR
        if not self._partition_ready(r, loaded):
            return None, gm.NOT_COORDINATOR
        if group not in loaded.groups:
            loaded.groups[group] = GroupRecord(group)  # a group comes to be when first named
        return loaded, gm.COORDINATOR_NOT_AVAILABLE

    def _known_group(self, group: str) -> bool:
        return (self.config.any_group and group != "") or group in group_names(self.config)

    def _on_find(self, src: str, msg: gm.FindCoordinator, now_ms: int) -> Handler:
        leader = None
        if self._known_group(msg.group):
            leader, _ = self.host.metadata.get(
                offsets_partition(msg.group, self.config), (None, -1)
            )
        yield Send(src, gm.FindCoordinatorResponse(msg.request_id, msg.group, leader))

    def _on_join(self, src: str, msg: gm.JoinGroup, now_ms: int) -> Handler:
        loaded, error = self._serving(msg.group)
        if loaded is None:
            yield Send(src, gm.JoinGroupResponse(msg.request_id, error))
            return
        if loaded.busy(msg.group):
            yield Send(src, gm.JoinGroupResponse(msg.request_id, gm.COORDINATOR_LOAD_IN_PROGRESS))
            return
        g = loaded.groups[msg.group]
        if msg.member not in g.joined:
            if not (yield from self._write(loaded, joined(g, msg.member, self.config))):
                yield Send(src, gm.JoinGroupResponse(msg.request_id, gm.COORDINATOR_NOT_AVAILABLE))
                return
            yield Observe(JoinGroup(msg.group, msg.member))
            if g.phase != PREPARING:
                loaded.deadlines[msg.group] = now_ms + self.config.rebalance_timeout_ms
            yield from self._answer_syncs(loaded, msg.group, gm.REBALANCE_IN_PROGRESS)
        loaded.sessions[(msg.group, msg.member)] = now_ms
        loaded.joins.setdefault(msg.group, {})[msg.member] = (src, msg.request_id)
        g = loaded.groups[msg.group]
        if g.joined == g.members:
            yield from self._complete(loaded, msg.group)

    def _complete(self, loaded: Loaded, group: str) -> Handler:
        g = loaded.groups[group]
        leader = g.leader if g.leader in g.joined else min(g.joined)
        if not (yield from self._write(loaded, completed(g, leader))):
            return
        yield Observe(CompleteRebalance(group, leader))
        g = loaded.groups[group]
        loaded.deadlines.pop(group, None)
        for key in [k for k in loaded.sessions if k[0] == group and k[1] not in g.members]:
            del loaded.sessions[key]
        members = tuple(sorted(g.members))
        for member, (src, request_id) in sorted(loaded.joins.pop(group, {}).items()):
            if member in g.members:
                yield Send(
                    src, gm.JoinGroupResponse(request_id, gm.NONE, g.generation, leader, members)
                )
            else:
                yield Send(src, gm.JoinGroupResponse(request_id, gm.UNKNOWN_MEMBER_ID))

    def _answer_syncs(self, loaded: Loaded, group: str, error: str) -> Handler:
        for src, request_id in loaded.syncs.pop(group, {}).values():
            yield Send(src, gm.SyncGroupResponse(request_id, error))

    def _member_error(self, g: GroupRecord, member: str, generation: int) -> str:
        if member not in g.members:
            return gm.UNKNOWN_MEMBER_ID
        if g.phase == PREPARING:
            return gm.REBALANCE_IN_PROGRESS
        if generation != g.generation:
            return gm.ILLEGAL_GENERATION
        return gm.NONE

    def _on_sync(self, src: str, msg: gm.SyncGroup, now_ms: int) -> Handler:
        loaded, error = self._serving(msg.group)
        if loaded is None:
            yield Send(src, gm.SyncGroupResponse(msg.request_id, error))
            return
        g = loaded.groups[msg.group]
        error = self._member_error(g, msg.member, msg.generation)
        if error != gm.NONE:
            yield Send(src, gm.SyncGroupResponse(msg.request_id, error))
            return
        loaded.sessions[(msg.group, msg.member)] = now_ms
        if g.phase == STABLE:
            if not (yield from self._still_coordinator(loaded)):
                yield Send(src, gm.SyncGroupResponse(msg.request_id, gm.NOT_COORDINATOR))
                return
            share = tuple(sorted(p for p, m in g.assignment if m == msg.member))
            yield Send(src, gm.SyncGroupResponse(msg.request_id, gm.NONE, g.generation, share))
            return
        loaded.syncs.setdefault(msg.group, {})[msg.member] = (src, msg.request_id)
        if msg.member != g.leader:
            return  # a follower waits for the leader's assignment
        assignment = tuple(sorted(msg.assignment))
        if not self._valid_assignment(g, assignment):
            yield from self._answer_syncs(loaded, msg.group, gm.INVALID_ASSIGNMENT)
            return
        if not (yield from self._write(loaded, synced(g, assignment))):
            yield from self._answer_syncs(loaded, msg.group, gm.COORDINATOR_NOT_AVAILABLE)
            return
        yield Observe(SyncAssignment(msg.group, msg.member, g.generation, assignment))
        for member, (dst, request_id) in sorted(loaded.syncs.pop(msg.group, {}).items()):
            share = tuple(sorted(p for p, m in assignment if m == member))
            yield Send(dst, gm.SyncGroupResponse(request_id, gm.NONE, g.generation, share))

    def _valid_assignment(self, g: GroupRecord, assignment: tuple[tuple[int, str], ...]) -> bool:
        partitions = [p for p, _ in assignment]
        return (
            len(set(partitions)) == len(partitions)
            and all(self._user_partition(p) for p in partitions)
            and {m for _, m in assignment} <= g.members
        )

    def _user_partition(self, p: int) -> bool:
        """A configured partition, or one of a topic created at runtime that this broker knows."""
        if 0 <= p < self.config.partitions:
            return True
        created_from = self.config.partitions + (
            self.config.offsets_partitions if self.config.groups else 0
        )
        return p >= created_from and p in self.host.metadata

    def _on_heartbeat(self, src: str, msg: gm.Heartbeat, now_ms: int) -> Handler:
        loaded, error = self._serving(msg.group)
        if loaded is not None:
            g = loaded.groups[msg.group]
            error = self._member_error(g, msg.member, msg.generation)
            if msg.member in g.members:
                loaded.sessions[(msg.group, msg.member)] = now_ms
            if error == gm.NONE and not (yield from self._still_coordinator(loaded)):
                error = gm.NOT_COORDINATOR
        yield Send(src, gm.HeartbeatResponse(msg.request_id, error))

    def _on_leave(self, src: str, msg: gm.LeaveGroup, now_ms: int) -> Handler:
        loaded, error = self._serving(msg.group)
        if loaded is None:
            yield Send(src, gm.LeaveGroupResponse(msg.request_id, error))
            return
        loaded.leaves.append((msg.group, msg.member, src, msg.request_id))
        yield from self._run_leaves(loaded, now_ms)

    def _run_leaves(self, loaded: Loaded, now_ms: int) -> Handler:
        waiting, loaded.leaves = loaded.leaves, []
        for group, member, src, request_id in waiting:
            if loaded.busy(group):
                loaded.leaves.append((group, member, src, request_id))  # after the commits land
                continue
            g = loaded.groups[group]
            if member not in g.members:
                yield Send(src, gm.LeaveGroupResponse(request_id, gm.UNKNOWN_MEMBER_ID))
                continue
            after = dropped(g, member)
            if not bugs.enabled(self.config, bugs.OWNERSHIP_NEVER_REVOKED):
                after = after.with_told(
                    member, replace(g.told_to(member) or MemberTold(), owned=frozenset())
                )
            if not (yield from self._write(loaded, after)):
                yield Send(src, gm.LeaveGroupResponse(request_id, gm.COORDINATOR_NOT_AVAILABLE))
                continue
            yield Observe(LeaveGroup(group, member))
            yield Send(src, gm.LeaveGroupResponse(request_id, gm.NONE))
            yield from self._after_drop(loaded, g, member, now_ms)

    def _after_drop(self, loaded: Loaded, before: GroupRecord, member: str, now_ms: int) -> Handler:
        group = before.group
        loaded.sessions.pop((group, member), None)
        pending = loaded.joins.get(group, {}).pop(member, None)
        if pending is not None:
            yield Send(pending[0], gm.JoinGroupResponse(pending[1], gm.UNKNOWN_MEMBER_ID))
        yield from self._answer_syncs(loaded, group, gm.REBALANCE_IN_PROGRESS)
        g = loaded.groups[group]
        if g.phase == PREPARING and before.phase != PREPARING:
            loaded.deadlines[group] = now_ms + self.config.rebalance_timeout_ms
        if g.phase == PREPARING and g.joined and g.joined == g.members:
            yield from self._complete(loaded, group)

    # -- commits --------------------------------------------------------------------------------

    def _commit_error(self, g: GroupRecord, msg: gm.OffsetCommit) -> str:
        if bugs.enabled(self.config, bugs.UNFENCED_OFFSET_COMMIT):
            return gm.NONE  # the seeded bug: no check of member, generation, phase or owner
        if msg.generation < g.generation and bugs.enabled(self.config, bugs.ZOMBIE_COMMIT):
            return gm.NONE  # the seeded bug: an older generation's commit is taken as it is
        simple = (msg.member, msg.generation) == (SIMPLE_MEMBER, SIMPLE_GENERATION)
        if simple and g.phase == EMPTY:
            return gm.NONE  # a consumer that assigns its partitions itself, to an empty group
        error = self._member_error(g, msg.member, msg.generation)
        if error == gm.NONE and g.phase != STABLE:
            return gm.REBALANCE_IN_PROGRESS
        if error == gm.NONE and any(g.owner(p) != msg.member for p, _ in msg.offsets):
            return gm.ILLEGAL_GENERATION
        return error

    def _on_commit(self, src: str, msg: gm.OffsetCommit, now_ms: int) -> Handler:
        loaded, error = self._serving(msg.group)
        if loaded is not None:
            g = loaded.groups[msg.group]
            error = self._commit_error(g, msg)
            if msg.member in g.members:
                loaded.sessions[(msg.group, msg.member)] = now_ms
        if loaded is not None and error in (gm.ILLEGAL_GENERATION, gm.UNKNOWN_MEMBER_ID):
            for partition, offset in msg.offsets:
                stale = CommitOffset(msg.group, msg.member, msg.generation, partition, offset)
                yield Observe(Refused(stale, error))
        if loaded is None or error != gm.NONE or not msg.offsets:
            yield Send(src, gm.OffsetCommitResponse(msg.request_id, error))
            return
        r = self.host.replicas[loaded.partition]
        unreplicated = bugs.enabled(self.config, bugs.COMMIT_BEFORE_REPLICATION)
        if len(r.isr) < self.config.min_insync and not unreplicated:
            yield Send(src, gm.OffsetCommitResponse(msg.request_id, gm.COORDINATOR_NOT_AVAILABLE))
            return
        if bugs.enabled(self.config, bugs.OFFSETS_IN_MEMORY):
            yield from self._commit_in_memory(loaded, src, msg)
            return
        for index, (partition, offset) in enumerate(msg.offsets):
            record_id = self._record_id()
            record = OffsetRecord(
                record_id,
                r.epoch,
                -1,
                0,
                now_ms,
                group=msg.group,
                member=msg.member,
                generation=msg.generation,
                partition=partition,
                offset=offset,
            )
            log_offset = r.log.append(record)
            r.next_offset = r.log.leo
            yield Observe(LeaderWrite(r.partition, self.host.index, record_id, -1))
            last = index == len(msg.offsets) - 1
            loaded.pending.append(
                PendingCommit(log_offset, record, (src, msg.request_id) if last else None)
            )
        if unreplicated:
            # The seeded bug: the commit takes effect on the leader's append, replicated or not.
            yield from self._apply_pending(loaded, len(loaded.pending))
        yield from self.host.records_appended(r)

    def _commit_in_memory(self, loaded: Loaded, src: str, msg: gm.OffsetCommit) -> Handler:
        # The seeded bug: the offsets never reach the offsets topic.
        for partition, offset in msg.offsets:
            loaded.committed.setdefault(msg.group, {})[partition] = offset
            yield Observe(CommitOffset(msg.group, msg.member, msg.generation, partition, offset))
        yield Send(src, gm.OffsetCommitResponse(msg.request_id, gm.NONE))

    def on_high_watermark(self, r: ReplicaState, now_ms: int) -> Handler:
        """Commits whose records the high watermark passed take effect, in log order."""
        loaded = self.loaded.get(r.partition)
        if loaded is None or not self._partition_ready(r, loaded):
            return
        ready = sum(1 for c in loaded.pending if c.log_offset < r.hw)
        if ready and (yield from self._apply_pending(loaded, ready)):
            yield from self._run_leaves(loaded, now_ms)

    def _apply_pending(self, loaded: Loaded, count: int) -> Writes:
        """The first `count` pending commits take effect: the applied prefix moves past them."""
        ready = loaded.pending[:count]
        if not (yield from self._write(loaded, applied=ready[-1].log_offset + 1)):
            return False
        loaded.pending = loaded.pending[count:]
        for commit in ready:
            rec = commit.record
            loaded.committed.setdefault(rec.group, {})[rec.partition] = rec.offset
            yield Observe(
                CommitOffset(rec.group, rec.member, rec.generation, rec.partition, rec.offset)
            )
            if commit.reply_to is not None:
                yield Send(commit.reply_to[0], gm.OffsetCommitResponse(commit.reply_to[1], gm.NONE))
        return True

    def _on_offset_fetch(self, src: str, msg: gm.OffsetFetch, now_ms: int) -> Handler:
        loaded, error = self._serving(msg.group)
        if loaded is None:
            yield Send(src, gm.OffsetFetchResponse(msg.request_id, error))
            return
        known = loaded.committed.get(msg.group, {})
        offsets = tuple((p, known[p]) for p in sorted(msg.partitions) if p in known)
        yield Send(src, gm.OffsetFetchResponse(msg.request_id, gm.NONE, offsets))

    # -- timers: loads, expiries and join deadlines -------------------------------------------------

    def on_timer(self, now_ms: int) -> Handler:
        for partition, r in sorted(self.host.replicas.items()):
            if not self.is_offsets(partition) or r.leader != self.host.index:
                continue
            loaded = self.loaded.get(partition)
            if loaded is None or loaded.epoch != r.epoch:
                yield from self.on_become_leader(r, now_ms)
                continue
            yield from self._expire(loaded, now_ms)
            for group, deadline in sorted(loaded.deadlines.items()):
                g = loaded.groups[group]
                if now_ms >= deadline and g.phase == PREPARING and g.joined:
                    yield from self._complete(loaded, group)

    def _expire(self, loaded: Loaded, now_ms: int) -> Handler:
        timeout = self.config.session_timeout_ms
        for (group, member), last in sorted(loaded.sessions.items()):
            if now_ms - last <= timeout or loaded.busy(group):
                continue
            g = loaded.groups[group]
            if member not in g.members:
                loaded.sessions.pop((group, member), None)
                continue
            if not (yield from self._write(loaded, dropped(g, member))):
                return
            yield Observe(ExpireMember(group, member))
            yield from self._after_drop(loaded, g, member, now_ms)


_ROUTES = (
    route_from(gm.FindCoordinator, Coordinator._on_find),
    route_from(gm.JoinGroup, Coordinator._on_join),
    route_from(gm.SyncGroup, Coordinator._on_sync),
    route_from(gm.Heartbeat, Coordinator._on_heartbeat),
    route_from(gm.LeaveGroup, Coordinator._on_leave),
    route_from(gm.OffsetCommit, Coordinator._on_commit),
    route_from(gm.OffsetFetch, Coordinator._on_offset_fetch),
)
# The group requests. The broker passes on only what its own table lacks, and ignores what
# neither table holds (broker.IGNORED says why).
HANDLERS: dict[type, Callable[[Coordinator, str, object, int], Handler]] = dict(_ROUTES)
