"""What a node asks the world to do: effects are data, the world performs them.

A node's handler is a generator of effects. The world performs each effect as
it is yielded and sends back the result: `None` for most, the coordination
service's reply for a `ZkCall`, the partition's log for an `OpenLog`. That makes a call to the coordination service a
synchronous RPC inside the same event, as with Kafka's ZooKeeper client, so a
fenced quorum write and the caller's local update happen atomically.
"""

from __future__ import annotations

from collections.abc import Generator
from dataclasses import dataclass

from kafka_verify.impl.group_store import GroupCall, GroupSnapshot
from kafka_verify.impl.log import PartitionLog
from kafka_verify.impl.messages import Message
from kafka_verify.impl.zk import ZkReply, ZkRequest
from kafka_verify.model.actions import Action
from kafka_verify.model.values import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class ClientOp:
    """One client history entry, Jepsen style (see DESIGN.md "Client history")."""

    process: str
    type: str  # invoke | ok | fail | info
    f: str  # send | poll | ...
    value: object
    time_ms: int


@fast_init
@dataclass(frozen=True, slots=True)
class Send:
    dst: str
    message: Message


@fast_init
@dataclass(frozen=True, slots=True)
class SetTimer:
    """Fire timer `name` on this node after `delay_ms`; setting a name again replaces it."""

    name: str
    delay_ms: int


@fast_init
@dataclass(frozen=True, slots=True)
class Flush:
    """Make this broker's log of `partition` durable, checkpointing high watermark `hw`."""

    partition: int
    hw: int


@fast_init
@dataclass(frozen=True, slots=True)
class Observe:
    """Name a model action this node just performed, or record a client history entry."""

    item: Action | ClientOp | Refused


@fast_init
@dataclass(frozen=True, slots=True)
class Refused:
    """A model action this node was asked to perform and refused (for coverage: the
    interesting refusals, such as a commit from a stale generation, are reached at all)."""

    action: Action
    reason: str


@fast_init
@dataclass(frozen=True, slots=True)
class ZkCall:
    """A synchronous call to the coordination service; the reply is sent back into the handler."""

    request: ZkRequest | GroupCall


@fast_init
@dataclass(frozen=True, slots=True)
class OpenLog:
    """Hand this broker its log of `partition`, a partition created after it started: an empty
    log the first time, and the same log (as its disk kept it) ever after."""

    partition: int


# What the world sends back into a handler: a ZkCall's reply, an OpenLog's log, None after
# any other effect.
Reply = ZkReply | GroupSnapshot | PartitionLog | None
Effect = Send | SetTimer | Flush | Observe | ZkCall | OpenLog
Handler = Generator[Effect, Reply, None]
