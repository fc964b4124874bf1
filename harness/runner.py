"""Run an event list against the reference broker with every check, one step at a time.

This is the one place where the impl, the model and the properties meet:
- the world applies an event and names the model actions it performed;
- the model applies those actions (`model.step`), and the world's abstraction
  must equal the model's state afterwards (the refinement check);
- the ALWAYS properties are checked incrementally on each model transition and
  on each client operation;
- coverage (SOMETIMES) is counted.

The Hypothesis machine, trace replay, the campaign and the benchmark all use
`Checker`, so a trace replays through exactly the code that found it.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from kafka_verify.impl.abstraction import (
    abstract,
    cluster_view,
    groups_match,
    quorum_view,
    replica_matches,
    replicas_match,
    world_matches,
)
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.coordinator import group_names, offsets_partition
from kafka_verify.impl.events import Crash, Restart
from kafka_verify.impl.world import ZK_GROUPS, ClientOp, Envelope, InvalidEvent, StepResult, World
from kafka_verify.model import Action, NotAllowed, State, initial_state, step
from kafka_verify.model.actions import ControllerFailover
from kafka_verify.model.actions import Crash as CrashAction
from kafka_verify.model.actions import Restart as RestartAction
from kafka_verify.model.groups import GROUP_ACTION_TYPES
from kafka_verify.model.state import Config, Partition, Role
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.coverage import Coverage
from kafka_verify.properties.groups import (
    OwnershipChecker,
    check_group_step,
    group_missed_records,
    poll_skipped_after_resume,
    unsettled_group,
)
from kafka_verify.properties.history import HistoryChecker, Op
from kafka_verify.properties.history.simulation import simulation_check_config
from kafka_verify.properties.incremental import IncrementalChecker
from kafka_verify.properties.invariants import check_state

# A full refinement comparison (every part of the abstraction: cluster, quorum
# records, every replica, every group) runs this often, instead of the incremental
# one that runs after every other event. Every run also ends with one
# (`Checker.full_comparison`), so no stretch of events goes uncompared.
FULL_REFINEMENT_EVERY = 64

# Actions that change the running set or the controller lease; quorum records
# only change through calls to the coordination service ("zk" is then touched).
_CLUSTER_ACTIONS = frozenset({CrashAction, RestartAction, ControllerFailover})
_GROUP_ACTIONS = frozenset(GROUP_ACTION_TYPES)


@dataclass(frozen=True)
class StepRecord:
    """What one event did: the actions it named, the history it made, the state after it."""

    index: int
    event: object
    actions: tuple[Action, ...]
    ops: tuple[ClientOp, ...]
    delivered: Envelope | None
    lost_records: int
    state: State
    time_ms: int


@dataclass(frozen=True)
class RunOutcome:
    """A whole (possibly shortened) run: the steps up to and including a violation."""

    engine: str
    config: ClusterConfig | Config
    initial: State
    steps: tuple[StepRecord, ...]
    violation: Violation | None


def state_difference(impl_state: State, model_state: State, limit: int = 6) -> list[str]:
    """Human-readable differences between two model states, field by field."""
    lines: list[str] = []
    for name in ("running", "controller", "controller_epoch", "groups"):
        a, b = getattr(impl_state, name), getattr(model_state, name)
        if a != b:
            lines.append(f"{name}: impl={_show(a)} model={_show(b)}")
    for index, (pi, pm) in enumerate(zip(impl_state.partitions, model_state.partitions)):
        for name in ("leader", "epoch", "isr"):
            a, b = getattr(pi, name), getattr(pm, name)
            if a != b:
                lines.append(f"partition {index} quorum {name}: impl={_show(a)} model={_show(b)}")
        for ri, rm in zip(pi.replicas, pm.replicas):
            for f in dataclasses.fields(ri):
                a, b = getattr(ri, f.name), getattr(rm, f.name)
                if a != b:
                    lines.append(
                        f"partition {index} replica b{ri.broker} {f.name}: impl={_show(a)} model={_show(b)}"
                    )
    return lines[:limit] + ([f"... and {len(lines) - limit} more"] if len(lines) > limit else [])


def _show(value: Any) -> str:
    if isinstance(value, frozenset):
        return "{" + ", ".join(str(v) for v in sorted(value, key=str)) + "}"
    if isinstance(value, tuple) and value and hasattr(value[0], "epoch"):
        shown = " ".join(f"{r.id}@{r.epoch}" for r in value[-6:])
        return ("... " if len(value) > 6 else "") + f"[{shown}]"
    return str(getattr(value, "value", value))


@dataclass
class Checker:
    """The reference cluster under check: world, model state, property checkers and coverage."""

    config: ClusterConfig
    check: bool = True
    world: World = field(init=False)
    model_config: Config = field(init=False)
    state: State = field(init=False)
    history: HistoryChecker = field(init=False)
    ownership: OwnershipChecker = field(init=False)
    coverage: Coverage = field(init=False)
    invariants: IncrementalChecker = field(init=False, default_factory=IncrementalChecker)
    ops: list[Op] = field(init=False, default_factory=list)
    steps_done: int = field(init=False, default=0)
    last_event: object = field(init=False, default=None)
    _read_up_to: dict[tuple[str, str], int] = field(init=False, default_factory=dict)
    _groups: bool = field(init=False, default=False)
    _broker_of_node: dict[str, int] = field(init=False, default_factory=dict)
    _node_of_broker: dict[int, str] = field(init=False, default_factory=dict)
    # Per broker node: (partition, position in the partition's replicas) of each replica it hosts.
    _replica_slots: dict[str, list[tuple[int, int]]] = field(init=False, default_factory=dict)
    _group_of: dict[str, str] = field(init=False, default_factory=dict)
    # The internal offsets topic's partitions (model indexes after the user topic's).
    _offsets_partitions: frozenset[int] = field(init=False, default=frozenset())

    def __post_init__(self) -> None:
        self.world = World(self.config)
        self.model_config = self.config.model_config()
        self._groups = self.config.groups > 0
        self._offsets_partitions = frozenset(
            range(self.config.partitions, self.model_config.partitions)
        )
        self._broker_of_node = {f"b{b}": b for b in range(self.model_config.brokers)}
        self._node_of_broker = {b: node for node, b in self._broker_of_node.items()}
        for p in range(self.model_config.partitions):
            for position, b in enumerate(self.model_config.replicas_of(p)):
                self._replica_slots.setdefault(f"b{b}", []).append((p, position))
        self.state = initial_state(self.model_config)
        # What the history may show follows the cluster's own producers (acks, idempotence).
        self.history = HistoryChecker(
            self.model_config,
            simulation_check_config(acks=self.config.acks, idempotent=self.config.idempotent),
        )
        self.ownership = OwnershipChecker()
        self.coverage = Coverage(
            {g: offsets_partition(g, self.config) for g in group_names(self.config)}
        )

    def _note_progress(self, op: Op) -> None:
        """Track how far each reader (a group, or an unsubscribed consumer) has read."""
        if op.f == "subscribe" and isinstance(op.value, dict):
            self._group_of[op.process] = str(op.value.get("group"))
        if op.f == "poll" and op.type == "ok" and isinstance(op.value, dict):
            reader = self._group_of.get(op.process, op.process)
            for key, pairs in op.value.items():
                if pairs:
                    last = pairs[-1][0] + 1
                    slot = (reader, key)
                    self._read_up_to[slot] = max(self._read_up_to.get(slot, 0), last)

    def initial_violations(self) -> list[Violation]:
        """The world must start where the model starts."""
        if not self.check:
            return []
        found = abstract(self.world)
        if found != self.state:
            return [_refinement_mismatch(None, found, self.state)]
        return check_state(self.state, self.model_config)

    def apply(self, event: object) -> tuple[StepRecord, list[Violation]]:
        """Apply one event; return its record and the violations it caused (empty when clean)."""
        result, violations = self._apply(event)
        record = StepRecord(
            index=self.steps_done,
            event=event,
            actions=result.actions,
            ops=result.ops,
            delivered=result.delivered,
            lost_records=result.lost_records,
            state=self.state,
            time_ms=self.world.now_ms,
        )
        return record, violations

    def apply_unrecorded(self, event: object) -> list[Violation]:
        """`apply` for a caller that keeps its own list of events: the same checks, no record."""
        return self._apply(event)[1]

    def _apply(self, event: object) -> tuple[StepResult, list[Violation]]:
        result = self.world.apply(event)  # type: ignore[arg-type]
        self.steps_done += 1
        self.last_event = event
        violations: list[Violation] = []
        if self.check:
            violations = self._check(event, result.actions, result.ops, result.touched)
            for refused in result.refused:
                self.coverage.observe_refused(self.state, refused)
        return result, violations

    def _check(
        self,
        event: object,
        actions: Sequence[Action],
        ops: Sequence[ClientOp],
        touched: frozenset[str],
    ) -> list[Violation]:
        violations: list[Violation] = []
        state = self.state
        config = self.model_config
        if isinstance(event, (Crash, Restart)) and event.node.startswith("c"):
            self.ownership.restarted(event.node)
        for action in actions:
            try:
                after = step(state, action, config)
            except NotAllowed as error:
                return [
                    Violation(
                        property="refinement",
                        message=f"the broker did something the protocol does not allow: {error.reason}",
                        details=(("event", repr(event)), ("action", repr(action))),
                    )
                ]
            violations.extend(self.invariants.check_step(state, action, after, config))
            if self._groups and after.groups is not state.groups:  # else no group changed
                violations.extend(check_group_step(state, action, after, config))
            self.coverage.observe_step(state, action, after)
            state = after
        self.state = state
        if self.steps_done % FULL_REFINEMENT_EVERY == 0:
            agrees = world_matches(self.world, state)
        else:
            agrees = self._touched_parts_agree(touched, actions, state)
        if not agrees:
            found = abstract(self.world)
            if found != state:
                return [_refinement_mismatch(event, found, state)]
        for client_op in ops:
            op = Op(
                index=len(self.ops),
                time_ms=client_op.time_ms,
                process=client_op.process,
                type=client_op.type,
                f=client_op.f,
                value=client_op.value,
            )
            self.ops.append(op)
            self._note_progress(op)
            self.coverage.observe_op(op)
            violations.extend(self.history.observe(op, state))
            if self._groups:
                violations.extend(self.ownership.observe(op, state))
        return violations

    def full_comparison(self) -> list[Violation]:
        """Compare every part of the world with the model: the last check of every run and phase.

        The incremental comparison after each event looks only at what the event
        could have changed, and the periodic full one runs every
        FULL_REFINEMENT_EVERY events, so a silent change in the last stretch of a
        run would otherwise never be compared.
        """
        if not self.check or world_matches(self.world, self.state):
            return []
        found = abstract(self.world)
        if found == self.state:
            return []
        mismatch = _refinement_mismatch(self.last_event, found, self.state)
        since = self.steps_done - self.steps_done % FULL_REFINEMENT_EVERY
        return [
            dataclasses.replace(
                mismatch,
                message=f"{mismatch.message} (found by the full comparison at the end of the run; "
                f"the last periodic one, after event {since}, agreed)",
            )
        ]

    def _touched_parts_agree(
        self, touched: frozenset[str], actions: Sequence[Action], state: State
    ) -> bool:
        """Refinement, incrementally: compare only what this event could have changed.

        A node whose handlers did not run cannot have changed, so only the
        replicas of touched brokers and of brokers the named actions mention are
        compared, with the (small) quorum, cluster and group state. A full
        comparison still runs every FULL_REFINEMENT_EVERY steps as a cross-check.
        """
        world = self.world
        partitions = state.partitions
        for node in touched:
            if node in self._replica_slots and not self._broker_matches(node, partitions):
                return False
        cluster_step = "zk" in touched
        group_step = ZK_GROUPS in touched
        for action in actions:
            kind = type(action)
            cluster_step = cluster_step or kind in _CLUSTER_ACTIONS
            # Group views also read the offsets partitions' quorum and replicas.
            group_step = (
                group_step
                or kind in _GROUP_ACTIONS
                or kind in _CLUSTER_ACTIONS
                or getattr(action, "partition", -1) in self._offsets_partitions
            )
            broker = getattr(action, "broker", None)
            if not isinstance(broker, int) or self._node_of_broker.get(broker) in touched:
                continue
            # An action on a broker whose handlers did not run (already compared otherwise).
            partition = getattr(action, "partition", None)
            if isinstance(partition, int):
                expected = partitions[partition].replica(broker)
                if not replica_matches(world, broker, partition, expected):
                    return False
            elif broker not in self._node_of_broker or not self._broker_matches(
                self._node_of_broker[broker], partitions
            ):
                return False
        if cluster_step:
            if cluster_view(world) != (state.running, state.controller, state.controller_epoch):
                return False
            for index, part in enumerate(partitions):
                if quorum_view(world, index) != (part.leader, part.epoch, part.isr):
                    return False
        # Group state lives in the coordination service and the coordinators; it
        # changes through a call to the service or a named group action. Anything
        # else is left to the periodic full comparison.
        return not (state.groups and group_step) or groups_match(world, state.groups)

    def _broker_matches(self, node: str, partitions: tuple[Partition, ...]) -> bool:
        """Whether every replica broker `node` hosts is as in the model's `partitions`."""
        # Replica tuples keep Config.replicas_of's order; replicas_match checks the broker.
        hosted = [(p, partitions[p].replicas[i]) for p, i in self._replica_slots[node]]
        return replicas_match(self.world, self._broker_of_node[node], hosted)

    def settled(self) -> bool:
        """Converged replicas, and every consumer has read up to each high watermark."""
        state = self.state
        if state.running != frozenset(range(self.model_config.brokers)):
            return False
        for index, part in enumerate(state.partitions):
            if part.leader is None or part.isr != frozenset(r.broker for r in part.replicas):
                return False
            leader = part.replica(part.leader)
            # As `converged` asks: the quorum leader acts as leader in the quorum's epoch (after
            # a restart of every node all replicas may agree while none has taken up its role).
            if leader.role is not Role.LEADER or leader.epoch != part.epoch:
                return False
            for r in part.replicas:
                if r.leo != leader.leo or r.hw != leader.hw or r.epoch != part.epoch:
                    return False
            # The internal offsets topic's partitions come after the user topic's.
            if index < self.config.partitions and not self._readers_caught_up(index, leader.hw):
                return False
        return all(g.phase.value == "Stable" or not g.members for g in state.groups)

    def _readers_caught_up(self, partition: int, hw: int) -> bool:
        key = f"t/{partition}"
        readers = (
            [f"g{i}" for i in range(self.config.groups)]
            if self._groups
            else [f"c{i}" for i in range(self.config.consumers)]
        )
        return all(self._read_up_to.get((reader, key), 0) >= hw for reader in readers)

    def finish(self) -> list[Violation]:
        """EVENTUALLY properties (and whole-history ones), once the world is healed and drained."""
        if not self.check:
            return []
        found = self.history.finish(self.state)
        if self._groups:
            found += unsettled_group(self.state, self.model_config)
            found += poll_skipped_after_resume(self.ops, self.state)
            found += group_missed_records(self.ops, self.state, acks=self.config.acks)
        return found


