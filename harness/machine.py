"""The Hypothesis stateful machine that drives the reference cluster under faults.

One rule per event constructor, thin: each draws the event's arguments, turns
them into one event of `impl/events.py`, and hands it to the `Checker`, which
applies it and checks refinement and every ALWAYS property. A violation raises
`PropertyViolated`; Hypothesis then shrinks the schedule, and the shrunk event
list is the counterexample.

Swarm testing: each example first draws a fault mix (crash-heavy,
partition-heavy, drop-heavy, clock-heavy, calm) and only the faults of that mix
are enabled, so different examples explore very different corners. It draws its
cluster's settings too (`harness/config_swarm.py`: flush interval, replica lag,
timeouts, RF and min ISR, acks and idempotence, retention) over the campaign's
base config, and its checker is built with the drawn config before any event, so
every property, the trace and the report speak of the cluster that ran.

Nemeses, in Jepsen's sense, reach the deep states that random single faults
rarely compose: a leader bounced while others take over (`leader_churn`, several
quick leader changes each with a write the others lack), a follower bounced
right after it replicated records it does not yet know are committed, the
coordinator of a group killed, a consumer restarted. `run_network` lets the
protocol work normally for a while between faults, since most exchanges (an
election, a fetch round trip, a group join) need several deliveries in a row.

Volatile-window nemeses crash a node (always losing what it had not flushed) at
the moment it holds state it has acted on but not made durable: a leader just
after its high watermark rose, a leader alone in its ISR, a follower just
readmitted to the ISR or just after it appended a fetch, a group coordinator
that applied a commit its followers have not learned of, a broker still
reloading its log after a restart. Each runs the network one event at a time
and reads the checked state after every event, so it stops at the first event
that opens the window, whatever the broker's timing; none knows any seeded bug.

Teardown is the liveness phase: heal, restart every node, drain messages and
timers (with polls) until the cluster settles, then check EVENTUALLY.
"""

from __future__ import annotations

import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from hypothesis import currently_in_test_context
from hypothesis import event as _hypothesis_event
from hypothesis import note as _hypothesis_note
from hypothesis import strategies as st
from hypothesis import target as _hypothesis_target
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)
from kafka_verify.harness.config_swarm import ConfigDraw, config_draws
from kafka_verify.harness.runner import Checker
from kafka_verify.impl import events as ev
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.coordinator import offsets_partition
from kafka_verify.model.state import Replica, Role
from kafka_verify.properties.catalogue import Violation

TICKS_MS = (1, 10, 50, 200, 1_000, 5_000)
# Clock jumps: just long enough to expire a session (the reference's 6 s; the short jump
# follows the example's session timeout) or to age records past retention (30 s). Every
# timer fires on the way, so a jump costs in proportion to its length: longer ones buy no
# new states, only time.
CLOCK_JUMPS_MS = (7_000, 31_000)
# What a consumer sends its group coordinator (a silenced consumer loses all of it).
GROUP_REQUESTS = (gm.FindCoordinator, gm.JoinGroup, gm.SyncGroup, gm.Heartbeat, gm.OffsetCommit)
# One round of normal operation lets this much virtual time pass.
ROUND_MS = 250
# How many messages one round of normal operation delivers at most.
ROUND_DELIVERIES = 64

# The swarm draws each example's length too (in rules, counted after the fault mix
# is chosen): short, fault-dense examples are the common case, since they are
# cheap and shrink fast; long ones still come up for the states that need them.
EXAMPLE_LENGTHS = (25, 60, 200, 200)

# The swarm: each example enables one mix of fault kinds.
FAULT_MIXES: dict[str, frozenset[str]] = {
    "calm": frozenset({"tick"}),
    "crash-heavy": frozenset({"crash", "tick", "clock-jump"}),
    "partition-heavy": frozenset({"partition", "tick", "clock-jump"}),
    "drop-heavy": frozenset({"drop", "duplicate", "tick"}),
    "clock-heavy": frozenset({"tick", "clock-jump", "crash"}),
    "everything": frozenset({"crash", "partition", "drop", "duplicate", "tick", "clock-jump"}),
    # The nemeses, with stretches of normal operation ("steady") between faults.
    "leader-churn": frozenset({"churn", "steady", "crash", "tick"}),
    "coordinator-failover": frozenset({"coordinator", "steady", "crash", "tick"}),
    "nemesis": frozenset(
        {"churn", "coordinator", "steady", "crash", "partition", "tick", "clock-jump"}
    ),
    # Crashes aimed at the moments a node holds acted-on state that is not yet durable.
    "volatile": frozenset({"volatile", "steady", "crash", "tick"}),
}
# How many events a volatile-window nemesis runs the network for, at most, to reach its moment.
WINDOW_EVENTS = 120
# The virtual time one idle step of a volatile-window nemesis lets pass (nothing in flight).
WINDOW_TICK_MS = 50


