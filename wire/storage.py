"""Durable replica logs on a real disk: Kafka's segment files, a checkpoint, and recovery after kill -9.

Rules of this module:
- A `DurableLog` is one replica's `PartitionLog` in its own directory, so the
  broker runs on it unchanged. Segment files are named by base offset
  (`%020d.log`), one per entry of `segment_bases`, and hold record batches v2
  in Kafka's on-disk format: the producer's bytes with the base offset and
  the partition leader epoch written into the header (the CRC does not cover
  them). A batch without payload (an `OffsetRecord`, or a batch the
  simulation built) is stored as a real batch of one record whose key names
  its class and whose value is JSON of its fields; a batch of several offsets
  stored so leaves a gap in the offsets, as Kafka's compacted logs do.
- Beside each segment, `%020d.appendtimes` holds one fixed-size entry per
  batch: its base offset, the broker's append time and its kind (producer's
  bytes or an encoded record). The append time is what retention and
  ListOffsets read, and the producer's header does not carry it: its max
  timestamp is the producer's create time, and writing the append time there
  would change bytes the CRC covers. The kind keeps a producer's key, which
  may be anything, from ever being read as an encoded record.
- `log.checkpoint` (JSON: log start, checkpointed high watermark, known epoch,
  appended end) is replaced whole: temp file, fsync, rename, fsync of the
  directory. `known_epoch` is written whenever it changes.
- `append` keeps the batch in memory (the page cache); only a newly rolled
  segment's files are created at once, as Kafka creates them at roll.
  `flush` appends the unflushed batches to their segment files, fsyncs them,
  then writes the checkpoint. `truncate`, `reset` and `delete_prefix` change
  the files before they return. `delete_prefix` writes the checkpoint first
  and `open` finishes a deletion a kill interrupted; `reset` removes the old
  files before it writes the checkpoint.
- Memory holds, for a flushed batch, its metadata and file position, not its
  payload: `read` reads payloads back with os.pread, always with the offset
  and epoch assigned, flushed or not.
- `DurableLog.open` recovers: batches are checked one by one (framing, magic,
  base offset, CRC32C, an append-time entry), the first torn or invalid one
  is cut off with everything after it, and then flushed == leo. A checkpoint
  that cannot be read, a file that does not start with a batch, or a
  CRC-valid encoded record that does not decode raises `StorageError` with
  one sentence naming the file: that is not a torn write, and cutting would
  lose data silently.
- Nothing read from disk is trusted or evaluated: JSON only, field by field.
"""

from __future__ import annotations

import json
import os
import re
import struct
from bisect import bisect_right
from dataclasses import fields, replace
from pathlib import Path
from types import TracebackType
from typing import Any

from kafka_verify.impl.group_store import OffsetRecord
from kafka_verify.impl.log import PartitionLog, StoredRecord
from kafka_verify.wire.batches import (
    HEADER_BYTES,
    LOG_OVERHEAD,
    MAGIC,
    MIN_BATCH_LENGTH,
    CorruptBatch,
    NewRecord,
    RecordBatch,
    assign_offset_and_epoch,
    build_batch,
    crc32c,
    iter_records,
    parse_batch,
)

CHECKPOINT = "log.checkpoint"
LOG_SUFFIX = ".log"
TIMES_SUFFIX = ".appendtimes"
TEMP_SUFFIX = ".tmp"
PRODUCER_BATCH = 0  # the producer's bytes, offset and epoch assigned
ENCODED_RECORD = 1  # a batch this module built from a record's fields
_TIME_ENTRY = struct.Struct(">qqi")  # base offset, append time (ms), kind
_HEADER_START = struct.Struct(">qi")  # base offset, batch length
_MAGIC_AT = 16
_SEGMENT_NAME = re.compile(r"^(\d{20})\.log$")
_TIMES_NAME = re.compile(r"^(\d{20})\.appendtimes$")
_KEY_PREFIX = b"kafka-verify/"
# The classes a batch without payload may be; recovery rebuilds exactly these.
ENCODED_CLASSES: dict[str, type[StoredRecord]] = {
    "StoredRecord": StoredRecord,
    "OffsetRecord": OffsetRecord,
}
_CHECKPOINT_KEYS = ("log_start", "checkpoint_hw", "known_epoch", "appended_end")
_CHECKPOINT_VERSION = 2
# The checkpoint file holds two slots written in turn, each whole with its own CRC32C:
# magic, version, generation, then the four fields. A write replaces the older slot in
# place with one pwrite and one fdatasync (no temp file, rename or directory sync on
# every flush); a write a crash tore leaves the other slot, one generation older, intact.
_CHECKPOINT_MAGIC = b"KVCP"
_CHECKPOINT_SLOT = struct.Struct(">4sHqqqqq")
_CHECKPOINT_SLOT_BYTES = _CHECKPOINT_SLOT.size + 4


