"""Operations of a client history and the sends and reads each one holds.

Rules of this module:
- An `Op` is one line of a history: `index, time_ms, process, type, f, value`,
  with type invoke|ok|fail|info. Values are data: they are validated field by
  field, never evaluated.
- A completion's value is read as a unit of micro-operations: its sends
  (partition, offset or None, record) and its reads (partition, offset,
  record), each list in the order the client performed them. Three shapes are
  accepted for each: the simple ones of DESIGN.md (`[topic, partition, offset,
  record]` for a send, `{"topic/partition": [[offset, record], ...]}` for a
  poll) and Jepsen's list of micro-operations (`[["send", key, [offset,
  record]], ["poll", {key: [[offset, record], ...]}], ...]`) for send, poll
  and txn alike.
- A partition is named by its key: `"topic/partition"`, or Jepsen's abstract
  integer key written as its decimal string. A record is identified within its
  partition, so the same value in two partitions is two records.
- Malformed input raises `HistoryError` (a `ValueError`) with one sentence that
  names the operation; loaders add the line.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

OP_TYPES = frozenset({"invoke", "ok", "fail", "info"})

RecordId = int | str
TopicPartition = tuple[str, int]
# (partition key, offset or None, record): one send or one read of a unit.
Write = tuple[str, int | None, RecordId]
Read = tuple[str, int | None, RecordId]


class HistoryError(ValueError):
    """A history that cannot be checked: one sentence naming the operation or the line."""


@dataclass(frozen=True, slots=True)
class Op:
    """One operation of a client history.

    `seek` is Jepsen's `seek-to-beginning?` on an assign; `rebalanced` names the
    partitions an operation's rebalance log says were reassigned while it ran.
    """

    index: int
    time_ms: int
    process: str
    type: str  # invoke | ok | fail | info
    f: str  # send | poll | txn | commit | subscribe | assign | crash | ...
    value: object
    seek: bool = False
    rebalanced: frozenset[str] = frozenset()

    def __post_init__(self) -> None:
        if self.type not in OP_TYPES:
            raise HistoryError(
                f"op {self.index}: type must be one of {sorted(OP_TYPES)}, not {self.type!r}"
            )

    @classmethod
    def from_json(cls, line: Mapping[str, object]) -> Op:
        """An Op from one parsed line of `history.jsonl`, checked field by field."""
        try:
            index, time_ms = line["index"], line["time_ms"]
            process, kind, f = line["process"], line["type"], line["f"]
        except KeyError as missing:
            raise HistoryError(f"an operation needs the field {missing.args[0]!r}") from None
        if type(index) is not int or type(time_ms) is not int:
            raise HistoryError("an operation's index and time_ms are integers")
        if type(process) is not str:
            if type(process) is not int:
                raise HistoryError(f"op {index}: the process is a string or an integer")
            process = str(process)
        if type(kind) is not str or type(f) is not str:
            raise HistoryError(f"op {index}: type and f are strings")
        if len(line) == 6:  # only the six fields: nothing optional to read
            return cls(index, time_ms, process, kind, f, line.get("value"))
        return cls(
            index,
            time_ms,
            process,
            kind,
            f,
            line.get("value"),
            seek=line.get("seek-to-beginning?") is True or line.get("seek") is True,
            rebalanced=rebalanced_keys(line.get("rebalance-log"), index),
        )

    def as_dict(self) -> dict[str, object]:
        """The JSON form of `history.jsonl`."""
        out: dict[str, object] = {
            "index": self.index,
            "time_ms": self.time_ms,
            "process": self.process,
            "type": self.type,
            "f": self.f,
            "value": self.value,
        }
        if self.seek:
            out["seek-to-beginning?"] = True
        if self.rebalanced:
            out["rebalance-log"] = [{"keys": sorted(self.rebalanced)}]
        return out


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def rebalanced_keys(log: object, index: int) -> frozenset[str]:
    """The partitions a Jepsen rebalance log (`[{"keys": [k, ...]}, ...]`) names."""
    if log is None:
        return frozenset()
    if not isinstance(log, list | tuple):
        raise HistoryError(f"op {index}: a rebalance log is a list of {{keys: [...]}} maps")
    keys: set[str] = set()
    for event in log:
        named = event.get("keys", ()) if isinstance(event, Mapping) else None
        if not isinstance(named, list | tuple):
            raise HistoryError(f"op {index}: a rebalance log is a list of {{keys: [...]}} maps")
        keys.update(partition_key(k, index) for k in named)
    return frozenset(keys)


# -- the pieces of a value ---------------------------------------------------------------------


def partition_key(value: object, index: int) -> str:
    """The key of a partition: "topic/partition", or a Jepsen integer key as a string."""
    if _is_int(value) and isinstance(value, int) and value >= 0:
        return str(value)
    if isinstance(value, str):
        topic, slash, number = value.rpartition("/")
        if slash and topic and number.isdigit():
            return value
    raise HistoryError(
        f"op {index}: a partition is named 'topic/partition' or by an integer key, not {value!r}"
    )


def split_key(key: str) -> TopicPartition | None:
    """(topic, partition) of a "topic/partition" key; None for a Jepsen integer key."""
    topic, slash, number = key.rpartition("/")
    return (topic, int(number)) if slash else None


def key_partition(key: str) -> int | None:
    """The partition number a key names, if it names one (a Jepsen key is its own number)."""
    where = split_key(key)
    if where is not None:
        return where[1]
    return int(key) if key.isdigit() else None


def _record(value: object, index: int) -> RecordId:
    if isinstance(value, bool) or not isinstance(value, int | str):
        raise HistoryError(f"op {index}: a record is an integer or a string, not {value!r}")
    return value


def _offset(value: object, index: int, what: str) -> int | None:
    if value is None:
        return None
    if not _is_int(value) or not isinstance(value, int) or value < 0:
        raise HistoryError(f"op {index}: {what} is a non-negative integer or null, not {value!r}")
    return value


@dataclass(frozen=True, slots=True)
class Send:
    """A send in the simple form: where the record went, if known."""

    topic: str
    partition: int
    offset: int | None
    record: RecordId


def parse_send(op: Op) -> Send:
    """The send of `op` in the simple form `[topic, partition, offset|None, record]`."""
    value = op.value
    if not isinstance(value, list | tuple) or len(value) != 4:
        raise HistoryError(f"op {op.index}: a send value is [topic, partition, offset, record]")
    topic, partition, offset, record = value
    if not isinstance(topic, str) or not topic:
        raise HistoryError(f"op {op.index}: the topic must be a string, not {topic!r}")
    number = _offset(partition, op.index, "the partition")
    if number is None:
        raise HistoryError(f"op {op.index}: the partition must be a non-negative integer")
    return Send(topic, number, _offset(offset, op.index, "the offset"), _record(record, op.index))


def _poll_pairs(key: str, pairs: object, index: int) -> list[Read]:
    if not isinstance(pairs, list | tuple):
        raise HistoryError(f"op {index}: the records polled from {key} are [[offset, record], ...]")
    reads: list[Read] = []
    for pair in pairs:
        if not isinstance(pair, list | tuple) or len(pair) != 2:
            raise HistoryError(f"op {index}: a polled record is [offset, record], not {pair!r}")
        offset, record = pair
        # The common case (an int offset, an int record) is checked inline: this runs per record.
        if type(offset) is not int or offset < 0:
            offset = _offset(offset, index, "a polled offset")
        if type(record) is not int:
            record = _record(record, index)
        reads.append((key, offset, record))
    return reads


def _poll_map(value: object, index: int) -> list[Read]:
    if not isinstance(value, Mapping):
        raise HistoryError(
            f"op {index}: a poll value maps 'topic/partition' to [[offset, record], ...]"
        )
    reads: list[Read] = []
    for key, pairs in value.items():
        reads += _poll_pairs(partition_key(key, index), pairs, index)
    return reads


def parse_poll(op: Op) -> list[tuple[TopicPartition, list[tuple[int, RecordId]]]]:
    """The records of a simple-form poll, per partition in the order read."""
    by_key: dict[str, list[tuple[int, RecordId]]] = {}
    for key, offset, record in _poll_map(op.value, op.index):
        if offset is None or split_key(key) is None:
            raise HistoryError(f"op {op.index}: bad poll entry {key!r}")
        by_key.setdefault(key, []).append((offset, record))
    out = []
    for key, records in by_key.items():
        where = split_key(key)
        assert where is not None
        out.append((where, records))
    return out


def _micro_op(mop: object, index: int, writes: list[Write], reads: list[Read]) -> None:
    if not isinstance(mop, list | tuple) or not mop or mop[0] not in ("send", "poll"):
        raise HistoryError(
            f"op {index}: a micro-operation is ['send', key, [offset, record]] or "
            f"['poll', {{key: [[offset, record], ...]}}], not {mop!r}"
        )
    if mop[0] == "send":
        if len(mop) != 3:
            raise HistoryError(f"op {index}: a send micro-operation is ['send', key, value]")
        key = partition_key(mop[1], index)
        sent = mop[2]
        if isinstance(sent, list | tuple):
            if len(sent) != 2:
                raise HistoryError(f"op {index}: a sent value is [offset, record], not {sent!r}")
            writes.append((key, _offset(sent[0], index, "a sent offset"), _record(sent[1], index)))
        else:
            writes.append((key, None, _record(sent, index)))
    elif len(mop) == 2:
        reads += _poll_map(mop[1], index)
    elif len(mop) != 1:
        raise HistoryError(f"op {index}: a poll micro-operation is ['poll'] or ['poll', {{...}}]")


def _is_micro_ops(value: object) -> bool:
    return (
        isinstance(value, list | tuple)
        and bool(value)
        and all(isinstance(m, list | tuple) for m in value)
    )


def unit_of(op: Op) -> tuple[list[Write], list[Read]]:
    """The sends and reads of a completed send, poll or txn, each in the order performed."""
    value = op.value
    writes: list[Write] = []
    reads: list[Read] = []
    if _is_micro_ops(value):
        assert isinstance(value, list | tuple)
        for mop in value:
            _micro_op(mop, op.index, writes, reads)
    elif op.f == "send":
        send = parse_send(op)
        writes.append((f"{send.topic}/{send.partition}", send.offset, send.record))
        return writes, reads
    elif op.f == "poll":
        if value is not None or op.type == "ok":
            reads = _poll_map(value, op.index)
    elif value is not None and not (isinstance(value, list | tuple) and not value):
        raise HistoryError(f"op {op.index}: a txn value is a list of micro-operations")
    return writes, reads


def covered_keys(value: object, index: int) -> tuple[frozenset[str], frozenset[str]]:
    """(partitions, topics) an assign or subscribe names.

    Accepted: a list of partition keys or topic names, or a map with "topics"
    and/or "partitions" (the simulation's subscribe is {"group", "topics"}).
    """
    items: Sequence[object]
    if isinstance(value, Mapping):
        items = [*value.get("partitions", ()), *value.get("topics", ())]
    elif isinstance(value, list | tuple):
        items = value
    elif value is None:
        items = ()
    else:
        raise HistoryError(f"op {index}: an assign or subscribe names a list of partitions")
    keys: set[str] = set()
    topics: set[str] = set()
    for item in items:
        if isinstance(item, str) and "/" not in item:
            topics.add(item)
        else:
            keys.add(partition_key(item, index))
    return frozenset(keys), frozenset(topics)


def key_covered(key: str, keys: frozenset[str], topics: frozenset[str]) -> bool:
    """Whether an assignment of `keys` and subscription to `topics` covers partition `key`."""
    if key in keys:
        return True
    where = split_key(key)
    return where is not None and where[0] in topics
