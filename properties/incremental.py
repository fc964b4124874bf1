"""Incremental checking: the state and step properties of `invariants.py` after every step.

Rules of this module:
- It decides no property of its own: every verdict is one `invariants.py`
  states, and on a step from a clean state it reports the same state-property
  names as `check_state` on the state after (tests hold it to that).
- It re-checks only where a step could have broken a property. For appends,
  high-watermark increases and flushes its cost does not depend on the log
  length; every other action re-checks the partitions it changed in full.
- What it remembers between steps lives in an `IncrementalChecker`, owned by
  the run that uses it; nothing is process-wide, and nothing is keyed by `id()`.
"""

from __future__ import annotations

from collections.abc import Callable

from kafka_verify.model.actions import Flush, FollowerReplicate, IncHighWatermark, LeaderWrite
from kafka_verify.model.state import Config, Partition, Record, Replica, State
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.invariants import (
    _STEP_CHECKS,
    _bounds_broken,
    _changed_replicas,
    _disagreement,
    _duplicate,
    _duplicate_in,
    _epoch_beyond_quorum,
    _epochs_broken,
    _first_difference,
    _hw_within_isr,
    _leader_in_isr,
    _log_agreement,
    _malformed,
    _max_hw,
    _single_leader_per_epoch,
    applicable,
    check_state,
)


class AppendedIds:
    """The record ids of each replica's log as of its last append, so an append is checked for a
    duplicate in O(1).

    One entry per replica slot (partition, broker), holding the log it describes:
    an append whose old log *is* that log extends the entry; any other log is
    indexed from scratch. Nothing is keyed by `id()`, so nothing can be mistaken
    for a freed object's entry.
    """

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: dict[tuple[int, int], tuple[tuple[Record, ...], set[int]]] = {}

    def appended_duplicate(
        self, slot: tuple[int, int], old_log: tuple[Record, ...], new_log: tuple[Record, ...]
    ) -> bool:
        """Whether the last record of `new_log` (== old_log + one record) has an id already in `old_log`."""
        entry = self._entries.get(slot)
        ids = entry[1] if entry is not None and entry[0] is old_log else {r.id for r in old_log}
        new_id = new_log[-1].id
        duplicate = new_id in ids
        ids.add(new_id)
        self._entries[slot] = (new_log, ids)
        return duplicate


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
    before: State, after: State, index: int, old: Replica, new: Replica, ids: AppendedIds
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
    if ids.appended_duplicate((index, new.broker), old.log, new.log):
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
    before: State, after: State, index: int, old: Replica, new: Replica, ids: AppendedIds
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
    before: State, after: State, index: int, old: Replica, new: Replica, ids: AppendedIds
) -> list[Violation] | None:
    """Re-check one flush; None if the step changed more than the durable offsets."""
    if new.log is not old.log or new.log_start != old.log_start or new.hw != old.hw:
        return None
    problem = _bounds_broken(new)
    return [] if problem is None else [_malformed(index, new, problem)]


_HotRecheck = Callable[[State, State, int, Replica, Replica, AppendedIds], list[Violation] | None]
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


def _hot_recheck(
    before: State, action: object, after: State, index: int, ids: AppendedIds
) -> list[Violation] | None:
    """The incremental re-check of the common actions, or None to fall back to a full one."""
    hot = _hot_change(before, action, after, index)
    return None if hot is None else hot[0](before, after, index, hot[1], hot[2], ids)


def _single_replica_step(
    before: State, action: object, after: State, ids: AppendedIds
) -> list[Violation] | None:
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
    partial = recheck(before, after, index, old, new, ids)
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


def _state_recheck(
    before: State, action: object, after: State, config: Config, ids: AppendedIds
) -> list[Violation]:
    if len(before.partitions) != len(after.partitions):
        return check_state(after, config)
    found: list[Violation] = []
    fully_checked: set[int] = set()
    for index, (old, new) in enumerate(zip(before.partitions, after.partitions)):
        if old is new:
            continue
        partial = _hot_recheck(before, action, after, index, ids)
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


class IncrementalChecker:
    """Re-checks the state properties after each step of one run, and runs the step properties.

    It belongs to one run (the runner's Checker owns one), because it keeps
    what it learned of that run's logs between steps.
    """

    __slots__ = ("_ids",)

    def __init__(self) -> None:
        self._ids = AppendedIds()

    def check_step(
        self, before: State, action: object, after: State, config: Config
    ) -> list[Violation]:
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
        fast = _single_replica_step(before, action, after, self._ids)
        if fast is not None:
            return applicable(fast, config)
        # The step properties, sharing one list of the replicas the step replaced.
        changes = _changed_replicas(before, after)
        found: list[Violation] = []
        for step_check in _STEP_CHECKS.values():
            found.extend(step_check(before, action, after, changes))
        found.extend(_state_recheck(before, action, after, config, self._ids))
        return applicable(found, config)


def check_step(before: State, action: object, after: State, config: Config) -> list[Violation]:
    """One step checked on its own (a fresh IncrementalChecker, so nothing carries over)."""
    return IncrementalChecker().check_step(before, action, after, config)