class StorageError(Exception):
    """A log directory holds something recovery cannot accept; the message is one sentence naming the file."""


# -- durable JSON ---------------------------------------------------------------------------


def fsync_directory(directory: Path) -> None:
    """Make the directory's entries (creations, renames, removals) durable."""
    fd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_json_durably(path: Path, data: object) -> None:
    """Replace `path` with JSON of `data`: a reader after any crash sees the old file or the new one."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, json.dumps(data, sort_keys=True).encode("utf-8"))
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)
    fsync_directory(path.parent)


def write_checkpoint(path: Path, generation: int, fields: dict[str, int]) -> None:
    """Write `fields` as checkpoint `generation` into its slot (generation % 2) of `path`."""
    slot = _CHECKPOINT_SLOT.pack(
        _CHECKPOINT_MAGIC,
        _CHECKPOINT_VERSION,
        generation,
        *(fields[key] for key in _CHECKPOINT_KEYS),
    )
    created = not path.exists()
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        data = slot + struct.pack(">I", crc32c(slot))
        if os.pwrite(fd, data, (generation % 2) * _CHECKPOINT_SLOT_BYTES) != len(data):
            raise OSError(f"a short write to {path}")
        os.fdatasync(fd)
    finally:
        os.close(fd)
    if created:
        fsync_directory(path.parent)


def read_checkpoint(path: Path) -> tuple[int, dict[str, int]]:
    """The newest whole slot of checkpoint file `path`: its generation and fields; StorageError
    (one sentence naming the file) if neither slot is whole."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StorageError(f"{path} is missing.") from None
    best: tuple[int, dict[str, int]] | None = None
    for at in (0, _CHECKPOINT_SLOT_BYTES):
        chunk = raw[at : at + _CHECKPOINT_SLOT_BYTES]
        if len(chunk) != _CHECKPOINT_SLOT_BYTES:
            continue
        body, (crc,) = chunk[:-4], struct.unpack(">I", chunk[-4:])
        if crc32c(body) != crc:
            continue
        magic, version, generation, *values = _CHECKPOINT_SLOT.unpack(body)
        if magic != _CHECKPOINT_MAGIC or version != _CHECKPOINT_VERSION:
            continue
        if best is None or generation > best[0]:
            best = (generation, dict(zip(_CHECKPOINT_KEYS, values, strict=True)))
    if best is None:
        raise StorageError(f"{path} holds no whole version {_CHECKPOINT_VERSION} log checkpoint.")
    return best


def read_json(path: Path) -> object:
    """The JSON value in `path`; StorageError if the file is missing or is not UTF-8 JSON."""
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        raise StorageError(f"{path} does not exist.") from None
    try:
        return json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as error:
        raise StorageError(f"{path} is not valid JSON ({error}).") from None


# -- the log --------------------------------------------------------------------------------


