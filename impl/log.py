"""One replica's on-disk log: segments of records, a flush point and a high-watermark checkpoint.

Rules of this module:
- Offsets are absolute; the log holds [log_start, leo).
- Appends land in memory (the page cache). `flush` makes every record and the
  given high watermark durable. `crash` throws away what was never flushed.
- Truncation, prefix deletion and resets rewrite files, so they are durable at
  once (the flush point and checkpoint are clipped to match).
- An entry is a record batch: the unit of append, replication and fetch. It
  occupies `count` consecutive offsets (one in the simulation, whose batches
  hold one record), and keeps the bytes the producer sent as `payload` (empty
  in the simulation; the real host serves them back unchanged). A truncation
  or retention point inside a batch moves to the batch's start, as Kafka cuts
  logs only at batch boundaries.
- An entry carries the leader epoch it was written in, so epoch lookups need no
  separate epoch cache.
- `generation` changes whenever the record sequence changes, so readers can
  cache views of it.
"""

from __future__ import annotations

from bisect import bisect_right
from collections.abc import Iterator
from dataclasses import dataclass

from kafka_verify.model.values import fast_init


@fast_init
@dataclass(frozen=True, slots=True)
class StoredRecord:
    """A record batch as stored: its id, leader epoch, producer identity (base sequence), append
    time, the number of offsets it occupies and the bytes the producer sent."""

    record_id: int
    epoch: int
    producer_id: int
    seq: int
    timestamp_ms: int
    count: int = 1
    payload: bytes = b""


