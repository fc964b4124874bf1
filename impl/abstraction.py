"""The abstraction function: reads the world's own state and returns the model state it stands for.

It is a pure reading: nothing here changes the world, and nothing is built from
model objects the brokers keep (they keep none). The quorum state and the
controller lease come from the coordination node; each replica from its broker
(when running) or from its disk (when crashed: a crashed replica has exactly
what its disk kept, with the high watermark of its last checkpoint).

Called after every event, so the record tuples are cached per log and rebuilt
only when the log's generation moves.
"""

from __future__ import annotations

from impl.broker import Role as ImplRole
from impl.group_store import GroupRecord, replay_commits
from impl.log import PartitionLog
from impl.world import World
from model.groups import GroupState, MemberView, Phase
from model.state import Partition, Record, Replica, Role, State

_ROLES = {
    ImplRole.UNKNOWN: Role.UNKNOWN,
    ImplRole.LEADER: Role.LEADER,
    ImplRole.TRUNCATING: Role.TRUNCATING,
    ImplRole.FOLLOWING: Role.FOLLOWING,
}


def _records(world: World, broker: int, partition: int, log: PartitionLog) -> tuple[Record, ...]:
    key = (broker, partition)
    cached = world.abstraction_cache.get(key)
    if cached is not None and cached[0] is log and cached[1] == log.generation:
        return cached[2]
    records = tuple(Record(r.record_id, r.epoch) for r in log.records)
    world.abstraction_cache[key] = (log, log.generation, records)
    return records


def replica_view(world: World, broker: int, partition: int) -> Replica:
    """One replica as the model sees it (for incremental refinement checks)."""
    return _replica(world, broker, partition)


def replica_matches(world: World, broker: int, partition: int, expected: Replica) -> bool:
    """Whether one replica is exactly `expected`, compared field by field without building a view."""
    log = world.disks[(broker, partition)]
    hw, epoch, role, leader, isr = _local_view(world, broker, partition)
    return (
        hw == expected.hw
        and epoch == expected.epoch
        and role is expected.role
        and leader == expected.leader
        and log.log_start == expected.log_start
        and log.flushed == expected.flushed
        and log.checkpoint_hw == expected.checkpoint_hw
        and isr == expected.isr
        and _records(world, broker, partition, log) == expected.log
    )


def quorum_view(world: World, partition: int) -> tuple[int | None, int, frozenset[int]]:
    """(leader, leader epoch, ISR) of one partition, as the coordination service holds them."""
    record = world.zk.partitions[partition]
    return record.leader, record.leader_epoch, record.isr


def cluster_view(world: World) -> tuple[frozenset[int], int | None, int]:
    """(running brokers, controller, controller epoch)."""
    running = frozenset(b for b in range(world.model.brokers) if world.broker(b) is not None)
    lease = world.zk.lease
    return running, lease.holder, lease.epoch


def groups_view(world: World) -> tuple[GroupState, ...]:
    """Every consumer group, as the coordinators and consumers hold it."""
    return tuple(_group(world, record) for _, record in sorted(world.group_store.groups.items()))


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
    for p, record in enumerate(world.zk.partitions):
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
            return replay_commits(log.records, applied, log.log_start).get(group, {})
    return {}


def _group(world: World, g: GroupRecord) -> GroupState:
    return GroupState(
        group=g.group,
        phase=Phase(g.phase),
        generation=g.generation,
        members=g.members,
        joined=g.joined,
        leader=g.leader,
        assignment=g.assignment,
        committed=tuple(sorted(_committed(world, g.group).items())),
        views=tuple(MemberView(m, t.generation, t.owned) for m, t in g.told),
    )