# Hypothesis's reporting calls refuse to run outside a Hypothesis test; the swarm engine
# (harness/swarm.py) calls the rules directly, where they have nothing to report to.
def hypothesis_event(value: str) -> None:
    if currently_in_test_context():
        _hypothesis_event(value)


def note(value: str) -> None:
    if currently_in_test_context():
        _hypothesis_note(value)


def target(observation: float, *, label: str) -> None:
    if currently_in_test_context():
        _hypothesis_target(observation, label=label)


class PropertyViolated(AssertionError):
    """A property failed; carries the violation so the campaign can report it."""

    def __init__(self, violation: Violation, steps: int) -> None:
        super().__init__(f"{violation.property}: {violation.message} (after {steps} events)")
        self.violation = violation


@dataclass
class Recorder:
    """What a campaign learns across examples: totals, coverage, and the last failing run."""

    examples: int = 0
    steps: int = 0
    coverage: dict[str, int] = field(default_factory=dict)
    # The config swarm's draws: per field, how many examples ran each value.
    config_draws: dict[str, dict[str, int]] = field(default_factory=dict)
    failure_events: list[object] = field(default_factory=list)
    failure: Violation | None = None
    # The failing example's own cluster config (the swarm's draw over the base).
    failure_config: ClusterConfig | None = None
    # The config of the example running now (or last run).
    current_config: ClusterConfig | None = None
    first_failure_at_step: int | None = None
    first_failure_seconds: float | None = None
    started: float = field(default_factory=time.perf_counter)
    # Called once per example (progress display); receives the recorder.
    on_example: Callable[[Recorder], None] | None = None
    # Seconds shrinking may take after the first failure (None: as long as Hypothesis likes).
    shrink_budget_s: float | None = None
    # The smallest failing example seen so far, kept so a stopped shrink still has a result.
    smallest_events: list[object] | None = None
    smallest_failure: Violation | None = None
    smallest_config: ClusterConfig | None = None
    shrink_spent: bool = False

    def count_draw(self, draw: ConfigDraw) -> None:
        """Count one example's drawn settings in `config_draws`."""
        for name, value in draw.settings:
            counts = self.config_draws.setdefault(name, {})
            counts[str(value)] = counts.get(str(value), 0) + 1


def settle(checker: Checker, max_rounds: int = 160, tick_ms: int = 250) -> Iterator[object]:
    """The liveness phase's schedule: heal, restart everything, then deliver, tick and poll until settled.

    A generator of events, so the caller applies (and records) each one; it
    reads the checker's state between events to decide when to stop.
    """
    world = checker.world
    if world.partitioned():
        yield ev.Heal()
    for node in world.nodes():
        if not world.is_up(node):
            yield ev.Restart(node)
    consumers = [n for n in world.nodes() if n.startswith("c")]
    groups = checker.config.groups
    if groups:
        for index, consumer in enumerate(consumers):
            if not world.subscribed(consumer):
                yield ev.Subscribe(consumer, f"g{index % groups}", ("t",))
    calm_rounds = 0
    for round_index in range(max_rounds):
        delivered = 0
        while world.inflight() and delivered < 400:
            yield ev.Deliver(world.inflight()[0].id)
            delivered += 1
        if round_index % 2 == 0:
            for consumer in consumers:
                yield ev.Poll(consumer)
        yield ev.Tick(tick_ms)
        if round_index >= 8 and checker.settled():
            calm_rounds += 1
            if calm_rounds >= 3:
                return
        else:
            calm_rounds = 0


