"""The model's atomic actions, as frozen dataclasses.

Each action is one atomic change at the granularity of the public TLA+
specifications of Kafka replication. The reference broker names the actions it
performs; the harness applies them with `step.step` and compares states.

Parameters carry whatever a real node would have learned from a message (the
records of a fetch response, the ISR in a LeaderAndIsr request), so an action is
checked against the acting node's *local* state, which is what the node could
actually know. Global conditions (does every ISR member hold this record?) are
the business of `properties/`, not of `step`.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_verify.model.state import Record
from kafka_verify.model.values import fast_init


class NotAllowed(Exception):
    """The action is not a step of the protocol from this state."""

    def __init__(self, action: object, reason: str) -> None:
        super().__init__(f"{action!r} is not allowed: {reason}")
        self.action = action
        self.reason = reason


@fast_init
@dataclass(frozen=True, slots=True)
class LeaderWrite:
    """A leader appends one produced record at its log end, stamped with its epoch."""

    partition: int
    broker: int
    record_id: int
    acks: int  # 0, 1 or -1 (all)


@fast_init
@dataclass(frozen=True, slots=True)
class FollowerReplicate:
    """A follower appends one fetched record at its log end."""

    partition: int
    broker: int
    record: Record


@fast_init
@dataclass(frozen=True, slots=True)
class IncHighWatermark:
    """A replica raises its high watermark (a leader from ISR progress, a follower from a fetch)."""

    partition: int
    broker: int
    hw: int


@fast_init
@dataclass(frozen=True, slots=True)
class BecomeLeader:
    """A replica learns from LeaderAndIsr that it leads `epoch` with this ISR."""

    partition: int
    broker: int
    epoch: int
    isr: frozenset[int]


@fast_init
@dataclass(frozen=True, slots=True)
class BecomeFollower:
    """A replica learns from LeaderAndIsr that it follows `leader` in `epoch`; it must truncate first."""

    partition: int
    broker: int
    epoch: int
    leader: int


@fast_init
@dataclass(frozen=True, slots=True)
class Truncate:
    """A follower cuts its log back to `offset` (after an OffsetsForLeaderEpoch exchange).

    `complete` is False when the follower did not know the epoch the leader
    answered with: it cuts to its own end of the largest earlier epoch and asks
    again (KIP-279), staying in the truncating phase.
    """

    partition: int
    broker: int
    offset: int
    complete: bool = True


@fast_init
@dataclass(frozen=True, slots=True)
class ResetLog:
    """A follower whose fetch offset fell below the leader's log start drops its log and restarts there."""

    partition: int
    broker: int
    log_start: int


@fast_init
@dataclass(frozen=True, slots=True)
class ShrinkIsr:
    """The leader removes lagging replicas from the ISR (a fenced write to the quorum)."""

    partition: int
    broker: int
    isr: frozenset[int]


@fast_init
@dataclass(frozen=True, slots=True)
class ExpandIsr:
    """The leader adds caught-up replicas back to the ISR (a fenced write to the quorum)."""

    partition: int
    broker: int
    isr: frozenset[int]


@fast_init
@dataclass(frozen=True, slots=True)
class ElectLeader:
    """The controller picks a new leader (or None: offline) and ISR, bumping the leader epoch."""

    partition: int
    leader: int | None
    isr: frozenset[int]
    controller_epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class RetentionDelete:
    """A replica deletes a prefix of its log: the log start moves up to `log_start`."""

    partition: int
    broker: int
    log_start: int


@fast_init
@dataclass(frozen=True, slots=True)
class Flush:
    """A broker makes one replica's log and high watermark checkpoint durable."""

    partition: int
    broker: int


@fast_init
@dataclass(frozen=True, slots=True)
class Crash:
    """A broker stops; every replica on it loses its unflushed records and its local view."""

    broker: int


@fast_init
@dataclass(frozen=True, slots=True)
class Restart:
    """A crashed broker starts again from what its disk kept."""

    broker: int


