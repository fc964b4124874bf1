"""One function per anomaly, in the vocabulary of Jepsen's Kafka checker.

Rules of this module:
- Each function is named after what it forbids, says so in a docstring that
  starts "Forbids:", and returns a list of concrete `Case`s (empty when clean),
  each listing the ops that show it. The catalogue registers each under its
  kebab-case name (Jepsen's G1a, G0 and G1c are catalogued as phantom-write,
  write-cycle and circular-information-flow; `ANOMALY_OF` maps them back).
- Functions read only the history's memory, plus `ModelFacts` where a model
  runs beside the history: nothing here needs the model to judge a read.
- A gap is judged over records known to exist, never over raw offsets: real
  partitions hold transaction markers, aborted batches and compacted holes.
  Deltas are counted in known records (Jepsen's dense indexes).
- Functions marked "as it happens" are decided by one operation and are called
  by the analysis as each op arrives; the others are decided once the whole
  history is in (`finish`), when every record known to exist is known.
"""

from __future__ import annotations

from collections.abc import Iterable

from kafka_verify.properties.catalogue import Kind, prop
from kafka_verify.properties.history.memory import (
    Case,
    Memory,
    ModelFacts,
    OrderCandidate,
    Position,
    RecordKey,
    SkipCandidate,
)
from kafka_verify.properties.history.ops import Op, Read, RecordId, Write

# Jepsen's anomaly names where they differ from the catalogue's kebab-case ones.
ANOMALY_OF = {
    "phantom-write": "G1a",
    "write-cycle": "G0",
    "circular-information-flow": "G1c",
}
CATALOGUE_NAME_OF = {anomaly: name for name, anomaly in ANOMALY_OF.items()}


def catalogue_name(anomaly: str) -> str:
    """The catalogue's name for a checker anomaly (G1a -> phantom-write, ...)."""
    return CATALOGUE_NAME_OF.get(anomaly, anomaly)


def _ops(*ops: Op | None) -> tuple[Op, ...]:
    seen: list[Op] = []
    for op in ops:
        if op is not None and all(op is not o for o in seen):
            seen.append(op)
    return tuple(seen)


# -- version-order conflicts ---------------------------------------------------------------------


@prop("inconsistent-offsets", Kind.ALWAYS, "history")
def inconsistent_offsets(
    memory: Memory, where: Iterable[tuple[str, int]] | None = None
) -> list[Case]:
    """Forbids: one offset of a partition observed (by an acknowledged send or a poll) holding two different records.

    `where` limits the cases to some (partition, offset) pairs (as it happens);
    None gives every one.
    """
    if where is None:
        where = [(k, o) for k, order in memory.orders.items() for o in order.extra_records]
    cases = []
    for key, offset in where:
        order = memory.orders[key]
        first, extra = order.at[offset], order.extra_records[offset]
        records = (first, *extra)
        cases.append(
            Case(
                "inconsistent-offsets",
                f"offset {offset} of {key} was seen holding records "
                + ", ".join(repr(r) for r in records),
                _ops(order.shown_at[offset], *extra.values()),
                key,
                (("offset", offset), ("records", records)),
                severity=len(records),
            )
        )
    return cases


@prop("duplicate", Kind.ALWAYS, "history")
def duplicate(memory: Memory, where: Iterable[RecordKey] | None = None) -> list[Case]:
    """Forbids: one record observed at two different offsets.

    A record is identified within its partition: the same value sent to two
    partitions is two records. `where` limits the cases as above.
    """
    if where is None:
        where = [(k, r) for k, order in memory.orders.items() for r in order.extra_offsets]
    cases = []
    for key, record in where:
        order = memory.orders[key]
        first, extra = order.first_offset[record], order.extra_offsets[record]
        offsets = (first, *extra)
        cases.append(
            Case(
                "duplicate",
                f"record {record!r} was seen at offsets {', '.join(map(str, offsets))} of {key}",
                _ops(order.shown_record[record], *extra.values()),
                key,
                (("record", record), ("offsets", offsets), ("count", len(offsets))),
                severity=len(offsets),
            )
        )
    return cases


# -- what was read of what was written ---------------------------------------------------------


@prop("phantom-write", Kind.ALWAYS, "history")
def aborted_read(memory: Memory, where: Iterable[RecordKey] | None = None) -> list[Case]:
    """Forbids: reading a record whose send failed definitively (a fail, not an info) or whose transaction aborted (Jepsen's G1a).

    `where` limits the cases to some records; None gives every one.
    """
    candidates = memory.failed if where is None else where
    cases = []
    for record_key in candidates:
        reader = memory.read_by.get(record_key)
        if reader is None or record_key not in memory.failed:
            continue
        key, record = record_key
        writer = memory.writer_of[record_key]
        cases.append(
            Case(
                "G1a",
                f"record {record!r} of {key}, whose send failed in op {writer.index}, "
                f"was read in op {reader.index}",
                _ops(writer, reader),
                key,
                (("record", record), ("writer", writer.index), ("reader", reader.index)),
                severity=1.0,
            )
        )
    return cases


