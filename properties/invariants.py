"""State and step properties of the model: what no cluster state, and no single step, may do.

Rules of this module:
- A state property is a function `(state, config) -> list[Violation]` that
  scans every partition. `check_state` runs them all; it is what explicit
  search and the Hypothesis model tests call.
- A step property is a function `(before, action, after) -> list[Violation]`.
- Re-checking them incrementally after every event of a long run is the job of
  `incremental.py`; this module states the properties, and only that.
- Nothing here changes a state or decides what may happen next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable

from kafka_verify.model.actions import (
    Crash,
    ResetLog,
    RetentionDelete,
    Truncate,
)
from kafka_verify.model.state import Config, Partition, Record, Replica, Role, State
from kafka_verify.properties.catalogue import Kind, Violation, facts, prop

StateProperty = Callable[[State, Config], list[Violation]]
StepProperty = Callable[[State, object, State], list[Violation]]


# -- small helpers -----------------------------------------------------------------------


def _show(record: Record | None) -> str:
    return "nothing" if record is None else f"record {record.id} (epoch {record.epoch})"


def _fact(record: Record | None) -> tuple[int, int] | None:
    return None if record is None else (record.id, record.epoch)


def _first_difference(a: Replica, b: Replica, lo: int, hi: int) -> int | None:
    """The first offset in [lo, hi) where `a` and `b` differ; a record one lacks counts as a difference."""
    lo = max(lo, a.log_start, b.log_start)  # never slice with a negative index
    if lo >= hi:
        return None
    mine = a.log[lo - a.log_start : hi - a.log_start]
    theirs = b.log[lo - b.log_start : hi - b.log_start]
    if len(mine) == len(theirs) == hi - lo and mine == theirs:
        return None
    for offset in range(lo, hi):
        x, y = a.record_at(offset), b.record_at(offset)
        if x is None or y is None or x != y:
            return offset
    return None


def _disagreement(index: int, offset: int, a: Replica, b: Replica, why: str) -> Violation:
    x, y = a.record_at(offset), b.record_at(offset)
    return Violation(
        property="log-agreement",
        message=(
            f"partition {index} offset {offset}: broker {a.broker} has {_show(x)} but broker "
            f"{b.broker} has {_show(y)}, {why}"
        ),
        partition=index,
        details=facts(
            offset=offset,
            brokers=(a.broker, b.broker),
            records=(_fact(x), _fact(y)),
            high_watermarks=(a.hw, b.hw),
        ),
    )


def _per_partition(state: State, check: Callable[[State, int], list[Violation]]) -> list[Violation]:
    found: list[Violation] = []
    for index in range(len(state.partitions)):
        found.extend(check(state, index))
    return found


def _max_hw(part: Partition) -> int:
    return max((r.hw for r in part.replicas), default=0)


# -- state properties --------------------------------------------------------------------


def _log_agreement(state: State, index: int) -> list[Violation]:
    part = state.partitions[index]
    found: list[Violation] = []
    top = _max_hw(part)
    refs = [r for r in part.replicas if r.hw == top]
    for member in part.replicas:
        if member.broker not in part.isr:
            continue
        for ref in refs:
            if ref is member:
                continue
            offset = _first_difference(member, ref, 0, top)
            if offset is not None:
                why = f"ISR member {member.broker} must hold what broker {ref.broker} committed (hw {top})"
                found.append(_disagreement(index, offset, member, ref, why))
    replicas = part.replicas
    for i, a in enumerate(replicas):
        for b in replicas[i + 1 :]:
            offset = _first_difference(a, b, 0, min(a.hw, b.hw))
            if offset is not None:
                found.append(_disagreement(index, offset, a, b, "below both high watermarks"))
    return found


@prop("log-agreement", Kind.ALWAYS, "state")
def log_agreement(state: State, config: Config) -> list[Violation]:
    """Forbids: an ISR member lacking or differing from a committed record, or two replicas holding different records below both their high watermarks.

    Committed means below H, the largest high watermark of any replica; every
    replica whose high watermark is H is a reference, and every quorum-ISR
    member must hold the same records as each reference over the offsets both
    retain below H (TLA+ StrongIsr). Any two replicas must also agree below the
    smaller of their high watermarks, over the offsets both retain.
    """
    return _per_partition(state, _log_agreement)


def _single_leader_per_epoch(state: State, index: int) -> list[Violation]:
    leaders: dict[int, int] = {}
    found: list[Violation] = []
    for r in state.partitions[index].replicas:
        if r.role is not Role.LEADER:
            continue
        other = leaders.setdefault(r.epoch, r.broker)
        if other != r.broker:
            found.append(
                Violation(
                    property="single-leader-per-epoch",
                    message=(
                        f"partition {index}: brokers {other} and {r.broker} both lead in epoch {r.epoch}"
                    ),
                    partition=index,
                    details=facts(epoch=r.epoch, brokers=(other, r.broker)),
                )
            )
    return found


@prop("single-leader-per-epoch", Kind.ALWAYS, "state")
def single_leader_per_epoch(state: State, config: Config) -> list[Violation]:
    """Forbids: two replicas of one partition both acting as leader in the same leader epoch."""
    return _per_partition(state, _single_leader_per_epoch)


def _leader_in_isr(state: State, index: int) -> list[Violation]:
    part = state.partitions[index]
    if part.leader is None or part.leader in part.isr:
        return []
    return [
        Violation(
            property="leader-in-isr",
            message=(
                f"partition {index}: the quorum names broker {part.leader} leader in epoch "
                f"{part.epoch} but its ISR is {sorted(part.isr)}"
            ),
            partition=index,
            details=facts(leader=part.leader, epoch=part.epoch, isr=tuple(sorted(part.isr))),
        )
    ]


@prop("leader-in-isr", Kind.ALWAYS, "state")
def leader_in_isr(state: State, config: Config) -> list[Violation]:
    """Forbids: a quorum leader that is not in the quorum ISR."""
    return _per_partition(state, _leader_in_isr)


def _acting_quorum_leader(state: State, part: Partition) -> Replica | None:
    """The quorum leader's replica if it is running and acts as leader in the quorum epoch."""
    if part.leader is None or part.leader not in state.running:
        return None
    for r in part.replicas:
        if r.broker == part.leader:
            return r if r.role is Role.LEADER and r.epoch == part.epoch else None
    return None


