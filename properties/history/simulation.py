"""The history checker inside the simulation: the black-box core plus what the model knows.

Rules of this module:
- `HistoryChecker` runs the same `Analysis` as `kafka-verify check` and adds
  only model facts: the log start of each partition (retention), the committed
  prefix (`committed-read`) and the final logs after heal and drain
  (`lost-write` against the final log, `converged`).
- The model state passed with each operation is the state right after it.
- Cases become `Violation`s under their catalogue names; a case the
  configuration allows is not a violation, and is kept in `allowed` with its
  reason (never dropped). ALWAYS cases are returned by `observe` as soon as
  they are decided; the ones only the whole history decides come from
  `finish`, with the EVENTUALLY ones.
- The configuration is the cluster's own (`simulation_check_config`): its
  acks and idempotence decide what is allowed, as they do for `check`.
- The reference clients emit `assign` only when they (re)start or join a
  generation, and seek each time (to the start, or to the committed offset),
  so here every assign is also a seek.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from kafka_verify.model.state import Config, Partition, Replica, Role, State
from kafka_verify.properties.catalogue import Kind, Violation, facts, prop
from kafka_verify.properties.history.allowed import allowed_because
from kafka_verify.properties.history.analysis import Analysis
from kafka_verify.properties.history.anomalies import catalogue_name
from kafka_verify.properties.history.memory import Case, CheckConfig
from kafka_verify.properties.history.ops import Op, key_partition, split_key

MODEL_TOPIC = "t"  # the one topic the model's partitions belong to


def _reference(part: Partition) -> Replica:
    """The replica with the largest high watermark (the largest log start among ties)."""
    return max(part.replicas, key=lambda r: (r.hw, r.log_start))


def _model_partition(state: State | None, key: str) -> Partition | None:
    where = split_key(key)
    if state is None or where is None or where[0] != MODEL_TOPIC:
        return None
    if not 0 <= where[1] < len(state.partitions):
        return None
    return state.partitions[where[1]]


@dataclass(frozen=True, slots=True)
class StateFacts:
    """`ModelFacts` from one model state: retained from the log start of the most advanced replica."""

    state: State | None

    def log_start(self, key: str) -> int | None:
        """The lowest retained offset of partition `key` (log starts only grow)."""
        part = _model_partition(self.state, key)
        return None if part is None else _reference(part).log_start


def violation_of(case: Case) -> Violation:
    """A checker case as a catalogue violation."""
    last = case.ops[-1].index if case.ops else None
    return Violation(
        property=catalogue_name(case.anomaly),
        message=case.message,
        partition=None if case.key is None else key_partition(case.key),
        details=(*case.facts, ("op", last)),
    )


@prop("committed-read", Kind.ALWAYS, "history")
def committed_read(
    committed_mark: dict[int, int],
    op: Op,
    key: str,
    offset: int,
    record: object,
    state: State | None,
) -> list[Violation]:
    """Forbids: a poll returning a record at an offset that is not committed (at or above the largest high watermark), or one that differs from the committed record there."""
    part = _model_partition(state, key)
    index = key_partition(key)
    if part is None or index is None:
        return []
    reference = _reference(part)
    # The largest high watermark can drop when its replica crashes and comes
    # back with an older checkpoint; what was committed stays committed.
    mark = max(committed_mark.get(index, 0), reference.hw)
    committed_mark[index] = mark
    if offset >= mark:
        problem = f"is not committed (the high watermark is {mark})"
    else:
        held = reference.record_at(offset)
        if held is None or held.id == record:
            return []
        problem = f"differs from the committed record {held.id}"
    return [
        Violation(
            property="committed-read",
            message=(
                f"consumer {op.process} read record {record!r} at offset {offset} of "
                f"{key} in op {op.index}, which {problem}"
            ),
            partition=index,
            details=facts(offset=offset, record=record, hw=mark, op=op.index),
        )
    ]


def _final_log(part: Partition) -> Replica:
    """The log acked writes must be in: the quorum leader's, or the most advanced replica's."""
    for r in part.replicas:
        if r.broker == part.leader:
            return r
    return _reference(part)


def _missing_from(log: Replica, offset: int | None, record: object) -> str | None:
    """Why an acknowledged record is not in the final log, or None if it is (or was retained away)."""
    if offset is None:
        if log.log_start > 0 or any(r.id == record for r in log.log):
            return None
        return f"is nowhere in broker {log.broker}'s final log"
    if offset < log.log_start:
        return None  # retention removed it: nothing to hold against the log
    held = log.record_at(offset)
    if held is not None and held.id == record:
        return None
    what = "nothing" if held is None else f"record {held.id}"
    return f"is not in broker {log.broker}'s final log, which holds {what} there"


def lost_from_final_log(analysis: Analysis, final_state: State) -> list[Case]:
    """`lost-write` against the model: acknowledged records missing from the final logs."""
    found = []
    for (key, record), offset in analysis.memory.acked.items():
        part = _model_partition(final_state, key)
        if part is None:
            continue
        log = _final_log(part)
        why = _missing_from(log, offset, record)
        if why is None:
            continue
        writer = analysis.memory.writer_of[(key, record)]
        found.append(
            Case(
                "lost-write",
                f"record {record!r}, acknowledged at offset {offset} of {key} "
                f"(op {writer.index}), {why}",
                (writer,),
                key,
                (("record", record), ("offset", offset)),
            )
        )
    return found


def _unconverged(part: Partition, state: State) -> str | None:
    leader = None
    for r in part.replicas:
        if r.broker == part.leader:
            leader = r
    if leader is None:
        return "has no leader"
    if leader.role is not Role.LEADER or leader.epoch != part.epoch:
        return (
            f"has quorum leader {leader.broker}, which does not act as leader in epoch {part.epoch}"
        )
    for r in part.replicas:
        if r.broker not in state.running:
            return f"has a replica on broker {r.broker}, which is not running"
        if (r.leo, r.hw) != (leader.leo, leader.hw):
            return (
                f"has broker {r.broker} at log end {r.leo} and high watermark {r.hw}, the leader "
                f"at {leader.leo} and {leader.hw}"
            )
        lo = max(r.log_start, leader.log_start)
        if r.log[lo - r.log_start :] != leader.log[lo - leader.log_start :]:
            return f"has broker {r.broker}'s log differing from the leader's"
    return None


@prop("converged", Kind.EVENTUALLY, "final")
def converged(state: State, config: Config) -> list[Violation]:
    """Forbids: a partition that, after heal and drain, lacks an acting leader or has a replica that is down or differs from the leader in records, log end or high watermark."""
    found: list[Violation] = []
    for index, part in enumerate(state.partitions):
        problem = _unconverged(part, state)
        if problem is not None:
            found.append(
                Violation(
                    property="converged",
                    message=f"after heal and drain, partition {index} {problem}",
                    partition=index,
                    details=facts(
                        leader=part.leader, epoch=part.epoch, isr=tuple(sorted(part.isr))
                    ),
                )
            )
    return found


def simulation_check_config(acks: int = -1, idempotent: bool = True) -> CheckConfig:
    """What the simulated cluster promises: its producers' acks and idempotence.

    Its clients assign only when they restart or join a generation, and seek
    each time; it reports no stats.
    """
    return CheckConfig(idempotent=idempotent, acks=acks, assign_seeks=True, metrics=False)


@dataclass
class HistoryChecker:
    """Checks the simulation's client history one operation at a time, then after heal and drain."""

    config: Config
    check_config: CheckConfig = field(default_factory=simulation_check_config)
    analysis: Analysis = field(init=False)
    # Cases the configuration allows, each with the reason it does (never dropped).
    allowed: list[tuple[Violation, str]] = field(init=False, default_factory=list)
    _committed_mark: dict[int, int] = field(init=False, default_factory=dict)

    def __post_init__(self) -> None:
        self.analysis = Analysis(self.check_config)

    def _violations(self, cases: list[Case]) -> list[Violation]:
        found = []
        for case in cases:
            reason = allowed_because(case, self.check_config)
            if reason is None:
                found.append(violation_of(case))
            else:
                self.allowed.append((violation_of(case), reason))
        return found

    def observe(self, op: Op, state: State | None) -> list[Violation]:
        """The ALWAYS violations `op` reveals; `state` is the model state right after it (None: unknown)."""
        analysis = self.analysis
        if op.type == "invoke":
            # An invocation decides nothing; only the lag metrics, off here, read its time.
            if self.check_config.metrics:
                analysis.observe(op)
            return []
        before = len(analysis.found)
        analysis.observe(op, StateFacts(state))
        found = self._violations(analysis.found[before:]) if len(analysis.found) > before else []
        for key, offset, record in analysis.last_reads:
            if offset is not None:
                found += committed_read(self._committed_mark, op, key, offset, record, state)
        return found

    def finish(self, final_state: State | None) -> list[Violation]:
        """The violations only the whole history shows, and the EVENTUALLY ones, after heal and drain.

        Without a final state (None) only the history is judged, as `kafka-verify check` does.
        """
        self.analysis.finish(StateFacts(final_state))
        found: list[Violation] = []
        lost: list[Case] = []
        if final_state is not None:
            found += converged(final_state, self.config)
            lost = lost_from_final_log(self.analysis, final_state)
        # One lost record is one case: the final log's, else the history's own.
        flagged = {case.fact("record") for case in lost}
        deferred = [
            c
            for c in self.analysis.deferred
            if not (c.anomaly == "lost-write" and c.fact("record") in flagged)
        ]
        return found + self._violations([*lost, *deferred])
