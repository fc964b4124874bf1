"""Group metadata as the coordination service holds it, and the offsets topic's record format.

Rules of this module:
- A group's membership metadata (phase, generation, members, the pending join
  set, leader, assignment, and what each member was told it owns) is one
  versioned record per group, written only by the coordinator that leads the
  group's offsets partition, fenced by that partition's leader epoch. Every
  write happens in the same event as the group action it stands for, so a
  coordinator that moves never loses or invents a membership change.
- Committed offsets are not here: they are records of the replicated offsets
  topic. The store only keeps, per offsets partition, `applied`: the log prefix
  whose commit records have taken effect. A commit record takes effect when the
  partition's high watermark passes it, never earlier, so every applied record
  is in every later leader's log.
- Nothing here knows the model: the records are the coordinator's own data.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace

from kafka_verify.impl.log import StoredRecord
from kafka_verify.impl.zk import FENCED, PartitionRecord, ZkError

EMPTY = "Empty"
PREPARING = "PreparingRebalance"
COMPLETING = "CompletingRebalance"
STABLE = "Stable"


@dataclass(frozen=True, slots=True)
class MemberTold:
    """What the coordinator last told a member: its generation and the partitions it owns."""

    generation: int = -1
    owned: frozenset[int] = frozenset()


@dataclass(frozen=True, slots=True)
class GroupRecord:
    """One group's metadata, as the coordination service stores it."""

    group: str
    phase: str = EMPTY
    generation: int = 0
    members: frozenset[str] = frozenset()
    joined: frozenset[str] = frozenset()
    leader: str | None = None
    assignment: tuple[tuple[int, str], ...] = ()  # sorted (partition, member)
    told: tuple[tuple[str, MemberTold], ...] = ()  # sorted by member

    def told_to(self, member: str) -> MemberTold | None:
        return dict(self.told).get(member)

    def with_told(self, member: str, told: MemberTold) -> GroupRecord:
        entries = dict(self.told)
        entries[member] = told
        return replace(self, told=tuple(sorted(entries.items())))

    def owner(self, partition: int) -> str | None:
        return dict(self.assignment).get(partition)


@dataclass(frozen=True, slots=True)
class OffsetRecord(StoredRecord):
    """A commit in the offsets topic: `member` of `generation` read `group`'s `partition` up to `offset`."""

    group: str = ""
    member: str = ""
    generation: int = -1
    partition: int = -1
    offset: int = -1


# -- calls (made with ZkCall; the world routes them here) ------------------------------------


@dataclass(frozen=True, slots=True)
class GroupRead:
    """Read every group of one offsets partition, and the partition's applied prefix."""

    partition: int


@dataclass(frozen=True, slots=True)
class GroupWrite:
    """Replace group records and/or move `applied`, as the leader of `partition` in `leader_epoch`."""

    partition: int
    leader: int
    leader_epoch: int
    groups: tuple[GroupRecord, ...] = ()
    applied: int | None = None


@dataclass(frozen=True, slots=True)
class GroupSnapshot:
    groups: tuple[GroupRecord, ...]
    applied: int


GROUP_CALLS = (GroupRead, GroupWrite)
GroupCall = GroupRead | GroupWrite


@dataclass
class GroupStore:
    """The group part of the coordination service: durable, linearizable, fenced by leader epoch."""

    partition_of: dict[str, int]  # group -> offsets partition (model index)
    groups: dict[str, GroupRecord] = field(default_factory=dict)
    applied: dict[int, int] = field(default_factory=dict)

    @classmethod
    def initial(cls, partition_of: Mapping[str, int]) -> GroupStore:
        store = cls(dict(partition_of))
        store.groups = {g: GroupRecord(g) for g in sorted(partition_of)}
        store.applied = dict.fromkeys(sorted(set(partition_of.values())), 0)
        return store

    def call(
        self, request: GroupCall, partitions: Sequence[PartitionRecord]
    ) -> GroupSnapshot | ZkError:
        if isinstance(request, GroupRead):
            mine = tuple(
                g for name, g in self.groups.items() if self.partition_of[name] == request.partition
            )
            return GroupSnapshot(mine, self.applied.get(request.partition, 0))
        if isinstance(request, GroupWrite):
            record = partitions[request.partition]
            if record.leader != request.leader or record.leader_epoch != request.leader_epoch:
                return ZkError(FENCED)
            for g in request.groups:
                self.groups[g.group] = g
                # A group first written here (a cluster that serves any group name).
                self.partition_of.setdefault(g.group, request.partition)
            if request.applied is not None:
                self.applied[request.partition] = request.applied
            return GroupSnapshot(request.groups, self.applied.get(request.partition, 0))
        raise TypeError(f"the group store has no call {type(request).__name__}")


def replay_commits(
    records: Sequence[StoredRecord], upto: int, log_start: int = 0
) -> dict[str, dict[int, int]]:
    """The committed offsets that the offsets-topic records below `upto` set, per group."""
    committed: dict[str, dict[int, int]] = {}
    for index, record in enumerate(records):
        if log_start + index >= upto:
            break
        if isinstance(record, OffsetRecord):
            committed.setdefault(record.group, {})[record.partition] = record.offset
    return committed