def _hw_within_isr(state: State, index: int) -> list[Violation]:
    part = state.partitions[index]
    leader = _acting_quorum_leader(state, part)
    if leader is None:
        return []
    found: list[Violation] = []
    for member in part.replicas:
        # Offsets below the leader's log start are gone by retention; a member
        # whose log ends below them lacks nothing that is still retained.
        if member.broker in part.isr and max(member.leo, leader.log_start) < leader.hw:
            found.append(
                Violation(
                    property="hw-within-isr",
                    message=(
                        f"partition {index}: leader {leader.broker} has high watermark {leader.hw} "
                        f"but ISR member {member.broker} ends at offset {member.leo}"
                    ),
                    partition=index,
                    details=facts(
                        leader=leader.broker, hw=leader.hw, member=member.broker, leo=member.leo
                    ),
                )
            )
    return found


@prop("hw-within-isr", Kind.ALWAYS, "state")
def hw_within_isr(state: State, config: Config) -> list[Violation]:
    """Forbids: an acting quorum leader whose high watermark covers a retained offset that some quorum-ISR member has not reached.

    Acting means running with role LEADER in the quorum epoch. With no
    retention this is: the leader's hw <= the leo of every quorum-ISR member.
    """
    return _per_partition(state, _hw_within_isr)


