"""Record batches of message format v2 ("magic 2"), read and written by hand.

A batch is the unit of append, replication and fetch, and is kept as the bytes
the producer sent (DESIGN.md, "One broker, two hosts"). Its 61-byte header is
(Kafka's DefaultRecordBatch):

    offset  size  field
         0     8  baseOffset
         8     4  batchLength           bytes after this field
        12     4  partitionLeaderEpoch
        16     1  magic                 2
        17     4  crc                   CRC32C of bytes 21..end
        21     2  attributes            compression, timestamp type, transactional, control
        23     4  lastOffsetDelta
        27     8  baseTimestamp
        35     8  maxTimestamp
        43     8  producerId
        51     2  producerEpoch
        53     4  baseSequence
        57     4  recordsCount
        61        records

Rules of this module:
- The CRC covers attributes to the end, and not baseOffset, batchLength or
  partitionLeaderEpoch: that is what lets a leader assign the offset and its
  epoch by rewriting those bytes in place, with no new CRC and without
  touching a byte of the covered part.
- A batch that cannot be trusted (bad CRC, bad magic, truncated, a length
  that does not match) raises `CorruptBatch`, Kafka's CORRUPT_MESSAGE
  (error code 2), with a one-sentence reason.
- kio's record reader is not used: it turns timestamps into datetimes and
  loses precision; here they stay integer milliseconds.
- The record iterator reads uncompressed batches only; a compressed one raises
  `UnsupportedCompression` (it is not corrupt, just not readable here).
"""

from __future__ import annotations

import struct
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import google_crc32c

CORRUPT_MESSAGE = 2  # Kafka's error code for a batch that fails its checks
MAGIC = 2
HEADER_BYTES = 61
LOG_OVERHEAD = 12  # baseOffset and batchLength: the part before batchLength's count starts
CRC_START = 21  # attributes: the first byte the CRC covers
MIN_BATCH_LENGTH = HEADER_BYTES - LOG_OVERHEAD

COMPRESSION_MASK = 0x07
TIMESTAMP_TYPE_LOG_APPEND = 0x08
TRANSACTIONAL = 0x10
CONTROL = 0x20

_HEADER = struct.Struct(">qiibIhiqqqhii")
_OFFSET_AND_LENGTH = struct.Struct(">qi")
_BASE_OFFSET = struct.Struct(">q")
_LEADER_EPOCH_AT = 12
_LEADER_EPOCH = struct.Struct(">i")


class CorruptBatch(Exception):
    """A record batch failed its checks: Kafka answers CORRUPT_MESSAGE (error code 2)."""

    error_code = CORRUPT_MESSAGE

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


class UnsupportedCompression(Exception):
    """The batch's records are compressed, and this module reads only uncompressed records."""


def crc32c(data: bytes | bytearray | memoryview) -> int:
    """CRC32C (Castagnoli) of the bytes, as record batches carry it."""
    # google_crc32c ships no annotations for its functions.
    return int(google_crc32c.value(bytes(data)))  # type: ignore[no-untyped-call]


@dataclass(frozen=True, slots=True)
class RecordBatch:
    """One batch: its header fields, and the batch's bytes exactly as they came."""

    base_offset: int
    batch_length: int
    partition_leader_epoch: int
    magic: int
    crc: int
    attributes: int
    last_offset_delta: int
    base_timestamp: int
    max_timestamp: int
    producer_id: int
    producer_epoch: int
    base_sequence: int
    records_count: int
    raw: bytes

    @property
    def last_offset(self) -> int:
        return self.base_offset + self.last_offset_delta

    @property
    def compression(self) -> int:
        return self.attributes & COMPRESSION_MASK

    @property
    def is_transactional(self) -> bool:
        return bool(self.attributes & TRANSACTIONAL)

    @property
    def is_control(self) -> bool:
        return bool(self.attributes & CONTROL)

    @property
    def uses_log_append_time(self) -> bool:
        return bool(self.attributes & TIMESTAMP_TYPE_LOG_APPEND)


@dataclass(frozen=True, slots=True)
class Record:
    """One record of a batch, with its absolute offset and timestamp (milliseconds)."""

    offset: int
    timestamp_ms: int
    key: bytes | None
    value: bytes | None
    headers: tuple[tuple[str, bytes | None], ...]
    attributes: int = 0


@dataclass(frozen=True, slots=True)
class NewRecord:
    """A record to put in a batch built by `build_batch`."""

    key: bytes | None
    value: bytes | None
    timestamp_ms: int
    headers: tuple[tuple[str, bytes | None], ...] = ()


