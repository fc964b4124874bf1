"""The deterministic simulated world: the only owner of the network, the virtual clock, the disks
and the schedule.

Rules of this module:
- Nothing happens unless an event says so: `apply(event)` is the only way in,
  and the same events from the same config give the same results.
- Nodes are sans-IO (their handlers are generators of effects); the world
  performs each effect as it is yielded. A `ZkCall` runs inline on the
  coordination node and its reply goes straight back into the handler.
- Messages to a crashed node, or across a partition, are lost when sent; a
  crash also loses every message in flight to or from the node, and a
  Partition event loses those that cross the new boundary.
- Nodes not named in a Partition event's groups form one more group together.
- A message still in flight `message_lifetime_ms` after it was sent is lost
  when a Tick passes that age, as a connection would time out: the network
  never holds more than a few seconds' worth of traffic.
- A timer its broker declares quiet (`Broker.quiet_until`: firing would only set
  it again) is set again without running its handler, in the same order and with
  the same delay; the broker is then not touched, since nothing of it changed.
"""

from __future__ import annotations

import heapq
from collections.abc import Callable, Hashable, Sequence
from dataclasses import dataclass
from typing import NamedTuple, TypeVar

from kafka_verify.impl import events as ev
from kafka_verify.impl.bootstrap import initial_coordination, initial_group_store
from kafka_verify.impl.broker import Broker, QuietWindow
from kafka_verify.impl.clients import Consumer, Producer
from kafka_verify.impl.config import TOPIC, ClusterConfig
from kafka_verify.impl.coordinator import group_names
from kafka_verify.impl.dispatch import route
from kafka_verify.impl.effects import (
    ClientOp,
    Effect,
    Flush,
    Handler,
    Observe,
    OpenLog,
    Refused,
    Reply,
    Send,
    SetTimer,
    ZkCall,
)
from kafka_verify.impl.group_member import GroupConsumer
from kafka_verify.impl.group_store import GROUP_CALLS
from kafka_verify.impl.log import PartitionLog
from kafka_verify.impl.messages import Message
from kafka_verify.impl.zk import CONNECTION_LOSS, ZkError, ZkRead
from kafka_verify.model.actions import Action
from kafka_verify.model.actions import Crash as CrashAction
from kafka_verify.model.actions import Flush as FlushAction
from kafka_verify.model.actions import Restart as RestartAction
from kafka_verify.model.values import fast_init

__all__ = ["ClientOp", "Envelope", "InvalidEvent", "StepResult", "World"]

ZK = "zk"
# Marks an event in which the coordination service took a call of its group part.
ZK_GROUPS = "zk/groups"
MAX_TIMERS_PER_TICK = 100_000
_READ_CLUSTER = ZkRead()
# A timer's place in the heap is due << _SEQ_BITS | seq: (due, seq) order while seq < _SEQ_LIMIT,
# that is for the first 2**40 timers a world sets.
_SEQ_BITS = 40
_SEQ_LIMIT = 1 << _SEQ_BITS

# Every kind of node the world runs besides the coordination service (GroupConsumer is a Consumer).
Node = Broker | Producer | Consumer
_Client = TypeVar("_Client", bound=Producer | Consumer)


class InvalidEvent(ValueError):
    """The event cannot apply to the world as it is (unknown node or message, restart of a running node, ...)."""


@fast_init
@dataclass(frozen=True, slots=True)
class Envelope:
    id: int
    src: str
    dst: str
    message: Message

    @property
    def kind(self) -> str:
        return type(self.message).__name__


class StepResult(NamedTuple):
    """What one event did. A named tuple, not a frozen dataclass: one is built per event,
    and a tuple is built several times faster."""

    actions: tuple[Action, ...]
    ops: tuple[ClientOp, ...]
    delivered: Envelope | None
    sent: tuple[Envelope, ...]
    lost_records: int
    # Nodes whose state this event may have changed (their handlers ran, they
    # crashed or restarted, or the coordination service took a call: "zk", plus
    # "zk/groups" when the call was to its group part). Nodes outside this set are
    # untouched, which lets the harness check refinement incrementally.
    touched: frozenset[str] = frozenset()
    # Model actions a node was asked to perform and refused (stale commits, ...).
    refused: tuple[Action, ...] = ()


