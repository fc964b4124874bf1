"""One replica's on-disk log: segments of records, a flush point and a high-watermark checkpoint.

Rules of this module:
- Offsets are absolute; the log holds [log_start, leo).
- Appends land in memory (the page cache). `flush` makes every record and the
  given high watermark durable. `crash` throws away what was never flushed.
- Truncation, prefix deletion and resets rewrite files, so they are durable at
  once (the flush point and checkpoint are clipped to match).
- A record carries the leader epoch it was written in, so epoch lookups need no
  separate epoch cache.
- `generation` changes whenever the record sequence changes, so readers can
  cache views of it.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record as stored: its id (payload), leader epoch, producer identity and append time."""

    record_id: int
    epoch: int
    producer_id: int
    seq: int
    timestamp_ms: int


class PartitionLog:
    """The durable state of one replica; the broker that hosts it reads and appends through this."""

    def __init__(self, segment_records: int) -> None:
        self.segment_records = segment_records
        self.records: list[StoredRecord] = []
        self.segment_bases: list[int] = [0]  # base offset of each segment; the last is active
        self.log_start = 0
        self.flushed = 0
        self.checkpoint_hw = 0
        self.generation = 0
        # The largest log end ever reached (kept in the segment metadata); only a buggy
        # broker would number new records from it after the log was cut back.
        self.appended_end = 0
        # The leader epoch this replica last learned (partition metadata, written to disk
        # when it changes), so a restarted broker never leads an epoch it may have led.
        self.known_epoch = -1

    @property
    def leo(self) -> int:
        return self.log_start + len(self.records)

    def record_at(self, offset: int) -> StoredRecord | None:
        index = offset - self.log_start
        return self.records[index] if 0 <= index < len(self.records) else None

    def read(self, offset: int, upto: int, max_records: int) -> tuple[StoredRecord, ...]:
        """Records from `offset` up to (not including) `upto`, at most `max_records`."""
        first = max(0, offset - self.log_start)
        last = min(len(self.records), upto - self.log_start, first + max_records)
        return tuple(self.records[first:last]) if last > first else ()

    # -- changes ---------------------------------------------------------------------

    def append(self, record: StoredRecord) -> int:
        offset = self.leo
        if offset - self.segment_bases[-1] >= self.segment_records:
            self.segment_bases.append(offset)  # roll a new active segment
        self.records.append(record)
        self.generation += 1
        self.appended_end = max(self.appended_end, self.leo)
        return offset

    def truncate(self, offset: int) -> None:
        """Cut the log back to end at `offset` (durable)."""
        if not self.log_start <= offset <= self.leo:
            raise ValueError(
                f"truncation offset {offset} is outside [{self.log_start}, {self.leo}]"
            )
        del self.records[offset - self.log_start :]
        self.segment_bases = [b for b in self.segment_bases if b <= offset] or [self.log_start]
        self.flushed = min(self.flushed, offset)
        self.checkpoint_hw = min(self.checkpoint_hw, offset)
        self.generation += 1

    def reset(self, log_start: int) -> None:
        """Drop everything and start empty at `log_start` (durable)."""
        self.records = []
        self.segment_bases = [log_start]
        self.log_start = self.flushed = self.checkpoint_hw = self.appended_end = log_start
        self.generation += 1

    def delete_prefix(self, new_start: int) -> None:
        """Retention: the log now starts at `new_start` (durable)."""
        if not self.log_start < new_start <= self.leo:
            raise ValueError(f"new log start {new_start} is outside ({self.log_start}, {self.leo}]")
        del self.records[: new_start - self.log_start]
        kept = [b for b in self.segment_bases if b > new_start]
        self.segment_bases = [new_start, *kept]
        self.log_start = new_start
        self.flushed = max(self.flushed, new_start)
        self.checkpoint_hw = max(self.checkpoint_hw, new_start)
        self.generation += 1

    def flush(self, hw: int) -> bool:
        """Make every record and the high watermark `hw` durable; whether anything changed."""
        if self.flushed == self.leo and self.checkpoint_hw == hw:
            return False
        self.flushed = self.leo
        self.checkpoint_hw = hw
        return True

    def crash(self) -> int:
        """Lose what was never flushed; the number of records lost."""
        lost = self.leo - self.flushed
        if lost > 0:
            self.truncate(self.flushed)
        self.checkpoint_hw = min(self.checkpoint_hw, self.leo)
        self.flushed = self.leo
        return lost

    # -- retention -------------------------------------------------------------------

    def retention_start(
        self,
        now_ms: int,
        retention_ms: int | None,
        retention_records: int | None,
        limit: int,
        whole_segments: bool,
    ) -> int:
        """Where retention would move the log start: never past `limit`, by whole segments if asked."""
        wanted = self.log_start
        if retention_records is not None:
            wanted = max(wanted, self.leo - retention_records)
        if retention_ms is not None:
            cutoff = now_ms - retention_ms
            expired = self.log_start
            for record in self.records:
                if record.timestamp_ms >= cutoff:
                    break
                expired += 1
            wanted = max(wanted, expired)
        wanted = min(wanted, limit)
        if whole_segments:
            # A segment goes only when every record in it is deletable; the active one never goes.
            wanted = max([b for b in self.segment_bases if b <= wanted], default=self.log_start)
        return wanted

    # -- leader epochs ------------------------------------------------------------------

    def last_epoch(self) -> int:
        return self.records[-1].epoch if self.records else -1

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(largest epoch <= `epoch` in this log, the offset where the next larger epoch starts, or leo); (-1, -1) if none."""
        best = -1
        end = -1
        for index, record in enumerate(self.records):
            if record.epoch > epoch:
                break
            best = record.epoch
            end = self.log_start + index + 1
        return (best, end)

    def producer_entries(self) -> Iterator[tuple[int, StoredRecord]]:
        """(offset, record) for every retained record, oldest first."""
        for index, record in enumerate(self.records):
            yield self.log_start + index, record