class PartitionLog:
    """The durable state of one replica; the broker that hosts it reads and appends through this."""

    def __init__(self, segment_records: int) -> None:
        self.segment_records = segment_records
        self.records: list[StoredRecord] = []  # batches, oldest first
        # Base offset of each batch in `records`; kept only once a batch holds more than
        # one record (`_unit` false): until then batch i starts at log_start + i.
        self._bases: list[int] = []
        self._unit = True
        self._end = 0
        self.segment_bases: list[int] = [0]  # base offset of each segment; the last is active
        self.log_start = 0
        self.flushed = 0
        self.checkpoint_hw = 0
        self.generation = 0
        # The largest log end ever reached (kept in the segment metadata); only a buggy
        # broker would number new records from it after the log was cut back.
        self.appended_end = 0
        # The log end before the last crash (the segment metadata's), before recovery cut
        # what was never flushed; None until a crash.
        self.end_before_crash: int | None = None
        # The leader epoch this replica last learned (partition metadata, written to disk
        # when it changes), so a restarted broker never leads an epoch it may have led.
        self.known_epoch = -1

    @property
    def leo(self) -> int:
        return self._end

    def base_offset(self, index: int) -> int:
        """The first offset of the batch at `index` in `records`."""
        return self.log_start + index if self._unit else self._bases[index]

    def index_of(self, offset: int) -> int:
        """The index in `records` of the batch holding `offset`, or of the end when it is the log end."""
        if self._unit:
            return offset - self.log_start
        if offset >= self._end:
            return len(self.records) + offset - self._end
        return bisect_right(self._bases, offset) - 1

    def record_at(self, offset: int) -> StoredRecord | None:
        """The batch that holds `offset`, if the log holds it."""
        if not self.log_start <= offset < self._end:
            return None
        return self.records[self.index_of(offset)]

    def read(
        self, offset: int, upto: int, max_records: int, max_bytes: int | None = None
    ) -> tuple[StoredRecord, ...]:
        """Batches from the one holding `offset`, each ending at or before `upto`: at most
        `max_records` batches and, past the first, at most `max_bytes` of payload."""
        if offset >= upto or offset >= self._end or offset < self.log_start:
            return ()
        first = self.index_of(offset)
        if self._unit:
            last = min(len(self.records), upto - self.log_start, first + max_records)
            batches = self.records[first:last]
        else:
            batches = []
            for index in range(first, min(len(self.records), first + max_records)):
                batch = self.records[index]
                if self._bases[index] + batch.count > upto:
                    break
                batches.append(batch)
        if max_bytes is not None:
            size, kept = 0, 0
            for batch in batches:
                size += len(batch.payload)
                if kept and size > max_bytes:
                    break
                kept += 1
            batches = batches[:kept]
        return tuple(batches)

    # -- changes ---------------------------------------------------------------------

    def append(self, record: StoredRecord) -> int:
        """Append a batch at the log end; its base offset."""
        offset = self._end
        if offset - self.segment_bases[-1] >= self.segment_records:
            self.segment_bases.append(offset)  # roll a new active segment
        if self._unit and record.count != 1:
            self._bases = [self.log_start + i for i in range(len(self.records))]
            self._unit = False
        if not self._unit:
            self._bases.append(offset)
        self.records.append(record)
        self._end = offset + record.count
        self.generation += 1
        self.appended_end = max(self.appended_end, self._end)
        return offset

    def truncate(self, offset: int) -> int:
        """Cut the log back to end at `offset`, or at the start of the batch holding it (durable);
        the new log end."""
        if not self.log_start <= offset <= self._end:
            raise ValueError(
                f"truncation offset {offset} is outside [{self.log_start}, {self._end}]"
            )
        index = self.index_of(offset)
        offset = self.base_offset(index) if index < len(self.records) else self._end
        del self.records[index:]
        if not self._unit:
            del self._bases[index:]
        self._end = offset
        self.segment_bases = [b for b in self.segment_bases if b <= offset] or [self.log_start]
        self.flushed = min(self.flushed, offset)
        self.checkpoint_hw = min(self.checkpoint_hw, offset)
        self.generation += 1
        return offset

    def reset(self, log_start: int) -> None:
        """Drop everything and start empty at `log_start` (durable)."""
        self.records = []
        self._bases, self._unit = [], True
        self.segment_bases = [log_start]
        self.log_start = self.flushed = self.checkpoint_hw = self.appended_end = log_start
        self._end = log_start
        self.generation += 1

    def delete_prefix(self, new_start: int) -> None:
        """Retention: the log now starts at `new_start`, a batch boundary (durable)."""
        if not self.log_start < new_start <= self._end:
            raise ValueError(
                f"new log start {new_start} is outside ({self.log_start}, {self._end}]"
            )
        index = self.index_of(new_start)
        if index < len(self.records) and self.base_offset(index) != new_start:
            raise ValueError(f"new log start {new_start} is inside a record batch")
        del self.records[:index]
        if not self._unit:
            del self._bases[:index]
        kept = [b for b in self.segment_bases if b > new_start]
        self.segment_bases = [new_start, *kept]
        self.log_start = new_start
        self.flushed = max(self.flushed, new_start)
        self.checkpoint_hw = max(self.checkpoint_hw, new_start)
        self.generation += 1

    def flush(self, hw: int) -> bool:
        """Make every record and the high watermark `hw` durable; whether anything changed."""
        if self.flushed == self._end and self.checkpoint_hw == hw:
            return False
        self.flushed = self._end
        self.checkpoint_hw = hw
        return True

    def crash(self) -> int:
        """Lose what was never flushed; the number of records lost."""
        lost = self._end - self.flushed
        self.end_before_crash = self._end
        if lost > 0:
            self.truncate(self.flushed)
        self.checkpoint_hw = min(self.checkpoint_hw, self._end)
        self.flushed = self._end
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
        """Where retention would move the log start: never past `limit`, by whole segments if
        asked, and always to a batch boundary."""
        wanted = self.log_start
        if retention_records is not None:
            wanted = max(wanted, self._end - retention_records)
        if retention_ms is not None:
            cutoff = now_ms - retention_ms
            expired = self.log_start
            for record in self.records:
                if record.timestamp_ms >= cutoff:
                    break
                expired += record.count
            wanted = max(wanted, expired)
        wanted = min(wanted, limit)
        if whole_segments:
            # A segment goes only when every record in it is deletable; the active one never goes.
            wanted = max([b for b in self.segment_bases if b <= wanted], default=self.log_start)
        if not self._unit and wanted < self._end:
            wanted = self.base_offset(self.index_of(wanted))
        return wanted

    # -- leader epochs ------------------------------------------------------------------

    def last_epoch(self) -> int:
        return self.records[-1].epoch if self.records else -1

    def end_offset_for_epoch(self, epoch: int) -> tuple[int, int]:
        """(largest epoch <= `epoch` in this log, the offset where the next larger epoch starts, or leo); (-1, -1) if none."""
        best = -1
        end = -1
        for offset, record in self.producer_entries():
            if record.epoch > epoch:
                break
            best = record.epoch
            end = offset + record.count
        return (best, end)

    def producer_entries(self) -> Iterator[tuple[int, StoredRecord]]:
        """(base offset, batch) for every retained batch, oldest first."""
        if self._unit:
            for index, record in enumerate(self.records):
                yield self.log_start + index, record
        else:
            yield from zip(self._bases, self.records, strict=True)
