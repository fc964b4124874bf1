"""The consumer-group protocol's messages (Kafka API names), as frozen dataclasses.

As in messages.py, each request carries a `request_id` that its answer echoes.
Offsets are "next offset to read". Error codes are Kafka's names.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import get_args

from kafka_verify.model.values import fast_init

NONE = "NONE"
NOT_COORDINATOR = "NOT_COORDINATOR"
COORDINATOR_LOAD_IN_PROGRESS = "COORDINATOR_LOAD_IN_PROGRESS"
COORDINATOR_NOT_AVAILABLE = "COORDINATOR_NOT_AVAILABLE"
ILLEGAL_GENERATION = "ILLEGAL_GENERATION"
UNKNOWN_MEMBER_ID = "UNKNOWN_MEMBER_ID"
REBALANCE_IN_PROGRESS = "REBALANCE_IN_PROGRESS"
INVALID_ASSIGNMENT = "INCONSISTENT_GROUP_PROTOCOL"

# Errors after which the request may or may not have taken effect.
UNKNOWN_OUTCOME = frozenset({NOT_COORDINATOR})


@fast_init
@dataclass(frozen=True, slots=True)
class FindCoordinator:
    request_id: int
    group: str


@fast_init
@dataclass(frozen=True, slots=True)
class FindCoordinatorResponse:
    request_id: int
    group: str
    coordinator: int | None


@fast_init
@dataclass(frozen=True, slots=True)
class JoinGroup:
    request_id: int
    group: str
    member: str


@fast_init
@dataclass(frozen=True, slots=True)
class JoinGroupResponse:
    request_id: int
    error: str
    generation: int = -1
    leader: str | None = None
    members: tuple[str, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class SyncGroup:
    request_id: int
    group: str
    member: str
    generation: int
    assignment: tuple[tuple[int, str], ...]  # only the leader's is not empty


@fast_init
@dataclass(frozen=True, slots=True)
class SyncGroupResponse:
    request_id: int
    error: str
    generation: int = -1
    partitions: tuple[int, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Heartbeat:
    request_id: int
    group: str
    member: str
    generation: int


@fast_init
@dataclass(frozen=True, slots=True)
class HeartbeatResponse:
    request_id: int
    error: str


@fast_init
@dataclass(frozen=True, slots=True)
class LeaveGroup:
    request_id: int
    group: str
    member: str


@fast_init
@dataclass(frozen=True, slots=True)
class LeaveGroupResponse:
    request_id: int
    error: str


@fast_init
@dataclass(frozen=True, slots=True)
class OffsetCommit:
    request_id: int
    group: str
    member: str
    generation: int
    offsets: tuple[tuple[int, int], ...]  # (partition, next offset)


@fast_init
@dataclass(frozen=True, slots=True)
class OffsetCommitResponse:
    request_id: int
    error: str


@fast_init
@dataclass(frozen=True, slots=True)
class OffsetFetch:
    request_id: int
    group: str
    partitions: tuple[int, ...]


@fast_init
@dataclass(frozen=True, slots=True)
class OffsetFetchResponse:
    request_id: int
    error: str
    offsets: tuple[tuple[int, int], ...] = ()  # only partitions with a committed offset


GroupRequest = (
    FindCoordinator | JoinGroup | SyncGroup | Heartbeat | LeaveGroup | OffsetCommit | OffsetFetch
)
GroupResponse = (
    FindCoordinatorResponse
    | JoinGroupResponse
    | SyncGroupResponse
    | HeartbeatResponse
    | LeaveGroupResponse
    | OffsetCommitResponse
    | OffsetFetchResponse
)
GroupMessage = GroupRequest | GroupResponse
REQUEST_TYPES: tuple[type, ...] = get_args(GroupRequest)
RESPONSE_TYPES: tuple[type, ...] = get_args(GroupResponse)