@fast_init
@dataclass(frozen=True, slots=True)
class ControllerFailover:
    """Another broker (or none) takes the controller lease; the controller epoch goes up."""

    controller: int | None


ReplicationAction = (
    LeaderWrite
    | FollowerReplicate
    | IncHighWatermark
    | BecomeLeader
    | BecomeFollower
    | Truncate
    | ResetLog
    | ShrinkIsr
    | ExpandIsr
    | ElectLeader
    | RetentionDelete
    | Flush
    | Crash
    | Restart
    | ControllerFailover
)

REPLICATION_ACTION_TYPES: tuple[type, ...] = (
    LeaderWrite,
    FollowerReplicate,
    IncHighWatermark,
    BecomeLeader,
    BecomeFollower,
    Truncate,
    ResetLog,
    ShrinkIsr,
    ExpandIsr,
    ElectLeader,
    RetentionDelete,
    Flush,
    Crash,
    Restart,
    ControllerFailover,
)


# -- consumer groups -------------------------------------------------------------------


def _check(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@fast_init
@dataclass(frozen=True, slots=True)
class JoinGroup:
    """`member` sends JoinGroup: it joins the pending generation (a rebalance starts if none is open)."""

    group: str
    member: str


@fast_init
@dataclass(frozen=True, slots=True)
class CompleteRebalance:
    """The coordinator closes the join phase: the joined members form the next generation, led by `leader`."""

    group: str
    leader: str


@dataclass(frozen=True, slots=True)
class SyncAssignment:
    """The leader's SyncGroup for `generation` is accepted: the group is Stable and every member learns its share."""

    group: str
    member: str
    generation: int
    assignment: tuple[tuple[int, str], ...]

    def __post_init__(self) -> None:
        # A mapping, kept sorted so that equal assignments are equal actions.
        object.__setattr__(self, "assignment", tuple(sorted(self.assignment)))
        partitions = [p for p, _ in self.assignment]
        _check(len(set(partitions)) == len(partitions), "an assignment gives each partition once")


@fast_init
@dataclass(frozen=True, slots=True)
class ExpireMember:
    """The coordinator drops `member` whose session timed out; the member is not told."""

    group: str
    member: str


@fast_init
@dataclass(frozen=True, slots=True)
class LeaveGroup:
    """`member` leaves the group on purpose; it revokes what it owns first."""

    group: str
    member: str


@dataclass(frozen=True, slots=True)
class CommitOffset:
    """`member`, in the generation it believes current, commits `offset` (next to read) for `partition`."""

    group: str
    member: str
    generation: int
    partition: int
    offset: int

    def __post_init__(self) -> None:
        _check(self.partition >= 0, f"a partition is never negative, not {self.partition}")
        _check(self.offset >= 0, f"a committed offset is never negative, not {self.offset}")


@fast_init
@dataclass(frozen=True, slots=True)
class CoordinatorFailover:
    """The group's coordinator moves: the new one reloads the group from the offsets topic."""

    group: str


@fast_init
@dataclass(frozen=True, slots=True)
class DeleteGroup:
    """An empty group is deleted with its committed offsets; it is Dead from then on."""

    group: str


GroupAction = (
    JoinGroup
    | CompleteRebalance
    | SyncAssignment
    | ExpireMember
    | LeaveGroup
    | CommitOffset
    | CoordinatorFailover
    | DeleteGroup
)

GROUP_ACTION_TYPES: tuple[type, ...] = (
    JoinGroup,
    CompleteRebalance,
    SyncAssignment,
    ExpireMember,
    LeaveGroup,
    CommitOffset,
    CoordinatorFailover,
    DeleteGroup,
)


# Every action of the model: `step` takes any of them.
Action = ReplicationAction | GroupAction

ACTION_TYPES: tuple[type, ...] = (*REPLICATION_ACTION_TYPES, *GROUP_ACTION_TYPES)
