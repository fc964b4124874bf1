"""The model's state: what a Kafka-style cluster *is*, with no messages, timers or bytes.

Rules of this module:
- Everything here is a frozen, slotted, hashable value, so states can be graph
  nodes (explicit search) and compared for equality (the refinement check).
- Offsets are absolute. A replica's log holds the records from `log_start` up to
  (not including) its log end offset `leo`.
- The quorum state (leader, leader epoch, ISR per partition, and the controller
  lease) is what the coordination service holds. Every replica also has its own
  *local* view (the epoch and role it last learned), which may be stale: that
  staleness is exactly where the historical bugs live.
- Nothing here decides what may happen next. That is `step.py`.
"""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from enum import StrEnum
from typing import NamedTuple

from kafka_verify.model.values import fast_init


class Role(StrEnum):
    """What a replica believes it is doing for its partition."""

    UNKNOWN = "unknown"  # after a (re)start, until a LeaderAndIsr arrives
    LEADER = "leader"
    TRUNCATING = "truncating"  # a follower that must reconcile its log before it fetches
    FOLLOWING = "following"  # a follower that fetches from the leader


class Record(NamedTuple):
    """One record in a log: a unique id (the payload) and the leader epoch it was written in.

    A named tuple rather than a dataclass: logs are compared record by record
    after every event of a run, and tuple equality runs in C.
    """

    id: int
    epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class Replica:
    """One replica of one partition, hosted on broker `broker`."""

    broker: int
    log: tuple[Record, ...] = ()
    log_start: int = 0
    hw: int = 0
    # Durability: records below `flushed` survive a crash, and so does the high
    # watermark checkpoint taken at the last flush.
    flushed: int = 0
    checkpoint_hw: int = 0
    epoch: int = -1
    role: Role = Role.UNKNOWN
    # The leader this replica last learned of (itself when it leads).
    leader: int | None = None
    # The ISR this replica acts on as leader (empty unless it is a leader).
    isr: frozenset[int] = frozenset()

    @property
    def leo(self) -> int:
        """Log end offset: the offset the next appended record gets."""
        return self.log_start + len(self.log)

    # The three commonest changes of a checked run (append, high watermark, flush), built
    # directly: dataclasses.replace costs several times as much, on every model step.

    def appended(self, record: Record) -> Replica:
        """This replica with `record` at the end of its log."""
        log = (*self.log, record)
        return Replica(
            self.broker, log, self.log_start, self.hw, self.flushed, self.checkpoint_hw,
            self.epoch, self.role, self.leader, self.isr,
        )  # fmt: skip

    def with_hw(self, hw: int) -> Replica:
        """This replica with high watermark `hw`."""
        return Replica(
            self.broker, self.log, self.log_start, hw, self.flushed, self.checkpoint_hw,
            self.epoch, self.role, self.leader, self.isr,
        )  # fmt: skip

    def flushed_now(self) -> Replica:
        """This replica after a flush: every record durable, the high watermark checkpointed."""
        return Replica(
            self.broker, self.log, self.log_start, self.hw, self.leo, self.hw,
            self.epoch, self.role, self.leader, self.isr,
        )  # fmt: skip

    def record_at(self, offset: int) -> Record | None:
        """The record at an absolute offset, or None if not retained or not yet written."""
        index = offset - self.log_start
        if 0 <= index < len(self.log):
            return self.log[index]
        return None

    def last_epoch(self) -> int:
        """The epoch of the last record, or -1 for an empty log."""
        return self.log[-1].epoch if self.log else -1

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """OffsetsForLeaderEpoch, as answered by this replica (KIP-279 semantics).

        Returns (epoch, end_offset): the largest epoch <= `epoch` that this log
        knows, and the offset one past its last record (or the LEO if it is the
        current epoch of the log). (-1, -1) if the log knows no such epoch.
        """
        best = -1
        for record in self.log:
            if record.epoch <= epoch:
                best = max(best, record.epoch)
        if best == -1:
            return (-1, -1)
        end = self.log_start
        for i, record in enumerate(self.log):
            if record.epoch > best:
                break
            end = self.log_start + i + 1
        return (best, end)


@fast_init
@dataclass(frozen=True, slots=True)
class Partition:
    """One partition: the quorum state the coordination service holds, and its replicas."""

    leader: int | None
    epoch: int
    isr: frozenset[int]
    replicas: tuple[Replica, ...]

    def replica(self, broker: int) -> Replica:
        for replica in self.replicas:
            if replica.broker == broker:
                return replica
        raise KeyError(f"broker {broker} hosts no replica of this partition")

    def with_replica(self, updated: Replica) -> Partition:
        # Built directly rather than with dataclasses.replace, which costs several times as
        # much, and this runs on every model step of a checked run.
        replicas = tuple(updated if r.broker == updated.broker else r for r in self.replicas)
        return Partition(self.leader, self.epoch, self.isr, replicas)


# -- consumer groups -------------------------------------------------------------------


class Phase(StrEnum):
    """The group coordinator's protocol state, named as in Kafka."""

    EMPTY = "Empty"
    PREPARING_REBALANCE = "PreparingRebalance"
    COMPLETING_REBALANCE = "CompletingRebalance"
    STABLE = "Stable"
    DEAD = "Dead"


@fast_init
@dataclass(frozen=True, slots=True)
class MemberView:
    """What one consumer believes: the generation it last synced in (-1: none) and what it owns."""

    member: str
    generation: int = -1
    owned: frozenset[int] = frozenset()


