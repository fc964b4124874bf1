"""What a broker keeps in memory for one replica it hosts: role, epoch, ISR, followers, producers.

Rules of this module:
- Data only: the broker (broker.py) changes these records and the group
  coordinator (coordinator.py) reads them and appends to their logs; neither
  imports the other's module for them.
- A replica's role table: UNKNOWN (after a start, until LeaderAndIsr) ->
  LEADER | TRUNCATING; TRUNCATING -> FOLLOWING (after OffsetsForLeaderEpoch);
  any role -> LEADER | TRUNCATING on a newer leader epoch.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import Enum

from kafka_verify.impl import messages as m
from kafka_verify.impl.log import PartitionLog


class Role(Enum):
    UNKNOWN = "unknown"
    LEADER = "leader"
    TRUNCATING = "truncating"
    FOLLOWING = "following"


UNKNOWN_OFFSET = -1


@dataclass(slots=True)
class FollowerProgress:
    fetch_offset: int = UNKNOWN_OFFSET
    last_fetch_ms: int = -1
    last_caught_up_ms: int = 0


@dataclass(slots=True)
class PendingAck:
    offset: int
    client: str
    request_id: int


@dataclass(slots=True)
class ProducerEntry:
    last_seq: int
    offsets: dict[int, int] = field(default_factory=dict)  # seq -> offset answered


@dataclass(slots=True)
class ReplicaState:
    partition: int
    log: PartitionLog
    hw: int
    epoch: int = -1
    role: Role = Role.UNKNOWN
    leader: int | None = None
    isr: frozenset[int] = frozenset()
    zk_version: int = 0
    epoch_start_offset: int = 0
    next_offset: int = 0  # the offset the next append is answered with (== leo when correct)
    followers: dict[int, FollowerProgress] = field(default_factory=dict)
    producers: dict[int, ProducerEntry] = field(default_factory=dict)
    pending: list[PendingAck] = field(default_factory=list)
    outstanding: int | None = None  # request id of the fetch / epoch query in flight
    parked: list[tuple[str, m.Fetch]] = field(
        default_factory=list
    )  # follower fetches waiting for news
    outstanding_ms: int = 0
    # The log end the segment metadata recorded before a crash, until the first fetch after
    # the restart; only a buggy broker fetches from it rather than from the recovered log end.
    end_before_crash: int | None = None