@prop("precommitted-read", Kind.ALWAYS, "history")
def precommitted_read(op: Op, writes: list[Write], reads: list[Read]) -> list[Case]:
    """Forbids: an operation reading a record it sent itself (Kafka's consumers never see uncommitted records).

    Decided as it happens.
    """
    sent = {(key, record) for key, _, record in writes}
    seen = [(key, record) for key, _, record in reads if (key, record) in sent]
    return [
        Case(
            "precommitted-read",
            f"op {op.index} read record {record!r} of {key}, which it sent itself",
            (op,),
            key,
            (("record", record),),
            severity=1.0,
        )
        for key, record in dict.fromkeys(seen)
    ]


@prop("lost-write", Kind.EVENTUALLY, "final")
def lost_write(memory: Memory, facts: ModelFacts | None = None) -> list[Case]:
    """Forbids: an acknowledged send never read although consumers read a later offset of its partition (unless retention removed it).

    The bound is the highest offset any poll returned in the partition; an
    acknowledged record at or below it that no poll returned is lost. Records
    whose offset is unknown cannot be placed and are left to `unseen`.
    """
    cases = []
    for record_key, acked_at in memory.acked.items():
        if record_key in memory.read_by:
            continue
        key, record = record_key
        bound = memory.max_read.get(key)
        offset = memory.known_offset(key, (acked_at, record))
        if bound is None or offset is None or offset > bound[0]:
            continue
        log_start = None if facts is None else facts.log_start(key)
        if log_start is not None and offset < log_start:
            continue  # retention removed it before anyone had to read it
        writer = memory.writer_of[record_key]
        cases.append(
            Case(
                "lost-write",
                f"record {record!r}, acknowledged at offset {offset} of {key} (op {writer.index}), "
                f"was never read though offset {bound[0]} was (op {bound[1].index})",
                _ops(writer, bound[1]),
                key,
                (("record", record), ("offset", offset), ("max_read_offset", bound[0])),
                severity=float(bound[0] - offset),
            )
        )
    return cases


# -- one consumer across its polls ----------------------------------------------------------------


def consumer_steps(
    memory: Memory, op: Op, reads: list[Read]
) -> list[tuple[str, Position, int, bool]]:
    """For each partition `op` reads: (key, where the consumer last was, the first offset now, subscribed)."""
    positions = memory.positions.get(op.process)
    if not positions:
        return []
    steps = []
    done: set[str] = set()
    for key, offset, _ in reads:
        if key in done or offset is None:
            continue
        done.add(key)
        last = positions.get(key)
        if last is not None:
            steps.append((key, last, offset, op.process in memory.subscribed))
    return steps


def _rebalanced(memory: Memory, op: Op, key: str, last: Position) -> bool:
    return key in op.rebalanced or memory.rebalances.get(op.process, 0) != last.rebalances


@prop("nonmonotonic-poll", Kind.ALWAYS, "history")
def nonmonotonic_poll(
    memory: Memory, op: Op, steps: list[tuple[str, Position, int, bool]]
) -> list[Case]:
    """Forbids: a consumer's successive polls of a partition going backwards or repeating an offset, unless its position was reset in between (a seek, a crash, or an assign or subscribe that dropped the partition).

    Decided as it happens.
    """
    cases = []
    for key, last, offset, subscribed in steps:
        if offset > last.offset:
            continue
        cases.append(
            Case(
                "nonmonotonic-poll",
                f"consumer {op.process} read offset {offset} of {key} in op {op.index} after "
                f"offset {last.offset} in op {last.op.index}",
                _ops(last.op, op),
                key,
                (
                    ("consumer", op.process),
                    ("offsets", (last.offset, offset)),
                    ("delta", offset - last.offset),
                    ("subscribed", subscribed),
                    ("rebalanced", _rebalanced(memory, op, key, last)),
                ),
                severity=float(last.offset - offset + 1),
            )
        )
    return cases


def note_poll_gaps(memory: Memory, op: Op, steps: list[tuple[str, Position, int, bool]]) -> None:
    """Keep each gap between a consumer's polls, for `poll_skip` to judge."""
    for key, last, offset, subscribed in steps:
        if offset > last.offset + 1:
            memory.skip_candidates.append(
                SkipCandidate(
                    "poll-skip",
                    key,
                    last.offset,
                    offset,
                    _ops(last.op, op),
                    subscribed,
                    _rebalanced(memory, op, key, last),
                )
            )


