"""A broker: replicas of its partitions, replication, produce and fetch serving, and (when it holds
the lease) the controller.

Rules of this module:
- Sans-IO. Every handler is a generator of effects (see effects.py); the
  broker touches no network, clock or disk except through them, and reads its
  logs, which the world owns and hands over at start.
- Every change of replica state that the model knows about is named, in the
  same handler, with an `Observe(action)`; the state change and the name are
  never separated by another effect.
- Replica roles follow the role table in replica.py, which holds the per-replica
  records; the group coordinator reaches this broker only through its
  `CoordinatorHost` protocol (coordinator.py).
- Every message type is handled (`HANDLERS`, then the coordinator's) or ignored
  for the reason `IGNORED` gives; tests/unit/test_impl_dispatch.py walks every pair.
"""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache
from typing import NamedTuple

from kafka_verify.impl import bugs
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl import messages as m
from kafka_verify.impl.bootstrap import initial_topics
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.controller import Controller
from kafka_verify.impl.coordinator import Coordinator
from kafka_verify.impl.dispatch import route_from
from kafka_verify.impl.effects import Flush, Handler, Observe, OpenLog, Send, SetTimer, ZkCall
from kafka_verify.impl.log import PartitionLog, StoredRecord
from kafka_verify.impl.replica import (
    UNKNOWN_OFFSET,
    FollowerProgress,
    PendingAck,
    ProducerEntry,
    ReplicaState,
    Role,
)
from kafka_verify.impl.zk import (
    CONNECTION_LOSS,
    TopicRecord,
    ZkCluster,
    ZkCreateTopic,
    ZkError,
    ZkHeartbeat,
    ZkLeaseTaken,
    ZkRead,
    ZkRegister,
    ZkRegistered,
    ZkTakeLease,
    ZkTopicCreated,
    ZkUpdateIsr,
    ZkWritten,
)
from kafka_verify.model.actions import (
    BecomeFollower,
    BecomeLeader,
    ControllerFailover,
    ExpandIsr,
    FollowerReplicate,
    IncHighWatermark,
    LeaderWrite,
    ResetLog,
    RetentionDelete,
    ShrinkIsr,
    Truncate,
)
from kafka_verify.model.state import Record

# Every controller timer of every broker reads the cluster: one effect serves them all.
_READ_CLUSTER = ZkCall(ZkRead())
# Due times: "at once", and "not until something changes" (beyond any run's virtual clock).
NO_WAIT_MS = -(2**62)
QUIET_FOREVER_MS = 2**62
PRODUCER_STATE_SEQS = 5  # sequence numbers remembered per producer, as Kafka keeps 5 batches
TOPIC_NAME_MAX = 249  # Kafka's limit
TOPIC_NAME_CHARACTERS = frozenset(
    "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789._-"
)


class QuietWindow(NamedTuple):
    """Until `until_ms` a timer's firings only set it again, `delay_ms` later (`quiet_until`)."""

    until_ms: int
    delay_ms: int
    # The controller timer: only while a read of the coordination service answers this
    # very snapshot (the tick reads it first).
    cluster: ZkCluster | None = None
    # The timers of the broker whose running (not only set again) ends the window.
    ended_by: frozenset[str] = frozenset()


