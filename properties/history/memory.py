"""What the history checker remembers, and the shape of what it reports.

Rules of this module:
- `Memory` is everything the checker keeps between operations; it is owned by
  one `Analysis` and mutated only by it and by the anomaly functions it calls.
- Version orders, as Jepsen's: a record is known to exist at an offset when an
  ok send was acknowledged there, or when any poll (ok, info or fail) returned
  it there. `PartitionOrder` keeps, per partition, the first record seen at
  each offset and the first offset of each record, plus every conflicting
  sighting, with the ops that showed them.
- A `Case` is one concrete anomaly: its name, one sentence, the facts as
  JSON-able pairs, the ops that show it, and a severity (larger is worse).
- `ModelFacts` is what a model may add when one runs beside the history: the
  log start of a partition. Below it retention removed records, so a skip over
  them is legal; from it up to what was read a model's log has no holes, so a
  gap there is a skip the moment it is seen.
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from dataclasses import dataclass, field
from typing import Protocol

from kafka_verify.properties.history.ops import Op, RecordId

RecordKey = tuple[str, RecordId]  # (partition key, record): a record within its partition


@dataclass(frozen=True, slots=True)
class Case:
    """One concrete anomaly and the ops that show it."""

    anomaly: str
    message: str
    ops: tuple[Op, ...]
    key: str | None = None
    facts: tuple[tuple[str, object], ...] = ()
    severity: float = 0.0

    def fact(self, name: str) -> object:
        """One fact by name (None when absent)."""
        return dict(self.facts).get(name)

    def as_dict(self) -> dict[str, object]:
        """The JSON form: the key, the facts, the sentence and the ops in full."""
        out: dict[str, object] = {"key": self.key}
        out.update({name: _jsonable(value) for name, value in self.facts})
        out["message"] = self.message
        out["ops"] = [op.as_dict() for op in self.ops]
        return out


def _jsonable(value: object) -> object:
    if isinstance(value, tuple | list | frozenset | set):
        items = sorted(value, key=repr) if isinstance(value, frozenset | set) else value
        return [_jsonable(v) for v in items]
    return value


@dataclass(frozen=True, slots=True)
class CheckConfig:
    """What the system under test promises, which decides the anomalies it is allowed.

    idempotent: producers deduplicate retries (else duplicates are allowed).
    acks: what a producer's acknowledgement waits for, Kafka's `acks`: -1 (all:
    the ISR has the record), 1 (the leader alone has appended it, so a leader
    crash or change may lose or replace an acknowledged record) or 0.
    sub_via: how consumers take partitions, Jepsen's `--sub-via` (assign, subscribe).
    ww_deps: infer write-write dependencies from offset order (Jepsen's `--ww-deps`).
    assign_seeks: every assign also seeks (the simulation's clients assign only
    when they restart or join a generation, and re-seek each time).
    metrics: measure `unseen` records and realtime lag for the stats. The
    simulation reports no stats and turns them off; invocations then decide
    nothing, since only the lag reads their times.
    eager_groups: consumer groups rebalance eagerly (a member revokes every
    partition before it rejoins, the clients' default), which bounds when a
    commit can take effect; off for cooperative rebalancing or static members.
    """

    idempotent: bool = True
    acks: int = -1
    sub_via: frozenset[str] = frozenset({"assign"})
    ww_deps: bool = False
    assign_seeks: bool = False
    metrics: bool = True
    eager_groups: bool = True


class ModelFacts(Protocol):
    """Facts about a partition that only a model beside the history knows."""

    def log_start(self, key: str) -> int | None:
        """The lowest offset still retained (None: not known to the model)."""
        ...


class PartitionOrder:
    """One partition's version order: which record was seen at which offset, and by whom."""

    __slots__ = (
        "_sorted",
        "at",
        "extra_offsets",
        "extra_records",
        "first_offset",
        "shown_at",
        "shown_record",
    )

    def __init__(self) -> None:
        self.at: dict[int, RecordId] = {}  # offset -> first record seen there
        self.shown_at: dict[int, Op] = {}  # offset -> first op that showed it
        self.first_offset: dict[RecordId, int] = {}  # record -> first offset seen
        self.shown_record: dict[RecordId, Op] = {}  # record -> op that showed it first
        self.extra_records: dict[int, dict[RecordId, Op]] = {}  # inconsistent offsets
        self.extra_offsets: dict[RecordId, dict[int, Op]] = {}  # duplicates
        self._sorted: list[int] | None = None

    def add(self, offset: int, record: RecordId, op: Op) -> tuple[RecordId | None, int | None]:
        """Record a sighting; returns (other record at this offset, other offset of this record)
        the first time this sighting conflicts with an earlier one."""
        known = self.at.get(offset)
        other_record: RecordId | None = None
        if known is None:
            self.at[offset] = record
            self.shown_at[offset] = op
            self._sorted = None
        elif known != record:
            extra = self.extra_records.setdefault(offset, {})
            if record not in extra:
                extra[record] = op
                other_record = known
        first = self.first_offset.get(record)
        other_offset: int | None = None
        if first is None:
            self.first_offset[record] = offset
            self.shown_record[record] = op
        elif first != offset:
            extra_offsets = self.extra_offsets.setdefault(record, {})
            if offset not in extra_offsets:
                extra_offsets[offset] = op
                other_offset = first
        return other_record, other_offset

    def offsets(self) -> list[int]:
        """Every offset known to hold a record, sorted."""
        if self._sorted is None:
            self._sorted = sorted(self.at)
        return self._sorted

    def between(self, low: int, high: int) -> list[int]:
        """The known offsets strictly between `low` and `high`."""
        offsets = self.offsets()
        return offsets[bisect_right(offsets, low) : bisect_left(offsets, high)]

    def records_between(self, low: int, high: int, limit: int = 8) -> list[RecordId]:
        """Up to `limit` records known to lie strictly between two offsets, in offset order."""
        return [self.at[o] for o in self.between(low, high)[:limit]]


@dataclass(slots=True)
class Position:
    """Where a consumer last read a partition: the offset, the op, and its rebalance count then."""

    offset: int
    op: Op
    rebalances: int


@dataclass(slots=True)
class SkipCandidate:
    """Two reads (or sends) whose offsets leave a gap; judged once every known record is in."""

    anomaly: str
    key: str
    low: int
    high: int
    ops: tuple[Op, ...]
    subscribed: bool = False
    rebalanced: bool = False


@dataclass(slots=True)
class OrderCandidate:
    """Two sends whose order in the log is judged once their records' offsets are known."""

    anomaly: str
    key: str
    first: tuple[int | None, RecordId]
    second: tuple[int | None, RecordId]
    ops: tuple[Op, ...]


@dataclass(slots=True)
class Memory:
    """Everything the history checker remembers between operations."""

    config: CheckConfig
    orders: dict[str, PartitionOrder] = field(default_factory=dict)
    # Writers: each record's completed send (ok, info or fail) and the type of that completion.
    writer_of: dict[RecordKey, Op] = field(default_factory=dict)
    acked: dict[RecordKey, int | None] = field(default_factory=dict)  # ok sends -> offset
    failed: set[RecordKey] = field(default_factory=set)
    info_sends: list[tuple[Op, list[tuple[str, int | None, RecordId]]]] = field(
        default_factory=list
    )
    read_by: dict[RecordKey, Op] = field(default_factory=dict)  # first reader of each record
    max_read: dict[str, tuple[int, Op]] = field(default_factory=dict)
    # Per process: last read position per partition, whether it subscribes, rebalance count.
    positions: dict[str, dict[str, Position]] = field(default_factory=dict)
    subscribed: set[str] = field(default_factory=set)
    rebalances: dict[str, int] = field(default_factory=dict)
    last_send: dict[tuple[str, str], tuple[tuple[int | None, RecordId], Op]] = field(
        default_factory=dict
    )
    skip_candidates: list[SkipCandidate] = field(default_factory=list)
    order_candidates: list[OrderCandidate] = field(default_factory=list)
    # Ops that both write and read, with their reads: only they can close a wr cycle.
    txn_reads: list[tuple[Op, list[RecordKey]]] = field(default_factory=list)
    reported: set[tuple[object, ...]] = field(default_factory=set)

    def order(self, key: str) -> PartitionOrder:
        """The version order of partition `key` (created empty on first use)."""
        found = self.orders.get(key)
        if found is None:
            found = self.orders[key] = PartitionOrder()
        return found

    def first_time(self, *key: object) -> bool:
        """True once per key: one anomaly is reported once however often it is seen again."""
        if key in self.reported:
            return False
        self.reported.add(key)
        return True

    def known_offset(self, key: str, place: tuple[int | None, RecordId]) -> int | None:
        """The offset of a send: the one it was acknowledged at, else where it was read."""
        offset, record = place
        if offset is not None:
            return offset
        order = self.orders.get(key)
        return None if order is None else order.first_offset.get(record)
