"""Black-box properties of client histories, in the vocabulary of Jepsen's Kafka checker.

Rules of this module:
- A history is what clients saw, one operation per line of `history.jsonl`:
  `Op(index, time_ms, process, type, f, value)` with type invoke|ok|fail|info.
  A send's value is `[topic, partition, offset|None, record]`; a poll's value is
  `{"topic/partition": [[offset, record], ...]}`. Values are data: they are
  validated field by field, never evaluated.
- A process has at most one operation in flight, so a completion belongs to
  the process's last invoke.
- `info` means the outcome is unknown: such a send may or may not appear.
  `fail` means the send was definitively not written.
- `HistoryChecker.observe` checks the ALWAYS properties one operation at a
  time, in amortized O(1) per operation (O(k) for a poll of k records);
  `finish` checks the EVENTUALLY ones after heal and drain.
- The model state passed with each operation is only used for what clients
  cannot see themselves: which offsets are committed (the largest high
  watermark) and which are still retained (that replica's log start).
"""

from __future__ import annotations

from bisect import bisect_left
from collections.abc import Mapping
from dataclasses import dataclass, field

from kafka_verify.model.state import Config, Partition, Replica, Role, State
from kafka_verify.properties.catalogue import Kind, Violation, facts, prop

MODEL_TOPIC = "t"  # the one topic the model's partitions belong to
OP_TYPES = frozenset({"invoke", "ok", "fail", "info"})
# Completions after which a consumer's position legitimately restarts
# (a new assignment, a rejoin or an explicit reset to the committed offset).
POSITION_RESETS = frozenset({"assign", "subscribe", "reset"})

