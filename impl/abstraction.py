"""The abstraction function: reads the world's own state and returns the model state it stands for.

It is a pure reading: nothing here changes the world, and nothing is built from
model objects the brokers keep (they keep none). The quorum state and the
controller lease come from the coordination node; each replica from its broker
(when running) or from its disk (when crashed: a crashed replica has exactly
what its disk kept, with the high watermark of its last checkpoint).
The model's shape is the configured partitions: a topic created at runtime runs
the same code as they do, but its partitions are beyond the model (the world
leaves their actions out of a step, and this function leaves them out of a state).

Called after every event, so views are memoised in `world.abstraction_cache`:
- a log's records, per log generation, re-reading only what changed since the
  last reading (appends, retention and truncation keep the rest);
- a group, per group record and committed offsets;
- the committed offsets replayed from an offsets partition's log.
Once a memoised view was found equal to the model's value, the memo keeps the
model's (equal) object instead, so the next comparison is one identity test.
That never changes what a view holds: the memo is dropped as soon as what it
was read from changes.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable
from dataclasses import dataclass
from typing import TypeVar

from kafka_verify.impl.group_store import GroupRecord, replay_commits
from kafka_verify.impl.log import PartitionLog, StoredRecord
from kafka_verify.impl.replica import Role as ImplRole
from kafka_verify.impl.world import World
from kafka_verify.model.groups import GroupState, MemberView, Phase
from kafka_verify.model.state import Partition, Record, Replica, Role, State

_ROLES = {
    ImplRole.UNKNOWN: Role.UNKNOWN,
    ImplRole.LEADER: Role.LEADER,
    ImplRole.TRUNCATING: Role.TRUNCATING,
    ImplRole.FOLLOWING: Role.FOLLOWING,
}
# The same map keyed by member identity: hashing an Enum member runs Python code, and
# replicas_match looks a role up for every replica it compares.
_ROLE_BY_ID = {id(impl_role): role for impl_role, role in _ROLES.items()}


@dataclass(slots=True)
class _LogView:
    """A memo: the model records of one log at one generation, and the stored records read."""

    log: PartitionLog
    generation: int
    log_start: int
    stored: list[StoredRecord]
    records: tuple[Record, ...]


@dataclass(slots=True)
class _GroupView:
    """A memo: the model group for one group record and committed offsets (a copy)."""

    record: GroupRecord
    committed: dict[int, int]
    state: GroupState


@dataclass(frozen=True, slots=True)
class _Replayed:
    """A memo: the committed offsets an offsets partition's applied log prefix sets."""

    log: PartitionLog
    generation: int
    log_start: int
    applied: int
    committed: dict[str, dict[int, int]]


_Memo = TypeVar("_Memo", _LogView, _GroupView, _Replayed)


def _memo(world: World, key: Hashable, kind: type[_Memo]) -> _Memo | None:
    """The memo under `key`, if it is one of `kind` (the world's cache holds plain objects)."""
    found = world.abstraction_cache.get(key)
    return found if isinstance(found, kind) else None


def _as_records(stored: list[StoredRecord]) -> tuple[Record, ...]:
    return tuple([Record(r.record_id, r.epoch) for r in stored])


def _reread(view: _LogView, log: PartitionLog) -> tuple[Record, ...]:
    """The records of `log`, reusing what `view` read of the records still in place."""
    stored = log.records
    shift = log.log_start - view.log_start
    if 0 <= shift <= len(view.stored):
        kept = view.stored[shift:]
        same = min(len(kept), len(stored))
        # Stored records are frozen values: equal ones stand for equal model records.
        if stored[:same] == kept[:same]:
            return view.records[shift : shift + same] + _as_records(stored[same:])
    return _as_records(stored)


def _log_view(world: World, broker: int, partition: int, log: PartitionLog) -> _LogView:
    key = (broker, partition)
    view = _memo(world, key, _LogView)
    if view is not None and view.log is log:
        if view.generation == log.generation:
            return view
        records = _reread(view, log)
    else:
        records = _as_records(log.records)
    view = _LogView(log, log.generation, log.log_start, list(log.records), records)
    world.abstraction_cache[key] = view
    return view


def _records(world: World, broker: int, partition: int, log: PartitionLog) -> tuple[Record, ...]:
    return _log_view(world, broker, partition, log).records


