"""The consumer's commit and rebalance bookkeeping, which needs no cluster."""

from __future__ import annotations

import pytest
from kafka_verify.workload.clients import (
    ClientFactory,
    ClientSettingError,
    _Positions,
    commit_error,
)


def test_positions_follow_reads_and_forget_what_a_rebalance_takes() -> None:
    positions = _Positions()
    positions.rebalanced("assigned", [1, 0])
    for partition, offset in [(0, 4), (0, 5), (1, 9), (0, 3)]:
        positions.read(partition, offset)
    assert positions.next_offset == {0: 6, 1: 10}
    positions.rebalanced("revoked", [1])
    positions.rebalanced("lost", [7])
    assert positions.next_offset == {0: 6}
    assert positions.take_events() == [("assigned", [0, 1]), ("revoked", [1]), ("lost", [7])]
    assert positions.take_events() == []


@pytest.mark.parametrize(
    ("name", "kind"),
    [
        ("ILLEGAL_GENERATION", "fail"),
        ("REBALANCE_IN_PROGRESS", "fail"),
        ("CommitFailedError", "fail"),
        ("REQUEST_TIMED_OUT", "info"),
        ("_WAIT_COORD", "info"),
        ("KafkaTimeoutError", "info"),
    ],
)
def test_only_a_group_refusal_is_a_failed_commit(name: str, kind: str) -> None:
    error = commit_error(name, "detail")
    assert error.kind == kind and error.reason.startswith(name)


@pytest.mark.parametrize(
    ("settings", "eager"),
    [
        ({}, True),
        ({"partition.assignment.strategy": "range,roundrobin"}, True),
        ({"partition.assignment.strategy": "cooperative-sticky"}, False),
        ({"group.protocol": "consumer"}, False),
        ({"group.instance.id": "c0"}, False),
        ({"group_instance_id": "c0"}, False),
    ],
)
def test_groups_are_eager_unless_the_settings_say_otherwise(
    settings: dict[str, str], eager: bool
) -> None:
    assert ClientFactory("confluent", "127.0.0.1:9092", settings).eager_groups() is eager


@pytest.mark.parametrize(
    ("settings", "acks"),
    [
        ({}, -1),
        ({"acks": "all"}, -1),
        ({"acks": "-1"}, -1),
        ({"acks": "1"}, 1),
        ({"request.required.acks": "0"}, 0),
        ({"ACKS": " 1 "}, 1),
    ],
)
def test_the_checker_is_told_the_producers_acks(settings: dict[str, str], acks: int) -> None:
    assert ClientFactory("confluent", "127.0.0.1:9092", settings).acks() == acks


def test_an_unknown_acks_setting_is_refused_in_one_sentence() -> None:
    factory = ClientFactory("kafka-python", "127.0.0.1:9092", {"acks": "most"})
    with pytest.raises(ClientSettingError, match="acks must be all, -1, 1 or 0"):
        factory.acks()
