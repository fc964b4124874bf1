"""Durable logs on disk: the in-memory log's semantics step by step, torn tails, kill -9, bad files."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule
from kafka_verify.impl.group_store import OffsetRecord
from kafka_verify.impl.log import PartitionLog, StoredRecord
from kafka_verify.wire.batches import NewRecord, build_batch, parse_batch, with_offset_and_epoch
from kafka_verify.wire.storage import (
    CHECKPOINT,
    DurableLog,
    StorageError,
    read_checkpoint,
    read_json,
    write_checkpoint,
    write_json_durably,
)


def producer_record(
    offset: int, epoch: int, records: int, producer_id: int, seq: int, timestamp_ms: int
) -> StoredRecord:
    """A producer's batch of `records` records, as the broker stores it (record id = base offset)."""
    payload = build_batch(
        [
            NewRecord(f"k{offset}".encode(), f"value {offset}.{i}".encode() * (i + 1), 1_000 + i)
            for i in range(records)
        ],
        producer_id=producer_id,
        producer_epoch=0,
        base_sequence=seq,
    )
    return StoredRecord(offset, epoch, producer_id, seq, timestamp_ms, records, payload)


def as_stored(log: PartitionLog) -> list[tuple[int, StoredRecord]]:
    """Every batch with its base offset, payloads as Kafka keeps them (offset and epoch assigned)."""
    out = []
    for base, record in log.producer_entries():
        if record.payload:
            batch = with_offset_and_epoch(parse_batch(record.payload), base, record.epoch)
            record = replace(record, payload=batch.raw)
        out.append((base, record))
    return out


def read_all(log: DurableLog) -> list[tuple[int, StoredRecord]]:
    batches = log.read(log.log_start, log.leo, max_records=10**9)
    bases = [base for base, _ in log.producer_entries()]
    return list(zip(bases, batches, strict=True))


# -- step by step against the in-memory log ---------------------------------------------------