class Broker:
    """Broker `b{index}`. Build it with `initial` (the run's first state), or construct it to restart from disk."""

    def __init__(
        self, index: int, config: ClusterConfig, logs: dict[int, PartitionLog], incarnation: int
    ) -> None:
        self.index = index
        self.name = f"b{index}"
        self.config = config
        self.model = config.model_config()
        self.replicas = {p: self._replica(p, log) for p, log in logs.items()}
        self.session: int | None = None
        self.broker_epoch: int | None = None
        self.controller_epoch_seen = 0
        self.metadata: dict[int, tuple[int | None, int]] = {}
        # Partition -> (leader epoch, ISR) of the last LeaderAndIsr taken, and the controller
        # (epoch, broker) that sent the newest: what this broker tells clients in Metadata.
        self.isr_seen: dict[int, tuple[int, frozenset[int]]] = {}
        self.controller_seen: tuple[int, int] | None = None
        # The configured topics exist from the start; the controller announces created ones.
        self.topics: m.TopicTable = initial_topics(config)
        self.controller: Controller | None = None
        self.restarting = True
        self.coordinator = Coordinator(self, incarnation)
        self._next_request = incarnation * 1_000_000_000
        self._timer_effects = _timer_effects(config)
        # After a controller tick that did nothing: (the cluster it read, what else it read,
        # until when it would do nothing again).
        self._idle_tick: tuple[ZkCluster, tuple[object, ...], int] | None = None

    @classmethod
    def initial(
        cls,
        index: int,
        config: ClusterConfig,
        logs: dict[int, PartitionLog],
        session: int,
        broker_epoch: int,
    ) -> Broker:
        """The model's initial state: partition p led by its first replica in epoch 0, full ISR."""
        broker = cls(index, config, logs, incarnation=0)
        broker.session, broker.broker_epoch, broker.restarting = session, broker_epoch, False
        for p in range(broker.model.partitions):
            replicas = broker.model.replicas_of(p)
            broker.metadata[p] = (replicas[0], 0)
            broker.isr_seen[p] = (0, frozenset(replicas))
            r = broker.replicas.get(p)
            if r is None:
                continue
            r.epoch, r.leader = 0, replicas[0]
            r.log.known_epoch = 0
            if replicas[0] == index:
                r.role, r.isr = Role.LEADER, frozenset(replicas)
                if broker.coordinator.is_offsets(p):
                    broker.coordinator.load_initial(p, 0)
                r.followers = {b: FollowerProgress() for b in replicas if b != index}
            else:
                r.role = Role.FOLLOWING
        if index == 0:
            broker.controller = Controller(0, 1, config)
            broker.controller.assume_initial_state_known(broker.topics)
        broker.controller_epoch_seen = 1
        broker.controller_seen = (1, 0)  # b0 holds the first lease, as initial_coordination says
        return broker

    def _replica(self, p: int, log: PartitionLog) -> ReplicaState:
        """A replica as its log left it: after a restart, or when a new partition is opened."""
        stale_offsets = bugs.enabled(self.config, bugs.DUPLICATE_OFFSET)
        return ReplicaState(
            p,
            log,
            hw=log.checkpoint_hw,
            epoch=log.known_epoch,
            next_offset=log.appended_end if stale_offsets else log.leo,
            end_before_crash=log.end_before_crash,
        )

    def _request_id(self) -> int:
        self._next_request += 1
        return self._next_request

    # -- start and timers -------------------------------------------------------------

    def start(self, now_ms: int) -> Handler:
        c = self.config
        if self.restarting and bugs.enabled(c, bugs.TRUNCATE_TO_HW):
            for r in self.replicas.values():
                offset = max(r.log.log_start, min(r.hw, r.log.leo))
                if offset < r.log.leo:
                    yield from self._truncate(r, offset, complete=True)
        if self.restarting:
            yield from self._heartbeat()
        yield from self._timer_effects.values()

    def on_timer(self, name: str, now_ms: int) -> Handler:
        handler = _TIMER_HANDLERS.get(name)
        return _no_effects() if handler is None else handler(self, now_ms)

    # The timers' handlers (_TIMER_HANDLERS): a long tick fires thousands of them.
    def _on_heartbeat_timer(self, now_ms: int) -> Handler:
        yield from self._heartbeat()
        yield self._timer_effects["heartbeat"]

    def _on_controller_timer(self, now_ms: int) -> Handler:
        yield from self._controller_tick(now_ms)
        yield self._timer_effects["controller"]

    def _on_fetch_timer(self, now_ms: int) -> Handler:
        for r in self.replicas.values():
            due = self._request_due_ms(r)
            if due is not None and now_ms >= due:
                yield from self._send_follower_request(r, now_ms)
            if r.parked:
                yield from self._answer_parked(r)  # a parked fetch waits at most one interval
        yield self._timer_effects["fetch"]

    def _request_due_ms(self, r: ReplicaState) -> int | None:
        """From when a follower (or truncating) replica sends its next request: at once when
        none is out, else once the one out has timed out; None for a replica that sends none."""
        if r.role is not Role.TRUNCATING and r.role is not Role.FOLLOWING:
            return None
        if r.outstanding is None:
            return NO_WAIT_MS
        return r.outstanding_ms + self.config.request_timeout_ms

    def _fetch_quiet_until(self, now_ms: int) -> int | None:
        until = QUIET_FOREVER_MS
        for r in self.replicas.values():
            due = self._request_due_ms(r)
            if r.parked or (due is not None and now_ms >= due):
                return None
            if due is not None:
                until = min(until, due)
        return until

    def _on_flush_timer(self, now_ms: int) -> Handler:
        for r in self.replicas.values():
            yield Flush(r.partition, r.hw)
            if r.role is Role.LEADER:
                yield from self._advance_hw(r, now_ms)
        yield self._timer_effects["flush"]

    def _on_retention_timer(self, now_ms: int) -> Handler:
        for r in self.replicas.values():
            yield from self._retention(r, now_ms)
        yield self._timer_effects["retention"]

    def _retention_quiet_until(self, now_ms: int) -> int | None:
        # Records expire from the start of a log: until its first record is older than the
        # retention time, only the log and the high watermark move where retention would cut.
        until = QUIET_FOREVER_MS
        retention_ms = self.config.retention_ms
        for r in self.replicas.values():
            if self._retention_start(r, now_ms) is not None:
                return None
            if retention_ms is not None and r.log.records:
                until = min(until, r.log.records[0].timestamp_ms + retention_ms + 1)
        return until

    def _on_isr_timer(self, now_ms: int) -> Handler:
        for r in self.replicas.values():
            if r.role is Role.LEADER:
                yield from self._shrink_isr(r, now_ms)
        yield self._timer_effects["isr"]

    def _isr_quiet_until(self, now_ms: int) -> int | None:
        until = QUIET_FOREVER_MS
        for r in self.replicas.values():
            if r.role is Role.LEADER:
                for b in r.isr:
                    if b != self.index:
                        until = min(until, self._lagging_from_ms(r, b))
        return until if now_ms < until else None

    def _on_groups_timer(self, now_ms: int) -> Handler:
        yield from self.coordinator.on_timer(now_ms)
        yield self._timer_effects["groups"]

    def _groups_quiet_until(self, now_ms: int) -> int | None:
        # The coordinator's timer looks only at the offsets partitions this broker leads.
        is_offsets, index = self.coordinator.is_offsets, self.index
        if any(r.leader == index and is_offsets(p) for p, r in self.replicas.items()):
            return None
        return QUIET_FOREVER_MS

    def _controller_inputs(self) -> tuple[object, ...]:
        """What a controller tick reads besides the cluster and the clock."""
        controller = self.controller
        acks = -1 if controller is None else controller.acks_taken
        return (self.session, self.broker_epoch, self.controller_epoch_seen, controller, acks)

    def _controller_quiet(self, now_ms: int) -> QuietWindow | None:
        # A tick that found nothing to do finds nothing again, until a held-back request falls
        # due, while the cluster read answers the same snapshot and nothing it reads changed.
        idle = self._idle_tick
        if idle is None or now_ms >= idle[2] or idle[1] != self._controller_inputs():
            return None
        return QuietWindow(idle[2], self._timer_effects["controller"].delay_ms, idle[0])

    def quiet_until(self, name: str, now_ms: int) -> QuietWindow | None:
        """If timer `name` firing at any time from `now_ms` until some later time would only set
        itself again (no effect, no change of state) while no message reaches this broker:
        (that time, the timer's delay). Else None: it must run (`on_timer`).

        A host may then set such a timer again without running its handler: most firings of
        the periodic timers find nothing to do (a follower's fetch still out, no ISR member
        lagging, no group to look after, nothing old enough to delete, a controller with
        nothing to elect or resend), and a long tick fires thousands of them. Each answer reads
        the same due times its handler acts on, so the two cannot disagree, and only state
        that messages change: a replica's role, leader and ISR, its request out, its parked
        fetches and its followers' progress; the controller's acknowledgements. The other
        timers never change those (they answer parked fetches, which only makes the fetch
        timer quieter). Where one may, the window names it (`ended_by`: a high watermark that
        rises ends a retention window), or says what else it rests on (`cluster`).
        """
        if name == "controller":
            return self._controller_quiet(now_ms)
        quiet = _QUIET_TIMERS.get(name)
        until = None if quiet is None else quiet(self, now_ms)
        if until is None:
            return None
        ended_by = _MOVES_LOGS if name == "retention" else frozenset()
        return QuietWindow(until, self._timer_effects[name].delay_ms, ended_by=ended_by)

    def _heartbeat(self) -> Handler:
        if self.session is not None:
            reply = yield ZkCall(ZkHeartbeat(self.session))
            if not (isinstance(reply, ZkError) and reply.code == "SESSION_EXPIRED"):
                return
        reply = yield ZkCall(ZkRegister(self.index))
        if isinstance(reply, ZkRegistered):
            self.session, self.broker_epoch = reply.session, reply.broker_epoch
            self.restarting = False

    def _controller_tick(self, now_ms: int) -> Handler:
        self._idle_tick = None
        controller = self.controller
        cluster = yield _READ_CLUSTER
        if not isinstance(cluster, ZkCluster):
            return
        lease = cluster.lease
        mine = lease.holder == self.index and lease.session == self.session and cluster.lease_alive
        deposed = not mine or (self.controller is not None and lease.epoch != self.controller.epoch)
        if deposed and not bugs.enabled(self.config, bugs.CONTROLLER_SPLIT_BRAIN):
            self.controller = None  # another broker holds the lease now
        lease_free = not cluster.lease_alive
        registered = (
            self.session is not None and cluster.registrations.get(self.index) == self.broker_epoch
        )
        if self.controller is None and lease_free and registered and self.session is not None:
            reply = yield ZkCall(ZkTakeLease(self.index, self.session, lease.version))
            if isinstance(reply, ZkLeaseTaken):
                self.controller = Controller(self.index, reply.epoch, self.config)
                yield Observe(ControllerFailover(self.index))
        if self.controller is not None:
            yield from self.controller.tick(cluster, now_ms)
        if self.controller is controller and (controller is None or not controller.acted):
            until = QUIET_FOREVER_MS if controller is None else controller.next_due_ms
            self._idle_tick = (cluster, self._controller_inputs(), until)

    # -- messages -----------------------------------------------------------------------

    def handle(self, src: str, message: m.Message, now_ms: int) -> Handler:
        # The handler's own generator, not one wrapping it: every effect of every delivery
        # would pass through the wrapper.
        handler = HANDLERS.get(type(message))
        if handler is None:
            # Group requests; what neither table holds is ignored, for the reason IGNORED gives.
            return self.coordinator.handle(src, message, now_ms)
        return handler(self, src, message, now_ms)

    def _on_leader_and_isr(self, src: str, msg: m.LeaderAndIsr, now_ms: int) -> Handler:
        split_brain = bugs.enabled(self.config, bugs.CONTROLLER_SPLIT_BRAIN)
        if msg.broker_epoch != self.broker_epoch:
            return  # addressed to an earlier life of this broker (KIP-380)
        if msg.controller_epoch < self.controller_epoch_seen and not split_brain:
            return  # from a deposed controller
        self.controller_epoch_seen = max(self.controller_epoch_seen, msg.controller_epoch)
        self._learn_leader(msg.partition, msg.leader, msg.leader_epoch)
        self._learn_isr(src, msg)
        r = self.replicas.get(msg.partition)
        if r is None and self.index in msg.replicas:
            # A partition created since this broker started: its log is opened now, or
            # found again on disk after a restart.
            log = yield OpenLog(msg.partition)
            assert isinstance(log, PartitionLog), "the host answers OpenLog with the log"
            r = self.replicas[msg.partition] = self._replica(msg.partition, log)
        if r is None:
            return
        # A restarted replica may follow again in the epoch it remembers, but it only
        # leads a newer one: the controller re-elects a leader that bounced.
        rejoin = msg.leader_epoch == r.epoch and r.role is Role.UNKNOWN
        if msg.leader_epoch > r.epoch or (rejoin and msg.leader != self.index):
            if msg.leader == self.index:
                yield from self._become_leader(r, msg, now_ms)
            else:
                yield from self._become_follower(r, msg, now_ms)
        yield Send(src, m.LeaderAndIsrResponse(msg.partition, msg.leader_epoch, msg.broker_epoch))

    def _on_leader_and_isr_response(
        self, src: str, msg: m.LeaderAndIsrResponse, now_ms: int
    ) -> Handler:
        if self.controller is not None:
            self.controller.on_leader_and_isr_response(int(src[1:]), msg)
        yield from ()

    def _on_update_metadata(self, src: str, msg: m.UpdateMetadata, now_ms: int) -> Handler:
        if msg.broker_epoch != self.broker_epoch:
            return
        if msg.controller_epoch < self.controller_epoch_seen and not bugs.enabled(
            self.config, bugs.CONTROLLER_SPLIT_BRAIN
        ):
            return
        self.controller_epoch_seen = max(self.controller_epoch_seen, msg.controller_epoch)
        self._learn_controller(src, msg.controller_epoch)
        for p, leader, epoch in msg.leaders:
            self._learn_leader(p, leader, epoch)
        if len(msg.topics) >= len(self.topics):
            self.topics = msg.topics  # topics are only ever added
        yield Send(src, m.UpdateMetadataResponse(msg.leaders, msg.broker_epoch, msg.topics))

    def _on_update_metadata_response(
        self, src: str, msg: m.UpdateMetadataResponse, now_ms: int
    ) -> Handler:
        if self.controller is not None:
            self.controller.on_metadata_response(int(src[1:]), msg)
        yield from ()

    def _learn_leader(self, p: int, leader: int | None, epoch: int) -> None:
        known = self.metadata.get(p)
        if known is None or epoch >= known[1]:
            self.metadata[p] = (leader, epoch)

    def _learn_isr(self, src: str, msg: m.LeaderAndIsr) -> None:
        self._learn_controller(src, msg.controller_epoch)
        known = self.isr_seen.get(msg.partition)
        if known is None or msg.leader_epoch >= known[0]:
            self.isr_seen[msg.partition] = (msg.leader_epoch, msg.isr)

    def _learn_controller(self, src: str, controller_epoch: int) -> None:
        if self.controller_seen is None or controller_epoch >= self.controller_seen[0]:
            self.controller_seen = (controller_epoch, int(src[1:]))

    def _isr_known(self, p: int) -> tuple[int, ...] | None:
        """The ISR of partition p as this broker knows it: its own when it leads p (the leader
        alone shrinks and expands it), else the last LeaderAndIsr's."""
        r = self.replicas.get(p)
        if r is not None and r.role is Role.LEADER:
            return tuple(sorted(r.isr))
        known = self.isr_seen.get(p)
        return tuple(sorted(known[1])) if known is not None else None

    def _controller_known(self) -> int | None:
        if self.controller is not None:
            return self.index
        return self.controller_seen[1] if self.controller_seen is not None else None

    def _on_metadata(self, src: str, msg: m.Metadata, now_ms: int) -> Handler:
        table = tuple((p, leader, epoch) for p, (leader, epoch) in sorted(self.metadata.items()))
        isrs = tuple(
            (p, isr) for p in sorted(self.metadata) if (isr := self._isr_known(p)) is not None
        )
        answer = m.MetadataResponse(
            msg.request_id, table, self.topics, isrs, self._controller_known()
        )
        yield Send(src, answer)

    def _on_create_topic(self, src: str, msg: m.CreateTopic, now_ms: int) -> Handler:
        def answer(error: str, topic: TopicRecord | None = None) -> Send:
            return Send(src, m.CreateTopicResponse(msg.request_id, msg.name, error, topic))

        name = msg.name
        if (
            not name
            or len(name) > TOPIC_NAME_MAX
            or name in (".", "..")
            or not set(name) <= TOPIC_NAME_CHARACTERS
            or name.startswith("__")  # internal topics are the cluster's own
        ):
            yield answer(m.INVALID_TOPIC)
            return
        reply = yield ZkCall(ZkCreateTopic(name, msg.partitions, msg.replication))
        if isinstance(reply, ZkTopicCreated):
            self.topics = (*self.topics, reply.topic)  # before the controller's announcement
            yield answer(m.NONE, reply.topic)
        elif isinstance(reply, ZkError) and reply.code != CONNECTION_LOSS:
            yield answer(reply.code)
        else:
            yield answer(m.COORDINATION_UNAVAILABLE)

    # -- becoming leader or follower ----------------------------------------------------------

    def _become_leader(self, r: ReplicaState, msg: m.LeaderAndIsr, now_ms: int) -> Handler:
        yield from self._fail_pending(r, m.LEADERSHIP_LOST)
        r.role, r.epoch, r.leader, r.isr = Role.LEADER, msg.leader_epoch, self.index, msg.isr
        r.log.known_epoch = msg.leader_epoch
        r.zk_version, r.epoch_start_offset, r.outstanding = msg.zk_version, r.log.leo, None
        r.followers = {
            b: FollowerProgress(last_caught_up_ms=now_ms) for b in msg.replicas if b != self.index
        }
        r.producers = _producer_state(r.log)
        yield Observe(BecomeLeader(r.partition, self.index, msg.leader_epoch, msg.isr))
        yield from self.coordinator.on_become_leader(r, now_ms)

    def _become_follower(self, r: ReplicaState, msg: m.LeaderAndIsr, now_ms: int) -> Handler:
        yield from self._fail_pending(r, m.LEADERSHIP_LOST)
        r.role, r.epoch, r.leader, r.isr = (
            Role.TRUNCATING,
            msg.leader_epoch,
            msg.leader,
            frozenset(),
        )
        r.log.known_epoch = msg.leader_epoch
        r.followers, r.producers, r.outstanding = {}, {}, None
        yield Observe(BecomeFollower(r.partition, self.index, msg.leader_epoch, msg.leader))
        yield from self.coordinator.unload(r.partition)
        yield from self._send_follower_request(r, now_ms)

    def records_appended(self, r: ReplicaState) -> Handler:
        """The group coordinator appended to a partition this broker leads: followers may fetch it."""
        yield from self._answer_parked(r)

    def _fail_pending(self, r: ReplicaState, error: str) -> Handler:
        yield from self._answer_parked(r)
        for ack in r.pending:
            yield Send(ack.client, m.ProduceResponse(ack.request_id, r.partition, error, None))
        r.pending = []

    def _send_follower_request(self, r: ReplicaState, now_ms: int) -> Handler:
        """A truncating follower asks where its log diverges; a following one fetches."""
        if r.role is Role.TRUNCATING:
            if bugs.enabled(self.config, bugs.TRUNCATE_TO_HW):
                yield from self._truncate(
                    r, max(r.log.log_start, min(r.hw, r.log.leo)), complete=True
                )
            elif r.log.last_epoch() == -1:
                yield from self._truncate(r, r.log.leo, complete=True)
            else:
                r.outstanding, r.outstanding_ms = self._request_id(), now_ms
                query = m.OffsetsForLeaderEpoch(
                    r.outstanding, r.partition, r.log.last_epoch(), r.epoch
                )
                yield Send(f"b{r.leader}", query)
                return
        if r.role is Role.FOLLOWING:
            if not bugs.enabled(self.config, bugs.FETCH_BEFORE_FLUSH):
                yield Flush(r.partition, r.hw)  # advertise only durable offsets
            offset = r.log.leo
            if r.end_before_crash is not None:
                if bugs.enabled(self.config, bugs.FETCH_BEFORE_RECOVERY):
                    offset = max(offset, r.end_before_crash)
                r.end_before_crash = None
            r.outstanding, r.outstanding_ms = self._request_id(), now_ms
            fetch = m.Fetch(
                r.outstanding,
                r.partition,
                offset,
                r.epoch,
                self.index,
                self.config.fetch_max_records,
            )
            yield Send(f"b{r.leader}", fetch)

    def _truncate(self, r: ReplicaState, offset: int, complete: bool) -> Handler:
        offset = r.log.truncate(offset)  # a batch boundary: the same offset for one-record batches
        r.hw = min(r.hw, offset)
        if not bugs.enabled(self.config, bugs.DUPLICATE_OFFSET):
            r.next_offset = r.log.leo
        if r.role is Role.TRUNCATING and complete:
            r.role = Role.FOLLOWING
        yield Observe(Truncate(r.partition, self.index, offset, complete))

    def _on_epoch_query_response(
        self, src: str, msg: m.OffsetsForLeaderEpochResponse, now_ms: int
    ) -> Handler:
        r = self.replicas.get(msg.partition)
        if r is None or r.role is not Role.TRUNCATING or msg.request_id != r.outstanding:
            return  # stale, duplicated or for an earlier epoch
        r.outstanding = None
        if msg.error != m.NONE:
            return  # fenced or not the leader: wait for LeaderAndIsr, retry on the fetch timer
        offset, complete = self._truncation_point(r, msg.epoch, msg.end_offset)
        yield from self._truncate(r, max(r.log.log_start, offset), complete)
        yield from self._send_follower_request(r, now_ms)

    def _truncation_point(self, r: ReplicaState, epoch: int, end: int) -> tuple[int, bool]:
        """KIP-279: cut to the smaller of the leader's and our own end of the answered epoch."""
        log = r.log
        if epoch == -1:
            # The leader knows no epoch this old: no leader vouches for any of our records,
            # so only what our high watermark covers is known committed (KAFKA-6361).
            if bugs.enabled(self.config, bugs.NO_EPOCH_KEEPS_LOG):
                return log.leo, True
            return max(log.log_start, min(r.hw, log.leo)), True
        if bugs.enabled(self.config, bugs.EPOCH_END_OFFSET_HOLE):
            return min(end, log.leo), True
        own_epoch, own_end = log.end_offset_for_epoch(epoch)
        if own_epoch == -1:
            return log.log_start, True
        if own_epoch != epoch:
            return min(own_end, log.leo), False  # we never had that epoch: cut and ask again
        return min(end, own_end, log.leo), True

    # -- leader side: epoch queries, fetches, produce -------------------------------------

    def _fence_error(
        self, r: ReplicaState | None, current_leader_epoch: int, from_replica: bool
    ) -> str:
        if r is None or r.role is not Role.LEADER:
            return m.NOT_LEADER
        unchecked = from_replica and bugs.enabled(self.config, bugs.NO_FETCH_EPOCH_FENCING)
        if current_leader_epoch == -1 or unchecked or current_leader_epoch == r.epoch:
            return m.NONE
        return m.FENCED_LEADER_EPOCH if current_leader_epoch < r.epoch else m.UNKNOWN_LEADER_EPOCH

    def _on_epoch_query(self, src: str, msg: m.OffsetsForLeaderEpoch, now_ms: int) -> Handler:
        r = self.replicas.get(msg.partition)
        error = self._fence_error(r, msg.current_leader_epoch, from_replica=True)
        if r is None or error != m.NONE:
            yield Send(
                src, m.OffsetsForLeaderEpochResponse(msg.request_id, msg.partition, error, -1, -1)
            )
            return
        if msg.requested_epoch >= r.epoch:
            epoch, end = r.epoch, r.log.leo
        else:
            epoch, end = r.log.end_offset_for_epoch(msg.requested_epoch)
        yield Send(
            src, m.OffsetsForLeaderEpochResponse(msg.request_id, msg.partition, m.NONE, epoch, end)
        )

    def _on_fetch(self, src: str, msg: m.Fetch, now_ms: int) -> Handler:
        r = self.replicas.get(msg.partition)
        error = self._fence_error(r, msg.current_leader_epoch, from_replica=msg.replica is not None)
        if r is None or error != m.NONE:
            yield Send(
                src,
                m.FetchResponse(
                    msg.request_id, msg.partition, error, msg.fetch_offset, (), -1, -1, -1, -1
                ),
            )
            return
        log = r.log
        if msg.replica is not None and log.log_start <= msg.fetch_offset <= log.leo:
            hw = r.hw
            yield from self._follower_fetched(r, msg.replica, msg.fetch_offset, now_ms)
            if msg.fetch_offset == log.leo and r.hw == hw and r.role is Role.LEADER:
                r.parked.append((src, msg))  # nothing new: answer when there is (long poll)
                return
        yield Send(src, self._fetch_response(r, msg))

    def _on_list_offsets(self, src: str, msg: m.ListOffsets, now_ms: int) -> Handler:
        """A consumer's offset lookup: only committed offsets are named, as a consumer reads
        only below the high watermark."""
        r = self.replicas.get(msg.partition)
        error = self._fence_error(r, msg.current_leader_epoch, from_replica=False)
        if r is None or error != m.NONE:
            yield Send(src, m.ListOffsetsResponse(msg.request_id, msg.partition, error, -1, -1))
            return
        log = r.log
        if msg.timestamp_ms == m.EARLIEST_TIMESTAMP:
            offset = log.log_start
        elif msg.timestamp_ms == m.LATEST_TIMESTAMP:
            offset = r.hw
        else:
            offset = r.hw
            for base, batch in log.producer_entries():
                if base >= r.hw:
                    break
                if batch.timestamp_ms >= msg.timestamp_ms:
                    offset = base
                    break
        yield Send(
            src, m.ListOffsetsResponse(msg.request_id, msg.partition, m.NONE, offset, r.epoch)
        )

    def _fetch_response(self, r: ReplicaState, msg: m.Fetch) -> m.FetchResponse:
        log = r.log
        if r.role is not Role.LEADER:
            return m.FetchResponse(
                msg.request_id, msg.partition, m.NOT_LEADER, msg.fetch_offset, (), -1, -1, -1, -1
            )
        if not log.log_start <= msg.fetch_offset <= log.leo:
            error = m.OFFSET_OUT_OF_RANGE
            return m.FetchResponse(
                msg.request_id,
                msg.partition,
                error,
                msg.fetch_offset,
                (),
                r.hw,
                log.log_start,
                log.leo,
                -1,
            )
        if msg.replica is not None or bugs.enabled(self.config, bugs.READ_UNCOMMITTED):
            upto = log.leo
        else:
            upto = r.hw
        records = log.read(msg.fetch_offset, upto, msg.max_records, msg.max_bytes)
        base = log.base_offset(log.index_of(msg.fetch_offset)) if records else msg.fetch_offset
        return m.FetchResponse(
            msg.request_id,
            msg.partition,
            m.NONE,
            msg.fetch_offset,
            records,
            r.hw,
            log.log_start,
            log.leo,
            base,
        )

    def _answer_parked(self, r: ReplicaState) -> Handler:
        parked, r.parked = r.parked, []
        for src, fetch in parked:
            yield Send(src, self._fetch_response(r, fetch))

    def _follower_fetched(
        self, r: ReplicaState, follower: int, offset: int, now_ms: int
    ) -> Handler:
        progress = r.followers.get(follower)
        if progress is None:
            return
        progress.fetch_offset, progress.last_fetch_ms = offset, now_ms
        if offset >= r.log.leo:
            progress.last_caught_up_ms = now_ms
        # In sync means caught up to the high watermark and to where this epoch began (KAFKA-7128):
        # a new leader's high watermark can lag what the previous leader committed.
        if bugs.enabled(self.config, bugs.ISR_EXPAND_AT_HW):
            in_sync = r.hw
        else:
            in_sync = max(r.hw, r.epoch_start_offset)
        if follower not in r.isr and offset >= in_sync:
            yield from self._change_isr(r, r.isr | {follower})
        yield from self._advance_hw(r, now_ms)

    def _advance_hw(self, r: ReplicaState, now_ms: int) -> Handler:
        target = r.log.leo
        recent_only = bugs.enabled(self.config, bugs.HW_AHEAD_OF_ISR)
        for b in r.isr:
            if b == self.index:
                continue
            progress = r.followers.get(b)
            if progress is None or progress.fetch_offset == UNKNOWN_OFFSET:
                if recent_only:
                    continue
                return
            if (
                recent_only
                and now_ms - progress.last_fetch_ms > 2 * self.config.replica_fetch_interval_ms
            ):
                continue
            target = min(target, progress.fetch_offset)
        if target <= r.hw:
            return
        if not bugs.enabled(self.config, bugs.LEADER_COUNTS_UNFLUSHED):
            # The leader counts itself only up to what is durable.
            if r.log.flushed < target:
                yield Flush(r.partition, r.hw)
            target = min(target, r.log.flushed)
        if target > r.hw:
            r.hw = target
            yield Observe(IncHighWatermark(r.partition, self.index, target))
            yield from self.coordinator.on_high_watermark(r, now_ms)
            yield from self._release_acks(r)
            yield from self._answer_parked(r)  # followers learn the new high watermark

    def _release_acks(self, r: ReplicaState) -> Handler:
        still: list[PendingAck] = []
        for ack in r.pending:
            if ack.offset >= r.hw:
                still.append(ack)
            elif len(r.isr) < self.config.min_insync:
                yield Send(
                    ack.client,
                    m.ProduceResponse(
                        ack.request_id, r.partition, m.NOT_ENOUGH_REPLICAS_AFTER_APPEND, None
                    ),
                )
            else:
                yield Send(
                    ack.client, m.ProduceResponse(ack.request_id, r.partition, m.NONE, ack.offset)
                )
        r.pending = still

    def _change_isr(self, r: ReplicaState, isr: frozenset[int]) -> Handler:
        fenced = not bugs.enabled(self.config, bugs.STALE_LEADER_ACCEPTS_WRITES)
        reply = yield ZkCall(
            ZkUpdateIsr(r.partition, self.index, r.epoch, r.zk_version, isr, fenced)
        )
        if not isinstance(reply, ZkWritten):
            return  # fenced, stale version or no connection: a newer LeaderAndIsr will come
        grew = isr > r.isr
        r.isr, r.zk_version = isr, reply.record.version
        if grew:
            yield Observe(ExpandIsr(r.partition, self.index, isr))
        else:
            yield Observe(ShrinkIsr(r.partition, self.index, isr))

    def _lagging_from_ms(self, r: ReplicaState, follower: int) -> int:
        """From when an ISR member of a leader's partition lags: it has not caught up for longer
        than the replica lag time."""
        return r.followers[follower].last_caught_up_ms + self.config.replica_lag_time_max_ms + 1

    def _shrink_isr(self, r: ReplicaState, now_ms: int) -> Handler:
        lagging = {b for b in r.isr if b != self.index and now_ms >= self._lagging_from_ms(r, b)}
        if lagging:
            yield from self._change_isr(r, r.isr - lagging)
            yield from self._advance_hw(r, now_ms)

    def _on_produce(self, src: str, msg: m.Produce, now_ms: int) -> Handler:
        r = self.replicas.get(msg.partition)
        if r is None or r.role is not Role.LEADER:
            yield Send(src, m.ProduceResponse(msg.request_id, msg.partition, m.NOT_LEADER, None))
            return
        c = self.config
        # min.insync.replicas is checked before the producer's sequence, as Kafka's
        # Partition.appendRecordsToLeader does before the log looks for duplicates: a
        # retry of a record already written is not acknowledged while the ISR is too small.
        early_ack = bugs.enabled(c, bugs.ACK_BEFORE_COMMIT)
        if msg.acks == -1 and len(r.isr) < c.min_insync and not early_ack:
            yield Send(
                src, m.ProduceResponse(msg.request_id, msg.partition, m.NOT_ENOUGH_REPLICAS, None)
            )
            return
        dedupe = (
            c.idempotent and msg.producer_id >= 0 and not bugs.enabled(c, bugs.NON_IDEMPOTENT_RETRY)
        )
        entry = r.producers.get(msg.producer_id) if dedupe else None
        if entry is not None and msg.seq <= entry.last_seq:
            yield from self._answer(
                r, src, msg, entry.offsets.get(msg.seq)
            )  # a retry: answer, never re-append
            return
        if entry is not None and msg.seq > entry.last_seq + 1:
            yield Send(
                src, m.ProduceResponse(msg.request_id, msg.partition, m.OUT_OF_ORDER_SEQUENCE, None)
            )
            return
        stored = StoredRecord(
            msg.record_id, r.epoch, msg.producer_id, msg.seq, now_ms, msg.count, msg.payload
        )
        r.log.append(stored)
        offset, r.next_offset = r.next_offset, r.next_offset + msg.count
        yield Observe(LeaderWrite(msg.partition, self.index, msg.record_id, msg.acks))
        yield from self._answer_parked(r)
        if r.isr == {self.index}:
            # Alone in the ISR, the leader commits what it has made durable, as Kafka's leader
            # advances its high watermark after an append; no follower fetch will do it.
            yield from self._advance_hw(r, now_ms)
        if dedupe:
            _remember(r.producers, msg.producer_id, msg.seq, msg.count, offset)
        if early_ack and msg.acks == -1:
            yield Send(src, m.ProduceResponse(msg.request_id, msg.partition, m.NONE, offset))
        else:
            yield from self._answer(r, src, msg, offset)

    def _answer(self, r: ReplicaState, src: str, msg: m.Produce, offset: int | None) -> Handler:
        if msg.acks == 0:
            return
        if msg.acks == -1 and offset is not None and offset >= r.hw:
            r.pending.append(PendingAck(offset, src, msg.request_id))
            return
        yield Send(src, m.ProduceResponse(msg.request_id, msg.partition, m.NONE, offset))

    # -- follower side: fetch responses ----------------------------------------------------------

    def _on_fetch_response(self, src: str, msg: m.FetchResponse, now_ms: int) -> Handler:
        r = self.replicas.get(msg.partition)
        if r is None or r.role is not Role.FOLLOWING or msg.request_id != r.outstanding:
            return  # stale, duplicated, or from before a role change
        r.outstanding = None
        if msg.error == m.OFFSET_OUT_OF_RANGE and msg.log_start > r.log.leo:
            r.log.reset(msg.log_start)
            r.hw, r.next_offset = msg.log_start, msg.log_start
            yield Observe(ResetLog(r.partition, self.index, msg.log_start))
            yield from self._send_follower_request(r, now_ms)
            return
        if msg.error != m.NONE or msg.fetch_offset != r.log.leo:
            return
        if msg.records and msg.base_offset != r.log.leo:
            return  # our log ends inside the leader's batch: only a truncation can mend that
        for stored in msg.records:
            r.log.append(stored)
            r.next_offset += stored.count
            yield Observe(
                FollowerReplicate(r.partition, self.index, Record(stored.record_id, stored.epoch))
            )
        new_hw = min(msg.high_watermark, r.log.leo)
        if new_hw > r.hw:
            r.hw = new_hw
            yield Observe(IncHighWatermark(r.partition, self.index, new_hw))
        yield from self._send_follower_request(r, now_ms)  # the leader holds it until there is news

    # -- retention ---------------------------------------------------------------------------------

    def _retention(self, r: ReplicaState, now_ms: int) -> Handler:
        start = self._retention_start(r, now_ms)
        if start is not None:
            r.log.delete_prefix(start)
            yield Observe(RetentionDelete(r.partition, self.index, start))

    def _retention_start(self, r: ReplicaState, now_ms: int) -> int | None:
        """Where retention moves a replica's log start now, or None if it deletes nothing."""
        c = self.config
        if self.coordinator.is_offsets(r.partition):
            return None  # the offsets topic is kept whole: its records are the committed offsets
        reckless = bugs.enabled(c, bugs.RETENTION_DELETES_UNREPLICATED)
        limit = r.log.leo if reckless else r.hw
        start = r.log.retention_start(
            now_ms, c.retention_ms, c.retention_records, limit, whole_segments=not reckless
        )
        return start if start > r.log.log_start else None