class DurableLog(PartitionLog):
    """One replica's log in `directory`; build it with `DurableLog.open`, which recovers."""

    def __init__(self, directory: Path, segment_records: int) -> None:
        self._ready = False  # the base constructor sets known_epoch: nothing is written yet
        self._known_epoch = -1
        super().__init__(segment_records)
        self.directory = directory
        # Per batch, parallel to `records`: where it starts in its segment file (-1 while it is
        # only in memory), its size there, and the payload size fetch limits count (0 for an
        # encoded record, whose payload is empty as the simulation's are).
        self._positions: list[int] = []
        self._disk_sizes: list[int] = []
        self._payload_sizes: list[int] = []
        self._files: dict[int, tuple[int, int]] = {}  # segment base -> (log fd, append-times fd)
        self._file_ends: dict[int, int] = {}  # segment base -> bytes in its log file
        self._entries: dict[int, int] = {}  # segment base -> entries in its append-times file

    # -- opening and closing ---------------------------------------------------------------

    @classmethod
    def open(cls, directory: Path | str, segment_records: int) -> DurableLog:
        """The log kept in `directory` (created empty if there is none), recovered as after a crash."""
        path = Path(directory)
        path.mkdir(parents=True, exist_ok=True)
        log = cls(path, segment_records)
        try:
            log._recover()
        except BaseException:
            log.close()
            raise
        log._ready = True
        return log

    def close(self) -> None:
        """Close the segment files; unflushed batches are lost, as in a crash."""
        for log_fd, times_fd in getattr(self, "_files", {}).values():
            os.close(log_fd)
            os.close(times_fd)
        if hasattr(self, "_files"):
            self._files.clear()

    def __del__(self) -> None:
        # A log dropped without close() (a replaced broker, a finished simulation) must not keep
        # its descriptors: a long campaign would run out of them.
        self.close()

    def __copy__(self) -> DurableLog:
        raise TypeError(f"the log in {self.directory} is a directory on disk and cannot be copied")

    def __deepcopy__(self, memo: dict[int, object]) -> DurableLog:
        return self.__copy__()

    def __enter__(self) -> DurableLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.close()

    # -- partition metadata ----------------------------------------------------------------

    @property
    def known_epoch(self) -> int:
        return self._known_epoch

    @known_epoch.setter
    def known_epoch(self, epoch: int) -> None:
        if epoch == self._known_epoch:
            return
        self._known_epoch = epoch
        if self._ready:
            self._write_checkpoint()

    # -- reads -----------------------------------------------------------------------------

    def read(
        self, offset: int, upto: int, max_records: int, max_bytes: int | None = None
    ) -> tuple[StoredRecord, ...]:
        """As PartitionLog.read, with payloads as Kafka stores them (offset and epoch assigned)."""
        if offset >= upto or offset >= self._end or offset < self.log_start:
            return ()
        first = self.index_of(offset)
        chosen: list[int] = []
        size = 0
        for index in range(first, min(len(self.records), first + max_records)):
            if self.base_offset(index) + self.records[index].count > upto:
                break
            size += self._payload_sizes[index]
            if chosen and max_bytes is not None and size > max_bytes:
                break
            chosen.append(index)
        return tuple(self._with_payload(index) for index in chosen)

    def record_at(self, offset: int) -> StoredRecord | None:
        if not self.log_start <= offset < self._end:
            return None
        return self._with_payload(self.index_of(offset))

    def _with_payload(self, index: int) -> StoredRecord:
        record = self.records[index]
        if not self._payload_sizes[index]:
            return record
        position = self._positions[index]
        if position < 0:
            stored = bytearray(record.payload)
            assign_offset_and_epoch(stored, self.base_offset(index), record.epoch)
            return replace(record, payload=bytes(stored))
        segment = self._segment_of(self.base_offset(index))
        size = self._disk_sizes[index]
        data = os.pread(self._segment_files(segment)[0], size, position)
        if len(data) != size:
            raise StorageError(
                f"{self._log_path(segment)} ends before the batch at offset"
                f" {self.base_offset(index)} that it held."
            )
        return replace(record, payload=data)

    # -- changes ---------------------------------------------------------------------------

    def append(self, record: StoredRecord) -> int:
        """Append a batch in memory; a newly rolled segment's files are created at once."""
        if record.payload:
            _check_producer_fields(record)
        elif ENCODED_CLASSES.get(type(record).__name__) is not type(record):
            raise TypeError(f"a {type(record).__name__} without payload cannot be stored")
        segments = len(self.segment_bases)
        offset = super().append(record)
        self._positions.append(-1)
        self._disk_sizes.append(0)
        self._payload_sizes.append(len(record.payload))
        if len(self.segment_bases) > segments:
            self._segment_files(offset)
        return offset

    def flush(self, hw: int) -> bool:
        if self.flushed == self._end and self.checkpoint_hw == hw:
            return False
        pending: dict[int, tuple[bytearray, bytearray]] = {}
        placed: list[tuple[int, int, int]] = []  # (index, position, size on disk)
        for index in range(self.index_of(self.flushed), len(self.records)):
            record = self.records[index]
            base = self.base_offset(index)
            segment = self._segment_of(base)
            data, kind = self._encode(record, base)
            log_bytes, times_bytes = pending.setdefault(segment, (bytearray(), bytearray()))
            placed.append((index, self._file_ends.get(segment, 0) + len(log_bytes), len(data)))
            log_bytes += data
            times_bytes += _TIME_ENTRY.pack(base, record.timestamp_ms, kind)
        for segment, (log_bytes, times_bytes) in pending.items():
            log_fd, times_fd = self._segment_files(segment)
            _write_all(log_fd, log_bytes)
            _write_all(times_fd, times_bytes)
            os.fsync(log_fd)
            os.fsync(times_fd)
            self._file_ends[segment] = self._file_ends.get(segment, 0) + len(log_bytes)
            self._entries[segment] = self._entries.get(segment, 0) + len(times_bytes) // (
                _TIME_ENTRY.size
            )
        for index, position, size in placed:
            self._positions[index] = position
            self._disk_sizes[index] = size
            record = self.records[index]
            if record.payload:
                self.records[index] = replace(record, payload=b"")  # the file holds it now
        self.flushed = self._end
        self.checkpoint_hw = hw
        self._write_checkpoint()
        return True

    def truncate(self, offset: int) -> int:
        if not self.log_start <= offset <= self._end:
            return super().truncate(offset)  # raises, changing nothing
        index = self.index_of(offset)
        new_end = self.base_offset(index) if index < len(self.records) else self._end
        keep = [b for b in self.segment_bases if b <= new_end]
        for base in self.segment_bases[len(keep) :]:
            self._remove_segment(base)
        last = keep[-1]
        cut = self._file_ends.get(last, 0)
        entries = self._entries.get(last, 0)
        for later in range(index, len(self.records)):
            if self._positions[later] < 0:
                break
            if self._segment_of(self.base_offset(later)) == last:
                cut = min(cut, self._positions[later])
                entries -= 1
        self._cut_segment(last, cut, entries)
        fsync_directory(self.directory)
        new_end = super().truncate(offset)
        del self._positions[index:], self._disk_sizes[index:], self._payload_sizes[index:]
        self._write_checkpoint()
        return new_end

    def reset(self, log_start: int) -> None:
        for base in reversed(self.segment_bases):
            self._remove_segment(base)
        fsync_directory(self.directory)
        super().reset(log_start)
        self._positions, self._disk_sizes, self._payload_sizes = [], [], []
        self._write_checkpoint()
        self._segment_files(log_start)
        fsync_directory(self.directory)

    def delete_prefix(self, new_start: int) -> None:
        old_bases = list(self.segment_bases)
        index = self.index_of(new_start) if self.log_start < new_start <= self._end else 0
        super().delete_prefix(new_start)  # raises, changing nothing, for a bad start
        # The checkpoint goes first: should a kill interrupt the files' change, `open` finishes it.
        self._write_checkpoint()
        holder = max(b for b in old_bases if b <= new_start)
        if holder < new_start:
            self._move_tail(holder, new_start, index)
        for base in old_bases:
            if base < new_start:
                self._remove_segment(base)
        fsync_directory(self.directory)
        del self._positions[:index], self._disk_sizes[:index], self._payload_sizes[:index]

    # -- files -----------------------------------------------------------------------------

    def _log_path(self, base: int) -> Path:
        return self.directory / f"{base:020d}{LOG_SUFFIX}"

    def _times_path(self, base: int) -> Path:
        return self.directory / f"{base:020d}{TIMES_SUFFIX}"

    def _segment_of(self, offset: int) -> int:
        return self.segment_bases[bisect_right(self.segment_bases, offset) - 1]

    def _segment_files(self, base: int) -> tuple[int, int]:
        files = self._files.get(base)
        if files is None:
            flags = os.O_RDWR | os.O_CREAT | os.O_APPEND
            log_fd = os.open(self._log_path(base), flags, 0o644)
            try:
                times_fd = os.open(self._times_path(base), flags, 0o644)
            except BaseException:
                os.close(log_fd)
                raise
            files = self._files[base] = (log_fd, times_fd)
        return files

    def _remove_segment(self, base: int) -> None:
        files = self._files.pop(base, None)
        if files is not None:
            os.close(files[0])
            os.close(files[1])
        # The log file goes last, so no append-times file outlives it unnoticed... and `open`
        # removes append-times files without a log file anyway.
        self._times_path(base).unlink(missing_ok=True)
        self._log_path(base).unlink(missing_ok=True)
        self._file_ends.pop(base, None)
        self._entries.pop(base, None)

    def _cut_segment(self, base: int, size: int, entries: int) -> None:
        log_fd, times_fd = self._segment_files(base)
        os.ftruncate(log_fd, size)
        os.ftruncate(times_fd, entries * _TIME_ENTRY.size)
        os.fsync(log_fd)
        os.fsync(times_fd)
        self._file_ends[base] = size
        self._entries[base] = entries

    def _move_tail(self, holder: int, new_start: int, index: int) -> None:
        """Copy segment `holder`'s batches from `new_start` (at `index`) into segment `new_start`.

        Runs after the base class dropped the batches before `new_start`, so `index` is the
        number of them and the kept ones are at the front of `records` (with old positions).
        """
        end = self._file_ends.get(holder, 0)
        start = end
        times = bytearray()
        moved: list[int] = []
        for kept in range(len(self.records)):
            old = index + kept
            position = self._positions[old]
            base = self.base_offset(kept)
            if position < 0 or (len(self.segment_bases) > 1 and base >= self.segment_bases[1]):
                break
            start = min(start, position)
            kind = PRODUCER_BATCH if self._payload_sizes[old] else ENCODED_RECORD
            times += _TIME_ENTRY.pack(base, self.records[kept].timestamp_ms, kind)
            moved.append(old)
        data = os.pread(self._segment_files(holder)[0], end - start, start) if end > start else b""
        _write_file_durably(self._times_path(new_start), bytes(times))
        _write_file_durably(self._log_path(new_start), data)
        for old in moved:
            self._positions[old] -= start
        self._file_ends[new_start] = len(data)
        self._entries[new_start] = len(moved)

    def _encode(self, record: StoredRecord, base: int) -> tuple[bytes, int]:
        if record.payload:
            stored = bytearray(record.payload)
            assign_offset_and_epoch(stored, base, record.epoch)
            return bytes(stored), PRODUCER_BATCH
        values = {f.name: getattr(record, f.name) for f in fields(record) if f.name != "payload"}
        batch = build_batch(
            [
                NewRecord(
                    key=_KEY_PREFIX + type(record).__name__.encode("ascii"),
                    value=json.dumps(values, sort_keys=True).encode("utf-8"),
                    timestamp_ms=record.timestamp_ms,
                )
            ],
            base_offset=base,
            partition_leader_epoch=record.epoch,
        )
        return batch, ENCODED_RECORD

    def _write_checkpoint(self) -> None:
        fields = {
            "log_start": self.log_start,
            "checkpoint_hw": self.checkpoint_hw,
            "known_epoch": self._known_epoch,
            "appended_end": self.appended_end,
        }
        if fields == getattr(self, "_checkpointed", None):
            return  # already durable as it is
        self._checkpoint_generation = getattr(self, "_checkpoint_generation", 0) + 1
        write_checkpoint(self.directory / CHECKPOINT, self._checkpoint_generation, fields)
        self._checkpointed = fields

    # -- recovery --------------------------------------------------------------------------

    def _recover(self) -> None:
        directory = self.directory
        bases: list[int] = []
        for entry in sorted(os.listdir(directory)):
            if entry.endswith(TEMP_SUFFIX):
                (directory / entry).unlink()  # a replacement a kill interrupted
            elif match := _SEGMENT_NAME.match(entry):
                bases.append(int(match.group(1)))
        for entry in os.listdir(directory):
            match = _TIMES_NAME.match(entry)
            if match and int(match.group(1)) not in bases:
                (directory / entry).unlink()
        checkpoint = self._read_checkpoint(has_segments=bool(bases))
        start = checkpoint["log_start"]
        below = [b for b in bases if b <= start]
        for base in below[:-1]:
            self._remove_segment(base)  # left by a prefix deletion a kill interrupted
        if below and below[-1] < start:
            self._finish_prefix_deletion(below[-1], start)
        bases = [start, *(b for b in bases if b > start)]
        PartitionLog.reset(self, start)
        segment_bases: list[int] = []
        expected = start
        dropped: list[int] = []
        for number, base in enumerate(bases):
            if base != expected:
                dropped = bases[number:]  # it does not follow on: written after what was lost
                break
            expected, intact = self._recover_segment(base, expected)
            segment_bases.append(base)
            if not intact:
                dropped = bases[number + 1 :]
                break
        for base in dropped:
            self._remove_segment(base)
        self.segment_bases = segment_bases
        self.flushed = self._end
        self.checkpoint_hw = max(start, min(checkpoint["checkpoint_hw"], self._end))
        self.appended_end = max(checkpoint["appended_end"], self._end)
        self._known_epoch = checkpoint["known_epoch"]
        fsync_directory(directory)  # the removals above
        self._write_checkpoint()

    def _read_checkpoint(self, has_segments: bool) -> dict[str, int]:
        path = self.directory / CHECKPOINT
        if not path.exists():
            if has_segments:
                raise StorageError(f"{path} is missing, though the directory holds segment files.")
            return {"log_start": 0, "checkpoint_hw": 0, "known_epoch": -1, "appended_end": 0}
        generation, checkpoint = read_checkpoint(path)
        self._checkpoint_generation = generation
        return checkpoint

    def _finish_prefix_deletion(self, holder: int, start: int) -> None:
        """Write segment `start` from segment `holder`'s batches at and after `start`, then drop `holder`."""
        log_fd, times_fd = self._segment_files(holder)
        size = os.fstat(log_fd).st_size
        position, entry, offset = 0, 0, holder
        while position < size and offset < start:
            found = self._batch_at(holder, position, size, offset, entry)
            if found is None:
                break
            _, next_offset, length, _ = found
            position, entry, offset = position + length, entry + 1, next_offset
        if offset > start:
            raise StorageError(
                f"{self._log_path(holder)} has no batch starting at the log start {start}."
            )
        data, times = b"", b""
        if offset == start and position < size:  # else nothing durable reaches the log start
            data = os.pread(log_fd, size - position, position)
            times_size = os.fstat(times_fd).st_size
            times = os.pread(times_fd, times_size, entry * _TIME_ENTRY.size)
        _write_file_durably(self._times_path(start), times)
        _write_file_durably(self._log_path(start), data)
        self._remove_segment(holder)

    def _recover_segment(self, base: int, expected: int) -> tuple[int, bool]:
        """Read segment `base`'s batches into memory (metadata only) from `expected`; the offset
        after the last good one, and whether the file was whole (False: cut at the first bad one)."""
        log_fd, times_fd = self._segment_files(base)
        size = os.fstat(log_fd).st_size
        position, entry = 0, 0
        intact = True
        while position < size:
            found = self._batch_at(base, position, size, expected, entry)
            if found is None:
                intact = False
                break
            record, next_offset, length, kind = found
            PartitionLog.append(self, record)
            self._positions.append(position)
            self._disk_sizes.append(length)
            self._payload_sizes.append(length if kind == PRODUCER_BATCH else 0)
            position, entry, expected = position + length, entry + 1, next_offset
        if position < size or os.fstat(times_fd).st_size != entry * _TIME_ENTRY.size:
            self._cut_segment(base, position, entry)
        self._file_ends[base] = position
        self._entries[base] = entry
        return expected, intact

    def _batch_at(
        self, base: int, position: int, size: int, expected: int, entry: int
    ) -> tuple[StoredRecord, int, int, int] | None:
        """The batch at `position` of segment `base`: (record without payload, the offset after
        it, its size, its kind), or None if it is torn or invalid there; StorageError if the file does not
        start with a batch, or an encoded record does not decode."""
        path = self._log_path(base)
        log_fd, times_fd = self._segment_files(base)
        header = os.pread(log_fd, HEADER_BYTES, position)
        structural: str | None = None
        if len(header) > _MAGIC_AT and header[_MAGIC_AT] != MAGIC:
            structural = f"magic {header[_MAGIC_AT]} is not record batch v2"
        elif len(header) >= _HEADER_START.size:
            offset, length = _HEADER_START.unpack_from(header)
            if offset != expected:
                structural = f"its base offset {offset} is not {expected}"
            elif length < MIN_BATCH_LENGTH:
                structural = f"its batch length {length} is below {MIN_BATCH_LENGTH}"
        if structural is not None:
            if position == 0:
                raise StorageError(f"{path} does not start with a record batch: {structural}.")
            return None
        if len(header) < HEADER_BYTES:
            return None  # torn inside the header
        _, length = _HEADER_START.unpack_from(header)
        if position + LOG_OVERHEAD + length > size:
            return None  # torn inside the batch
        try:
            batch = parse_batch(os.pread(log_fd, LOG_OVERHEAD + length, position))
        except CorruptBatch:
            return None
        time_entry = os.pread(times_fd, _TIME_ENTRY.size, entry * _TIME_ENTRY.size)
        if len(time_entry) < _TIME_ENTRY.size:
            return None  # the batch was written, its append time not: the flush was cut short
        entry_offset, timestamp_ms, kind = _TIME_ENTRY.unpack(time_entry)
        if entry_offset != expected or kind not in (PRODUCER_BATCH, ENCODED_RECORD):
            return None
        if kind == ENCODED_RECORD:
            record = _decode_record(batch, path)
        else:
            record = StoredRecord(
                record_id=batch.base_offset,
                epoch=batch.partition_leader_epoch,
                producer_id=batch.producer_id,
                seq=batch.base_sequence,
                timestamp_ms=timestamp_ms,
                count=batch.last_offset_delta + 1,
            )
        return record, expected + record.count, LOG_OVERHEAD + length, kind