class DurableLogMatchesPartitionLog(RuleBasedStateMachine):
    """Every operation runs on both logs; a crash is `crash()` on the model and, on disk,
    dropping the object and opening the directory again."""

    def __init__(self) -> None:
        super().__init__()
        self.directory = Path(tempfile.mkdtemp(prefix="durable-log-"))
        self.segment_records = 4
        self.model = PartitionLog(self.segment_records)
        self.log = DurableLog.open(self.directory, self.segment_records)
        self.crashed_since_reset = False

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.directory)

    @rule(
        records=st.integers(1, 5),
        epoch=st.integers(0, 3),
        producer_id=st.integers(-1, 3),
        seq=st.integers(0, 1_000),
        timestamp_ms=st.integers(0, 2**41),
    )
    def append_producer_batch(
        self, records: int, epoch: int, producer_id: int, seq: int, timestamp_ms: int
    ) -> None:
        record = producer_record(self.model.leo, epoch, records, producer_id, seq, timestamp_ms)
        assert self.log.append(record) == self.model.append(record)

    @rule(
        record_id=st.integers(1, 10**6),
        epoch=st.integers(0, 3),
        count=st.integers(1, 5),
        timestamp_ms=st.integers(0, 2**41),
    )
    def append_simulation_batch(
        self, record_id: int, epoch: int, count: int, timestamp_ms: int
    ) -> None:
        record = StoredRecord(record_id, epoch, -1, record_id % 7, timestamp_ms, count)
        assert self.log.append(record) == self.model.append(record)

    @rule(
        epoch=st.integers(0, 3),
        group=st.text(max_size=6),
        member=st.text(max_size=6),
        generation=st.integers(-1, 9),
        partition=st.integers(-1, 3),
        offset=st.integers(-1, 100),
    )
    def append_offset_record(
        self, epoch: int, group: str, member: str, generation: int, partition: int, offset: int
    ) -> None:
        record = OffsetRecord(
            self.model.leo + 1,
            epoch,
            -1,
            0,
            77,
            group=group,
            member=member,
            generation=generation,
            partition=partition,
            offset=offset,
        )
        assert self.log.append(record) == self.model.append(record)

    @rule(data=st.data())
    def flush(self, data: st.DataObject) -> None:
        hw = data.draw(st.integers(self.model.log_start, self.model.leo), label="hw")
        assert self.log.flush(hw) == self.model.flush(hw)

    @rule(data=st.data())
    def truncate(self, data: st.DataObject) -> None:
        offset = data.draw(st.integers(self.model.log_start, self.model.leo), label="offset")
        assert self.log.truncate(offset) == self.model.truncate(offset)

    @precondition(lambda self: self.model.leo > self.model.log_start)
    @rule(data=st.data())
    def delete_prefix(self, data: st.DataObject) -> None:
        bases = [base for base, _ in self.model.producer_entries()]
        boundaries = [*bases[1:], self.model.leo]
        new_start = data.draw(st.sampled_from(boundaries), label="new_start")
        self.model.delete_prefix(new_start)
        self.log.delete_prefix(new_start)

    @rule(ahead=st.integers(0, 9))
    def reset(self, ahead: int) -> None:
        self.model.reset(self.model.leo + ahead)
        self.log.reset(self.log.leo + ahead)
        self.crashed_since_reset = False

    @rule(epoch=st.integers(-1, 5))
    def set_known_epoch(self, epoch: int) -> None:
        self.model.known_epoch = epoch
        self.log.known_epoch = epoch

    @rule()
    def crash(self) -> None:
        self.model.crash()
        self.log.close()
        self.log = DurableLog.open(self.directory, self.segment_records)
        self.crashed_since_reset = True

    @rule(data=st.data())
    def read_a_window(self, data: st.DataObject) -> None:
        start = data.draw(st.integers(self.model.log_start, self.model.leo + 1), label="offset")
        upto = data.draw(st.integers(start, self.model.leo + 1), label="upto")
        max_records = data.draw(st.integers(1, 6), label="max_records")
        max_bytes = data.draw(st.none() | st.integers(0, 400), label="max_bytes")
        got = self.log.read(start, upto, max_records, max_bytes)
        want = self.model.read(start, upto, max_records, max_bytes)
        stored = dict(as_stored(self.model))
        assert [r.record_id for r in got] == [r.record_id for r in want]
        if got:
            base = self.log.base_offset(self.log.index_of(start))
            for record in got:
                assert record == stored[base]
                base += record.count

    @invariant()
    def same_state(self) -> None:
        model, log = self.model, self.log
        assert (log.leo, log.log_start, log.flushed) == (model.leo, model.log_start, model.flushed)
        assert (log.checkpoint_hw, log.known_epoch) == (model.checkpoint_hw, model.known_epoch)
        assert log.segment_bases == model.segment_bases
        assert read_all(log) == as_stored(model)
        assert [(b, replace(r, payload=b"")) for b, r in log.producer_entries()] == [
            (b, replace(r, payload=b"")) for b, r in model.producer_entries()
        ]
        assert log.end_offset_for_epoch(2) == model.end_offset_for_epoch(2)
        # The model keeps the largest end an unflushed append reached through a crash; the disk
        # knows it only as of its last checkpoint.
        if self.crashed_since_reset:
            assert log.leo <= log.appended_end <= model.appended_end
        else:
            assert log.appended_end == model.appended_end

    @invariant()
    def flushed_payloads_are_not_in_memory(self) -> None:
        for index, record in enumerate(self.log.records):
            if self.log.base_offset(index) < self.log.flushed:
                assert record.payload == b""


TestDurableLogMatchesPartitionLog = DurableLogMatchesPartitionLog.TestCase
TestDurableLogMatchesPartitionLog.settings = settings(
    max_examples=150,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)


# -- torn tails -------------------------------------------------------------------------------


def three_flushed_batches(directory: Path) -> list[tuple[int, StoredRecord]]:
    with DurableLog.open(directory, segment_records=100) as log:
        for seq in range(3):
            log.append(producer_record(log.leo, 1, 2, 5, 2 * seq, 10 * seq))
        log.flush(hw=4)
        return read_all(log)


@pytest.mark.parametrize("tail", ["garbage", "half batch", "short header"])
def test_a_torn_tail_is_cut_at_the_last_whole_batch(tmp_path: Path, tail: str) -> None:
    before = three_flushed_batches(tmp_path)
    segment = tmp_path / f"{0:020d}.log"
    size = segment.stat().st_size
    extra = {
        "garbage": b"\xff" * 100,
        "half batch": producer_record(6, 1, 3, 5, 6, 0).payload[:70],
        "short header": b"\x00" * 7,
    }[tail]
    with segment.open("ab") as file:
        file.write(extra)
    with DurableLog.open(tmp_path, segment_records=100) as log:
        assert (log.leo, log.flushed, log.checkpoint_hw) == (6, 6, 4)
        assert read_all(log) == before
    assert segment.stat().st_size == size