def _bounds_broken(r: Replica) -> str | None:
    """Which ordering of a replica's offsets is broken, or None."""
    leo = r.leo
    if not r.log_start <= r.hw <= leo:
        return f"log start {r.log_start} <= hw {r.hw} <= log end {leo} does not hold"
    if not r.log_start <= r.flushed <= leo:
        return f"log start {r.log_start} <= flushed {r.flushed} <= log end {leo} does not hold"
    if not r.log_start <= r.checkpoint_hw <= r.hw:
        return f"log start {r.log_start} <= checkpointed hw {r.checkpoint_hw} <= hw {r.hw} does not hold"
    return None


def _epochs_broken(r: Replica, quorum_epoch: int) -> str | None:
    """Which rule the record epochs of a replica's log break, or None."""
    return _epoch_order_broken(r) or _epoch_beyond_quorum(r, quorum_epoch)


def _epoch_order_broken(r: Replica) -> str | None:
    log = r.log
    for i in range(1, len(log)):
        if log[i].epoch < log[i - 1].epoch:
            offset = r.log_start + i
            return (
                f"the epoch goes down from {log[i - 1].epoch} to {log[i].epoch} at offset {offset}"
            )
    return None


def _epoch_beyond_quorum(r: Replica, quorum_epoch: int) -> str | None:
    log = r.log
    if log and log[-1].epoch > quorum_epoch:
        return f"the last record has epoch {log[-1].epoch}, beyond the quorum epoch {quorum_epoch}"
    return None


def _malformed(index: int, r: Replica, problem: str) -> Violation:
    return Violation(
        property="well-formed-log",
        message=f"partition {index}, broker {r.broker}: {problem}",
        partition=index,
        details=facts(
            broker=r.broker,
            log_start=r.log_start,
            hw=r.hw,
            leo=r.leo,
            flushed=r.flushed,
            checkpoint_hw=r.checkpoint_hw,
        ),
    )


def _well_formed_log(state: State, index: int) -> list[Violation]:
    part = state.partitions[index]
    found: list[Violation] = []
    for r in part.replicas:
        problem = _bounds_broken(r) or _epochs_broken(r, part.epoch)
        if problem is not None:
            found.append(_malformed(index, r, problem))
    return found


@prop("well-formed-log", Kind.ALWAYS, "state")
def well_formed_log(state: State, config: Config) -> list[Violation]:
    """Forbids: a replica whose log start, checkpointed high watermark, high watermark, flushed offset and log end are out of order, or whose record epochs go down or pass the quorum epoch.

    The order is log_start <= checkpoint_hw <= hw <= leo and
    log_start <= flushed <= leo.
    """
    return _per_partition(state, _well_formed_log)


def _duplicate_in(index: int, r: Replica) -> Violation | None:
    first_seen: dict[int, int] = {}
    for offset, record in enumerate(r.log, start=r.log_start):
        earlier = first_seen.setdefault(record.id, offset)
        if earlier != offset:
            return _duplicate(index, r, record.id, (earlier, offset))
    return None


def _duplicate(index: int, r: Replica, record_id: int, offsets: tuple[int, int]) -> Violation:
    return Violation(
        property="no-duplicate-record",
        message=(
            f"partition {index}, broker {r.broker}: record {record_id} is at offsets "
            f"{offsets[0]} and {offsets[1]}"
        ),
        partition=index,
        details=facts(broker=r.broker, record=record_id, offsets=offsets),
    )


def _no_duplicate_record(state: State, index: int) -> list[Violation]:
    found = (_duplicate_in(index, r) for r in state.partitions[index].replicas)
    return [v for v in found if v is not None]


@prop("no-duplicate-record", Kind.ALWAYS, "state")
def no_duplicate_record(state: State, config: Config) -> list[Violation]:
    """Forbids: one record id stored at two offsets of one replica's log (producers are idempotent)."""
    return applicable(_per_partition(state, _no_duplicate_record), config)


_PARTITION_CHECKS: tuple[Callable[[State, int], list[Violation]], ...] = (
    _log_agreement,
    _single_leader_per_epoch,
    _leader_in_isr,
    _hw_within_isr,
    _well_formed_log,
    _no_duplicate_record,
)