def _skip_case(memory: Memory, gap: SkipCandidate, log_start: int | None) -> Case | None:
    order = memory.orders.get(gap.key)
    if order is None:
        return None
    between = order.between(gap.low, gap.high)
    if log_start is not None:
        between = [o for o in between if o >= log_start]
    if not between:
        return None
    skipped = [order.at[o] for o in between[:8]]
    who = (
        f"consumer {gap.ops[-1].process}"
        if gap.anomaly == "poll-skip"
        else f"op {gap.ops[-1].index}"
    )
    return Case(
        gap.anomaly,
        f"{who} went from offset {gap.low} to {gap.high} of {gap.key}, skipping "
        f"{len(between)} record(s) known to exist, first {skipped[0]!r} at offset {between[0]}",
        gap.ops,
        gap.key,
        (
            ("offsets", (gap.low, gap.high)),
            ("delta", len(between) + 1),
            ("skipped", tuple(skipped)),
            ("subscribed", gap.subscribed),
            ("rebalanced", gap.rebalanced),
        ),
        severity=float(len(between)),
    )


def _judge_gaps(memory: Memory, anomaly: str, facts: ModelFacts | None) -> list[Case]:
    cases = []
    for gap in memory.skip_candidates:
        if gap.anomaly != anomaly:
            continue
        log_start = None if facts is None else facts.log_start(gap.key)
        case = _skip_case(memory, gap, log_start)
        if case is not None:
            cases.append(case)
    return cases


@prop("poll-skip", Kind.ALWAYS, "history")
def poll_skip(memory: Memory, facts: ModelFacts | None = None) -> list[Case]:
    """Forbids: a consumer's successive polls of a partition skipping a record known to exist, unless its position was reset in between.

    Known to exist: acknowledged at that offset, or returned there by any poll.
    Records below a model's log start were removed by retention and may be
    skipped.
    """
    return _judge_gaps(memory, "poll-skip", facts)


def poll_skip_now(memory: Memory, gap: SkipCandidate, log_start: int) -> list[Case]:
    """`poll_skip` for one gap, as it happens, where a model says every offset from
    `log_start` up to what was read holds a record (a model's log has no holes)."""
    first = max(gap.low + 1, log_start)
    if first >= gap.high:
        return []
    order = memory.order(gap.key)
    skipped = tuple(order.at.get(o, "?") for o in range(first, min(gap.high, first + 8)))
    return [
        Case(
            "poll-skip",
            f"consumer {gap.ops[-1].process} jumped from offset {gap.low} to {gap.high} of "
            f"{gap.key} in op {gap.ops[-1].index}, skipping retained offset {first}",
            gap.ops,
            gap.key,
            (
                ("offsets", (gap.low, gap.high)),
                ("delta", gap.high - first + 1),
                ("skipped", skipped),
                ("log_start", log_start),
                ("subscribed", gap.subscribed),
                ("rebalanced", gap.rebalanced),
            ),
            severity=float(gap.high - first),
        )
    ]


# -- one operation's own reads and sends ----------------------------------------------------------


def _pairs(
    items: list[tuple[str, int | None, RecordId]],
) -> list[tuple[str, int | None, RecordId, int | None, RecordId]]:
    """Each item after the first of its partition, with the one before it there."""
    if len(items) < 2:
        return []
    last: dict[str, tuple[int | None, RecordId]] = {}
    out = []
    for key, offset, record in items:
        before = last.get(key)
        if before is not None:
            out.append((key, before[0], before[1], offset, record))
        last[key] = (offset, record)
    return out


@prop("int-nonmonotonic-poll", Kind.ALWAYS, "history")
def int_nonmonotonic_poll(op: Op, reads: list[Read]) -> list[Case]:
    """Forbids: one operation's successive reads of a partition going backwards or repeating an offset (unless its rebalance log names the partition).

    Decided as it happens.
    """
    cases = []
    for key, low, before, high, record in _pairs(reads):
        if low is None or high is None or high > low:
            continue
        cases.append(
            Case(
                "int-nonmonotonic-poll",
                f"op {op.index} read {record!r} at offset {high} of {key} after {before!r} "
                f"at offset {low}",
                (op,),
                key,
                (
                    ("offsets", (low, high)),
                    ("records", (before, record)),
                    ("delta", high - low),
                    ("rebalanced", key in op.rebalanced),
                ),
                severity=float(low - high + 1),
            )
        )
    return cases