def _log_matches(
    world: World, broker: int, partition: int, log: PartitionLog, expected: tuple[Record, ...]
) -> bool:
    view = _log_view(world, broker, partition, log)
    if view.records is expected:
        return True
    if view.records != expected:
        return False
    view.records = expected  # equal: keep the model's tuple, so the next test is by identity
    return True


def replica_matches(world: World, broker: int, partition: int, expected: Replica) -> bool:
    """Whether one replica is exactly `expected`, compared field by field without building a view."""
    return replicas_match(world, broker, ((partition, expected),))


def replicas_match(world: World, broker: int, expected: Iterable[tuple[int, Replica]]) -> bool:
    """Whether each (partition, replica) of `expected` is exactly broker `broker`'s replica of
    that partition; the broker is looked up once, and an unchanged log costs one identity test."""
    node = world.broker(broker)
    hosted = None if node is None else node.replicas
    disks = world.disks
    cache = world.abstraction_cache
    for partition, want in expected:
        if want.broker != broker:
            return False
        key = (broker, partition)
        log = disks[key]
        if (
            log.log_start != want.log_start
            or log.flushed != want.flushed
            or log.checkpoint_hw != want.checkpoint_hw
        ):
            return False
        if hosted is None:
            # Crashed: what its disk implies (see _local_view).
            if not (
                want.hw == log.checkpoint_hw
                and want.epoch == log.known_epoch
                and want.role is Role.UNKNOWN
                and want.leader is None
                and not want.isr
            ):
                return False
        else:
            r = hosted[partition]
            if not (
                r.hw == want.hw
                and r.epoch == want.epoch
                and _ROLE_BY_ID[id(r.role)] is want.role
                and r.leader == want.leader
                and r.isr == want.isr
            ):
                return False
        found = cache.get(key)  # _memo, inlined: this loop runs for every replica checked
        view = found if isinstance(found, _LogView) else None
        unchanged = (
            view is not None
            and view.records is want.log
            and view.log is log
            and view.generation == log.generation
        )
        if not unchanged and not _log_matches(world, broker, partition, log, want.log):
            return False
    return True


def quorum_view(world: World, partition: int) -> tuple[int | None, int, frozenset[int]]:
    """(leader, leader epoch, ISR) of one partition, as the coordination service holds them."""
    record = world.zk.partitions[partition]
    return record.leader, record.leader_epoch, record.isr


def cluster_view(world: World) -> tuple[frozenset[int], int | None, int]:
    """(running brokers, controller, controller epoch)."""
    running = frozenset(b for b in range(world.model.brokers) if world.broker(b) is not None)
    lease = world.zk.lease
    return running, lease.holder, lease.epoch


def world_matches(world: World, state: State) -> bool:
    """Whether `abstract(world) == state`, compared part by part through the memos, without
    building the abstraction: the cluster, every quorum record, every replica, every group."""
    if cluster_view(world) != (state.running, state.controller, state.controller_epoch):
        return False
    model = world.model
    if len(state.partitions) != min(model.partitions, len(world.zk.partitions)):
        return False
    hosted: dict[int, list[tuple[int, Replica]]] = {}
    for p, part in enumerate(state.partitions):
        if quorum_view(world, p) != (part.leader, part.epoch, part.isr):
            return False
        brokers = model.replicas_of(p)
        if len(part.replicas) != len(brokers):
            return False
        for broker, want in zip(brokers, part.replicas):
            hosted.setdefault(broker, []).append((p, want))
    if not all(replicas_match(world, broker, pairs) for broker, pairs in hosted.items()):
        return False
    return groups_match(world, state.groups)


def groups_match(world: World, expected: tuple[GroupState, ...]) -> bool:
    """Whether every consumer group is exactly as in `expected` (for incremental checks)."""
    store = world.group_store.groups
    if len(store) != len(expected):
        return False
    previous = ""
    for want in expected:
        record = store.get(want.group)
        # The abstraction lists groups sorted by name, so `expected` must be sorted too.
        if record is None or want.group <= previous:
            return False
        previous = want.group
        view = _group_view(world, record)
        if view.state is want:
            continue
        if view.state != want:
            return False
        view.state = want  # equal: keep the model's object, as for logs
    return True