@lru_cache(maxsize=64)  # bounded: the config swarm draws a config per example
def _timer_effects(config: ClusterConfig) -> dict[str, SetTimer]:
    """Each timer's effect, in the order a broker sets them at start; it sets the same one again
    each time the timer fires (effects are immutable data, and one config has one table)."""
    c = config
    delays = {
        "heartbeat": c.heartbeat_interval_ms,
        "controller": c.controller_interval_ms,
        "fetch": c.replica_fetch_interval_ms,
        "flush": c.flush_interval_ms,
        "retention": c.retention_check_interval_ms,
        "isr": max(1, c.replica_lag_time_max_ms // 2),
    }
    if c.groups:
        delays["groups"] = c.group_check_interval_ms
    return {name: SetTimer(name, delay) for name, delay in delays.items()}


_TIMER_HANDLERS: dict[str, Callable[[Broker, int], Handler]] = {
    "heartbeat": Broker._on_heartbeat_timer,
    "controller": Broker._on_controller_timer,
    "fetch": Broker._on_fetch_timer,
    "flush": Broker._on_flush_timer,
    "retention": Broker._on_retention_timer,
    "isr": Broker._on_isr_timer,
    "groups": Broker._on_groups_timer,
}


# The timers that can find nothing to do, each with how long it will (`Broker.quiet_until`).
_QUIET_TIMERS: dict[str, Callable[[Broker, int], int | None]] = {
    "fetch": Broker._fetch_quiet_until,
    "isr": Broker._isr_quiet_until,
    "groups": Broker._groups_quiet_until,
    "retention": Broker._retention_quiet_until,
}
# The timers whose handlers may move a high watermark or truncate a log, which ends a
# retention timer's quiet window (as a message does).
_MOVES_LOGS = frozenset({"fetch", "flush", "isr"})


def _no_effects() -> Handler:
    """The handler of a timer the broker does not have: it does nothing."""
    return
    yield


def _producer_state(log: PartitionLog) -> dict[int, ProducerEntry]:
    """Rebuild idempotence state from the records themselves (they carry producer id and sequence)."""
    state: dict[int, ProducerEntry] = {}
    for offset, record in log.producer_entries():
        if record.producer_id >= 0:
            _remember(state, record.producer_id, record.seq, record.count, offset)
    return state


def _remember(
    state: dict[int, ProducerEntry], producer_id: int, seq: int, count: int, offset: int
) -> None:
    """A batch of `count` records from base sequence `seq` went to `offset`. Retries are known
    by their base sequence; Kafka remembers the last PRODUCER_STATE_SEQS batches, which for
    one-record batches (the simulation's) is a window of as many sequence numbers."""
    last = seq + count - 1
    entry = state.setdefault(producer_id, ProducerEntry(last))
    entry.last_seq = max(entry.last_seq, last)
    entry.offsets[seq] = offset
    if count == 1:
        for old in [s for s in entry.offsets if s <= entry.last_seq - PRODUCER_STATE_SEQS]:
            del entry.offsets[old]
    while len(entry.offsets) > PRODUCER_STATE_SEQS:
        del entry.offsets[min(entry.offsets)]


_ROUTES = (
    route_from(m.LeaderAndIsr, Broker._on_leader_and_isr),
    route_from(m.LeaderAndIsrResponse, Broker._on_leader_and_isr_response),
    route_from(m.UpdateMetadata, Broker._on_update_metadata),
    route_from(m.UpdateMetadataResponse, Broker._on_update_metadata_response),
    route_from(m.Metadata, Broker._on_metadata),
    route_from(m.OffsetsForLeaderEpoch, Broker._on_epoch_query),
    route_from(m.OffsetsForLeaderEpochResponse, Broker._on_epoch_query_response),
    route_from(m.Fetch, Broker._on_fetch),
    route_from(m.FetchResponse, Broker._on_fetch_response),
    route_from(m.Produce, Broker._on_produce),
    route_from(m.ListOffsets, Broker._on_list_offsets),
    route_from(m.CreateTopic, Broker._on_create_topic),
)
# The replication protocol's messages; the group requests are the coordinator's (coordinator.py).
HANDLERS: dict[type, Callable[[Broker, str, object, int], Handler]] = dict(_ROUTES)
IGNORED: dict[type, str] = {
    m.MetadataResponse: "a broker sends no Metadata request: it learns leaders from UpdateMetadata",
    m.ProduceResponse: "a broker never produces: the coordinator appends commits to its own log",
    m.ListOffsetsResponse: "a broker asks no offsets: followers learn them from OffsetsForLeaderEpoch",
    m.CreateTopicResponse: "a broker creates topics in the coordination service, not through a peer",
    **dict.fromkeys(
        gm.RESPONSE_TYPES,
        "an answer to a consumer's group request: a broker sends none",
    ),
}