@fast_init
@dataclass(frozen=True, slots=True)
class GroupState:
    """One consumer group, as its coordinator holds it, plus its consumers' own views."""

    group: str
    phase: Phase = Phase.EMPTY
    generation: int = 0
    # The members of the group: those of the current generation, plus any that
    # joined since. `joined` are those that have joined the pending generation.
    members: frozenset[str] = frozenset()
    joined: frozenset[str] = frozenset()
    leader: str | None = None
    # The current generation's assignment, sorted (partition, member) pairs.
    # Empty whenever the group is not Stable: the coordinator serves none then.
    assignment: tuple[tuple[int, str], ...] = ()
    # Committed offsets, sorted (partition, offset) pairs, as the offsets topic holds them.
    committed: tuple[tuple[int, int], ...] = ()
    views: tuple[MemberView, ...] = ()

    def owner(self, partition: int) -> str | None:
        """The member the current assignment gives `partition` to, if any."""
        for p, member in self.assignment:
            if p == partition:
                return member
        return None

    def assigned_to(self, member: str) -> frozenset[int]:
        return frozenset(p for p, m in self.assignment if m == member)

    def committed_offset(self, partition: int) -> int | None:
        for p, offset in self.committed:
            if p == partition:
                return offset
        return None

    def view(self, member: str) -> MemberView | None:
        for view in self.views:
            if view.member == member:
                return view
        return None

    def with_view(self, updated: MemberView) -> GroupState:
        others = [v for v in self.views if v.member != updated.member]
        views = tuple(sorted((*others, updated), key=lambda v: v.member))
        return replace(self, views=views)

    def with_committed(self, partition: int, offset: int) -> GroupState:
        others = [(p, o) for p, o in self.committed if p != partition]
        return replace(self, committed=tuple(sorted((*others, (partition, offset)))))


@fast_init
@dataclass(frozen=True, slots=True)
class State:
    """The whole cluster."""

    partitions: tuple[Partition, ...]
    running: frozenset[int]
    controller: int | None
    controller_epoch: int
    groups: tuple[GroupState, ...] = field(default=())

    def with_partition(self, index: int, updated: Partition) -> State:
        parts = list(self.partitions)
        parts[index] = updated
        # Built directly, as Partition.with_replica is.
        return State(
            tuple(parts), self.running, self.controller, self.controller_epoch, self.groups
        )


@dataclass(frozen=True, slots=True)
class Config:
    """The cluster's shape and the protocol variants (seeded bugs) switched on."""

    brokers: int = 3
    partitions: int = 1
    replication: int = 3
    min_insync: int = 2
    bugs: frozenset[str] = frozenset()
    # Bounds, used only by the exhaustive engines (explicit search and Z3).
    max_log: int = 2
    max_epoch: int = 3
    # Exhaustive engines only: when `durable`, every append and high-watermark
    # change is durable at once (as in the public TLA+ specs), so no Flush
    # actions are explored. The reference broker runs with durable=False.
    durable: bool = False
    explore_crashes: bool = True
    explore_retention: bool = False
    explore_controller: bool = False
    # Consumer groups (model/groups.py): how many groups the state holds, and the
    # bounds the exhaustive engines explore them within when `explore_groups`.
    groups: int = 0
    members: int = 2
    group_partitions: int = 2
    group_generations: int = 3
    group_max_offset: int = 1
    explore_groups: bool = False
    # Producers deduplicate retries (Kafka's enable.idempotence). Without it a retried
    # record may be stored twice, and `no-duplicate-record` does not apply.
    idempotent: bool = True

    def __post_init__(self) -> None:
        if self.brokers < 1:
            raise ValueError("a cluster needs at least one broker")
        if self.partitions < 1:
            raise ValueError("a topic needs at least one partition")
        if not 1 <= self.replication <= self.brokers:
            raise ValueError(
                f"replication factor {self.replication} must be between 1 and the "
                f"number of brokers ({self.brokers})"
            )
        if not 1 <= self.min_insync <= self.replication:
            raise ValueError(
                f"min.insync.replicas {self.min_insync} must be between 1 and the "
                f"replication factor ({self.replication})"
            )
        if self.groups < 0 or self.members < 1 or self.group_partitions < 1:
            raise ValueError("groups must be >= 0, members and group partitions >= 1")

    def replicas_of(self, partition: int) -> tuple[int, ...]:
        """The assignment: partition p lives on brokers p, p+1, ... (mod brokers)."""
        return tuple((partition + i) % self.brokers for i in range(self.replication))


def initial_state(config: Config) -> State:
    """Every partition led by its first replica in epoch 0, full ISR, empty logs, all running."""
    partitions = []
    for p in range(config.partitions):
        brokers = config.replicas_of(p)
        leader = brokers[0]
        isr = frozenset(brokers)
        replicas = tuple(
            Replica(
                broker=b,
                epoch=0,
                role=Role.LEADER if b == leader else Role.FOLLOWING,
                leader=leader,
                isr=isr if b == leader else frozenset(),
            )
            for b in brokers
        )
        partitions.append(Partition(leader=leader, epoch=0, isr=isr, replicas=replicas))
    return State(
        partitions=tuple(partitions),
        running=frozenset(range(config.brokers)),
        controller=0,
        controller_epoch=1,
        groups=initial_groups(config),
    )


def initial_groups(config: Config) -> tuple[GroupState, ...]:
    """`config.groups` empty groups named g0, g1, ..."""
    return tuple(GroupState(f"g{i}") for i in range(config.groups))