def test_a_bad_batch_mid_log_cuts_there_and_drops_the_later_segments(tmp_path: Path) -> None:
    with DurableLog.open(tmp_path, segment_records=2) as log:
        for seq in range(5):
            log.append(producer_record(log.leo, 0, 1, 1, seq, 0))
        log.flush(hw=5)
        assert log.segment_bases == [0, 2, 4]
        before = read_all(log)
    second = tmp_path / f"{2:020d}.log"
    data = bytearray(second.read_bytes())
    data[-1] ^= 0x01  # the second batch of segment 2 fails its CRC
    second.write_bytes(bytes(data))
    with DurableLog.open(tmp_path, segment_records=2) as log:
        assert (log.leo, log.segment_bases, log.checkpoint_hw) == (3, [0, 2], 3)
        assert read_all(log) == before[:3]
    assert not (tmp_path / f"{4:020d}.log").exists()


def test_an_interrupted_prefix_deletion_is_finished_on_open(tmp_path: Path) -> None:
    with DurableLog.open(tmp_path, segment_records=10) as log:
        for seq in range(4):
            log.append(producer_record(log.leo, 0, 2, 1, 2 * seq, seq))
        log.flush(hw=8)
        before = read_all(log)
    # The checkpoint is written first: a kill right after it leaves the old segment file.
    generation, checkpoint = read_checkpoint(tmp_path / CHECKPOINT)
    write_checkpoint(tmp_path / CHECKPOINT, generation + 1, {**checkpoint, "log_start": 4})
    with DurableLog.open(tmp_path, segment_records=10) as log:
        assert (log.log_start, log.leo, log.segment_bases) == (4, 8, [4])
        assert read_all(log) == before[2:]
    assert sorted(p.name for p in tmp_path.glob("*.log")) == [f"{4:020d}.log"]


# -- kill -9 ------------------------------------------------------------------------------------

WRITER = textwrap.dedent(
    """
    import sys, time
    from kafka_verify.wire.storage import DurableLog
    from kafka_verify.wire.batches import NewRecord, build_batch
    from kafka_verify.impl.log import StoredRecord

    directory, flushed, unflushed = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
    log = DurableLog.open(directory, segment_records=7)
    for i in range(flushed + unflushed):
        payload = build_batch(
            [NewRecord(b"key", b"value %d" % i, 1000 + i), NewRecord(None, b"x" * i, 1001 + i)],
            producer_id=9, producer_epoch=0, base_sequence=2 * i,
        )
        log.append(StoredRecord(log.leo, 3, 9, 2 * i, 5000 + i, 2, payload))
        if i == flushed - 1:
            log.flush(hw=log.leo)
    print("ready", flush=True)
    time.sleep(600)
    """
)


def test_after_kill_9_the_log_holds_exactly_the_flushed_batches(tmp_path: Path) -> None:
    flushed, unflushed = 12, 5
    process = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(tmp_path), str(flushed), str(unflushed)],
        stdout=subprocess.PIPE,
        text=True,
    )
    try:
        assert process.stdout is not None
        assert process.stdout.readline().strip() == "ready"
        process.send_signal(signal.SIGKILL)
        assert process.wait(timeout=30) == -signal.SIGKILL
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=30)
        if process.stdout is not None:
            process.stdout.close()
    with DurableLog.open(tmp_path, segment_records=7) as log:
        assert (log.log_start, log.leo, log.flushed, log.checkpoint_hw) == (0, 24, 24, 24)
        assert log.known_epoch == -1
        batches = log.read(0, log.leo, max_records=100)
        assert len(batches) == flushed
        for i, batch in enumerate(batches):
            sent = build_batch(
                [
                    NewRecord(b"key", b"value %d" % i, 1000 + i),
                    NewRecord(None, b"x" * i, 1001 + i),
                ],
                producer_id=9,
                producer_epoch=0,
                base_sequence=2 * i,
            )
            assert batch.payload == with_offset_and_epoch(parse_batch(sent), 2 * i, 3).raw
            assert batch == StoredRecord(2 * i, 3, 9, 2 * i, 5000 + i, 2, batch.payload)
        # The first unflushed append rolled segment 24, whose file Kafka creates at roll: it
        # survives empty, as the in-memory log's crash keeps segments up to the flush point.
        assert log.segment_bases == [0, 8, 16, 24]


