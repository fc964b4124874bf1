"""SOMETIMES properties: the interesting situations a run must reach for its checks to mean anything.

Rules of this module:
- Each property is a predicate named after the situation, with a docstring
  "Reaches: ..."; the catalogue lists it as "never: ...", which is what a run
  that reaches it zero times is guilty of.
- `Coverage` counts how often a run reaches each one, from model steps and
  client operations. A count of zero is a vacuity warning, not a violation.
- The consumer-group situations live with the group properties and are
  counted here too.
- Sibling modules are imported as modules, not names: the catalogue loads
  every property module, so any of them may be the one being imported first.
"""

from __future__ import annotations

from collections.abc import Callable

from kafka_verify.model.actions import (
    ControllerFailover,
    Crash,
    ElectLeader,
    RetentionDelete,
    Truncate,
)
from kafka_verify.model.groups import GROUP_ACTION_TYPES
from kafka_verify.model.state import State
from kafka_verify.properties import groups, history
from kafka_verify.properties.catalogue import PROPERTIES, Kind, prop

StepPredicate = Callable[[State, object, State], bool]


@prop("leader-reelected", Kind.SOMETIMES, "coverage")
def leader_reelected(before: State, action: object, after: State) -> bool:
    """Reaches: an election that hands a partition to a different leader."""
    if not isinstance(action, ElectLeader) or action.leader is None:
        return False
    return before.partitions[action.partition].leader != action.leader


@prop("follower-truncated", Kind.SOMETIMES, "coverage")
def follower_truncated(before: State, action: object, after: State) -> bool:
    """Reaches: a follower truncation that cuts records off its log."""
    if not isinstance(action, Truncate):
        return False
    return action.offset < before.partitions[action.partition].replica(action.broker).leo


@prop("retention-deleted", Kind.SOMETIMES, "coverage")
def retention_deleted(before: State, action: object, after: State) -> bool:
    """Reaches: retention deleting a prefix of some replica's log."""
    return isinstance(action, RetentionDelete)


@prop("crash-lost-unflushed", Kind.SOMETIMES, "coverage")
def crash_lost_unflushed(before: State, action: object, after: State) -> bool:
    """Reaches: a crash of a broker that holds records it has not flushed."""
    if not isinstance(action, Crash):
        return False
    return any(
        r.broker == action.broker and r.flushed < r.leo
        for part in before.partitions
        for r in part.replicas
    )


@prop("leader-crashed", Kind.SOMETIMES, "coverage")
def leader_crashed(before: State, action: object, after: State) -> bool:
    """Reaches: a crash of a broker that is the quorum leader of some partition."""
    return isinstance(action, Crash) and any(p.leader == action.broker for p in before.partitions)


@prop("controller-failover", Kind.SOMETIMES, "coverage")
def controller_failover(before: State, action: object, after: State) -> bool:
    """Reaches: the controller lease passing to another broker."""
    return isinstance(action, ControllerFailover)


@prop("isr-shrank-and-grew-back", Kind.SOMETIMES, "coverage")
def isr_shrank_and_grew_back(
    removed: set[tuple[int, int]], before: State, action: object, after: State
) -> int:
    """Reaches: a broker removed from a partition's ISR and later added back.

    `removed` remembers the (partition, broker) pairs dropped so far; the
    result is how many came back on this step.
    """
    back = 0
    for index, (old, new) in enumerate(zip(before.partitions, after.partitions)):
        if old is new or old.isr == new.isr:
            continue
        for broker in old.isr - new.isr:
            removed.add((index, broker))
        for broker in new.isr - old.isr:
            if (index, broker) in removed:
                removed.discard((index, broker))
                back += 1
    return back


@prop("acked-write-read", Kind.SOMETIMES, "coverage")
def acked_write_read(acked: set[object], read: set[object], op: history.Op) -> int:
    """Reaches: a consumer reading a record whose send was acknowledged.

    `acked` and `read` remember the records acknowledged and read so far; the
    result is how many records this operation completes both for.
    """
    if op.type != "ok":
        return 0
    if op.f == "send":
        record = history.parse_send(op).record
        acked.add(record)
        return 1 if record in read else 0
    if op.f != "poll":
        return 0
    reached = 0
    for _, records in history.parse_poll(op):
        for _, record in records:
            if record not in read:
                read.add(record)
                reached += record in acked
    return reached


# Each step predicate with the action type it needs: observe_step runs, for an action,
# only the predicates whose type it has (every predicate is False on other actions).
_STEP_PREDICATES: tuple[tuple[str, StepPredicate, type], ...] = (
    ("leader-reelected", leader_reelected, ElectLeader),
    ("follower-truncated", follower_truncated, Truncate),
    ("retention-deleted", retention_deleted, RetentionDelete),
    ("crash-lost-unflushed", crash_lost_unflushed, Crash),
    ("leader-crashed", leader_crashed, Crash),
    ("controller-failover", controller_failover, ControllerFailover),
)


class Coverage:
    """Counts, per SOMETIMES property, how often a run reached it (0 if never)."""

    def __init__(self) -> None:
        self.counts: dict[str, int] = {
            name: 0 for name, info in PROPERTIES.items() if info.kind is Kind.SOMETIMES
        }
        self._removed_from_isr: set[tuple[int, int]] = set()
        self._acked: set[object] = set()
        self._read: set[object] = set()
        self._predicates_of: dict[type, tuple[tuple[str, StepPredicate], ...]] = {}

    def _predicates_for(self, kind: type) -> tuple[tuple[str, StepPredicate], ...]:
        predicates = self._predicates_of.get(kind)
        if predicates is None:
            predicates = tuple(
                (name, reached)
                for name, reached, needs in _STEP_PREDICATES
                if issubclass(kind, needs)
            )
            self._predicates_of[kind] = predicates
        return predicates

    def observe_step(self, before: State, action: object, after: State) -> None:
        """Count what one model step (already applied) reaches."""
        for name, reached in self._predicates_for(type(action)):
            if reached(before, action, after):
                self.counts[name] += 1
        if before.partitions is not after.partitions:  # else no ISR changed
            grew_back = isr_shrank_and_grew_back(self._removed_from_isr, before, action, after)
            self.counts["isr-shrank-and-grew-back"] += grew_back
        # The group situations are all reached by group actions.
        if isinstance(action, GROUP_ACTION_TYPES):
            for name in groups.group_coverage(before, action, after):
                self.counts[name] = self.counts.get(name, 0) + 1

    def observe_refused(self, before: State, action: object) -> None:
        """Count an action the system was asked to take and refused (the state did not change)."""
        for name in groups.group_coverage(before, action, None):
            self.counts[name] = self.counts.get(name, 0) + 1

    def observe_op(self, op: history.Op) -> None:
        """Count what one client operation reaches."""
        self.counts["acked-write-read"] += acked_write_read(self._acked, self._read, op)

    def unreached(self) -> list[str]:
        """The SOMETIMES properties never reached, sorted: the run's vacuity warnings."""
        return sorted(name for name, count in self.counts.items() if count == 0)
