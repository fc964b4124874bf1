"""Record batches v2: header parsing, CRC32C checks, splitting, in-place offset assignment, records."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_verify.wire.batches import (
    CORRUPT_MESSAGE,
    CRC_START,
    HEADER_BYTES,
    CorruptBatch,
    NewRecord,
    Record,
    UnsupportedCompression,
    assign_offset_and_epoch,
    build_batch,
    crc32c,
    iter_records,
    parse_batch,
    split_batches,
    with_offset_and_epoch,
)

INT64 = st.integers(-(2**63), 2**63 - 1)
TIMESTAMPS = st.integers(0, 2**41)  # milliseconds until the year 2039 and beyond
NEW_RECORDS = st.builds(
    NewRecord,
    key=st.none() | st.binary(max_size=20),
    value=st.none() | st.binary(max_size=40),
    timestamp_ms=TIMESTAMPS,
    headers=st.lists(
        st.tuples(st.text(max_size=8), st.none() | st.binary(max_size=8)), max_size=3
    ).map(tuple),
)
BATCHES = st.lists(NEW_RECORDS, min_size=1, max_size=5).map(build_batch)


def _sample_batch() -> bytes:
    return build_batch(
        [
            NewRecord(b"k1", b"v1", 1_700_000_000_123, (("trace", b"x"),)),
            NewRecord(None, b"v2", 1_700_000_000_125),
            NewRecord(b"k3", None, 1_700_000_000_124),
        ],
        producer_id=42,
        producer_epoch=3,
        base_sequence=7,
    )


def test_the_crc32c_is_the_castagnoli_check_value() -> None:
    assert crc32c(b"123456789") == 0xE3069283


def test_the_61_byte_header_is_read_field_by_field() -> None:
    raw = _sample_batch()
    batch = parse_batch(raw)
    assert (batch.base_offset, batch.partition_leader_epoch, batch.magic) == (0, -1, 2)
    assert batch.batch_length == len(raw) - 12
    assert batch.crc == crc32c(raw[CRC_START:])
    assert (batch.attributes, batch.last_offset_delta, batch.records_count) == (0, 2, 3)
    assert (batch.base_timestamp, batch.max_timestamp) == (1_700_000_000_123, 1_700_000_000_125)
    assert (batch.producer_id, batch.producer_epoch, batch.base_sequence) == (42, 3, 7)
    assert batch.raw == raw
    assert batch.last_offset == 2
    assert not (batch.compression or batch.is_transactional or batch.is_control)


def test_records_keep_their_millisecond_timestamps_keys_values_and_headers() -> None:
    records = list(iter_records(parse_batch(_sample_batch())))
    assert records == [
        Record(0, 1_700_000_000_123, b"k1", b"v1", (("trace", b"x"),)),
        Record(1, 1_700_000_000_125, None, b"v2", ()),
        Record(2, 1_700_000_000_124, b"k3", None, ()),
    ]


@settings(max_examples=200, deadline=None)
@given(records=st.lists(NEW_RECORDS, min_size=1, max_size=6), base_offset=st.integers(0, 2**40))
def test_built_batches_read_back_record_for_record(
    records: list[NewRecord], base_offset: int
) -> None:
    batch = parse_batch(build_batch(records))
    stored = with_offset_and_epoch(batch, base_offset, 5)
    read = list(iter_records(stored))
    assert [(r.key, r.value, r.timestamp_ms, r.headers) for r in read] == [
        (r.key, r.value, r.timestamp_ms, r.headers) for r in records
    ]
    assert [r.offset for r in read] == list(range(base_offset, base_offset + len(records)))


@settings(max_examples=150, deadline=None)
@given(raw=BATCHES, data=st.data())
def test_flipping_any_byte_the_crc_covers_is_corrupt(raw: bytes, data: st.DataObject) -> None:
    at = data.draw(st.integers(CRC_START, len(raw) - 1))
    flip = data.draw(st.integers(1, 255))
    damaged = bytearray(raw)
    damaged[at] ^= flip
    with pytest.raises(CorruptBatch, match="CRC") as caught:
        parse_batch(bytes(damaged))
    assert caught.value.error_code == CORRUPT_MESSAGE == 2


@settings(max_examples=150, deadline=None)
@given(raw=BATCHES, data=st.data())
def test_flipping_a_crc_byte_is_corrupt(raw: bytes, data: st.DataObject) -> None:
    damaged = bytearray(raw)
    damaged[data.draw(st.integers(17, 20))] ^= data.draw(st.integers(1, 255))
    with pytest.raises(CorruptBatch, match="CRC"):
        parse_batch(bytes(damaged))


@settings(max_examples=150, deadline=None)
@given(raw=BATCHES, base_offset=INT64, epoch=st.integers(-(2**31), 2**31 - 1))
def test_assigning_offset_and_epoch_keeps_the_crc_and_every_later_byte(
    raw: bytes, base_offset: int, epoch: int
) -> None:
    buffer = bytearray(raw)
    assign_offset_and_epoch(buffer, base_offset, epoch)
    assert buffer[8:12] == raw[8:12]  # batchLength
    assert buffer[16:] == raw[16:]  # magic, CRC and all that the CRC covers
    batch = parse_batch(bytes(buffer))  # the CRC still holds
    assert (batch.base_offset, batch.partition_leader_epoch) == (base_offset, epoch)


def test_assigning_in_place_at_a_position_inside_a_larger_buffer() -> None:
    first, second = _sample_batch(), _sample_batch()
    buffer = bytearray(first + second)
    assign_offset_and_epoch(buffer, 3, 9, at=len(first))
    batches = split_batches(bytes(buffer))
    assert [(b.base_offset, b.partition_leader_epoch) for b in batches] == [(0, -1), (3, 9)]
    assert buffer[: len(first)] == first


def test_a_produce_records_field_splits_into_its_batches() -> None:
    one = build_batch([NewRecord(b"a", b"1", 10)])
    two = build_batch([NewRecord(b"b", b"2", 11), NewRecord(b"c", b"3", 12)])
    batches = split_batches(one + two)
    assert [b.raw for b in batches] == [one, two]
    assert split_batches(b"") == ()


@pytest.mark.parametrize(
    ("damage", "reason"),
    [
        (lambda raw: raw[:-1], "batch length"),
        (lambda raw: raw + b"\x00", "batch length"),
        (lambda raw: raw[:30], "header bytes"),
        (lambda raw: raw[:16] + b"\x01" + raw[17:], "magic 1 is not record batch v2"),
        (lambda raw: raw[:8] + struct.pack(">i", 10) + raw[12:], "below the minimum"),
    ],
)
def test_a_malformed_batch_is_corrupt(damage: object, reason: str) -> None:
    with pytest.raises(CorruptBatch, match=reason):
        parse_batch(damage(_sample_batch()))  # type: ignore[operator]


@pytest.mark.parametrize(
    ("records", "reason"),
    [
        (b"\x00" * 5, "too few for a batch header"),
        (_sample_batch()[:-4], "cut off"),
        (_sample_batch() + _sample_batch()[:20], "cut off"),
        (b"\x00" * 8 + struct.pack(">i", -1) + b"\x00" * 60, "below the minimum"),
    ],
)
def test_a_truncated_or_misframed_records_field_is_corrupt(records: bytes, reason: str) -> None:
    with pytest.raises(CorruptBatch, match=reason):
        split_batches(records)


def _with_crc(raw: bytearray) -> bytes:
    struct.pack_into(">I", raw, 17, crc32c(raw[CRC_START:]))
    return bytes(raw)


def test_records_that_disagree_with_the_header_are_corrupt_even_with_a_good_crc() -> None:
    raw = bytearray(_sample_batch())
    struct.pack_into(">i", raw, 57, 4)  # records count: one more than there are
    with pytest.raises(CorruptBatch, match="batch ends before"):
        list(iter_records(parse_batch(_with_crc(raw))))
    raw = bytearray(_sample_batch())
    struct.pack_into(">i", raw, 57, 2)  # one fewer: bytes are left over
    with pytest.raises(CorruptBatch, match="bytes follow the batch's 2 records"):
        list(iter_records(parse_batch(_with_crc(raw))))
    raw = bytearray(_sample_batch())
    raw[HEADER_BYTES] = 0x7E  # the first record's length, zigzag 63: longer than it is
    with pytest.raises(CorruptBatch, match="record 0"):
        list(iter_records(parse_batch(_with_crc(raw))))


def test_a_compressed_batch_is_not_read_as_records() -> None:
    raw = build_batch([NewRecord(b"k", b"v", 1)], attributes=2)  # codec 2: snappy
    batch = parse_batch(raw)
    assert batch.compression == 2
    with pytest.raises(UnsupportedCompression, match="codec 2"):
        list(iter_records(batch))


def test_log_append_time_gives_every_record_the_max_timestamp() -> None:
    raw = build_batch([NewRecord(None, b"a", 5), NewRecord(None, b"b", 9)], attributes=0x08)
    assert [r.timestamp_ms for r in iter_records(parse_batch(raw))] == [9, 9]


def test_an_empty_batch_cannot_be_built() -> None:
    with pytest.raises(ValueError, match="at least one record"):
        build_batch([])


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=200))
def test_any_bytes_split_into_batches_or_are_corrupt(data: bytes) -> None:
    try:
        batches = split_batches(data)
    except CorruptBatch as error:
        assert error.reason
    else:
        assert b"".join(batch.raw for batch in batches) == data


def test_the_builder_matches_kafka_python_byte_for_byte() -> None:
    default_records = pytest.importorskip("kafka.record.default_records")
    builder = default_records.DefaultRecordBatchBuilder(
        magic=2,
        compression_type=0,
        is_transactional=0,
        producer_id=5,
        producer_epoch=1,
        base_sequence=3,
        batch_size=1 << 20,
    )
    builder.append(0, 1_700_000_000_123, b"k", b"v", [("h", b"x")])
    builder.append(1, 1_700_000_000_125, None, b"v2", [])
    theirs = bytes(builder.build())
    ours = build_batch(
        [
            NewRecord(b"k", b"v", 1_700_000_000_123, (("h", b"x"),)),
            NewRecord(None, b"v2", 1_700_000_000_125),
        ],
        producer_id=5,
        producer_epoch=1,
        base_sequence=3,
        partition_leader_epoch=0,
    )
    assert ours == theirs
