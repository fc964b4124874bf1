"""State and step properties of the model: what no cluster state, and no single step, may do.

Rules of this module:
- A state property is a function `(state, config) -> list[Violation]` that
  scans every partition. `check_state` runs them all; it is what explicit
  search and the Hypothesis model tests call.
- A step property is a function `(before, action, after) -> list[Violation]`.
- `check_step` runs after every event of long runs. It assumes `before` was
  clean, re-checks the state properties only where the step could have broken
  them, and adds the step properties. For appends, high-watermark increases and
  flushes its cost does not depend on the log length; every other action
  re-checks the partitions it changed in full.
- Nothing here changes a state or decides what may happen next.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

from kafka_verify.model.actions import (
    Crash,
    Flush,
    FollowerReplicate,
    IncHighWatermark,
    LeaderWrite,
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
    return _per_partition(state, _no_duplicate_record)


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
    return _per_partition(state, _check_partition)


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


# -- check_step: incremental re-checking of the state properties ---------------------------


class _LogIdIndex:
    """The record ids of recently appended-to logs, so that an append is checked for a duplicate in O(1).

    Entries are keyed by the identity of a log tuple and hold the tuple itself,
    so an id is never reused while its entry lives. An append moves the entry
    of the old log to the new one; any other log is indexed from scratch.
    """

    __slots__ = ("_capacity", "_entries")

    def __init__(self, capacity: int = 256) -> None:
        self._capacity = capacity
        self._entries: dict[int, tuple[tuple[Record, ...], set[int]]] = {}

    def appended_duplicate(self, old_log: tuple[Record, ...], new_log: tuple[Record, ...]) -> bool:
        """Whether the last record of `new_log` (== old_log + one record) has an id already in `old_log`."""
        entry = self._entries.pop(id(old_log), None)
        ids = entry[1] if entry is not None and entry[0] is old_log else {r.id for r in old_log}
        new_id = new_log[-1].id
        duplicate = new_id in ids
        ids.add(new_id)
        self._entries[id(new_log)] = (new_log, ids)
        if len(self._entries) > self._capacity:
            del self._entries[next(iter(self._entries))]
        return duplicate


_ID_INDEX = _LogIdIndex()


def _offset_of(r: Replica, record_id: int) -> int:
    for offset, record in enumerate(r.log, start=r.log_start):
        if record.id == record_id:
            return offset
    return -1


def _same_quorum(old: Partition, new: Partition) -> bool:
    return old.leader == new.leader and old.epoch == new.epoch and old.isr == new.isr


def _single_change(old: Partition, new: Partition) -> tuple[int, Replica, Replica] | None:
    """(position, old, new) if exactly one replica changed and the quorum state did not."""
    if not _same_quorum(old, new) or len(old.replicas) != len(new.replicas):
        return None
    change: tuple[int, Replica, Replica] | None = None
    for position, (r_old, r_new) in enumerate(zip(old.replicas, new.replicas)):
        if r_old is not r_new:
            if change is not None or r_old.broker != r_new.broker:
                return None
            change = (position, r_old, r_new)
    return change


def _append_recheck(
    before: State, after: State, index: int, old: Replica, new: Replica
) -> list[Violation] | None:
    """Re-check one appended record; None if the step is not a plain one-record append."""
    if new.log_start != old.log_start or new.hw != old.hw or len(new.log) != len(old.log) + 1:
        return None
    found: list[Violation] = []
    problem = _bounds_broken(new)
    record = new.log[-1]
    quorum_epoch = after.partitions[index].epoch
    if problem is None and old.log and record.epoch < old.log[-1].epoch:
        problem = (
            f"the epoch goes down from {old.log[-1].epoch} to {record.epoch} at offset {old.leo}"
        )
    if problem is None and record.epoch > quorum_epoch:
        problem = (
            f"the last record has epoch {record.epoch}, beyond the quorum epoch {quorum_epoch}"
        )
    if problem is not None:
        found.append(_malformed(index, new, problem))
    if _ID_INDEX.appended_duplicate(old.log, new.log):
        found.append(_duplicate(index, new, record.id, (_offset_of(old, record.id), old.leo)))
    # An append below H would have been a missing record before the step, and
    # the appended offset is above the replica's own high watermark, so
    # log-agreement cannot change.
    return found


def _raised_hw_agreement(
    before: Partition, after: Partition, index: int, old: Replica, new: Replica
) -> list[Violation]:
    """log-agreement after `old` raised its high watermark to `new.hw`, given it held before."""
    found: list[Violation] = []
    for other in after.replicas:
        if other is new:
            continue
        # The pair's checked range grows from min(old.hw, other.hw) to min(new.hw, other.hw).
        offset = _first_difference(new, other, min(old.hw, other.hw), min(new.hw, other.hw))
        if offset is not None:
            found.append(_disagreement(index, offset, new, other, "below both high watermarks"))
    top_before, top_after = _max_hw(before), _max_hw(after)
    if new.hw != top_after:
        return found
    # The raised replica is now a reference. Over offsets some old reference
    # retains, an ISR member agreed with that reference and the raised replica
    # agrees with it too (checked above), so only offsets below every old
    # reference's log start, and the newly committed offsets, need comparing.
    lowest_ref_start = min(r.log_start for r in before.replicas if r.hw == top_before)
    for member in after.replicas:
        if member is new or member.broker not in after.isr:
            continue
        base = max(member.log_start, new.log_start)
        for lo, hi in (
            (base, min(max(base, lowest_ref_start), top_after)),
            (max(base, top_before), top_after),
        ):
            offset = _first_difference(member, new, lo, hi)
            if offset is not None:
                why = f"ISR member {member.broker} must hold what broker {new.broker} committed (hw {top_after})"
                found.append(_disagreement(index, offset, member, new, why))
                break
    return found


def _hw_recheck(
    before: State, after: State, index: int, old: Replica, new: Replica
) -> list[Violation] | None:
    """Re-check one high-watermark increase; None if the step is not a plain increase."""
    if new.log is not old.log or new.log_start != old.log_start or new.hw < old.hw:
        return None
    found: list[Violation] = []
    problem = _bounds_broken(new)
    if problem is not None:
        found.append(_malformed(index, new, problem))
    found.extend(
        _raised_hw_agreement(before.partitions[index], after.partitions[index], index, old, new)
    )
    if after.partitions[index].leader == new.broker:
        found.extend(_hw_within_isr(after, index))
    return found


def _flush_recheck(
    before: State, after: State, index: int, old: Replica, new: Replica
) -> list[Violation] | None:
    """Re-check one flush; None if the step changed more than the durable offsets."""
    if new.log is not old.log or new.log_start != old.log_start or new.hw != old.hw:
        return None
    problem = _bounds_broken(new)
    return [] if problem is None else [_malformed(index, new, problem)]


_HotRecheck = Callable[[State, State, int, Replica, Replica], list[Violation] | None]
# The common actions, each with its incremental re-check (None: fall back to a full one).
_HOT_RECHECKS: dict[type, _HotRecheck] = {
    LeaderWrite: _append_recheck,
    FollowerReplicate: _append_recheck,
    IncHighWatermark: _hw_recheck,
    Flush: _flush_recheck,
}


def _hot_change(
    before: State, action: object, after: State, index: int
) -> tuple[_HotRecheck, Replica, Replica] | None:
    """(re-check, old, new) if `action` is a common action and replaced exactly one replica of
    partition `index`, its own, leaving the quorum and the running set as they were."""
    recheck = _HOT_RECHECKS.get(type(action))
    if recheck is None or before.running != after.running:
        return None
    change = _single_change(before.partitions[index], after.partitions[index])
    if change is None:
        return None
    _, old, new = change
    if getattr(action, "partition", None) != index or getattr(action, "broker", None) != new.broker:
        return None
    return recheck, old, new


def _hot_recheck(before: State, action: object, after: State, index: int) -> list[Violation] | None:
    """The incremental re-check of the common actions, or None to fall back to a full one."""
    hot = _hot_change(before, action, after, index)
    return None if hot is None else hot[0](before, after, index, hot[1], hot[2])


def _single_replica_step(before: State, action: object, after: State) -> list[Violation] | None:
    """check_step for a common action that replaced one replica of its own partition and nothing
    else (an append, a high-watermark increase, a flush), or None for any other step."""
    index = getattr(action, "partition", None)
    if not isinstance(index, int) or before.controller_epoch != after.controller_epoch:
        return None
    old_parts, new_parts = before.partitions, after.partitions
    if len(old_parts) != len(new_parts) or not 0 <= index < len(new_parts):
        return None
    # Tuple comparison tests identity first, so unchanged partitions cost next to nothing.
    if old_parts[:index] != new_parts[:index] or old_parts[index + 1 :] != new_parts[index + 1 :]:
        return None
    hot = _hot_change(before, action, after, index)
    if hot is None:
        return None
    recheck, old, new = hot
    partial = recheck(before, after, index, old, new)
    if partial is None:
        return None
    if new.hw >= old.hw and new.epoch >= old.epoch and new.log_start == old.log_start:
        # The step properties read nothing else of a changed replica (and the quorum
        # and controller epochs did not move): none of them can object to this step.
        return partial
    found: list[Violation] = []
    for step_check in _STEP_CHECKS.values():
        found.extend(step_check(before, action, after, [(index, old, new)]))
    return found + partial


def _log_scans_inherited(old: Replica, new: Replica) -> bool:
    """Whether `new` holds old's log or a run of it at the same offsets (truncation, retention).

    The record-order and no-duplicate rules read nothing but the records, so
    if they held for `old`, they hold for `new` without a scan.
    """
    if new.log is old.log:
        return True
    lo = new.log_start - old.log_start
    hi = lo + len(new.log)
    return lo >= 0 and hi <= len(old.log) and new.log == old.log[lo:hi]


def _recheck_partition(before: State, after: State, index: int) -> list[Violation]:
    """Every state property on one changed partition, as `_check_partition`, except that the
    per-log scans are skipped for replicas whose records they already passed."""
    found: list[Violation] = []
    for check in (_log_agreement, _single_leader_per_epoch, _leader_in_isr, _hw_within_isr):
        found.extend(check(after, index))
    part = after.partitions[index]
    old_replicas = {r.broker: r for r in before.partitions[index].replicas}
    for r in part.replicas:
        old = old_replicas.get(r.broker)
        inherited = old is not None and _log_scans_inherited(old, r)
        problem = _bounds_broken(r) or (
            _epoch_beyond_quorum(r, part.epoch) if inherited else _epochs_broken(r, part.epoch)
        )
        if problem is not None:
            found.append(_malformed(index, r, problem))
        duplicate = None if inherited else _duplicate_in(index, r)
        if duplicate is not None:
            found.append(duplicate)
    return found


def _state_recheck(before: State, action: object, after: State, config: Config) -> list[Violation]:
    if len(before.partitions) != len(after.partitions):
        return check_state(after, config)
    found: list[Violation] = []
    fully_checked: set[int] = set()
    for index, (old, new) in enumerate(zip(before.partitions, after.partitions)):
        if old is new:
            continue
        partial = _hot_recheck(before, action, after, index)
        if partial is None:
            found.extend(_recheck_partition(before, after, index))
            fully_checked.add(index)
        else:
            found.extend(partial)
    if before.running != after.running:
        # Only whether the quorum leader runs can change for untouched partitions.
        for index in range(len(after.partitions)):
            if index not in fully_checked:
                found.extend(_hw_within_isr(after, index))
    return found


def check_step(before: State, action: object, after: State, config: Config) -> list[Violation]:
    """The step properties of (before, action, after), and the state properties the step could break.

    Given that `check_state(before, config)` is empty, the state-property
    violations reported here name the same properties as
    `check_state(after, config)`.
    """
    if (
        before.partitions is after.partitions
        and before.running == after.running
        and before.controller_epoch == after.controller_epoch
    ):
        return []  # a group step: nothing any of these properties reads has changed
    fast = _single_replica_step(before, action, after)
    if fast is not None:
        return fast
    # The step properties, sharing one list of the replicas the step replaced.
    changes = _changed_replicas(before, after)
    found: list[Violation] = []
    for step_check in _STEP_CHECKS.values():
        found.extend(step_check(before, action, after, changes))
    found.extend(_state_recheck(before, action, after, config))
    return found


def state_property_names() -> Sequence[str]:
    """The names `check_state` can report."""
    return tuple(STATE_PROPERTIES)