def parse_batch(data: bytes) -> RecordBatch:
    """The one batch that `data` holds exactly; CorruptBatch unless it is whole and its CRC holds."""
    if len(data) < HEADER_BYTES:
        raise CorruptBatch(f"a batch needs {HEADER_BYTES} header bytes, only {len(data)} are here")
    fields = _HEADER.unpack_from(data, 0)
    batch_length = fields[1]
    if batch_length < MIN_BATCH_LENGTH:
        raise CorruptBatch(f"batch length {batch_length} is below the minimum {MIN_BATCH_LENGTH}")
    if LOG_OVERHEAD + batch_length != len(data):
        raise CorruptBatch(
            f"batch length {batch_length} says {LOG_OVERHEAD + batch_length} bytes,"
            f" the batch has {len(data)}"
        )
    magic = fields[3]
    if magic != MAGIC:
        raise CorruptBatch(f"magic {magic} is not record batch v2")
    crc = fields[4]
    actual = crc32c(memoryview(data)[CRC_START:])
    if actual != crc:
        raise CorruptBatch(
            f"CRC {actual:#010x} of the batch does not match its recorded {crc:#010x}"
        )
    records_count = fields[12]
    if records_count < 0:
        raise CorruptBatch(f"records count {records_count} is negative")
    last_offset_delta = fields[6]
    if last_offset_delta < 0:
        raise CorruptBatch(f"last offset delta {last_offset_delta} is negative")
    return RecordBatch(
        base_offset=fields[0],
        batch_length=batch_length,
        partition_leader_epoch=fields[2],
        magic=magic,
        crc=crc,
        attributes=fields[5],
        last_offset_delta=last_offset_delta,
        base_timestamp=fields[7],
        max_timestamp=fields[8],
        producer_id=fields[9],
        producer_epoch=fields[10],
        base_sequence=fields[11],
        records_count=records_count,
        raw=bytes(data),
    )


def split_batches(records: bytes) -> tuple[RecordBatch, ...]:
    """Every batch of a Produce's (or Fetch's) records bytes, each checked; CorruptBatch if any fails."""
    batches: list[RecordBatch] = []
    position = 0
    while position < len(records):
        left = len(records) - position
        if left < LOG_OVERHEAD:
            raise CorruptBatch(f"{left} bytes after the last batch are too few for a batch header")
        _, batch_length = _OFFSET_AND_LENGTH.unpack_from(records, position)
        if batch_length < MIN_BATCH_LENGTH:
            raise CorruptBatch(
                f"batch length {batch_length} is below the minimum {MIN_BATCH_LENGTH}"
            )
        end = position + LOG_OVERHEAD + batch_length
        if end > len(records):
            raise CorruptBatch(
                f"a batch of {LOG_OVERHEAD + batch_length} bytes is cut off after {left}"
            )
        batches.append(parse_batch(records[position:end]))
        position = end
    return tuple(batches)


def assign_offset_and_epoch(
    buffer: bytearray | memoryview, base_offset: int, partition_leader_epoch: int, at: int = 0
) -> None:
    """Rewrite, in place, the base offset and leader epoch of the batch at `buffer[at:]`.

    Neither is covered by the CRC, so the batch stays valid and bytes 16 onward are untouched.
    """
    _BASE_OFFSET.pack_into(buffer, at, base_offset)
    _LEADER_EPOCH.pack_into(buffer, at + _LEADER_EPOCH_AT, partition_leader_epoch)


def with_offset_and_epoch(
    batch: RecordBatch, base_offset: int, partition_leader_epoch: int
) -> RecordBatch:
    """The same batch as the leader stores it: its offset and epoch assigned, its CRC unchanged."""
    raw = bytearray(batch.raw)
    assign_offset_and_epoch(raw, base_offset, partition_leader_epoch)
    return parse_batch(bytes(raw))


