"""The replica log: appends, flush and crash semantics, truncation, retention by segments, epochs."""

from __future__ import annotations

import pytest
from kafka_verify.impl.log import PartitionLog, StoredRecord


def filled(count: int, epochs: list[int] | None = None, segment_records: int = 2) -> PartitionLog:
    log = PartitionLog(segment_records)
    for i in range(count):
        epoch = epochs[i] if epochs else 0
        log.append(
            StoredRecord(record_id=i + 1, epoch=epoch, producer_id=-1, seq=i, timestamp_ms=i * 10)
        )
    return log


def test_a_crash_keeps_only_flushed_records_and_the_checkpointed_high_watermark() -> None:
    log = filled(3)
    assert log.flush(hw=2)
    log.append(StoredRecord(4, 0, -1, 3, 30))
    assert log.crash() == 1
    assert (log.leo, log.flushed, log.checkpoint_hw) == (3, 3, 2)


def test_flush_reports_whether_anything_changed() -> None:
    log = filled(2)
    assert log.flush(hw=1)
    assert not log.flush(hw=1)
    assert log.flush(hw=2)


def test_truncation_is_durable_and_clips_flush_point_and_checkpoint() -> None:
    log = filled(4)
    log.flush(hw=4)
    log.truncate(1)
    assert (log.leo, log.flushed, log.checkpoint_hw) == (1, 1, 1)
    with pytest.raises(ValueError):
        log.truncate(2)


def test_retention_deletes_whole_segments_only_below_the_limit() -> None:
    log = filled(7, segment_records=2)  # segments start at 0, 2, 4, 6 (active)
    assert log.retention_start(0, None, 2, limit=7, whole_segments=True) == 4
    assert log.retention_start(0, None, 2, limit=3, whole_segments=True) == 2
    assert log.retention_start(0, None, 2, limit=7, whole_segments=False) == 5
    assert (
        log.retention_start(45, 20, None, limit=7, whole_segments=True) == 2
    )  # records before 25 ms
    log.delete_prefix(4)
    assert (log.log_start, log.flushed, log.checkpoint_hw, log.record_at(4).record_id) == (
        4,
        4,
        4,
        5,
    )


def test_end_offset_for_epoch_answers_the_largest_known_epoch_at_or_below() -> None:
    log = filled(5, epochs=[0, 0, 2, 2, 5])
    assert log.end_offset_for_epoch(0) == (0, 2)
    assert log.end_offset_for_epoch(1) == (0, 2)
    assert log.end_offset_for_epoch(3) == (2, 4)
    assert log.end_offset_for_epoch(7) == (5, 5)
    assert filled(0).end_offset_for_epoch(3) == (-1, -1)


def test_reset_starts_an_empty_log_at_the_given_offset() -> None:
    log = filled(3)
    log.reset(10)
    assert (log.log_start, log.leo, log.flushed, log.checkpoint_hw) == (10, 10, 10, 10)
