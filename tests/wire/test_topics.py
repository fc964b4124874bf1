"""Topics made while a real cluster runs: CreateTopics, auto-creation, per-topic RF, and both
surviving kill -9 and a whole restart, on 3 broker processes with real clients."""

from __future__ import annotations

import signal
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from served import WAIT_S, ServedCluster, leader_of, read_all


@pytest.fixture
def cluster(tmp_path: Path) -> Iterator[ServedCluster]:
    # "wide" has the cluster's RF 3; "solo" (RF 1) is created once the cluster is up.
    served = ServedCluster(tmp_path / "cluster", topics=["wide:2:3", "solo:2:1"])
    served.start()
    try:
        yield served
    finally:
        served.stop()


def _topics(bootstrap: str) -> dict[str, list[tuple[int, int, tuple[int, ...]]]]:
    """topic -> [(partition, leader, replicas)], as confluent-kafka's metadata names them."""
    from confluent_kafka.admin import AdminClient

    metadata = AdminClient({"bootstrap.servers": bootstrap}).list_topics(timeout=10)
    return {
        name: sorted((p.id, p.leader, tuple(p.replicas)) for p in topic.partitions.values())
        for name, topic in metadata.topics.items()
        if topic.error is None
    }


def _wait_for_leaders(bootstrap: str, topic: str, partitions: int) -> None:
    deadline = time.monotonic() + WAIT_S
    while time.monotonic() < deadline:
        found = _topics(bootstrap).get(topic, [])
        if len(found) == partitions and all(leader >= 0 for _, leader, _ in found):
            return
        time.sleep(0.2)
    raise AssertionError(f"{topic} has no leader for each of its {partitions} partitions")


def _produce(bootstrap: str, topic: str, values: list[bytes], partition: int = 0) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    failures: list[Any] = []
    for value in values:
        producer.produce(
            topic,
            value=value,
            partition=partition,
            on_delivery=lambda error, _: failures.append(error) if error else None,
        )
    assert producer.flush(WAIT_S) == 0
    assert failures == []


def test_a_topic_of_another_rf_is_created_at_start_beside_the_configured_one(
    cluster: ServedCluster,
) -> None:
    topics = _topics(cluster.bootstrap)
    assert [len(replicas) for _, _, replicas in topics["wide"]] == [3, 3]
    assert [len(replicas) for _, _, replicas in topics["solo"]] == [1, 1]
    assert "__consumer_offsets" not in topics  # internal: not a client's


def test_create_topics_from_confluent_kafka_and_auto_creation_from_kafka_python(
    cluster: ServedCluster,
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic
    from kafka import KafkaProducer

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    futures = admin.create_topics([NewTopic("made", num_partitions=4, replication_factor=2)])
    futures["made"].result(timeout=WAIT_S)
    again = admin.create_topics([NewTopic("made", num_partitions=4, replication_factor=2)])
    with pytest.raises(Exception, match="TOPIC_ALREADY_EXISTS"):
        again["made"].result(timeout=WAIT_S)
    _wait_for_leaders(cluster.bootstrap, "made", 4)
    assert [len(r) for _, _, r in _topics(cluster.bootstrap)["made"]] == [2, 2, 2, 2]

    # A producer naming a topic nobody made: Kafka's default auto-creation, with
    # num.partitions (1) and the cluster's replication factor.
    producer = KafkaProducer(bootstrap_servers=cluster.bootstrap, acks="all")
    try:
        for n in range(10):
            producer.send("appeared", value=b"v%d" % n).get(timeout=WAIT_S)
    finally:
        producer.close(timeout=WAIT_S)
    (only,) = _topics(cluster.bootstrap)["appeared"]
    assert len(only[2]) == 3
    _produce(cluster.bootstrap, "made", [b"m%d" % n for n in range(20)], partition=3)
    assert [v for _, _, v in read_all(cluster.bootstrap, "appeared", 1)] == [
        b"v%d" % n for n in range(10)
    ]
    made = read_all(cluster.bootstrap, "made", 4)
    assert [(p, v) for p, _, v in made] == [(3, b"m%d" % n) for n in range(20)]


def test_a_created_partition_survives_kill_of_its_leader_and_a_whole_restart(
    cluster: ServedCluster,
) -> None:
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient({"bootstrap.servers": cluster.bootstrap})
    admin.create_topics([NewTopic("kept", num_partitions=1, replication_factor=3)])["kept"].result(
        timeout=WAIT_S
    )
    _wait_for_leaders(cluster.bootstrap, "kept", 1)
    first = [b"before-%d" % n for n in range(50)]
    _produce(cluster.bootstrap, "kept", first)
    leader = leader_of(cluster.bootstrap, "kept", 0)
    cluster.signal_node(f"b{leader}", signal.SIGKILL)
    then = [b"after-%d" % n for n in range(50)]
    _produce(cluster.bootstrap, "kept", then)  # a follower took over
    assert leader_of(cluster.bootstrap, "kept", 0) != leader
    cluster.restart_down_nodes()  # the killed broker finds its log on disk again
    assert [v for _, _, v in read_all(cluster.bootstrap, "kept", 1)] == first + then

    cluster.stop()
    cluster.start()  # the same data directory: created topics and their records are back
    topics = _topics(cluster.bootstrap)
    assert {"wide", "solo", "kept"} <= set(topics)
    _wait_for_leaders(cluster.bootstrap, "kept", 1)
    assert [v for _, _, v in read_all(cluster.bootstrap, "kept", 1)] == first + then


def test_with_auto_creation_off_an_unknown_topic_is_refused(tmp_path: Path) -> None:
    from confluent_kafka import KafkaError, Producer

    with ServedCluster(
        tmp_path / "strict", topics=["t:1:3"], extra_args=["--no-auto-create-topics"]
    ) as cluster:
        producer = Producer({"bootstrap.servers": cluster.bootstrap, "message.timeout.ms": 5_000})
        errors: list[Any] = []
        producer.produce("nobody-made-me", value=b"x", on_delivery=lambda e, _: errors.append(e))
        producer.flush(WAIT_S)
        assert [e.code() for e in errors] in (
            [KafkaError.UNKNOWN_TOPIC_OR_PART],
            [KafkaError._UNKNOWN_TOPIC],
            [KafkaError._MSG_TIMED_OUT],
        )
        assert "nobody-made-me" not in _topics(cluster.bootstrap)
