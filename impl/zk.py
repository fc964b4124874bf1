"""The coordination service ("zk"): linearizable, versioned records, sessions on the virtual clock.

It holds broker registrations (ephemeral: alive while their session is
heartbeated), the controller lease with the controller epoch (held by a session), the topics
(each a name, its first partition and its replica assignment), and one record per partition
(leader, leader epoch, ISR, version). Every write is a compare-and-set; a topic is created at
most once, by name. Calls are synchronous (see effects.ZkCall); the world answers
`ZkError(CONNECTION_LOSS)` itself when the caller cannot reach this node.

Sessions expire lazily: a session is alive while its last heartbeat is at most
`session_timeout_ms` old. The lease record is never deleted by an expiry; a
broker takes it over with a compare-and-set once its holder is gone.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, replace

from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.dispatch import route
from kafka_verify.model.values import fast_init

CONNECTION_LOSS = "CONNECTION_LOSS"
SESSION_EXPIRED = "SESSION_EXPIRED"
BAD_VERSION = "BAD_VERSION"
FENCED = "FENCED"
LEASE_HELD = "LEASE_HELD"
TOPIC_EXISTS = "TOPIC_ALREADY_EXISTS"
INVALID_REPLICATION_FACTOR = "INVALID_REPLICATION_FACTOR"
INVALID_PARTITIONS = "INVALID_PARTITIONS"
OFFSETS_TOPIC = "__consumer_offsets"
_NEVER_MS = 2**62  # a time no run's virtual clock reaches


@fast_init
@dataclass(frozen=True, slots=True)
class PartitionRecord:
    leader: int | None
    leader_epoch: int
    isr: frozenset[int]
    version: int
    # The broker epoch of the leader when elected: a new epoch means it bounced.
    leader_broker_epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class TopicRecord:
    """A topic: its partitions are the cluster's partitions first_partition, first_partition + 1,
    ..., one per entry of `replicas`, which names each one's replicas, preferred leader first."""

    name: str
    first_partition: int
    replicas: tuple[tuple[int, ...], ...]

    @property
    def partitions(self) -> int:
        return len(self.replicas)

    @property
    def internal(self) -> bool:
        return self.name == OFFSETS_TOPIC


@fast_init
@dataclass(frozen=True, slots=True)
class Lease:
    holder: int | None
    epoch: int
    version: int
    session: int  # the holder's session when it took the lease: a restarted holder does not keep it


# -- requests and replies ---------------------------------------------------------------


@fast_init
@dataclass(frozen=True, slots=True)
class ZkRegister:
    broker: int


@fast_init
@dataclass(frozen=True, slots=True)
class ZkHeartbeat:
    session: int


@fast_init
@dataclass(frozen=True, slots=True)
class ZkRead:
    """Read every registration (alive ones), the lease and every partition record."""


@fast_init
@dataclass(frozen=True, slots=True)
class ZkTakeLease:
    broker: int
    session: int
    expected_version: int


@fast_init
@dataclass(frozen=True, slots=True)
class ZkElect:
    partition: int
    controller_epoch: int
    expected_version: int
    leader: int | None
    isr: frozenset[int]
    leader_broker_epoch: int
    fenced: bool = True  # conditioned on the controller epoch


@fast_init
@dataclass(frozen=True, slots=True)
class ZkUpdateIsr:
    partition: int
    leader: int
    leader_epoch: int
    expected_version: int
    isr: frozenset[int]
    fenced: bool = True  # conditioned on leader, leader epoch and version


@fast_init
@dataclass(frozen=True, slots=True)
class ZkCreateTopic:
    """Create topic `name`: its partitions are numbered after every existing one, and its
    replicas assigned round-robin over the cluster's brokers, as Kafka's default assignment."""

    name: str
    partitions: int
    replication: int


@fast_init
@dataclass(frozen=True, slots=True)
class ZkRegistered:
    session: int
    broker_epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class ZkOk:
    pass


@fast_init
@dataclass(frozen=True, slots=True)
class ZkCluster:
    registrations: dict[int, int]  # broker -> broker epoch, alive sessions only
    lease: Lease
    lease_alive: bool  # the session that took the lease is still alive
    partitions: tuple[PartitionRecord, ...]
    topics: tuple[TopicRecord, ...]
    replicas: tuple[tuple[int, ...], ...]  # partition -> its replicas, from the topics


@fast_init
@dataclass(frozen=True, slots=True)
class ZkTopicCreated:
    topic: TopicRecord


@fast_init
@dataclass(frozen=True, slots=True)
class ZkLeaseTaken:
    epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class ZkWritten:
    record: PartitionRecord