STATE_PROPERTIES: dict[str, StateProperty] = {
    "log-agreement": log_agreement,
    "single-leader-per-epoch": single_leader_per_epoch,
    "leader-in-isr": leader_in_isr,
    "hw-within-isr": hw_within_isr,
    "well-formed-log": well_formed_log,
    "no-duplicate-record": no_duplicate_record,
}


def _check_partition(state: State, index: int) -> list[Violation]:
    found: list[Violation] = []
    for check in _PARTITION_CHECKS:
        found.extend(check(state, index))
    return found


def check_state(state: State, config: Config) -> list[Violation]:
    """Every state property on every partition: a full scan."""
    return applicable(_per_partition(state, _check_partition), config)


def applicable(found: list[Violation], config: Config) -> list[Violation]:
    """The violations of properties that `config` promises: without idempotent producers a
    retried record may be stored twice, so `no-duplicate-record` promises nothing."""
    if config.idempotent:
        return found
    return [v for v in found if v.property != "no-duplicate-record"]


# -- step properties ---------------------------------------------------------------------


ReplicaChange = tuple[int, Replica, Replica]  # (partition, old, new)


def _changed_replicas(before: State, after: State) -> list[ReplicaChange]:
    """(partition, old, new) for every replica object the step replaced."""
    changes: list[ReplicaChange] = []
    for index, (old, new) in enumerate(zip(before.partitions, after.partitions)):
        if old is new:
            continue
        for r_old, r_new in zip(old.replicas, new.replicas):
            if r_old is not r_new:
                changes.append((index, r_old, r_new))
    return changes


def _targets(action: object, kind: type, index: int, broker: int) -> bool:
    """Whether `action` is a `kind` action on replica (index, broker)."""
    return (
        isinstance(action, kind)
        and getattr(action, "partition", None) == index
        and getattr(action, "broker", None) == broker
    )


def _truncated_below_hw(action: object, index: int, old: Replica) -> bool:
    return (
        isinstance(action, Truncate)
        and _targets(action, Truncate, index, old.broker)
        and action.offset < old.hw
    )


def _hw_drop(action: object, index: int, old: Replica, new: Replica) -> str | None:
    if _truncated_below_hw(action, index, old):
        return f"a truncation to offset {getattr(action, 'offset', '?')} cuts below its high watermark {old.hw}"
    if new.hw >= old.hw:
        return None
    if _targets(action, ResetLog, index, old.broker):
        return None
    if isinstance(action, Crash) and action.broker == old.broker:
        floor = min(old.checkpoint_hw, old.hw)
        if new.hw >= floor:
            return None
        return f"a crash took the high watermark from {old.hw} to {new.hw}, below its checkpoint {floor}"
    return f"the high watermark went down from {old.hw} to {new.hw} on {type(action).__name__}"


@prop("monotonic-high-watermark", Kind.ALWAYS, "step")
def monotonic_high_watermark(before: State, action: object, after: State) -> list[Violation]:
    """Forbids: a replica's high watermark going down other than by a crash (back to its checkpoint) or a log reset, and any truncation below a replica's own high watermark."""
    return _hw_drops(before, action, after, _changed_replicas(before, after))


def _hw_drops(
    before: State, action: object, after: State, changes: Iterable[ReplicaChange]
) -> list[Violation]:
    return _replica_problems(
        "monotonic-high-watermark",
        action,
        changes,
        _hw_drop,
        lambda old, new: {"hw_before": old.hw, "hw_after": new.hw},
    )


def _replica_problems(
    name: str,
    action: object,
    changes: Iterable[ReplicaChange],
    problem_of: Callable[[object, int, Replica, Replica], str | None],
    figures: Callable[[Replica, Replica], dict[str, object]],
) -> list[Violation]:
    """One violation of `name` for each changed replica that `problem_of` objects to."""
    found: list[Violation] = []
    for index, old, new in changes:
        problem = problem_of(action, index, old, new)
        if problem is not None:
            found.append(
                Violation(
                    property=name,
                    message=f"partition {index}, broker {old.broker}: {problem}",
                    partition=index,
                    details=facts(broker=old.broker, action=repr(action), **figures(old, new)),
                )
            )
    return found