def _replica(world: World, broker: int, partition: int) -> Replica:
    log = world.disks[(broker, partition)]
    hw, epoch, role, leader, isr = _local_view(world, broker, partition)
    return Replica(
        broker=broker,
        log=_records(world, broker, partition, log),
        log_start=log.log_start,
        hw=hw,
        flushed=log.flushed,
        checkpoint_hw=log.checkpoint_hw,
        epoch=epoch,
        role=role,
        leader=leader,
        isr=isr,
    )


def _local_view(
    world: World, broker: int, partition: int
) -> tuple[int, int, Role, int | None, frozenset[int]]:
    """(hw, epoch, role, leader, ISR) of a replica: its broker's memory, or after a crash
    what its disk implies (the checkpointed hw, and no view of leadership)."""
    node = world.broker(broker)
    if node is None:
        log = world.disks[(broker, partition)]
        return log.checkpoint_hw, log.known_epoch, Role.UNKNOWN, None, frozenset()
    r = node.replicas[partition]
    return r.hw, r.epoch, _ROLES[r.role], r.leader, r.isr


def abstract(world: World) -> State:
    """The model state the world is in."""
    model = world.model
    partitions = []
    # The model has the configured partitions; a topic created at runtime is beyond its shape.
    for p, record in enumerate(world.zk.partitions[: model.partitions]):
        replicas = tuple(_replica(world, b, p) for b in model.replicas_of(p))
        partitions.append(
            Partition(
                leader=record.leader, epoch=record.leader_epoch, isr=record.isr, replicas=replicas
            )
        )
    running = frozenset(b for b in range(model.brokers) if world.broker(b) is not None)
    lease = world.zk.lease
    return State(
        partitions=tuple(partitions),
        running=running,
        controller=lease.holder,
        controller_epoch=lease.epoch,
        groups=tuple(
            _group(world, record) for _, record in sorted(world.group_store.groups.items())
        ),
    )


def _committed(world: World, group: str) -> dict[int, int]:
    """Committed offsets: the loaded coordinator's, else what the offsets topic's applied prefix holds."""
    partition = world.group_store.partition_of[group]
    quorum = world.zk.partitions[partition]
    broker = world.broker(quorum.leader) if quorum.leader is not None else None
    if broker is not None:
        loaded = broker.coordinator.loaded.get(partition)
        if loaded is not None and loaded.epoch == quorum.leader_epoch:
            return loaded.committed.get(group, {})
    applied = world.group_store.applied.get(partition, 0)
    hosts = [b for b in world.model.replicas_of(partition) if b in quorum.isr]
    hosts += [b for b in world.model.replicas_of(partition) if b not in quorum.isr]
    for b in hosts:
        log = world.disks[(b, partition)]
        if log.leo >= applied:
            return _replayed(world, b, partition, log, applied).get(group, {})
    return {}


def _replayed(
    world: World, broker: int, partition: int, log: PartitionLog, applied: int
) -> dict[str, dict[int, int]]:
    """replay_commits of one log's applied prefix, memoised per log generation and prefix."""
    key = ("commits", broker, partition)
    memo = _memo(world, key, _Replayed)
    if (
        memo is None
        or memo.log is not log
        or memo.generation != log.generation
        or memo.log_start != log.log_start
        or memo.applied != applied
    ):
        committed = replay_commits(log.records, applied, log.log_start)
        memo = _Replayed(log, log.generation, log.log_start, applied, committed)
        world.abstraction_cache[key] = memo
    return memo.committed


def _group_view(world: World, g: GroupRecord) -> _GroupView:
    committed = _committed(world, g.group)
    key = ("group", g.group)
    view = _memo(world, key, _GroupView)
    if view is None or view.record is not g or view.committed != committed:
        state = _build_group(g, tuple(sorted(committed.items())))
        view = _GroupView(g, dict(committed), state)
        world.abstraction_cache[key] = view
    return view


def _group(world: World, g: GroupRecord) -> GroupState:
    return _group_view(world, g).state


def _build_group(g: GroupRecord, committed: tuple[tuple[int, int], ...]) -> GroupState:
    return GroupState(
        group=g.group,
        phase=Phase(g.phase),
        generation=g.generation,
        members=g.members,
        joined=g.joined,
        leader=g.leader,
        assignment=g.assignment,
        committed=committed,
        views=tuple(MemberView(m, t.generation, t.owned) for m, t in g.told),
    )