@fast_init
@dataclass(frozen=True, slots=True)
class ZkError:
    code: str


ZkRequest = ZkRegister | ZkHeartbeat | ZkRead | ZkTakeLease | ZkElect | ZkUpdateIsr | ZkCreateTopic
ZkReply = ZkRegistered | ZkOk | ZkCluster | ZkLeaseTaken | ZkWritten | ZkTopicCreated | ZkError


def replica_table(topics: tuple[TopicRecord, ...]) -> tuple[tuple[int, ...], ...]:
    """Partition -> its replicas, for topics that number their partitions 0, 1, ... between them."""
    table: dict[int, tuple[int, ...]] = {}
    for topic in topics:
        for i, replicas in enumerate(topic.replicas):
            table[topic.first_partition + i] = replicas
    if sorted(table) != list(range(len(table))):
        raise ValueError("the topics' partitions are not numbered 0, 1, ... without gaps")
    return tuple(table[p] for p in range(len(table)))


@dataclass(slots=True)
class _Session:
    broker: int
    last_heartbeat_ms: int


class Coordination:
    """The coordination node's state; it survives its own crash (it stands for a durable ensemble)."""

    def __init__(
        self,
        config: ClusterConfig,
        initial: tuple[PartitionRecord, ...],
        lease: Lease,
        topics: tuple[TopicRecord, ...],
    ) -> None:
        self.config = config
        self.sessions: dict[int, _Session] = {}
        self.registrations: dict[int, tuple[int, int]] = {}  # broker -> (session, broker epoch)
        self.lease = lease
        self.partitions = list(initial)
        self.topics = topics
        self.replicas = replica_table(topics)
        if len(self.replicas) != len(self.partitions):
            raise ValueError(
                f"the topics name {len(self.replicas)} partitions, the records {len(self.partitions)}"
            )
        self._next_session = 1
        self._next_broker_epoch = 1
        # Every call but a read (or a heartbeat that only keeps a session alive) counts here, and
        # so does `restarted`: a read reuses the last snapshot while the count is unchanged.
        self._changes = 0
        # (changes, read at, valid before, sessions, snapshot) of the last read.
        self._snapshot: tuple[int, int, int, dict[int, _Session], ZkCluster] | None = None

    def alive(self, broker: int | None, now_ms: int) -> bool:
        if broker is None or broker not in self.registrations:
            return False
        return self.session_alive(self.registrations[broker][0], now_ms)

    def session_alive(self, session_id: int, now_ms: int) -> bool:
        session = self.sessions.get(session_id)
        if session is None or now_ms - session.last_heartbeat_ms > self.config.session_timeout_ms:
            return False
        return self.registrations.get(session.broker, (None,))[0] == session_id

    def restarted(self, now_ms: int) -> None:
        """Back from an outage: session clocks start again, as sessions survive a ZooKeeper failover."""
        for session in self.sessions.values():
            session.last_heartbeat_ms = now_ms
        self._changes += 1

    def call(self, request: ZkRequest, now_ms: int) -> ZkReply:
        kind = type(request)
        handler = _CALLS.get(kind)
        if handler is None:
            raise TypeError(f"the coordination service has no call {kind.__name__}")
        reply = handler(self, request, now_ms)
        # A heartbeat that keeps its session alive only moves an expiry later: a snapshot read
        # before it stays true until the expiry it was read with.
        if kind is not ZkRead and not (kind is ZkHeartbeat and type(reply) is ZkOk):
            self._changes += 1
        return reply

    def _register(self, r: ZkRegister, now_ms: int) -> ZkRegistered:
        old = self.registrations.get(r.broker)
        if old is not None:
            self.sessions.pop(old[0], None)
        session, epoch = self._next_session, self._next_broker_epoch
        self._next_session += 1
        self._next_broker_epoch += 1
        self.sessions[session] = _Session(r.broker, now_ms)
        self.registrations[r.broker] = (session, epoch)
        return ZkRegistered(session, epoch)

    def _heartbeat(self, r: ZkHeartbeat, now_ms: int) -> ZkOk | ZkError:
        session = self.sessions.get(r.session)
        if (
            session is None
            or not self.alive(session.broker, now_ms)
            or self.registrations[session.broker][0] != r.session
        ):
            self._expire(r.session)
            return ZkError(SESSION_EXPIRED)
        session.last_heartbeat_ms = now_ms
        return ZkOk()

    def _expire(self, session_id: int) -> None:
        session = self.sessions.pop(session_id, None)
        if session is not None and self.registrations.get(session.broker, (None,))[0] == session_id:
            del self.registrations[session.broker]

    def _read(self, r: ZkRead, now_ms: int) -> ZkCluster:
        # Every controller timer of every broker reads: while nothing changed and no session
        # the last read found alive has expired since, that read's snapshot is still the answer.
        last = self._snapshot
        if (
            last is not None
            and last[0] == self._changes
            and last[1] <= now_ms < last[2]
            and last[3] is self.sessions
        ):
            return last[4]
        alive: dict[int, int] = {}
        valid_before = _NEVER_MS
        timeout = self.config.session_timeout_ms
        for broker, (session_id, broker_epoch) in self.registrations.items():
            if self.session_alive(session_id, now_ms):
                alive[broker] = broker_epoch
                heartbeat = self.sessions[session_id].last_heartbeat_ms
                valid_before = min(valid_before, heartbeat + timeout + 1)
        lease_alive = self.session_alive(self.lease.session, now_ms)
        if lease_alive:
            lease_heartbeat = self.sessions[self.lease.session].last_heartbeat_ms
            valid_before = min(valid_before, lease_heartbeat + timeout + 1)
        snapshot = ZkCluster(
            alive, self.lease, lease_alive, tuple(self.partitions), self.topics, self.replicas
        )
        self._snapshot = (self._changes, now_ms, valid_before, self.sessions, snapshot)
        return snapshot

    def _take_lease(self, r: ZkTakeLease, now_ms: int) -> ZkLeaseTaken | ZkError:
        if not self.alive(r.broker, now_ms) or self.registrations[r.broker][0] != r.session:
            return ZkError(SESSION_EXPIRED)
        if self.lease.version != r.expected_version:
            return ZkError(BAD_VERSION)
        if self.session_alive(self.lease.session, now_ms):
            return ZkError(LEASE_HELD)
        self.lease = Lease(r.broker, self.lease.epoch + 1, self.lease.version + 1, r.session)
        return ZkLeaseTaken(self.lease.epoch)

    def _elect(self, r: ZkElect, now_ms: int) -> ZkWritten | ZkError:
        record = self.partitions[r.partition]
        if r.fenced and r.controller_epoch != self.lease.epoch:
            return ZkError(FENCED)
        if record.version != r.expected_version:
            return ZkError(BAD_VERSION)
        updated = PartitionRecord(
            r.leader, record.leader_epoch + 1, r.isr, record.version + 1, r.leader_broker_epoch
        )
        self.partitions[r.partition] = updated
        return ZkWritten(updated)

    def _update_isr(self, r: ZkUpdateIsr, now_ms: int) -> ZkWritten | ZkError:
        record = self.partitions[r.partition]
        if r.fenced:
            if record.leader != r.leader or record.leader_epoch != r.leader_epoch:
                return ZkError(FENCED)
            if record.version != r.expected_version:
                return ZkError(BAD_VERSION)
        updated = replace(record, isr=r.isr, version=record.version + 1)
        self.partitions[r.partition] = updated
        return ZkWritten(updated)

    def _create_topic(self, r: ZkCreateTopic, now_ms: int) -> ZkTopicCreated | ZkError:
        if any(topic.name == r.name for topic in self.topics):
            return ZkError(TOPIC_EXISTS)
        if r.partitions < 1:
            return ZkError(INVALID_PARTITIONS)
        if not 1 <= r.replication <= self.config.brokers:
            return ZkError(INVALID_REPLICATION_FACTOR)
        first, brokers = len(self.partitions), self.config.brokers
        # Partition i's replicas start at broker (first + i) and run on, so that leaders spread.
        replicas = tuple(
            tuple((first + i + j) % brokers for j in range(r.replication))
            for i in range(r.partitions)
        )
        topic = TopicRecord(r.name, first, replicas)
        # No leader yet: the controller elects the first live replica, in epoch 0.
        self.partitions.extend(
            PartitionRecord(None, -1, frozenset(assigned), 0, -1) for assigned in replicas
        )
        self.topics = (*self.topics, topic)
        self.replicas = (*self.replicas, *replicas)
        return ZkTopicCreated(topic)


_CALL_ROUTES = (
    route(ZkRegister, Coordination._register),
    route(ZkHeartbeat, Coordination._heartbeat),
    route(ZkRead, Coordination._read),
    route(ZkTakeLease, Coordination._take_lease),
    route(ZkElect, Coordination._elect),
    route(ZkUpdateIsr, Coordination._update_isr),
    route(ZkCreateTopic, Coordination._create_topic),
)
_CALLS: dict[type, Callable[[Coordination, object, int], ZkReply]] = dict(_CALL_ROUTES)