RecordId = int | str
TopicPartition = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a client history."""

    index: int
    time_ms: int
    process: str
    type: str  # invoke | ok | fail | info
    f: str  # send | poll | commit | subscribe | assign | ...
    value: object

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise ValueError(
                f"op {self.index}: type must be one of {sorted(OP_TYPES)}, not {self.type!r}"
            )

    @classmethod
    def from_json(cls, line: Mapping[str, object]) -> Op:
        """An Op from one parsed line of `history.jsonl`, checked field by field."""
        index, time_ms = line.get("index"), line.get("time_ms")
        process, kind, f = line.get("process"), line.get("type"), line.get("f")
        if not isinstance(index, int) or not isinstance(time_ms, int):
            raise ValueError(f"a history line needs integer index and time_ms: {dict(line)!r}")
        if (
            not isinstance(process, str | int)
            or not isinstance(kind, str)
            or not isinstance(f, str)
        ):
            raise ValueError(f"op {index}: process, type and f must be strings")
        return cls(index, time_ms, str(process), kind, f, line.get("value"))


@dataclass(frozen=True, slots=True)
class Send:
    """What a send said or was told: where the record went, if known."""

    topic: str
    partition: int | None
    offset: int | None
    record: RecordId


def _record_id(value: object, where: str) -> RecordId:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise ValueError(f"{where}: a record is an integer or a string, not {value!r}")
    return value


def parse_send(op: Op) -> Send:
    """The send of `op`; ValueError if its value is not [topic, partition, offset|None, record]."""
    value = op.value
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise ValueError(f"op {op.index}: a send value is [topic, partition, offset, record]")
    topic, partition, offset, record = value
    if not isinstance(topic, str):
        raise ValueError(f"op {op.index}: the topic must be a string, not {topic!r}")
    for name, number in (("partition", partition), ("offset", offset)):
        if number is not None and (
            isinstance(number, bool) or not isinstance(number, int) or number < 0
        ):
            raise ValueError(f"op {op.index}: the {name} must be a non-negative integer or null")
    return Send(topic, partition, offset, _record_id(record, f"op {op.index}"))


def parse_poll(op: Op) -> list[tuple[TopicPartition, list[tuple[int, RecordId]]]]:
    """The records of a poll, per partition in the order read; ValueError if malformed."""
    value = op.value
    if not isinstance(value, Mapping):
        raise ValueError(
            f"op {op.index}: a poll value maps 'topic/partition' to [[offset, record], ...]"
        )
    reads = []
    for key, pairs in value.items():
        topic, _, number = str(key).rpartition("/")
        if not topic or not number.isdigit() or not isinstance(pairs, list | tuple):
            raise ValueError(f"op {op.index}: bad poll entry {key!r}")
        records = []
        for pair in pairs:
            if not isinstance(pair, list | tuple) or len(pair) != 2:
                raise ValueError(
                    f"op {op.index}: a polled record is [offset, record], not {pair!r}"
                )
            offset, record = pair
            if isinstance(offset, bool) or not isinstance(offset, int) or offset < 0:
                raise ValueError(f"op {op.index}: a polled offset is a non-negative integer")
            records.append((offset, _record_id(record, f"op {op.index}")))
        reads.append(((topic, int(number)), records))
    return reads


# -- what the checker remembers ------------------------------------------------------------


@dataclass(slots=True)
class Memory:
    """Everything the history properties remember between operations (mutable, owned by one checker)."""

    at_offset: dict[tuple[TopicPartition, int], RecordId] = field(default_factory=dict)
    offset_of: dict[RecordId, tuple[TopicPartition, int]] = field(default_factory=dict)
    reported: set[tuple[str, object]] = field(default_factory=set)
    position: dict[tuple[str, TopicPartition], int] = field(default_factory=dict)
    invoked_at: dict[str, int] = field(default_factory=dict)
    # Per (producer, partition): acked sends' invoke indexes, sorted, and their offsets.
    acked_order: dict[tuple[str, TopicPartition], tuple[list[int], list[int]]] = field(
        default_factory=dict
    )
    acked: dict[RecordId, tuple[Send, int]] = field(default_factory=dict)
    failed: dict[RecordId, int] = field(default_factory=dict)
    read: dict[RecordId, int] = field(default_factory=dict)
    highest_read: dict[TopicPartition, int] = field(default_factory=dict)
    committed_mark: dict[int, int] = field(default_factory=dict)

    def first_time(self, key: tuple[str, object]) -> bool:
        """True once per key: one anomaly is reported once however often it is seen again."""
        if key in self.reported:
            return False
        self.reported.add(key)
        return True


@dataclass(frozen=True, slots=True)
class Sighting:
    """One (partition, offset, record) fact that a client observed."""

    where: TopicPartition
    offset: int
    record: RecordId
    op: Op


def _partition_of(where: TopicPartition) -> int:
    return where[1]


def _name(where: TopicPartition) -> str:
    return f"{where[0]}/{where[1]}"


# -- ALWAYS history properties ----------------------------------------------------------------


@prop("inconsistent-offsets", Kind.ALWAYS, "history")
def inconsistent_offsets(memory: Memory, seen: Sighting) -> list[Violation]:
    """Forbids: one offset of a partition observed (by an acknowledged send or a poll) holding two different records."""
    key = (seen.where, seen.offset)
    known = memory.at_offset.setdefault(key, seen.record)
    if known == seen.record or not memory.first_time(("inconsistent-offsets", (key, seen.record))):
        return []
    return [
        Violation(
            property="inconsistent-offsets",
            message=(
                f"offset {seen.offset} of {_name(seen.where)} was seen holding record {known!r} "
                f"and, in op {seen.op.index} ({seen.op.process} {seen.op.f}), record {seen.record!r}"
            ),
            partition=_partition_of(seen.where),
            details=facts(offset=seen.offset, records=(known, seen.record), op=seen.op.index),
        )
    ]


@prop("duplicate", Kind.ALWAYS, "history")
def duplicate(memory: Memory, seen: Sighting) -> list[Violation]:
    """Forbids: one record observed at two different offsets."""
    place = (seen.where, seen.offset)
    known = memory.offset_of.setdefault(seen.record, place)
    if known == place or not memory.first_time(("duplicate", (seen.record, place))):
        return []
    return [
        Violation(
            property="duplicate",
            message=(
                f"record {seen.record!r} was seen at offset {known[1]} of {_name(known[0])} and, in op "
                f"{seen.op.index} ({seen.op.process} {seen.op.f}), at offset {seen.offset} of "
                f"{_name(seen.where)}"
            ),
            partition=_partition_of(seen.where),
            details=facts(record=seen.record, offsets=(known[1], seen.offset), op=seen.op.index),
        )
    ]


def _poll_steps(
    memory: Memory, op: Op, where: TopicPartition, records: list[tuple[int, RecordId]]
) -> list[tuple[int, int]]:
    """(previous offset, next offset) for each record of one partition's poll, after the last position."""
    previous = memory.position.get((op.process, where))
    steps = []
    for offset, _ in records:
        if previous is not None:
            steps.append((previous, offset))
        previous = offset
    return steps