class ClusterMachine(RuleBasedStateMachine):
    """Random schedules of client operations and faults against the reference cluster."""

    cluster_config: ClassVar[ClusterConfig] = ClusterConfig()  # the campaign's base config
    recorder: ClassVar[Recorder] = Recorder()
    # Whether each example draws its own settings over `cluster_config` (the config swarm).
    config_swarm: ClassVar[bool] = False

    def __init__(self) -> None:
        super().__init__()
        self.checker = Checker(self.cluster_config)
        self.events: list[object] = []
        self.mix: frozenset[str] = FAULT_MIXES["everything"]
        self.failed = False
        self.group_of: dict[str, str] = {}  # consumer -> the group it last subscribed to
        self.rules_left = EXAMPLE_LENGTHS[-1]
        self.settling = False
        self.recorder.examples += 1
        recorder = self.recorder
        # Once shrinking has spent its budget, examples still draw their data (so
        # Hypothesis sees consistent generation) but run nothing: shrinking then
        # ends at once, and the smallest failure seen so far is the result.
        self.inert = recorder.shrink_spent or (
            recorder.shrink_budget_s is not None
            and recorder.first_failure_seconds is not None
            and time.perf_counter() - recorder.started - recorder.first_failure_seconds
            > recorder.shrink_budget_s
        )
        recorder.shrink_spent = self.inert
        if self.recorder.on_example is not None:
            self.recorder.on_example(self.recorder)
        recorder.current_config = self.cluster_config
        self._raise_all(self.checker.initial_violations())

    # -- plumbing -----------------------------------------------------------------

    def _run_network(self, rounds: int) -> None:
        """Normal operation for `rounds` x ROUND_MS: deliver what is in flight, oldest first, then tick."""
        world = self.checker.world
        for _ in range(rounds):
            for _ in range(ROUND_DELIVERIES):
                inflight = world.inflight()
                if self.idle or not inflight:
                    break
                self._do(ev.Deliver(inflight[0].id))
            self._do(ev.Tick(ROUND_MS))

    def _leader(self, partition: int) -> int | None:
        """The quorum leader of `partition` if that broker is running."""
        leader = self.checker.state.partitions[partition].leader
        return leader if leader is not None and self.checker.world.is_up(f"b{leader}") else None

    def _write_to_leader(self, partition: int) -> None:
        """A producer sends one record to `partition` and the network delivers that request at once."""
        producers = self._nodes("p", True)
        if not producers or partition >= self.cluster_config.partitions:
            return  # the internal offsets topic takes no producer's records
        self._do(ev.Produce(producers[0], "t", partition))
        sent = [e for e in self.checker.world.inflight() if e.src == producers[0]]
        if sent and not self.idle:
            self._do(ev.Deliver(sent[-1].id))

    def _replica(self, partition: int, broker: int) -> Replica:
        return self.checker.state.partitions[partition].replica(broker)

    def _run_until(self, reached: Callable[[], bool], limit: int = WINDOW_EVENTS) -> bool:
        """Normal operation one event at a time (the oldest delivery, else a short tick) until
        `reached` holds: the caller acts on the very event that made it true."""
        world = self.checker.world
        for _ in range(limit):
            if self.idle:
                return False
            if reached():
                return True
            inflight = world.inflight()
            self._do(ev.Deliver(inflight[0].id) if inflight else ev.Tick(WINDOW_TICK_MS))
        return not self.idle and reached()

    def _crash_losing(self, node: str, restart: bool) -> None:
        """Crash `node` at the moment found, with what it never flushed lost (the point of it)."""
        if not self.checker.world.is_up(node):
            return
        self._do(ev.Crash(node, lose_unflushed=True))
        if restart:
            self._do(ev.Restart(node))

    def _out_of_isr(self, partition: int, brokers: set[int]) -> bool:
        """Crash `brokers` and run until none is in the partition's ISR (their sessions or lag expire)."""
        for broker in sorted(brokers):
            self._crash_losing(f"b{broker}", restart=False)
        return self._run_until(
            lambda: not brokers & self.checker.state.partitions[partition].isr,
            limit=4 * WINDOW_EVENTS,
        )

    def _bounce(self, node: str, lose_unflushed: bool) -> None:
        self._do(ev.Crash(node, lose_unflushed))
        self._do(ev.Restart(node))

    def _raise_all(self, violations: list[Violation]) -> None:
        if violations:
            self.failed = True
            self.recorder.failure = violations[0]
            self.recorder.failure_events = list(self.events)
            self.recorder.failure_config = self.checker.config
            smallest = self.recorder.smallest_events
            if smallest is None or len(self.events) <= len(smallest):
                self.recorder.smallest_events = list(self.events)
                self.recorder.smallest_failure = violations[0]
                self.recorder.smallest_config = self.checker.config
            if self.recorder.first_failure_at_step is None:
                self.recorder.first_failure_at_step = self.recorder.steps
                self.recorder.first_failure_seconds = time.perf_counter() - self.recorder.started
            note(self.checker.world.describe())
            raise PropertyViolated(violations[0], len(self.events))

    @property
    def idle(self) -> bool:
        """No more events: shrinking is over, or this example's length is spent (until teardown)."""
        return self.inert or (self.rules_left <= 0 and not self.settling)

    def _do(self, event: object) -> None:
        if self.idle:
            return
        self.events.append(event)
        self.recorder.steps += 1
        try:
            violations = self.checker.apply_unrecorded(event)
        except Exception as error:  # the broker itself broke: that is a finding too
            violations = [
                Violation(
                    property="internal-error",
                    message=f"{type(error).__name__} while applying {event!r}: {error}",
                    details=(("traceback", traceback.format_exc(limit=6)),),
                )
            ]
        self._raise_all(violations)

    def _nodes(self, prefix: str, up: bool) -> list[str]:
        world = self.checker.world
        return [n for n in world.nodes() if n.startswith(prefix) and world.is_up(n) == up]

    # -- the swarm ----------------------------------------------------------------

    # Without the config swarm nothing is drawn for `cluster`, so a seed generates exactly the
    # examples it did before the swarm existed; `make_machine` redeclares the rule with a draw.
    @initialize(mix=st.sampled_from(sorted(FAULT_MIXES)), length=st.sampled_from(EXAMPLE_LENGTHS))
    def choose_fault_mix(self, mix: str, length: int, cluster: ConfigDraw | None = None) -> None:
        """The example's swarm: its fault mix, its length and (`cluster`) its cluster settings.

        With `cluster`, the checker is rebuilt on the drawn config; no event has run yet.
        """
        self.mix = FAULT_MIXES[mix]
        self.rules_left = length
        # Statistics only inside a Hypothesis test: another engine may call the rules directly.
        in_test = currently_in_test_context()
        if in_test:
            hypothesis_event(f"fault mix: {mix}")
            hypothesis_event(f"length: {length} rules")
        if cluster is not None and not self.inert:
            assert not self.events, "the cluster config is drawn before any event"
            self.checker = Checker(cluster.apply(self.cluster_config))
            self.recorder.current_config = self.checker.config
            self.recorder.count_draw(cluster)
            if in_test:
                note(f"cluster settings: {cluster.label()}")
                for name, value in cluster.settings:
                    hypothesis_event(f"config {name}: {value}")
            self._raise_all(self.checker.initial_violations())

    @invariant()
    def count_rules(self) -> None:
        # Runs after every rule: once the drawn length is spent, the rest of the
        # example's rules are no-ops and teardown's liveness phase follows.
        self.rules_left -= 1

    # -- client operations ----------------------------------------------------------

    def _consumers(self, subscribed: bool | None = None) -> list[str]:
        world = self.checker.world
        up = self._nodes("c", True)
        if subscribed is None:
            return up
        return [c for c in up if world.subscribed(c) == subscribed]

    @precondition(lambda self: bool(self._nodes("p", True)))
    @rule(producer=st.integers(0, 7), partition=st.none() | st.integers(0, 7))
    def produce(self, producer: int, partition: int | None) -> None:
        producers = self._nodes("p", True)
        chosen = None if partition is None else partition % self.cluster_config.partitions
        self._do(ev.Produce(producers[producer % len(producers)], "t", chosen))

    @precondition(lambda self: bool(self._consumers()))
    @rule(consumer=st.integers(0, 7))
    def poll(self, consumer: int) -> None:
        consumers = self._consumers()
        self._do(ev.Poll(consumers[consumer % len(consumers)]))

    @precondition(lambda self: self.cluster_config.groups > 0 and bool(self._consumers(False)))
    @rule(consumer=st.integers(0, 7), group=st.integers(0, 7))
    def subscribe(self, consumer: int, group: int) -> None:
        consumers = self._consumers(False)
        chosen = f"g{group % self.cluster_config.groups}"
        client = consumers[consumer % len(consumers)]
        self.group_of[client] = chosen
        self._do(ev.Subscribe(client, chosen, ("t",)))

    @precondition(lambda self: bool(self._consumers(True)))
    @rule(consumer=st.integers(0, 7))
    def commit(self, consumer: int) -> None:
        consumers = self._consumers(True)
        self._do(ev.CommitOffsets(consumers[consumer % len(consumers)]))

    @precondition(lambda self: bool(self._consumers(True)))
    @rule(consumer=st.integers(0, 7))
    def close_consumer(self, consumer: int) -> None:
        consumers = self._consumers(True)
        self._do(ev.Close(consumers[consumer % len(consumers)]))

    # -- the network -----------------------------------------------------------------

    @precondition(lambda self: bool(self.checker.world.inflight()))
    @rule(pick=st.integers(0, 63))
    def deliver(self, pick: int) -> None:
        inflight = self.checker.world.inflight()
        self._do(ev.Deliver(inflight[pick % len(inflight)].id))

    @precondition(lambda self: bool(self.checker.world.inflight()))
    @rule(count=st.integers(1, 16))
    def deliver_oldest(self, count: int) -> None:
        """Deliver up to `count` messages in send order: most of real time is a working network."""
        for _ in range(count):
            inflight = self.checker.world.inflight()
            if not inflight:
                return
            self._do(ev.Deliver(inflight[0].id))

    @precondition(lambda self: "steady" in self.mix)
    @rule(rounds=st.integers(1, 12))
    def run_network(self, rounds: int) -> None:
        """A stretch of normal operation between faults: deliveries in order and time passing."""
        self._run_network(rounds)

    @precondition(lambda self: "drop" in self.mix and bool(self.checker.world.inflight()))
    @rule(pick=st.integers(0, 63))
    def drop(self, pick: int) -> None:
        inflight = self.checker.world.inflight()
        self._do(ev.Drop(inflight[pick % len(inflight)].id))

    @precondition(lambda self: "duplicate" in self.mix and bool(self.checker.world.inflight()))
    @rule(pick=st.integers(0, 63))
    def duplicate(self, pick: int) -> None:
        inflight = self.checker.world.inflight()
        self._do(ev.Duplicate(inflight[pick % len(inflight)].id))

    @precondition(lambda self: "partition" in self.mix and not self.checker.world.partitioned())
    @rule(split=st.integers(1, 2**16))
    def partition(self, split: int) -> None:
        nodes = [n for n in self.checker.world.nodes() if n.startswith(("b", "zk"))]
        mask = split % (2 ** len(nodes) - 2) + 1  # never everything on one side
        side = tuple(n for i, n in enumerate(nodes) if mask >> i & 1)
        rest = tuple(n for n in self.checker.world.nodes() if n not in side)
        self._do(ev.Partition((side, rest)))

    @precondition(lambda self: "partition" in self.mix and not self.checker.world.partitioned())
    @rule(partition=st.integers(0, 7), with_producers=st.booleans())
    def isolate_leader(self, partition: int, with_producers: bool) -> None:
        """Jepsen's favourite nemesis: cut one partition's leader off from everyone else.

        With the producers on its side, a deposed leader keeps appending
        records that must later be truncated.
        """
        part = self.checker.state.partitions[partition % len(self.checker.state.partitions)]
        if part.leader is None:
            return
        world = self.checker.world
        side: tuple[str, ...] = (f"b{part.leader}",)
        if with_producers:
            side += tuple(n for n in world.nodes() if n.startswith("p"))
        rest = tuple(n for n in world.nodes() if n not in side)
        self._do(ev.Partition((side, rest)))

    @precondition(lambda self: self.checker.world.partitioned())
    @rule()
    def heal(self) -> None:
        self._do(ev.Heal())

    # -- nodes and the clock -----------------------------------------------------------

    @precondition(lambda self: "crash" in self.mix and bool(self._nodes("b", True)))
    @rule(pick=st.integers(0, 15), lose_unflushed=st.booleans())
    def crash_broker(self, pick: int, lose_unflushed: bool) -> None:
        up = self._nodes("b", True)
        self._do(ev.Crash(up[pick % len(up)], lose_unflushed))

    @precondition(lambda self: "crash" in self.mix and bool(self._nodes("b", True)))
    @rule(pick=st.integers(0, 15), lose_unflushed=st.booleans())
    def bounce_broker(self, pick: int, lose_unflushed: bool) -> None:
        """Kill a broker and start it again at once (Jepsen's kill/start): a restart that
        comes before anyone noticed the crash, with whatever the disk kept."""
        up = self._nodes("b", True)
        node = up[pick % len(up)]
        self._do(ev.Crash(node, lose_unflushed))
        self._do(ev.Restart(node))

    @precondition(lambda self: "crash" in self.mix)
    @rule(partition=st.integers(0, 7), lose_unflushed=st.booleans())
    def crash_leader(self, partition: int, lose_unflushed: bool) -> None:
        """Crash one partition's current leader, the broker most likely to hold unflushed records."""
        part = self.checker.state.partitions[partition % len(self.checker.state.partitions)]
        if part.leader is not None and self.checker.world.is_up(f"b{part.leader}"):
            self._do(ev.Crash(f"b{part.leader}", lose_unflushed))

    @precondition(lambda self: "crash" in self.mix)
    @rule(pick=st.integers(0, 15))
    def crash_other(self, pick: int) -> None:
        # The coordination service and clients crash too (a restarted consumer
        # must find its committed position again).
        up = self._nodes("zk", True) + self._nodes("c", True) + self._nodes("p", True)
        if up:
            self._do(ev.Crash(up[pick % len(up)]))

    @precondition(lambda self: "churn" in self.mix)
    @rule(partition=st.integers(0, 7), lose_unflushed=st.booleans())
    def bounce_leader(self, partition: int, lose_unflushed: bool) -> None:
        """Kill a partition's leader and start it again at once: the controller elects another
        leader and keeps the bounced one in the ISR, a leader change without an ISR change."""
        leader = self._leader(partition % len(self.checker.state.partitions))
        if leader is not None:
            self._bounce(f"b{leader}", lose_unflushed)

    @precondition(lambda self: "churn" in self.mix)
    @rule(
        partition=st.integers(0, 7),
        rounds=st.integers(1, 3),
        lose_unflushed=st.booleans(),
        isolate=st.booleans(),
    )
    def leader_churn(
        self, partition: int, rounds: int, lose_unflushed: bool, isolate: bool
    ) -> None:
        """Several quick leader changes, each leader taking a write the others lack.

        Each round a record reaches the leader, the leader is bounced (and, with
        `isolate`, kept cut off so it never hears of the next epoch), the
        controller elects another, and the network runs briefly. Logs that
        diverge across several epochs are where truncation bugs live.
        """
        index = partition % self.cluster_config.partitions
        world = self.checker.world
        for _ in range(rounds):
            leader = self._leader(index)
            if leader is None or self.idle:
                return
            self._write_to_leader(index)
            if world.partitioned():
                self._do(ev.Heal())
            node = f"b{leader}"
            self._bounce(node, lose_unflushed)
            if isolate:
                self._do(ev.Partition(((node,), tuple(n for n in world.nodes() if n != node))))
            for _ in range(4):  # the controller notices the new broker epoch on its next tick
                if self.checker.state.partitions[index].leader != leader or self.idle:
                    break
                self._do(ev.Tick(ROUND_MS))
            self._run_network(4)

    @precondition(lambda self: "churn" in self.mix)
    @rule(partition=st.integers(0, 7), lose_unflushed=st.booleans())
    def bounce_fresh_follower(self, partition: int, lose_unflushed: bool) -> None:
        """Bounce a follower right after it replicated records it does not yet know are committed
        (its log end is past its high watermark): what a restart truncates then is the question."""
        part = self.checker.state.partitions[partition % len(self.checker.state.partitions)]
        world = self.checker.world
        for replica in part.replicas:
            node = f"b{replica.broker}"
            fresh = replica.leo > replica.hw and replica.broker != part.leader
            if fresh and world.is_up(node):
                self._bounce(node, lose_unflushed)
                return

    # -- volatile-window nemeses: crash at the moment acted-on state is not yet durable ---------

    @precondition(lambda self: "volatile" in self.mix)
    @rule(partition=st.integers(0, 7), restart=st.booleans())
    def crash_leader_after_commit(self, partition: int, restart: bool) -> None:
        """A write reaches a leader; crash the leader on the event its high watermark passes the
        write: the acknowledgements are on their way, the new high watermark is not checkpointed."""
        index = partition % len(self.checker.state.partitions)
        leader = self._leader(index)
        if leader is None:
            return
        hw = self._replica(index, leader).hw
        self._write_to_leader(index)

        def committed_or_deposed() -> bool:
            part = self.checker.state.partitions[index]
            return part.leader != leader or part.replica(leader).hw > hw

        reached = self._run_until(committed_or_deposed)
        if reached and self.checker.state.partitions[index].leader == leader:
            self._crash_losing(f"b{leader}", restart)

    @precondition(lambda self: "volatile" in self.mix)
    @rule(partition=st.integers(0, 7), restart=st.booleans())
    def crash_sole_isr_leader(self, partition: int, restart: bool) -> None:
        """A leader's followers crash while it takes a write; crash the leader on the event that
        leaves it alone in its ISR, when it commits what it holds: the one copy there is."""
        index = partition % len(self.checker.state.partitions)
        leader = self._leader(index)
        if leader is None:
            return
        others = set(self.checker.state.partitions[index].isr) - {leader}
        for broker in sorted(others):
            self._crash_losing(f"b{broker}", restart=False)
        self._write_to_leader(index)

        def alone_or_deposed() -> bool:
            part = self.checker.state.partitions[index]
            return part.leader != leader or part.isr == frozenset({leader})

        reached = self._run_until(alone_or_deposed, limit=4 * WINDOW_EVENTS)
        if reached and self.checker.state.partitions[index].leader == leader:
            self._crash_losing(f"b{leader}", restart)
        for broker in sorted(others):
            if not self.checker.world.is_up(f"b{broker}") and not self.idle:
                self._do(ev.Restart(f"b{broker}"))

    @precondition(lambda self: "volatile" in self.mix)
    @rule(partition=st.integers(0, 7), pick=st.integers(0, 7), restart=st.booleans())
    def crash_readmitted_follower(self, partition: int, pick: int, restart: bool) -> None:
        """A follower drops out of the ISR and comes back; crash it on the event that readmits it,
        before anything it counted on to be readmitted is known durable."""
        index = partition % len(self.checker.state.partitions)
        part = self.checker.state.partitions[index]
        followers = [r.broker for r in part.replicas if r.broker != part.leader]
        if part.leader is None or not followers:
            return
        follower = followers[pick % len(followers)]
        node = f"b{follower}"
        if follower in part.isr and not self._out_of_isr(index, {follower}):
            return
        if not self.checker.world.is_up(node):
            self._do(ev.Restart(node))
        self._write_to_leader(index)
        if self._run_until(lambda: follower in self.checker.state.partitions[index].isr):
            self._crash_losing(node, restart)

    @precondition(lambda self: "volatile" in self.mix)
    @rule(partition=st.integers(0, 7), crash_leader=st.booleans(), restart=st.booleans())
    def crash_after_fetch(self, partition: int, crash_leader: bool, restart: bool) -> None:
        """A write reaches a leader; on the event a follower appends it from a fetch, crash the
        follower (its append fresh) or the leader (which served records it has not flushed)."""
        index = partition % len(self.checker.state.partitions)
        leader = self._leader(index)
        if leader is None:
            return
        ends = {r.broker: r.leo for r in self.checker.state.partitions[index].replicas}
        self._write_to_leader(index)

        def appended() -> int | None:
            part = self.checker.state.partitions[index]
            grown = [
                r.broker for r in part.replicas if r.broker != leader and r.leo > ends[r.broker]
            ]
            return grown[0] if grown else None

        if self._run_until(lambda: appended() is not None):
            follower = appended()
            assert follower is not None
            self._crash_losing(f"b{leader if crash_leader else follower}", restart)

    @precondition(
        lambda self: (
            "volatile" in self.mix
            and self.cluster_config.groups > 0
            and bool(self._consumers(True))
        )
    )
    @rule(consumer=st.integers(0, 7), restart=st.booleans())
    def crash_coordinator_mid_commit(self, consumer: int, restart: bool) -> None:
        """A reading consumer commits; crash its group's coordinator on the event it applies the
        commit (its high watermark passed the commit record) before its followers learn of it."""
        consumers = self._consumers(True)
        chosen = consumers[consumer % len(consumers)]
        group = self.group_of.get(chosen)
        if group is None:
            return
        index = offsets_partition(group, self.cluster_config)
        self._until_reading(chosen)
        leader = self._leader(index)
        if leader is None or not self.checker.world.is_up(chosen):
            return
        hw = self._replica(index, leader).hw
        self._do(ev.CommitOffsets(chosen))

        def applied_ahead() -> bool:
            part = self.checker.state.partitions[index]
            if part.leader != leader:
                return True
            ahead = part.replica(leader).hw
            return ahead > hw and any(r.hw < ahead for r in part.replicas if r.broker != leader)

        if self._run_until(applied_ahead) and self._leader(index) == leader:
            self._crash_losing(f"b{leader}", restart)

    @precondition(lambda self: "volatile" in self.mix and bool(self._nodes("b", True)))
    @rule(pick=st.integers(0, 15), events=st.integers(0, 12))
    def crash_during_restart(self, pick: int, events: int) -> None:
        """Bounce a broker, and crash it again while it is still reloading: before its replicas
        have all taken up their roles (or after `events` more events), then start it once more."""
        up = self._nodes("b", True)
        node = up[pick % len(up)]
        broker = int(node[1:])
        self._bounce(node, lose_unflushed=True)

        def reloaded() -> bool:
            return all(
                r.role is Role.FOLLOWING or p.leader == broker
                for p in self.checker.state.partitions
                for r in p.replicas
                if r.broker == broker
            )

        self._run_until(reloaded, limit=events)
        if self.checker.world.is_up(node):
            self._crash_losing(node, restart=True)

    @precondition(lambda self: "coordinator" in self.mix and self.cluster_config.groups > 0)
    @rule(group=st.integers(0, 7), lose_unflushed=st.booleans(), restart=st.booleans())
    def kill_coordinator(self, group: int, lose_unflushed: bool, restart: bool) -> None:
        """Crash the broker that coordinates a group (the leader of its offsets partition), so
        another broker must take the group over from the replicated offsets topic."""
        name = f"g{group % self.cluster_config.groups}"
        leader = self._leader(offsets_partition(name, self.cluster_config))
        if leader is None:
            return
        self._do(ev.Crash(f"b{leader}", lose_unflushed))
        if restart:
            self._do(ev.Restart(f"b{leader}"))

    @precondition(lambda self: "coordinator" in self.mix and bool(self._consumers(True)))
    @rule(consumer=st.integers(0, 7))
    def restart_consumer(self, consumer: int) -> None:
        """A consumer process dies and comes back: it remembers nothing, joins its group again
        and must resume from the group's committed offsets."""
        consumers = self._consumers(True)
        chosen = consumers[consumer % len(consumers)]
        self._do(ev.Crash(chosen))
        self._do(ev.Restart(chosen))
        if self.cluster_config.groups and chosen in self.group_of:
            self._do(ev.Subscribe(chosen, self.group_of[chosen], ("t",)))

    def _until_reading(self, consumer: str, max_rounds: int = 40) -> None:
        """Brokers back up, then normal operation with the consumer polling, until it owns
        partitions and has read: the consumer fault that follows is then about the consumer."""
        world = self.checker.world
        for broker in self._nodes("b", False):
            self._do(ev.Restart(broker))
        for _ in range(max_rounds):
            if self.idle or (world.owns_partitions(consumer) and self._has_read(consumer)):
                return
            if world.is_up(consumer):
                self._do(ev.Poll(consumer))
            self._run_network(1)

    def _has_read(self, consumer: str) -> bool:
        return any(op.process == consumer and op.f == "poll" for op in self.checker.ops[-50:])

    @precondition(lambda self: "coordinator" in self.mix and bool(self._consumers(True)))
    @rule(consumer=st.integers(0, 7), rounds=st.integers(8, 48))
    def silence_consumer(self, consumer: int, rounds: int) -> None:
        """A one-way fault on a consumer that is reading: what it sends its group coordinator is
        lost for a while (its offset commits are held back instead, and arrive when the fault
        ends), while its fetches still reach the partition leaders and it keeps polling. Its
        session expires at the coordinator and its partitions move on; it must stop reading by
        its own clock, and its late commits must be refused as stale."""
        chosen = self._consumers(True)[consumer % len(self._consumers(True))]
        world = self.checker.world
        producers = self._nodes("p", True)
        for partition in range(self.cluster_config.partitions):
            if producers:
                self._do(ev.Produce(producers[0], "t", partition))
        self._until_reading(chosen)
        held: set[int] = set()
        for round_index in range(rounds):
            if producers and round_index % 4 == 0:  # new records, so a read shows who reads
                partition = (round_index // 4) % self.cluster_config.partitions
                self._do(ev.Produce(producers[0], "t", partition))
            for _ in range(ROUND_DELIVERIES):
                waiting = [e for e in world.inflight() if e.id not in held]
                if self.idle or not waiting:
                    break
                oldest = waiting[0]
                silenced = oldest.src == chosen and isinstance(oldest.message, GROUP_REQUESTS)
                if silenced and isinstance(oldest.message, gm.OffsetCommit):
                    held.add(oldest.id)
                else:
                    self._do(ev.Drop(oldest.id) if silenced else ev.Deliver(oldest.id))
            if world.is_up(chosen):
                self._do(ev.Poll(chosen))
            self._do(ev.Tick(ROUND_MS))
        for envelope in world.inflight():
            if envelope.id in held and not self.idle:
                self._do(ev.Deliver(envelope.id))

    @precondition(
        lambda self: any(not self.checker.world.is_up(n) for n in self.checker.world.nodes())
    )
    @rule(pick=st.integers(0, 15))
    def restart(self, pick: int) -> None:
        down = [n for n in self.checker.world.nodes() if not self.checker.world.is_up(n)]
        self._do(ev.Restart(down[pick % len(down)]))

    @rule(ms=st.sampled_from(TICKS_MS))
    def tick(self, ms: int) -> None:
        self._do(ev.Tick(ms))

    @precondition(lambda self: "clock-jump" in self.mix)
    @rule(ms=st.sampled_from(CLOCK_JUMPS_MS))
    def clock_jump(self, ms: int) -> None:
        # The short jump is there to expire a session: it follows the example's session
        # timeout (the reference's 6 s gives the 7 s it was chosen as).
        if ms == CLOCK_JUMPS_MS[0]:
            ms = self.checker.config.session_timeout_ms + 1_000
        self._do(ev.Tick(ms))

    # -- the liveness phase -----------------------------------------------------------

    def teardown(self) -> None:
        # Hypothesis calls teardown after a failing step too; the liveness phase
        # then must not run, or it would replace the failure it is cleaning up after.
        if self.failed or self.inert:
            return
        counts = self.checker.coverage.counts
        # Steer towards the deep corners where replication bugs live.
        depth = sum(
            counts.get(k, 0)
            for k in ("leader-reelected", "follower-truncated", "crash-lost-unflushed")
        )
        target(float(depth), label="leader changes, truncations and lossy crashes")
        # Each phase ends with a full refinement comparison: the periodic one may
        # not have run since the last events.
        self._raise_all(self.checker.full_comparison())
        self.settling = True
        try:
            for settle_event in settle(self.checker):
                self._do(settle_event)
            self._raise_all(self.checker.full_comparison())
            self._raise_all(self.checker.finish())
        finally:
            for name, count in counts.items():
                self.recorder.coverage[name] = self.recorder.coverage.get(name, 0) + count


def make_machine(
    config: ClusterConfig,
    recorder: Recorder,
    *,
    config_swarm: bool = False,
    swarm_axes: frozenset[str] | None = None,
) -> type[ClusterMachine]:
    """A ClusterMachine subclass bound to one base config and one recorder; with `config_swarm`,
    each example draws its own settings over `config` (on `swarm_axes` only, when given)."""
    body: dict[str, object] = {
        "cluster_config": config,
        "recorder": recorder,
        "config_swarm": config_swarm,
    }
    if config_swarm:

        @initialize(
            mix=st.sampled_from(sorted(FAULT_MIXES)),
            length=st.sampled_from(EXAMPLE_LENGTHS),
            cluster=config_draws(config, swarm_axes),
        )
        def choose_fault_mix(
            self: ClusterMachine, mix: str, length: int, cluster: ConfigDraw | None = None
        ) -> None:
            ClusterMachine.choose_fault_mix(self, mix, length, cluster)

        body["choose_fault_mix"] = choose_fault_mix
    return type("ClusterMachine", (ClusterMachine,), body)
