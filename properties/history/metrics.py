"""Measures that are not anomalies: unseen records over time and realtime lag, as Jepsen's.

Rules of this module:
- unseen: records whose send was acknowledged (ok) and that no poll has
  returned yet, counted per partition after each operation. The series keeps a
  point whenever the total changes and is thinned to `SERIES_POINTS` at the end.
- realtime lag of a partition in an ok poll: how long before the poll was
  invoked the offset after the consumer's position was already known to
  exist (a conservative lower bound, 0 when nothing newer was known). Offsets
  are known to exist from ok or info sends and polls.
- Everything is kept in amortized O(1) per record, O(log n) per poll and
  partition of the polling consumer.
"""

from __future__ import annotations

from bisect import bisect_right
from dataclasses import dataclass, field

from kafka_verify.properties.history.memory import RecordKey
from kafka_verify.properties.history.ops import Op, Read, Write

SERIES_POINTS = 256
UNSEEN_LISTED = 32  # records listed per partition in the final unseen summary


@dataclass(slots=True)
class Metrics:
    """Unseen records and realtime lag, observed one operation at a time."""

    unseen: dict[RecordKey, int] = field(default_factory=dict)  # record -> ack time
    unseen_count: dict[str, int] = field(default_factory=dict)
    seen: set[RecordKey] = field(default_factory=set)
    unseen_series: list[tuple[int, int]] = field(default_factory=list)
    # Per partition, the times at which its highest known offset grew: (offsets, times).
    frontier: dict[str, tuple[list[int], list[int]]] = field(default_factory=dict)
    consumer_offsets: dict[str, dict[str, int]] = field(default_factory=dict)
    worst_lag: tuple[int, int, str, str] | None = None  # (lag, time, process, key)
    worst_lag_of: dict[str, int] = field(default_factory=dict)
    polls_measured: int = 0

    def observe(self, op: Op, invoked_ms: int, writes: list[Write], reads: list[Read]) -> None:
        """Account for one completed send, poll or txn."""
        total_before = len(self.unseen)
        if op.type == "ok":
            for key, _, record in writes:
                record_key = (key, record)
                if record_key not in self.seen and record_key not in self.unseen:
                    self.unseen[record_key] = op.time_ms
                    self.unseen_count[key] = self.unseen_count.get(key, 0) + 1
        for key, _, record in reads:
            record_key = (key, record)
            self.seen.add(record_key)
            if self.unseen.pop(record_key, None) is not None:
                self.unseen_count[key] -= 1
        if len(self.unseen) != total_before or not self.unseen_series:
            self.unseen_series.append((op.time_ms, len(self.unseen)))
        if op.type in ("ok", "info"):
            self._extend_frontier(op, writes, reads)
        if op.type == "ok" and reads:
            self._lag(op, invoked_ms, reads)

    def _extend_frontier(self, op: Op, writes: list[Write], reads: list[Read]) -> None:
        for key, offset, _ in (*writes, *reads):
            if offset is None:
                continue
            offsets, times = self.frontier.setdefault(key, ([], []))
            if not offsets or offset > offsets[-1]:
                offsets.append(offset)
                times.append(op.time_ms)

    def _lag(self, op: Op, invoked_ms: int, reads: list[Read]) -> None:
        mine = self.consumer_offsets.setdefault(op.process, {})
        for key, offset, _ in reads:
            if offset is not None and offset > mine.get(key, -1):
                mine[key] = offset
        self.polls_measured += 1
        for key, offset in mine.items():
            offsets, times = self.frontier.get(key, ([], []))
            newer = bisect_right(offsets, offset)
            lag = max(0, invoked_ms - times[newer]) if newer < len(offsets) else 0
            if lag > self.worst_lag_of.get(key, -1):
                self.worst_lag_of[key] = lag
            if self.worst_lag is None or lag > self.worst_lag[0]:
                self.worst_lag = (lag, invoked_ms, op.process, key)

    def reassigned(self, process: str, keys: frozenset[str], subscribe: bool) -> None:
        """An assign keeps the partitions it still names (new ones start before offset 0);
        a subscribe starts afresh, since the group decides what the consumer gets."""
        if subscribe:
            self.consumer_offsets[process] = {}
            return
        mine = self.consumer_offsets.get(process, {})
        self.consumer_offsets[process] = {k: mine.get(k, -1) for k in keys}

    def forget(self, process: str) -> None:
        """A crashed or re-seeked consumer: its lag starts over."""
        self.consumer_offsets.pop(process, None)

    def timeline(self) -> dict[str, list[tuple[int, int]]]:
        """Per partition, (time_ms, highest known offset) whenever it grew, thinned for plotting."""
        return {
            key: thin(list(zip(times, offsets)), SERIES_POINTS * 2)
            for key, (offsets, times) in sorted(self.frontier.items())
        }

    def summary(self) -> dict[str, object]:
        """The JSON form for `stats`."""
        by_key: dict[str, list[object]] = {}
        for (key, record), _ in self.unseen.items():
            listed = by_key.setdefault(key, [])
            if len(listed) < UNSEEN_LISTED:
                listed.append(record)
        worst = self.worst_lag
        return {
            "unseen": {
                "count": len(self.unseen),
                "by_key": {k: n for k, n in sorted(self.unseen_count.items()) if n},
                "records": {k: v for k, v in sorted(by_key.items())},
                "series": [list(p) for p in thin(self.unseen_series, SERIES_POINTS)],
            },
            "realtime_lag": {
                "polls": self.polls_measured,
                "worst_ms": None if worst is None else worst[0],
                "worst_at_ms": None if worst is None else worst[1],
                "worst_process": None if worst is None else worst[2],
                "worst_key": None if worst is None else worst[3],
                "worst_by_key_ms": dict(sorted(self.worst_lag_of.items())),
            },
        }


def thin(points: list[tuple[int, int]], most: int) -> list[tuple[int, int]]:
    """At most `most` points, evenly spread, the last one always kept."""
    if len(points) <= most:
        return list(points)
    step = len(points) / (most - 1)
    kept = [points[int(i * step)] for i in range(most - 1)]
    kept.append(points[-1])
    return kept