def iter_records(batch: RecordBatch) -> Iterator[Record]:
    """The batch's records in order; CorruptBatch if they do not match the header."""
    if batch.compression:
        raise UnsupportedCompression(f"the batch uses compression codec {batch.compression}")
    reader = _VarintReader(batch.raw, HEADER_BYTES)
    for index in range(batch.records_count):
        length = reader.varint("record length")
        start = reader.position
        if length < 0 or start + length > len(batch.raw):
            raise CorruptBatch(f"record {index} claims {length} bytes past the batch's end")
        attributes = reader.byte("record attributes")
        timestamp_delta = reader.varint("timestamp delta")
        offset_delta = reader.varint("offset delta")
        key = reader.nullable_bytes("key")
        value = reader.nullable_bytes("value")
        headers: list[tuple[str, bytes | None]] = []
        for _ in range(reader.count("header count")):
            raw_key = reader.nullable_bytes("header key")
            if raw_key is None:
                raise CorruptBatch(f"record {index} has a header with a null key")
            try:
                header_key = raw_key.decode("utf-8")
            except UnicodeDecodeError:
                raise CorruptBatch(f"record {index} has a header key that is not UTF-8") from None
            headers.append((header_key, reader.nullable_bytes("header value")))
        if reader.position != start + length:
            raise CorruptBatch(
                f"record {index} is {reader.position - start} bytes where its length says {length}"
            )
        timestamp = (
            batch.max_timestamp
            if batch.uses_log_append_time
            else batch.base_timestamp + timestamp_delta
        )
        yield Record(
            offset=batch.base_offset + offset_delta,
            timestamp_ms=timestamp,
            key=key,
            value=value,
            headers=tuple(headers),
            attributes=attributes,
        )
    if reader.position != len(batch.raw):
        raise CorruptBatch(
            f"{len(batch.raw) - reader.position} bytes follow the batch's {batch.records_count} records"
        )


def build_batch(
    records: Sequence[NewRecord],
    *,
    base_offset: int = 0,
    partition_leader_epoch: int = -1,
    producer_id: int = -1,
    producer_epoch: int = -1,
    base_sequence: int = -1,
    attributes: int = 0,
) -> bytes:
    """An uncompressed v2 batch of the records, CRC included, as a producer would send it."""
    if not records:
        raise ValueError("a record batch holds at least one record")
    base_timestamp = records[0].timestamp_ms
    body = bytearray()
    for offset_delta, record in enumerate(records):
        encoded = bytearray(b"\x00")  # record attributes: unused in v2
        encoded += _zigzag(record.timestamp_ms - base_timestamp)
        encoded += _zigzag(offset_delta)
        encoded += _nullable_bytes(record.key)
        encoded += _nullable_bytes(record.value)
        encoded += _zigzag(len(record.headers))
        for header_key, header_value in record.headers:
            encoded += _nullable_bytes(header_key.encode("utf-8"))
            encoded += _nullable_bytes(header_value)
        body += _zigzag(len(encoded)) + encoded
    covered = bytearray(
        struct.pack(
            ">hiqqqhii",
            attributes,
            len(records) - 1,
            base_timestamp,
            max(record.timestamp_ms for record in records),
            producer_id,
            producer_epoch,
            base_sequence,
            len(records),
        )
    )
    covered += body
    head = struct.pack(
        ">qiibI",
        base_offset,
        len(covered) + (CRC_START - LOG_OVERHEAD),
        partition_leader_epoch,
        MAGIC,
        crc32c(covered),
    )
    return head + bytes(covered)


class _VarintReader:
    __slots__ = ("data", "position")

    def __init__(self, data: bytes, position: int) -> None:
        self.data = data
        self.position = position

    def byte(self, what: str) -> int:
        if self.position >= len(self.data):
            raise CorruptBatch(f"the batch ends before the {what}")
        value = self.data[self.position]
        self.position += 1
        return value

    def varint(self, what: str) -> int:
        """A zigzag varlong (Kafka's record fields use at most 10 bytes)."""
        raw = 0
        for index in range(10):
            byte = self.byte(what)
            raw |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                return (raw >> 1) ^ -(raw & 1)
        raise CorruptBatch(f"the {what} is a varint longer than 10 bytes")

    def count(self, what: str) -> int:
        count = self.varint(what)
        if count < 0 or count > len(self.data) - self.position:
            raise CorruptBatch(f"the {what} {count} does not fit in the batch")
        return count

    def nullable_bytes(self, what: str) -> bytes | None:
        length = self.varint(f"{what} length")
        if length == -1:
            return None
        if length < 0 or self.position + length > len(self.data):
            raise CorruptBatch(f"the {what} length {length} does not fit in the batch")
        value = self.data[self.position : self.position + length]
        self.position += length
        return value


def _zigzag(value: int) -> bytes:
    raw = (value << 1) ^ (value >> 63)
    out = bytearray()
    while True:
        byte = raw & 0x7F
        raw >>= 7
        if raw:
            out.append(byte | 0x80)
        else:
            out.append(byte)
            return bytes(out)


def _nullable_bytes(value: bytes | None) -> bytes:
    if value is None:
        return _zigzag(-1)
    return _zigzag(len(value)) + value
