"""The black-box core: a client history in, Jepsen's checker result out.

Rules of this module:
- `Analysis.observe(op)` takes one operation at a time, in index order, in
  amortized O(1) per record; it returns the anomalies that operation decides
  (the simulation reports them at once). `finish()` judges what needs the
  whole history (gaps over records known to exist, sends placed only by
  polls, lost writes, dependency cycles) and returns every case.
- Only the history is read. A model beside it may pass `ModelFacts` (the
  simulation does); nothing else about a model is known here.
- `index` must be unique and increasing; a history that breaks this, or a
  value of the wrong shape, raises `HistoryError`.
- Operations of the `nemesis` process are not client operations: they are
  counted, and their completions kept (in order) for the reports' fault
  timeline, but never judged. A completion with an `f` the checker does not know is
  counted in `stats.unchecked`, never dropped silently.
- Rebalance events (`assigned`, `revoked`, `lost`) are single lines inside
  the call that ran their callback: they pair with no invoke. They and the
  commits feed `commits.py` (lost-commit, stale-commit).
- A process's completion belongs to its last invoke. An `info` send, poll or
  txn means the client crashed mid-operation; as in Jepsen, where such a
  process never returns, the checker forgets that process's positions and
  send order, so a history that reuses the name starts it afresh.
- The verdict: "unknown" when there is no client completion to judge, else
  true exactly when every case is allowed by the configuration (`allowed.py`).
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass, field

from kafka_verify.properties.history.allowed import allowed_because
from kafka_verify.properties.history.anomalies import (
    aborted_read,
    consumer_steps,
    duplicate,
    inconsistent_offsets,
    int_nonmonotonic_poll,
    int_nonmonotonic_send,
    int_poll_skip,
    int_send_skip,
    lost_write,
    nonmonotonic_poll,
    nonmonotonic_send,
    note_poll_gaps,
    note_read_gaps,
    note_send_order,
    poll_skip,
    poll_skip_now,
    precommitted_read,
)
from kafka_verify.properties.history.commits import (
    REBALANCE_EVENTS,
    Commits,
    lost_commit,
    stale_commit,
)
from kafka_verify.properties.history.cycles import circular_information_flow, write_cycle
from kafka_verify.properties.history.memory import (
    Case,
    CheckConfig,
    Memory,
    ModelFacts,
    Position,
    SkipCandidate,
)
from kafka_verify.properties.history.metrics import Metrics
from kafka_verify.properties.history.ops import (
    HistoryError,
    Op,
    Read,
    RecordId,
    Write,
    covered_keys,
    key_covered,
    unit_of,
)

# Every anomaly the checker can report, in the order results list them.
ANOMALIES = (
    "G0",
    "G1a",
    "G1c",
    "duplicate",
    "inconsistent-offsets",
    "int-nonmonotonic-poll",
    "int-nonmonotonic-send",
    "int-poll-skip",
    "int-send-skip",
    "lost-commit",
    "lost-write",
    "nonmonotonic-poll",
    "nonmonotonic-send",
    "poll-skip",
    "precommitted-read",
    "stale-commit",
)
UNITS = frozenset({"send", "poll", "txn"})
COVERS = frozenset({"assign", "subscribe"})
RESTARTS = frozenset({"crash", "reset"})
# Known operations that carry nothing the checker judges.
IGNORED = frozenset({"debug-topic-partitions"})
NEMESIS = "nemesis"


@dataclass(frozen=True, slots=True)
class Judged:
    """A case with the reason it is allowed (None: it counts against the history)."""

    case: Case
    allowed: str | None


@dataclass(frozen=True, slots=True)
class CheckResult:
    """Jepsen's checker result: valid (True, False or "unknown"), the cases, the stats."""

    valid: bool | str
    judged: tuple[Judged, ...]
    ops: int
    stats: dict[str, object]
    # Per partition, (time_ms, highest known offset) as it grew: for plots, not in the JSON.
    timeline: dict[str, list[tuple[int, int]]] = field(default_factory=dict)
    # The nemesis's completions in history order (its faults and heals): for the reports'
    # fault timeline, not in the JSON (they are the history's own lines).
    nemesis: tuple[Op, ...] = ()

    @property
    def anomaly_types(self) -> list[str]:
        """Sorted names of the anomalies that count (not allowed)."""
        return sorted({j.case.anomaly for j in self.judged if j.allowed is None})

    @property
    def allowed_types(self) -> list[str]:
        """Sorted names of the anomalies found but allowed."""
        return sorted({j.case.anomaly for j in self.judged if j.allowed is not None})

    def as_dict(self) -> dict[str, object]:
        """The JSON fields of `kafka-verify check`."""
        anomalies: dict[str, list[object]] = {}
        allowed: dict[str, list[object]] = {}
        for j in self.judged:
            if j.allowed is None:
                anomalies.setdefault(j.case.anomaly, []).append(j.case.as_dict())
            else:
                allowed.setdefault(j.case.anomaly, []).append(
                    {**j.case.as_dict(), "allowed": j.allowed}
                )
        return {
            "valid": self.valid,
            "anomaly_types": self.anomaly_types,
            "anomalies": dict(sorted(anomalies.items())),
            "allowed_types": self.allowed_types,
            "allowed": dict(sorted(allowed.items())),
            "ops": self.ops,
            "stats": self.stats,
        }