def note_read_gaps(memory: Memory, op: Op, reads: list[Read]) -> None:
    """Keep each gap between one op's successive reads of a partition, for `int_poll_skip`."""
    for key, low, _, high, _ in _pairs(reads):
        if low is not None and high is not None and high > low + 1:
            memory.skip_candidates.append(
                SkipCandidate(
                    "int-poll-skip", key, low, high, (op,), rebalanced=key in op.rebalanced
                )
            )


@prop("int-poll-skip", Kind.ALWAYS, "history")
def int_poll_skip(memory: Memory, facts: ModelFacts | None = None) -> list[Case]:
    """Forbids: one operation's successive reads of a partition skipping a record known to exist (unless its rebalance log names the partition)."""
    return _judge_gaps(memory, "int-poll-skip", facts)


def _send_order_case(memory: Memory, pair: OrderCandidate, low: int, high: int) -> Case | None:
    """The case two placed sends make, if out of order; a gap between an op's own sends is kept."""
    if high > low:
        if pair.anomaly == "int-nonmonotonic-send" and high > low + 1:
            memory.skip_candidates.append(
                SkipCandidate("int-send-skip", pair.key, low, high, pair.ops)
            )
        return None
    last = pair.ops[-1]
    who = f"producer {last.process}" if pair.anomaly == "nonmonotonic-send" else f"op {last.index}"
    return Case(
        pair.anomaly,
        f"{who} sent {pair.second[1]!r} to {pair.key}, which landed at offset {high}, "
        f"after {pair.first[1]!r} at offset {low}",
        pair.ops,
        pair.key,
        (
            ("producer", last.process),
            ("offsets", (low, high)),
            ("records", (pair.first[1], pair.second[1])),
            ("delta", high - low),
        ),
        severity=float(low - high + 1),
    )


def note_send_order(memory: Memory, op: Op, writes: list[Write]) -> list[Case]:
    """Order an op's sends (among themselves, and after the process's last send to each partition).

    Pairs whose offsets are both known are judged at once (nonmonotonic-send,
    int-nonmonotonic-send, as it happens); the others wait for `finish`, when
    polls may have placed their records.
    """
    pairs = [
        OrderCandidate("int-nonmonotonic-send", key, (low, before), (high, record), (op,))
        for key, low, before, high, record in _pairs(writes)
    ]
    firsts: dict[str, tuple[int | None, RecordId]] = {}
    lasts: dict[str, tuple[int | None, RecordId]] = {}
    if len(writes) == 1:
        key, offset, record = writes[0]
        firsts[key] = lasts[key] = (offset, record)
    else:
        for key, offset, record in writes:
            firsts.setdefault(key, (offset, record))
            lasts[key] = (offset, record)
    for key, first in firsts.items():
        previous = memory.last_send.get((op.process, key))
        if previous is not None:
            pairs.append(
                OrderCandidate("nonmonotonic-send", key, previous[0], first, (previous[1], op))
            )
        memory.last_send[(op.process, key)] = (lasts[key], op)
    cases = []
    for pair in pairs:
        low, high = pair.first[0], pair.second[0]
        if low is None or high is None:
            memory.order_candidates.append(pair)
            continue
        case = _send_order_case(memory, pair, low, high)
        if case is not None:
            cases.append(case)
    return cases


def _judge_send_orders(memory: Memory, anomaly: str) -> list[Case]:
    cases = []
    for pair in memory.order_candidates:
        if pair.anomaly != anomaly:
            continue
        low = memory.known_offset(pair.key, pair.first)
        high = memory.known_offset(pair.key, pair.second)
        if low is None or high is None:
            continue
        case = _send_order_case(memory, pair, low, high)
        if case is not None:
            cases.append(case)
    return cases


@prop("nonmonotonic-send", Kind.ALWAYS, "history")
def nonmonotonic_send(memory: Memory) -> list[Case]:
    """Forbids: one producer's successive sends to a partition landing at offsets that do not increase in the order it sent them.

    Pairs placed by their acknowledgements were judged as they happened; this
    judges the ones placed only by polls.
    """
    return _judge_send_orders(memory, "nonmonotonic-send")


@prop("int-nonmonotonic-send", Kind.ALWAYS, "history")
def int_nonmonotonic_send(memory: Memory) -> list[Case]:
    """Forbids: one operation's successive sends to a partition landing at offsets that do not increase in the order it sent them.

    Judges the pairs placed only by polls; `note_send_order` judged the others.
    """
    return _judge_send_orders(memory, "int-nonmonotonic-send")


@prop("int-send-skip", Kind.ALWAYS, "history")
def int_send_skip(memory: Memory) -> list[Case]:
    """Forbids: another record landing between one operation's successive sends to a partition (Kafka allows it: other producers' sends interleave).

    Its gaps are noted while the sends are ordered, so it runs after
    `int_nonmonotonic_send`.
    """
    return _judge_gaps(memory, "int-send-skip", None)