@prop("nonmonotonic-poll", Kind.ALWAYS, "history")
def nonmonotonic_poll(
    memory: Memory, op: Op, where: TopicPartition, records: list[tuple[int, RecordId]]
) -> list[Violation]:
    """Forbids: a consumer's successive polls of a partition going backwards or repeating an offset, unless its position was reset in between (an assign, subscribe or reset)."""
    for previous, offset in _poll_steps(memory, op, where, records):
        if offset <= previous:
            return [
                Violation(
                    property="nonmonotonic-poll",
                    message=(
                        f"consumer {op.process} read offset {offset} of {_name(where)} in op "
                        f"{op.index} after offset {previous}"
                    ),
                    partition=_partition_of(where),
                    details=facts(consumer=op.process, offsets=(previous, offset), op=op.index),
                )
            ]
    return []


def _reference(part: Partition) -> Replica:
    """The replica with the largest high watermark (the largest log start among ties)."""
    return max(part.replicas, key=lambda r: (r.hw, r.log_start))


def _model_partition(state: State | None, where: TopicPartition) -> Partition | None:
    if state is None or where[0] != MODEL_TOPIC or not 0 <= where[1] < len(state.partitions):
        return None
    return state.partitions[where[1]]


@prop("poll-skip", Kind.ALWAYS, "history")
def poll_skip(
    memory: Memory,
    op: Op,
    where: TopicPartition,
    records: list[tuple[int, RecordId]],
    state: State | None,
) -> list[Violation]:
    """Forbids: a consumer's successive polls of a partition skipping an offset that is still retained, unless its position was reset in between.

    Retained means at or above the log start of the replica with the largest
    high watermark in the state right after the poll (log starts only grow).
    """
    part = _model_partition(state, where)
    retained_from = 0 if part is None else _reference(part).log_start
    for previous, offset in _poll_steps(memory, op, where, records):
        if offset > previous + 1 and offset - 1 >= retained_from:
            first_skipped = max(previous + 1, retained_from)
            return [
                Violation(
                    property="poll-skip",
                    message=(
                        f"consumer {op.process} jumped from offset {previous} to {offset} of "
                        f"{_name(where)} in op {op.index}, skipping retained offset {first_skipped}"
                    ),
                    partition=_partition_of(where),
                    details=facts(
                        consumer=op.process,
                        offsets=(previous, offset),
                        log_start=retained_from,
                        op=op.index,
                    ),
                )
            ]
    return []