# -- files that are not a log -------------------------------------------------------------------


def one_sentence_naming(error: pytest.ExceptionInfo[StorageError], path: Path) -> None:
    message = str(error.value)
    assert str(path) in message
    assert "\n" not in message and message.endswith(".")


def _flip_byte(data: bytes, at: int) -> bytes:
    return data[:at] + bytes([data[at] ^ 0xFF]) + data[at + 1 :]


@pytest.mark.parametrize(
    "damage",
    [
        lambda data: b"{not json",
        lambda data: b"",
        lambda data: data[:30],
        lambda data: _flip_byte(_flip_byte(data, 10), 60),  # a bit flipped in each slot
    ],
    ids=["text", "empty", "torn", "both-slots-damaged"],
)
def test_a_corrupt_checkpoint_is_a_clear_error(
    tmp_path: Path, damage: Callable[[bytes], bytes]
) -> None:
    three_flushed_batches(tmp_path)
    path = tmp_path / CHECKPOINT
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(StorageError) as error:
        DurableLog.open(tmp_path, segment_records=100)
    one_sentence_naming(error, tmp_path / CHECKPOINT)


def test_a_segment_that_does_not_start_with_a_batch_is_a_clear_error(tmp_path: Path) -> None:
    three_flushed_batches(tmp_path)
    segment = tmp_path / f"{0:020d}.log"
    segment.write_bytes(b"this is a text file, not a Kafka log segment at all\n" * 3)
    with pytest.raises(StorageError) as error:
        DurableLog.open(tmp_path, segment_records=100)
    one_sentence_naming(error, segment)


def test_a_segment_named_for_another_offset_is_a_clear_error(tmp_path: Path) -> None:
    three_flushed_batches(tmp_path)
    (tmp_path / f"{0:020d}.log").rename(tmp_path / f"{0:020d}.bak")
    other = tmp_path / f"{0:020d}.log"
    other.write_bytes(build_batch([NewRecord(None, b"v", 0)], base_offset=5))
    with pytest.raises(StorageError) as error:
        DurableLog.open(tmp_path, segment_records=100)
    one_sentence_naming(error, other)


def test_segments_without_a_checkpoint_are_a_clear_error(tmp_path: Path) -> None:
    three_flushed_batches(tmp_path)
    (tmp_path / CHECKPOINT).unlink()
    with pytest.raises(StorageError) as error:
        DurableLog.open(tmp_path, segment_records=100)
    one_sentence_naming(error, tmp_path / CHECKPOINT)


# -- durable JSON -------------------------------------------------------------------------------


def test_json_is_replaced_whole_and_a_corrupt_file_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "state.json"
    write_json_durably(path, {"a": [1, 2]})
    write_json_durably(path, {"b": "c"})
    assert read_json(path) == {"b": "c"}
    assert sorted(os.listdir(tmp_path)) == ["state.json"]
    path.write_bytes(b"\xff\xfe")
    with pytest.raises(StorageError) as error:
        read_json(path)
    one_sentence_naming(error, path)
    with pytest.raises(StorageError) as error:
        read_json(tmp_path / "missing.json")
    one_sentence_naming(error, tmp_path / "missing.json")


def test_a_durable_log_cannot_be_copied_and_closes_its_files_when_dropped(tmp_path: Path) -> None:
    import copy
    import gc

    log = DurableLog.open(tmp_path, segment_records=2)
    log.append(producer_record(0, 0, 1, 1, 0, 0))
    log.flush(hw=1)
    with pytest.raises(TypeError, match="cannot be copied"):
        copy.deepcopy(log)
    fds = [fd for pair in log._files.values() for fd in pair]
    assert fds
    del log
    gc.collect()
    for fd in fds:
        with pytest.raises(OSError):
            os.fstat(fd)


def test_a_torn_checkpoint_write_leaves_the_previous_generation(tmp_path: Path) -> None:
    path = tmp_path / CHECKPOINT
    fields = {"log_start": 0, "checkpoint_hw": 3, "known_epoch": 1, "appended_end": 3}
    write_checkpoint(path, 7, fields)
    write_checkpoint(path, 8, {**fields, "checkpoint_hw": 5})
    assert read_checkpoint(path) == (8, {**fields, "checkpoint_hw": 5})
    path.write_bytes(_flip_byte(path.read_bytes(), 20))  # slot 0, generation 8's, torn
    assert read_checkpoint(path) == (7, fields)