class _Step:
    """What one event produced so far."""

    __slots__ = ("actions", "delivered", "lost_records", "ops", "refused", "sent", "touched")

    def __init__(self) -> None:
        self.actions: list[Action] = []
        self.ops: list[ClientOp] = []
        self.sent: list[Envelope] = []
        self.delivered: Envelope | None = None
        self.lost_records = 0
        self.touched: set[str] = set()
        self.refused: list[Action] = []

    def result(self) -> StepResult:
        return StepResult(
            tuple(self.actions),
            tuple(self.ops),
            self.delivered,
            tuple(self.sent),
            self.lost_records,
            frozenset(self.touched),
            tuple(self.refused),
        )


class World:
    def __init__(self, config: ClusterConfig) -> None:
        self.config = config
        self.now_ms = 0
        self.model = config.model_config()
        self._brokers = tuple(f"b{i}" for i in range(config.brokers))
        self._nodes = (
            ZK,
            *self._brokers,
            *(f"p{i}" for i in range(config.producers)),
            *(f"c{i}" for i in range(config.consumers)),
        )
        self._node_set = frozenset(self._nodes)
        self.disks: dict[tuple[int, int], PartitionLog] = {
            (b, p): PartitionLog(config.segment_records)
            for p in range(self.model.partitions)
            for b in self.model.replicas_of(p)
        }
        self.zk = initial_coordination(config)
        self.group_store = initial_group_store(config)
        self.nodes_up: dict[str, Node] = {}
        self._incarnations: dict[str, int] = dict.fromkeys(self._nodes, 0)
        self._inflight: dict[int, Envelope] = {}
        self._sent_ms: dict[int, int] = {}
        self._inflight_view: tuple[Envelope, ...] | None = ()
        self._next_message = 1
        self._next_record = 1
        self._groups: dict[str, int] | None = None
        # Timers fire in (due, seq) order. The heap holds each as one int, due << _SEQ_BITS | seq,
        # which orders the same and compares faster than a tuple; _timer_key maps its seq to
        # (node, name), and _timer_seq holds each (node, name)'s live seq (a set replaces it).
        self._timers: list[int] = []
        self._timer_key: dict[int, tuple[str, str]] = {}
        self._timer_seq: dict[tuple[str, str], int] = {}
        self._next_timer_seq = 0
        # Node -> timer name -> its quiet window (`Broker.quiet_until`): while it holds, that
        # timer's firings only set it again. A message to the node, or its crash or restart,
        # drops the node's windows; a timer that runs drops those it ends (`ended_by`).
        self._quiet_windows: dict[str, dict[str, QuietWindow]] = {}
        self._zk_up = True
        # Memos of impl.abstraction (its views, keyed as it likes, and type-checked by it
        # when read back); no node reads them.
        self.abstraction_cache: dict[Hashable, object] = {}
        step = _Step()
        for i in range(config.brokers):
            session, broker_epoch = self.zk.registrations[i]
            self._boot(
                f"b{i}", Broker.initial(i, config, self._logs_of(i), session, broker_epoch), step
            )
        for node in self._nodes:
            if node[0] in "pc":
                self._boot(node, self._new_client(node), step)

    def _logs_of(self, broker: int) -> dict[int, PartitionLog]:
        return {p: log for (b, p), log in self.disks.items() if b == broker}

    def _new_client(self, node: str) -> Producer | Consumer:
        index, incarnation = int(node[1:]), self._incarnations[node]
        if node[0] == "p":
            return Producer(index, self.config, incarnation)
        return GroupConsumer(index, self.config, incarnation)

    def _boot(self, node: str, instance: Node, step: _Step) -> None:
        self.nodes_up[node] = instance
        self._quiet_windows.pop(node, None)
        self._run(node, instance.start(self.now_ms), step)

    # -- queries ----------------------------------------------------------------------------

    def nodes(self) -> tuple[str, ...]:
        return self._nodes

    def is_up(self, node: str) -> bool:
        if node == ZK:
            return self._zk_up
        return node in self.nodes_up

    def partitioned(self) -> bool:
        return self._groups is not None

    def inflight(self) -> Sequence[Envelope]:
        if self._inflight_view is None:
            self._inflight_view = tuple(self._inflight.values())
        return self._inflight_view

    def next_timer_ms(self) -> int | None:
        while self._timers:
            due, seq = divmod(self._timers[0], _SEQ_LIMIT)
            key = self._timer_key[seq]
            if self._timer_seq.get(key) == seq and key[0] in self.nodes_up:
                return max(0, due - self.now_ms)
            heapq.heappop(self._timers)
            del self._timer_key[seq]
        return None

    def connected(self, a: str, b: str) -> bool:
        if self._groups is None:
            return True
        return self._groups.get(a, -1) == self._groups.get(b, -1)

    def broker(self, index: int) -> Broker | None:
        node = self.nodes_up.get(self._brokers[index]) if 0 <= index < len(self._brokers) else None
        return node if isinstance(node, Broker) else None

    # -- applying events ---------------------------------------------------------------------------

    def apply(self, event: ev.Event) -> StepResult:
        handler = _EVENT_HANDLERS.get(type(event))
        if handler is None:
            raise InvalidEvent(f"{type(event).__name__} is not an event this world knows")
        step = _Step()
        handler(self, event, step)
        return step.result()

    def request(self, node: str, src: str, message: Message) -> StepResult:
        """Node `node` handles `message` from `src` now, outside the event vocabulary: how a test
        asks a broker what only the real host's Kafka clients ask (CreateTopics). The answer
        goes to `src` through the network, as any message does."""
        if node not in self.nodes_up:
            raise InvalidEvent(f"{node} is not running")
        step = _Step()
        self._quiet_windows.pop(node, None)
        self._run(node, self.nodes_up[node].handle(src, message, self.now_ms), step)
        return step.result()

    def _client(self, name: str, kind: type[_Client]) -> _Client:
        if name not in self._node_set:
            raise InvalidEvent(f"there is no client named {name!r}")
        client = self.nodes_up.get(name)
        if client is None:
            raise InvalidEvent(f"client {name} is down")
        if not isinstance(client, kind):
            raise InvalidEvent(f"{name} is not a {kind.__name__.lower()}")
        return client

    def _produce(self, event: ev.Produce, step: _Step) -> None:
        producer = self._client(event.client, Producer)
        if event.topic != TOPIC:
            raise InvalidEvent(
                f"there is no topic {event.topic!r}; the cluster has one topic, {TOPIC!r}"
            )
        if event.partition is not None and event.partition >= self.config.partitions:
            raise InvalidEvent(f"topic {TOPIC!r} has no partition {event.partition}")
        record_id = self._next_record
        self._next_record += 1
        self._run(
            event.client, producer.send(record_id, event.partition, event.key, self.now_ms), step
        )

    def _poll(self, event: ev.Poll, step: _Step) -> None:
        consumer = self._client(event.client, Consumer)
        self._run(event.client, consumer.poll(self.now_ms), step)

    def _subscribe(self, event: ev.Subscribe, step: _Step) -> None:
        consumer = self._client(event.client, GroupConsumer)
        if event.group not in group_names(self.config) or set(event.topics) != {TOPIC}:
            raise InvalidEvent(
                f"{event.client} cannot join {event.group!r} on {list(event.topics)}: the groups "
                f"are {list(group_names(self.config))} and the one topic is {TOPIC!r}"
            )
        if consumer.group is not None:
            raise InvalidEvent(f"{event.client} has already subscribed")
        self._run(event.client, consumer.subscribe(event.group, event.topics, self.now_ms), step)

    def subscribed(self, client: str) -> bool:
        """Whether consumer `client` is up and has joined a group."""
        node = self.nodes_up.get(client)
        return isinstance(node, GroupConsumer) and node.group is not None

    def owns_partitions(self, client: str) -> bool:
        """Whether consumer `client` is up and owns partitions of its group's current assignment."""
        node = self.nodes_up.get(client)
        return isinstance(node, GroupConsumer) and node.phase == "stable" and bool(node.owned)

    def _commit_offsets(self, event: ev.CommitOffsets, step: _Step) -> None:
        consumer = self._client(event.client, GroupConsumer)
        self._run(event.client, consumer.commit(self.now_ms), step)

    def _close(self, event: ev.Close, step: _Step) -> None:
        consumer = self._client(event.client, GroupConsumer)
        self._run(event.client, consumer.close(self.now_ms), step)

    def _envelope(self, message_id: int) -> Envelope:
        envelope = self._inflight.get(message_id)
        if envelope is None:
            raise InvalidEvent(f"no message #{message_id} is in flight")
        return envelope

    def _deliver(self, event: ev.Deliver | ev.Duplicate, step: _Step) -> None:
        envelope = self._envelope(event.message_id)
        if isinstance(event, ev.Deliver):
            self._forget_message(envelope.id)
        step.delivered = envelope
        node = self.nodes_up[envelope.dst]
        self._quiet_windows.pop(envelope.dst, None)
        self._run(envelope.dst, node.handle(envelope.src, envelope.message, self.now_ms), step)

    def _drop(self, event: ev.Drop, step: _Step) -> None:
        step.delivered = self._envelope(event.message_id)
        self._forget_message(event.message_id)

    def _forget_message(self, message_id: int) -> None:
        del self._inflight[message_id]
        del self._sent_ms[message_id]
        self._inflight_view = None

    def _check_node(self, node: str) -> None:
        if node not in self._node_set:
            raise InvalidEvent(
                f"there is no node named {node!r}; nodes are {', '.join(self._nodes)}"
            )

    def _crash(self, event: ev.Crash, step: _Step) -> None:
        node = event.node
        self._check_node(node)
        step.touched.add(node)
        if not self.is_up(node):
            raise InvalidEvent(f"{node} is already down")
        if node == ZK:
            self._zk_up = False
            return
        instance = self.nodes_up.pop(node)
        self._quiet_windows.pop(node, None)
        self._incarnations[node] += 1
        self._cut_messages(lambda e: node in (e.src, e.dst))
        for key in [k for k in self._timer_seq if k[0] == node]:
            del self._timer_seq[key]  # a crash stops every timer of the node
        if isinstance(instance, Broker):
            self._crash_broker(instance, event.lose_unflushed, step)
        else:
            step.ops.extend(instance.crash_ops(self.now_ms))

    def _crash_broker(self, broker: Broker, lose_unflushed: bool, step: _Step) -> None:
        for p, r in sorted(broker.replicas.items()):
            if not lose_unflushed and r.log.flush(r.hw):
                step.actions.append(FlushAction(p, broker.index))
        step.actions.append(CrashAction(broker.index))
        for r in broker.replicas.values():
            step.lost_records += r.log.crash()

    def _restart(self, event: ev.Restart, step: _Step) -> None:
        node = event.node
        self._check_node(node)
        step.touched.add(node)
        if self.is_up(node):
            raise InvalidEvent(f"{node} is already running")
        if node == ZK:
            self._zk_up = True
            self.zk.restarted(self.now_ms)
            return
        if node[0] == "b":
            index = int(node[1:])
            step.actions.append(RestartAction(index))
            self._boot(
                node,
                Broker(index, self.config, self._logs_of(index), self._incarnations[node]),
                step,
            )
        else:
            self._boot(node, self._new_client(node), step)

    def _partition(self, event: ev.Partition, step: _Step) -> None:
        groups: dict[str, int] = {}
        for index, group in enumerate(event.groups):
            for node in group:
                self._check_node(node)
                groups[node] = index
        self._groups = groups
        self._cut_messages(lambda e: not self.connected(e.src, e.dst))

    def _heal(self, event: ev.Heal, step: _Step) -> None:
        self._groups = None

    def _cut_messages(self, lost: Callable[[Envelope], bool]) -> None:
        doomed = [i for i, e in self._inflight.items() if lost(e)]
        for message_id in doomed:
            self._forget_message(message_id)

    def _tick(self, event: ev.Tick, step: _Step) -> None:
        until = self.now_ms + event.ms
        # The hottest loop of the simulation (a long tick fires thousands of timers): locals
        # instead of attribute lookups, and each heap entry carries its (node, name) key.
        timers, timer_key, timer_seq, nodes_up = (
            self._timers,
            self._timer_key,
            self._timer_seq,
            self.nodes_up,
        )
        pop, push = heapq.heappop, heapq.heappush
        touched, quiet = step.touched, self._quiet_windows
        first_after = (until + 1) << _SEQ_BITS  # every timer due after `until` sorts from here
        for _ in range(MAX_TIMERS_PER_TICK):
            if not timers or timers[0] >= first_after:
                break
            due, seq = divmod(pop(timers), _SEQ_LIMIT)
            key = timer_key.pop(seq)
            node = key[0]
            if timer_seq.get(key) != seq or node not in nodes_up:
                continue
            del timer_seq[key]
            if due > self.now_ms:
                self.now_ms = due
            instance = nodes_up[node]
            name = key[1]
            windows = quiet.get(node)
            window = None if windows is None else windows.get(name)
            holds = window is not None and self._holds(node, window)
            if not holds and type(instance) is Broker:
                window = instance.quiet_until(name, self.now_ms)
                if window is not None:
                    quiet.setdefault(node, {})[name] = window
                    holds = self._holds(node, window)
            if holds and window is not None:
                # The handler would only set the timer again: set it, as the handler would. The
                # node is not touched (its state is as it was), though the service is when the
                # handler would have read it.
                if window.cluster is not None:
                    touched.add(ZK)
                self._next_timer_seq += 1
                seq = self._next_timer_seq
                timer_seq[key] = seq
                timer_key[seq] = key
                push(timers, (self.now_ms + window.delay_ms) << _SEQ_BITS | seq)
                continue
            self._run(node, instance.on_timer(name, self.now_ms), step)
            windows = quiet.get(node)
            if windows:
                for ended in [n for n, w in windows.items() if name in w.ended_by]:
                    del windows[ended]
        self.now_ms = until
        self._expire_messages()

    def _holds(self, node: str, window: QuietWindow) -> bool:
        """Whether a quiet window of a timer of `node` holds now."""
        if self.now_ms >= window.until_ms:
            return False
        return window.cluster is None or self._cluster_read(node) is window.cluster

    def _cluster_read(self, node: str) -> Reply:
        """What a cluster read by `node` would answer now (the call changes nothing)."""
        if not self._zk_up or (self._groups is not None and not self.connected(node, ZK)):
            return ZkError(CONNECTION_LOSS)
        return self.zk.call(_READ_CLUSTER, self.now_ms)

    def _expire_messages(self) -> None:
        oldest = self.now_ms - self.config.message_lifetime_ms
        expired = []
        for message_id, sent_ms in self._sent_ms.items():  # in send order, so oldest first
            if sent_ms >= oldest:
                break
            expired.append(message_id)
        for message_id in expired:
            self._forget_message(message_id)

    # -- performing effects ---------------------------------------------------------------------

    def _run(self, node: str, handler: Handler, step: _Step) -> None:
        step.touched.add(node)
        perform, send = self._perform, handler.send
        try:
            effect = next(handler)
            while True:
                kind = type(effect)
                # The two commonest effects are performed here; the rest, and any subclass, by _perform.
                if kind is SetTimer:
                    self._set_timer(node, effect)  # type: ignore[arg-type]
                    effect = send(None)
                elif kind is Send:
                    self._send(node, effect, step)  # type: ignore[arg-type]
                    effect = send(None)
                else:
                    effect = send(perform(node, effect, step))
        except StopIteration:
            pass

    def _perform(self, node: str, effect: Effect, step: _Step) -> Reply:
        # Effect types are disjoint, so the order of the tests is only by how common each is.
        if isinstance(effect, ZkCall):
            step.touched.add(ZK)
            if not self._zk_up or (self._groups is not None and not self.connected(node, ZK)):
                return ZkError(CONNECTION_LOSS)
            if isinstance(effect.request, GROUP_CALLS):
                step.touched.add(ZK_GROUPS)
                return self.group_store.call(effect.request, self.zk.partitions)
            return self.zk.call(effect.request, self.now_ms)
        elif isinstance(effect, Observe):
            if isinstance(effect.item, ClientOp):
                step.ops.append(effect.item)
            elif isinstance(effect.item, Refused):
                step.refused.append(effect.item.action)
            elif getattr(effect.item, "partition", 0) < self.model.partitions:
                step.actions.append(effect.item)
            # else: a partition of a topic created at runtime, which the model's shape lacks
        elif isinstance(effect, Flush):
            index = int(node[1:])
            flushed = self.disks[(index, effect.partition)].flush(effect.hw)
            if flushed and effect.partition < self.model.partitions:
                step.actions.append(FlushAction(effect.partition, index))
        elif isinstance(effect, Send):
            self._send(node, effect, step)
        elif isinstance(effect, SetTimer):
            self._set_timer(node, effect)
        elif isinstance(effect, OpenLog):
            key = (int(node[1:]), effect.partition)
            if key not in self.disks:
                self.disks[key] = PartitionLog(self.config.segment_records)
            return self.disks[key]
        else:
            raise TypeError(f"{node} yielded {effect!r}, which is not an effect")
        return None

    def _send(self, src: str, effect: Send, step: _Step) -> None:
        if effect.dst not in self.nodes_up or not self.connected(src, effect.dst):
            return  # lost on the way: the destination is down or out of reach
        envelope = Envelope(self._next_message, src, effect.dst, effect.message)
        self._next_message += 1
        self._inflight[envelope.id] = envelope
        self._sent_ms[envelope.id] = self.now_ms
        self._inflight_view = None
        step.sent.append(envelope)

    def _set_timer(self, node: str, effect: SetTimer) -> None:
        self._next_timer_seq += 1
        seq = self._next_timer_seq
        key = (node, effect.name)
        self._timer_seq[key] = seq
        self._timer_key[seq] = key
        heapq.heappush(self._timers, (self.now_ms + effect.delay_ms) << _SEQ_BITS | seq)

    # -- reading -----------------------------------------------------------------------------------

    def describe(self) -> str:
        """A short summary: per partition the quorum and every replica, then network and clock."""
        lines = [
            f"clock {self.now_ms} ms; {len(self._inflight)} messages in flight"
            + ("; network partitioned" if self._groups is not None else "")
        ]
        lease = self.zk.lease
        lines.append(
            f"controller b{lease.holder} (epoch {lease.epoch}); zk {'up' if self.is_up(ZK) else 'down'}"
        )
        for p, record in enumerate(self.zk.partitions):
            leader = "none" if record.leader is None else f"b{record.leader}"
            isr = ",".join(f"b{b}" for b in sorted(record.isr))
            lines.append(f"{TOPIC}/{p}: leader {leader} epoch {record.leader_epoch} isr {{{isr}}}")
            for b in self.model.replicas_of(p):
                log = self.disks[(b, p)]
                broker = self.broker(b)
                if broker is None:
                    lines.append(
                        f"  b{b} down: log [{log.log_start}, {log.leo}) checkpoint hw {log.checkpoint_hw}"
                    )
                    continue
                r = broker.replicas[p]
                lines.append(
                    f"  b{b} {r.role.value} epoch {r.epoch}: log [{log.log_start}, {log.leo}) hw {r.hw} "
                    f"flushed {log.flushed}"
                )
        return "\n".join(lines)


_EVENT_ROUTES = (
    route(ev.Produce, World._produce),
    route(ev.Poll, World._poll),
    route(ev.CommitOffsets, World._commit_offsets),
    route(ev.Subscribe, World._subscribe),
    route(ev.Close, World._close),
    route(ev.Deliver, World._deliver),
    route(ev.Duplicate, World._deliver),
    route(ev.Drop, World._drop),
    route(ev.Crash, World._crash),
    route(ev.Restart, World._restart),
    route(ev.Partition, World._partition),
    route(ev.Heal, World._heal),
    route(ev.Tick, World._tick),
)
_EVENT_HANDLERS: dict[type, Callable[[World, object, _Step], None]] = dict(_EVENT_ROUTES)