@prop("nonmonotonic-send", Kind.ALWAYS, "history")
def nonmonotonic_send(memory: Memory, op: Op, send: Send, invoked: int) -> list[Violation]:
    """Forbids: one producer's acknowledged sends to a partition getting offsets that do not increase in the order they were sent."""
    if send.partition is None or send.offset is None:
        return []
    order, offsets = memory.acked_order.setdefault(
        (op.process, (send.topic, send.partition)), ([], [])
    )
    at = bisect_left(order, invoked)
    # The offsets are increasing along `order` while the history is clean, so
    # only the neighbours of the new send can be out of order with it.
    earlier = offsets[at - 1] if at > 0 else None
    later = offsets[at] if at < len(offsets) else None
    order.insert(at, invoked)
    offsets.insert(at, send.offset)
    if (earlier is None or earlier < send.offset) and (later is None or send.offset < later):
        return []
    neighbour = earlier if earlier is not None and earlier >= send.offset else later
    return [
        Violation(
            property="nonmonotonic-send",
            message=(
                f"producer {op.process} got offset {send.offset} of {send.topic}/{send.partition} "
                f"for the send invoked at op {invoked}, out of order with another of its sends "
                f"at offset {neighbour}"
            ),
            partition=send.partition,
            details=facts(producer=op.process, offsets=(neighbour, send.offset), op=op.index),
        )
    ]


@prop("committed-read", Kind.ALWAYS, "history")
def committed_read(memory: Memory, seen: Sighting, state: State | None) -> list[Violation]:
    """Forbids: a poll returning a record at an offset that is not committed (at or above the largest high watermark), or one that differs from the committed record there."""
    part = _model_partition(state, seen.where)
    if part is None:
        return []
    reference = _reference(part)
    # The largest high watermark can drop when its replica crashes and comes
    # back with an older checkpoint; what was committed stays committed.
    index = seen.where[1]
    mark = max(memory.committed_mark.get(index, 0), reference.hw)
    memory.committed_mark[index] = mark
    if seen.offset >= mark:
        problem = f"is not committed (the high watermark is {mark})"
    else:
        committed = reference.record_at(seen.offset)
        if committed is None or committed.id == seen.record:
            return []
        problem = f"differs from the committed record {committed.id}"
    return [
        Violation(
            property="committed-read",
            message=(
                f"consumer {seen.op.process} read record {seen.record!r} at offset {seen.offset} of "
                f"{_name(seen.where)} in op {seen.op.index}, which {problem}"
            ),
            partition=index,
            details=facts(offset=seen.offset, record=seen.record, hw=mark, op=seen.op.index),
        )
    ]


def _phantom(record: RecordId, failed_at: int, seen_at: int, where: str) -> Violation:
    return Violation(
        property="phantom-write",
        message=f"record {record!r}, whose send failed at op {failed_at}, {where}",
        details=facts(record=record, failed_op=failed_at, seen_op=seen_at),
    )


@prop("phantom-write", Kind.ALWAYS, "history")
def phantom_write(memory: Memory, record: RecordId, op: Op) -> list[Violation]:
    """Forbids: reading a record whose send failed definitively (a fail, not an info)."""
    if op.f == "send":
        memory.failed[record] = op.index
        read_at = memory.read.get(record)
        if read_at is None:
            return []
        return [_phantom(record, op.index, read_at, f"had already been read at op {read_at}")]
    failed_at = memory.failed.get(record)
    if failed_at is None or not memory.first_time(("phantom-write", record)):
        return []
    return [_phantom(record, failed_at, op.index, f"was read at op {op.index}")]


# -- EVENTUALLY properties, after heal and drain ------------------------------------------------


def _final_log(part: Partition) -> Replica:
    """The log acked writes must be in: the quorum leader's, or the most advanced replica's."""
    for r in part.replicas:
        if r.broker == part.leader:
            return r
    return _reference(part)


def _lost(send: Send, op_index: int, why: str) -> Violation:
    return Violation(
        property="lost-write",
        message=(
            f"record {send.record!r}, acknowledged at offset {send.offset} of "
            f"{send.topic}/{send.partition} (op {op_index}), {why}"
        ),
        partition=send.partition,
        details=facts(record=send.record, offset=send.offset, op=op_index),
    )