class Analysis:
    """Checks a client history one operation at a time, then as a whole."""

    def __init__(self, config: CheckConfig | None = None) -> None:
        self.config = config or CheckConfig()
        self.memory = Memory(self.config)
        self.commits = Commits(self.config.eager_groups)
        self.metrics = Metrics()
        self.found: list[Case] = []  # decided as their operation arrived
        self.deferred: list[Case] = []  # decided by `finish`
        self.last_index: int | None = None
        self.client_ops = 0  # completions
        self.client_lines = 0  # invokes and completions
        self.counts: Counter[tuple[str, str]] = Counter()
        self.unchecked: Counter[str] = Counter()
        self._invoked: dict[str, Op] = {}
        self.nemesis: list[Op] = []  # the nemesis's completions: one per fault or heal
        self.last_reads: list[Read] = []  # the reads of the last op observed
        self._final: list[Case] | None = None

    # -- one operation at a time ---------------------------------------------------------------

    def observe(self, op: Op, facts: ModelFacts | None = None) -> list[Case]:
        """The cases `op` decides; `facts` are a model's, right after it (None: none)."""
        if self._final is not None:
            raise RuntimeError("the analysis is finished")
        last = self.last_index
        if last is not None and op.index <= last:
            raise HistoryError(
                f"op index {op.index} follows {last}: indexes are unique and increasing"
            )
        self.last_index = op.index
        if self.last_reads:
            self.last_reads = []
        if op.process == NEMESIS:
            self.counts[("nemesis", op.type)] += 1
            if op.type != "invoke":
                self.nemesis.append(op)
            return []
        self.counts[(op.f, op.type)] += 1
        self.client_lines += 1
        if op.f in REBALANCE_EVENTS:
            # A rebalance callback: one line, inside the call that ran it (no invoke of its own).
            self.commits.rebalanced(op)
            return []
        if op.type == "invoke":
            self._invoked[op.process] = op
            self.commits.invoked(op)
            return []
        invoke = self._invoked.pop(op.process, None)
        self.client_ops += 1
        self.commits.completed(op, invoke)
        found: list[Case] = []
        if op.f in UNITS:
            found = self._unit(op, invoke, facts)
        elif op.f in COVERS:
            self._cover(op)
            self.commits.covered(op, invoke)
        elif op.f in RESTARTS:
            self._forget(op.process)
            self.commits.restarted(op.process)
        elif op.f != "commit" and op.f not in IGNORED:
            self.unchecked[op.f] += 1
        self.found += found
        return found

    def _unit(self, op: Op, invoke: Op | None, facts: ModelFacts | None) -> list[Case]:
        invoked_ms = op.time_ms if invoke is None else invoke.time_ms
        writes, reads = unit_of(op)
        self.last_reads = reads
        found: list[Case] = []
        if writes:
            found += self._writes(op, writes)
        if reads:
            found += self._reads(op, reads, facts)
        if writes and reads:
            found += precommitted_read(op, writes, reads)
            self.memory.txn_reads.append((op, [(key, record) for key, _, record in reads]))
        if self.config.metrics:
            self.metrics.observe(op, invoked_ms, writes, reads)
        if reads:
            self.commits.read(op, reads)
        if op.type == "info":
            self._forget(op.process)
            if op.f == "poll":
                self.commits.restarted(op.process)
        return found

    def _sight(self, key: str, offset: int, record: RecordId, op: Op) -> list[Case]:
        other_record, other_offset = self.memory.order(key).add(offset, record, op)
        found: list[Case] = []
        if other_record is not None:
            found += inconsistent_offsets(self.memory, [(key, offset)])
        if other_offset is not None:
            found += duplicate(self.memory, [(key, record)])
        return found

    def _writes(self, op: Op, writes: list[Write]) -> list[Case]:
        memory = self.memory
        found: list[Case] = []
        for key, offset, record in writes:
            record_key = (key, record)
            known = memory.writer_of.get(record_key)
            if known is None or known.type != "ok":
                memory.writer_of[record_key] = op
            if op.type == "ok":
                memory.acked[record_key] = offset
                memory.failed.discard(record_key)
                if offset is not None:
                    found += self._sight(key, offset, record, op)
            elif op.type == "fail" and record_key not in memory.acked:
                memory.failed.add(record_key)
                if record_key in memory.read_by:
                    found += aborted_read(memory, [record_key])
        if op.type == "info" and any(offset is not None for _, offset, _ in writes):
            memory.info_sends.append((op, writes))
        if op.type in ("ok", "info"):
            found += note_send_order(memory, op, writes)
        return found

    def _reads(self, op: Op, reads: list[Read], facts: ModelFacts | None) -> list[Case]:
        memory = self.memory
        found: list[Case] = []
        for key, offset, record in reads:
            if offset is not None:
                found += self._sight(key, offset, record, op)
                highest = memory.max_read.get(key)
                if highest is None or offset > highest[0]:
                    memory.max_read[key] = (offset, op)
            record_key = (key, record)
            if record_key not in memory.read_by:
                memory.read_by[record_key] = op
                if record_key in memory.failed:
                    found += aborted_read(memory, [record_key])
        found += int_nonmonotonic_poll(op, reads)
        note_read_gaps(memory, op, reads)
        steps = consumer_steps(memory, op, reads)
        found += nonmonotonic_poll(memory, op, steps)
        found += self._poll_gaps(op, steps, facts)
        if op.type == "ok":
            positions = memory.positions.setdefault(op.process, {})
            rebalances = memory.rebalances.get(op.process, 0)
            for key, offset, _ in reads:
                if offset is not None:
                    positions[key] = Position(offset, op, rebalances)
        return found

    def _poll_gaps(
        self, op: Op, steps: list[tuple[str, Position, int, bool]], facts: ModelFacts | None
    ) -> list[Case]:
        """Gaps a model can judge now (it knows every retained offset holds a record); the
        others are kept for `poll_skip`."""
        found: list[Case] = []
        undecided = []
        for step in steps:
            key, last, offset, _ = step
            log_start = None if facts is None else facts.log_start(key)
            if log_start is None:
                undecided.append(step)
            elif offset > last.offset + 1:
                gap = SkipCandidate("poll-skip", key, last.offset, offset, (last.op, op))
                gap.subscribed = step[3]
                gap.rebalanced = key in op.rebalanced or (
                    self.memory.rebalances.get(op.process, 0) != last.rebalances
                )
                found += poll_skip_now(self.memory, gap, log_start)
        note_poll_gaps(self.memory, op, undecided)
        return found

    def _cover(self, op: Op) -> None:
        if op.type not in ("ok", "info"):
            return
        memory = self.memory
        keys, topics = covered_keys(op.value, op.index)
        positions = memory.positions.get(op.process, {})
        if op.f == "assign" and (op.seek or self.config.assign_seeks):
            positions = {}
        else:
            positions = {k: p for k, p in positions.items() if key_covered(k, keys, topics)}
        memory.positions[op.process] = positions
        memory.rebalances[op.process] = memory.rebalances.get(op.process, 0) + 1
        if op.f == "subscribe":
            memory.subscribed.add(op.process)
        else:
            memory.subscribed.discard(op.process)
        if self.config.metrics:
            self.metrics.reassigned(op.process, keys, op.f == "subscribe")

    def _forget(self, process: str) -> None:
        memory = self.memory
        memory.positions.pop(process, None)
        for key in [k for k in memory.last_send if k[0] == process]:
            del memory.last_send[key]
        if self.config.metrics:
            self.metrics.forget(process)

    # -- the whole history ----------------------------------------------------------------------

    def finish(self, facts: ModelFacts | None = None) -> list[Case]:
        """Every case of the history (computed once); `self.deferred` holds those decided now."""
        if self._final is not None:
            return self._final
        memory = self.memory
        for op, writes in memory.info_sends:
            # An info send that anyone read did happen: its offsets are known to exist.
            if any((key, record) in memory.read_by for key, _, record in writes):
                for key, offset, record in writes:
                    if offset is not None:
                        self.deferred += self._sight(key, offset, record, op)
        self.deferred += nonmonotonic_send(memory)
        self.deferred += int_nonmonotonic_send(memory)
        self.deferred += int_send_skip(memory)
        self.deferred += poll_skip(memory, facts)
        self.deferred += int_poll_skip(memory, facts)
        self.deferred += lost_write(memory, facts)
        self.deferred += write_cycle(memory)
        self.deferred += circular_information_flow(memory)
        self.deferred += lost_commit(self.commits)
        self.deferred += stale_commit(self.commits)
        rebuilt = {"inconsistent-offsets", "duplicate", "G1a"}
        cases = [c for c in (*self.found, *self.deferred) if c.anomaly not in rebuilt]
        cases += inconsistent_offsets(memory) + duplicate(memory) + aborted_read(memory)
        self._final = cases
        return cases

    def result(self, facts: ModelFacts | None = None) -> CheckResult:
        """The verdict, the judged cases (worst first per anomaly) and the stats."""
        cases = self.finish(facts)
        order = {name: i for i, name in enumerate(ANOMALIES)}
        ranked = sorted(
            enumerate(cases),
            key=lambda item: (order.get(item[1].anomaly, len(order)), -item[1].severity, item[0]),
        )
        judged = tuple(Judged(c, allowed_because(c, self.config)) for _, c in ranked)
        if self.client_ops == 0:
            valid: bool | str = "unknown"
        else:
            valid = all(j.allowed is not None for j in judged)
        return CheckResult(
            valid,
            judged,
            self.client_lines,
            self.stats(),
            self.metrics.timeline(),
            tuple(self.nemesis),
        )

    def stats(self) -> dict[str, object]:
        """Counts of operations, what was not checked, unseen records and realtime lag."""
        memory = self.memory
        return {
            "by_f_type": {f"{f}:{t}": n for (f, t), n in sorted(self.counts.items())},
            "unchecked": dict(sorted(self.unchecked.items())),
            "partitions": len(memory.orders),
            "records_known": sum(len(o.at) for o in memory.orders.values()),
            "acked": len(memory.acked),
            "read": len(memory.read_by),
            **self.metrics.summary(),
        }


def check(ops: Iterable[Op], config: CheckConfig | None = None) -> CheckResult:
    """Check a whole history."""
    analysis = Analysis(config)
    for op in ops:
        analysis.observe(op)
    return analysis.result()