def _refinement_mismatch(event: object, found: State, expected: State) -> Violation:
    differences = state_difference(found, expected)
    where = "at start" if event is None else f"after {event!r}"
    return Violation(
        property="refinement",
        message=f"the broker's state {where} differs from the model's: " + "; ".join(differences),
        details=(("event", repr(event)), ("differences", tuple(differences))),
    )


def execute(
    config: ClusterConfig,
    events: Sequence[object],
    finish: bool = False,
    skip_diverged: bool = False,
) -> RunOutcome:
    """Run `events` with every check; stop at the first violation.

    With `finish`, the EVENTUALLY properties are checked once every event has
    run (the events then include the liveness phase that healed and drained).
    An event that cannot apply raises `InvalidEvent`, unless `skip_diverged`:
    replaying against another bug set, the broker may never send a message the
    trace delivers, and such events are skipped (the schedule diverged).
    """
    checker = Checker(config)
    initial = checker.state
    violations = checker.initial_violations()
    records: list[StepRecord] = []
    for event in events:
        if violations:
            break
        try:
            record, violations = checker.apply(event)
        except InvalidEvent:
            if not skip_diverged:
                raise
            continue
        records.append(record)
    if not violations:
        violations = checker.full_comparison()
    if finish and not violations:
        violations = checker.finish()
    return RunOutcome(
        "impl", config, initial, tuple(records), violations[0] if violations else None
    )


def execute_model(config: Config, actions: Sequence[Action]) -> RunOutcome:
    """Replay model actions from the initial state, checking every state property after each."""
    state = initial_state(config)
    initial = state
    records: list[StepRecord] = []
    violation: Violation | None = None
    invariants = IncrementalChecker()
    for index, action in enumerate(actions, start=1):
        try:
            after = step(state, action, config)
        except NotAllowed as error:
            violation = Violation(
                property="refinement", message=f"the action is not allowed: {error.reason}"
            )
            break
        found = (
            invariants.check_step(state, action, after, config)
            or check_group_step(state, action, after, config)
            or check_state(after, config)
        )
        state = after
        records.append(StepRecord(index, action, (action,), (), None, 0, state, 0))
        if found:
            violation = found[0]
            break
    return RunOutcome("model", config, initial, tuple(records), violation)