def _lost_from_log(send: Send, op_index: int, log: Replica) -> Violation | None:
    if send.offset is None:
        if log.log_start > 0 or any(r.id == send.record for r in log.log):
            return None
        return _lost(send, op_index, f"is nowhere in broker {log.broker}'s final log")
    if send.offset < log.log_start:
        return None  # retention removed it: nothing to hold against the log
    record = log.record_at(send.offset)
    if record is not None and record.id == send.record:
        return None
    held = "nothing" if record is None else f"record {record.id}"
    return _lost(
        send, op_index, f"is not in broker {log.broker}'s final log, which holds {held} there"
    )


@prop("lost-write", Kind.EVENTUALLY, "final")
def lost_write(memory: Memory, final_state: State) -> list[Violation]:
    """Forbids: an acknowledged send missing at its offset from the final log (unless retention removed it), or never read although consumers read later offsets of its partition."""
    found: list[Violation] = []
    for send, op_index in memory.acked.values():
        if send.partition is None:
            continue  # an ack that names no partition cannot be looked up
        where = (send.topic, send.partition)
        part = _model_partition(final_state, where)
        if part is not None:
            log = _final_log(part)
            violation = _lost_from_log(send, op_index, log)
            if violation is not None:
                found.append(violation)
                continue
            if send.offset is not None and send.offset < log.log_start:
                continue
        highest = memory.highest_read.get(where, -1)
        if send.offset is not None and send.offset < highest and send.record not in memory.read:
            found.append(_lost(send, op_index, f"was never read though offset {highest} was"))
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


# -- the incremental checker ------------------------------------------------------------------


class HistoryChecker:
    """Checks a client history one operation at a time, then once more after heal and drain."""

    def __init__(self, config: Config) -> None:
        self.config = config
        self.memory = Memory()

    def observe(self, op: Op, state: State | None) -> list[Violation]:
        """The ALWAYS violations `op` reveals; `state` is the model state right after it (None: unknown)."""
        if op.type == "invoke":
            self.memory.invoked_at[op.process] = op.index
            return []
        invoked = self.memory.invoked_at.pop(op.process, op.index)
        if op.f in POSITION_RESETS and op.type in ("ok", "info"):
            self._forget_positions(op.process)
        if op.f == "send":
            return self._send(op, invoked)
        if op.f == "poll" and op.type == "ok":
            return self._poll(op, state)
        return []

    def finish(self, final_state: State) -> list[Violation]:
        """The EVENTUALLY violations, on the state after heal and drain."""
        return [*converged(final_state, self.config), *lost_write(self.memory, final_state)]

    def _forget_positions(self, process: str) -> None:
        for key in [k for k in self.memory.position if k[0] == process]:
            del self.memory.position[key]

    def _send(self, op: Op, invoked: int) -> list[Violation]:
        if op.type == "fail":
            return phantom_write(self.memory, parse_send(op).record, op)
        if op.type != "ok":
            return []
        send = parse_send(op)
        self.memory.acked[send.record] = (send, op.index)
        found = nonmonotonic_send(self.memory, op, send, invoked)
        if send.partition is not None and send.offset is not None:
            seen = Sighting((send.topic, send.partition), send.offset, send.record, op)
            found += inconsistent_offsets(self.memory, seen)
            found += duplicate(self.memory, seen)
        return found

    def _poll(self, op: Op, state: State | None) -> list[Violation]:
        found: list[Violation] = []
        memory = self.memory
        for where, records in parse_poll(op):
            found += nonmonotonic_poll(memory, op, where, records)
            found += poll_skip(memory, op, where, records, state)
            for offset, record in records:
                seen = Sighting(where, offset, record, op)
                found += inconsistent_offsets(memory, seen)
                found += duplicate(memory, seen)
                found += committed_read(memory, seen, state)
                found += phantom_write(memory, record, op)
                memory.read.setdefault(record, op.index)
            if records:
                memory.position[(op.process, where)] = records[-1][0]
                highest = max(offset for offset, _ in records)
                if highest > memory.highest_read.get(where, -1):
                    memory.highest_read[where] = highest
        return found