def _epoch_drop(kind: str, old: int, new: int, partition: int | None) -> Violation:
    return Violation(
        property="monotonic-epochs",
        message=f"the {kind} went down from {old} to {new}",
        partition=partition,
        details=facts(which=kind, before=old, after=new),
    )


@prop("monotonic-epochs", Kind.ALWAYS, "step")
def monotonic_epochs(before: State, action: object, after: State) -> list[Violation]:
    """Forbids: the controller epoch, a partition's quorum leader epoch, or a running replica's epoch going down."""
    return _epoch_drops(before, action, after, _changed_replicas(before, after))


def _epoch_drops(
    before: State, action: object, after: State, changes: Iterable[ReplicaChange]
) -> list[Violation]:
    found: list[Violation] = []
    if after.controller_epoch < before.controller_epoch:
        found.append(
            _epoch_drop("controller epoch", before.controller_epoch, after.controller_epoch, None)
        )
    for index, (old, new) in enumerate(zip(before.partitions, after.partitions)):
        if old is not new and new.epoch < old.epoch:
            found.append(
                _epoch_drop(f"leader epoch of partition {index}", old.epoch, new.epoch, index)
            )
    for index, old_r, new_r in changes:
        if new_r.broker in after.running and new_r.epoch < old_r.epoch:
            what = f"epoch of broker {new_r.broker}'s replica of partition {index}"
            found.append(_epoch_drop(what, old_r.epoch, new_r.epoch, index))
    return found


def _log_start_move(action: object, index: int, old: Replica, new: Replica) -> str | None:
    if new.log_start == old.log_start:
        return None
    if new.log_start < old.log_start:
        return f"the log start moved back from {old.log_start} to {new.log_start}"
    if not (
        _targets(action, RetentionDelete, index, old.broker)
        or _targets(action, ResetLog, index, old.broker)
    ):
        return f"the log start moved to {new.log_start} on {type(action).__name__}"
    if new.log_start > new.hw:
        return f"the log start {new.log_start} passed the high watermark {new.hw}"
    kept = old.log[new.log_start - old.log_start :]
    if new.log and new.log != kept:
        return f"the log from offset {new.log_start} is not what remained of the old log"
    return None


@prop("retention-prefix-only", Kind.ALWAYS, "step")
def retention_prefix_only(before: State, action: object, after: State) -> list[Violation]:
    """Forbids: a log start that moves back, moves other than by retention or a log reset, passes the high watermark, or leaves anything but a suffix of the old log."""
    return _log_start_moves(before, action, after, _changed_replicas(before, after))


def _log_start_moves(
    before: State, action: object, after: State, changes: Iterable[ReplicaChange]
) -> list[Violation]:
    return _replica_problems(
        "retention-prefix-only",
        action,
        changes,
        _log_start_move,
        lambda old, new: {
            "log_start_before": old.log_start,
            "log_start_after": new.log_start,
            "hw_after": new.hw,
        },
    )


STEP_PROPERTIES: dict[str, StepProperty] = {
    "monotonic-high-watermark": monotonic_high_watermark,
    "monotonic-epochs": monotonic_epochs,
    "retention-prefix-only": retention_prefix_only,
}


# The step properties as check_step runs them: one list of changed replicas, shared.
_STEP_CHECKS: dict[str, Callable[[State, object, State, list[ReplicaChange]], list[Violation]]] = {
    "monotonic-high-watermark": _hw_drops,
    "monotonic-epochs": _epoch_drops,
    "retention-prefix-only": _log_start_moves,
}
assert _STEP_CHECKS.keys() == STEP_PROPERTIES.keys(), "check_step must run every step property"