# -- helpers ------------------------------------------------------------------------------------


def _write_all(fd: int, data: bytes | bytearray) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def _write_file_durably(path: Path, data: bytes) -> None:
    """Create `path` holding `data` whole or not at all (temp file, fsync, rename)."""
    temp = path.with_name(path.name + TEMP_SUFFIX)
    fd = os.open(temp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        _write_all(fd, data)
        os.fsync(fd)
    finally:
        os.close(fd)
    os.replace(temp, path)


def _check_producer_fields(record: StoredRecord) -> None:
    """A producer's batch must say what its record says: recovery rebuilds the record from it."""
    payload = record.payload
    if len(payload) < HEADER_BYTES or payload[_MAGIC_AT] != MAGIC:
        raise ValueError("the payload is not a record batch v2")
    last_offset_delta = struct.unpack_from(">i", payload, 23)[0]
    producer_id = struct.unpack_from(">q", payload, 43)[0]
    base_sequence = struct.unpack_from(">i", payload, 53)[0]
    header = (last_offset_delta + 1, producer_id, base_sequence)
    if header != (record.count, record.producer_id, record.seq):
        raise ValueError(
            f"the batch header says (count, producer id, base sequence) {header},"
            f" the record {(record.count, record.producer_id, record.seq)}"
        )


def _decode_record(batch: RecordBatch, path: Path) -> StoredRecord:
    where = f"{path} holds, at offset {batch.base_offset},"
    try:
        records = list(iter_records(batch))
    except CorruptBatch as error:
        raise StorageError(
            f"{where} an encoded record whose batch is malformed: {error}."
        ) from None
    key = records[0].key if len(records) == 1 else None
    if key is None or not key.startswith(_KEY_PREFIX):
        raise StorageError(f"{where} an encoded record batch without its kind.")
    cls = ENCODED_CLASSES.get(key[len(_KEY_PREFIX) :].decode("ascii", "replace"))
    if cls is None:
        raise StorageError(f"{where} an encoded record of unknown kind {key!r}.")
    try:
        values: Any = json.loads((records[0].value or b"").decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError):
        raise StorageError(f"{where} an encoded record whose value is not JSON.") from None
    expected = {f.name: f for f in fields(cls) if f.name != "payload"}
    if not isinstance(values, dict) or set(values) != set(expected):
        raise StorageError(f"{where} an encoded {cls.__name__} with the wrong fields.")
    for name, value in values.items():
        wanted = str if expected[name].default == "" else int
        if not isinstance(value, wanted) or isinstance(value, bool):
            raise StorageError(
                f"{where} an encoded {cls.__name__} whose {name} is not {wanted.__name__}."
            )
    record = cls(**values)
    if record.count < 1:
        raise StorageError(f"{where} an encoded {cls.__name__} of count {record.count}.")
    return record
