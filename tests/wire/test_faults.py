"""Faults on real processes: SIGKILL of a leader under load, SIGSTOP of a leader past its
session timeout, and a whole cluster stopped and started again on the same data directory."""

from __future__ import annotations

import datetime
import signal
import socket
import struct
import time
from collections.abc import Iterator

import pytest
from kafka_verify.wire.apis import decode_response, encode_request
from kafka_verify.wire.batches import NewRecord, build_batch
from served import WAIT_S, ServedCluster, leader_of, read_all, read_exactly


@pytest.fixture
def cluster(tmp_path: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    served = ServedCluster(tmp_path, brokers=3, topics=["faults:3:3"])  # type: ignore[arg-type]
    served.start()
    try:
        yield served
    finally:
        served.stop()


def test_a_leader_killed_under_acks_all_loses_no_acknowledged_record(
    cluster: ServedCluster,
) -> None:
    from confluent_kafka import Producer

    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
            "message.timeout.ms": 60_000,
        }
    )
    acked: list[bytes] = []
    failed: list[bytes] = []

    def delivered(error: object, message: object) -> None:
        value = message.value()  # type: ignore[attr-defined]
        (failed if error is not None else acked).append(value)

    victim = f"b{leader_of(cluster.bootstrap, 'faults', 0)}"
    for i in range(3000):
        producer.produce(
            "faults", key=str(i).encode(), value=f"v{i}".encode(), on_delivery=delivered
        )
        producer.poll(0)
        if i == 1000:
            cluster.signal_node(victim, signal.SIGKILL)
        if i % 100 == 0:
            time.sleep(0.01)
    assert producer.flush(90) == 0
    assert len(acked) > 2000  # the client failed over and went on
    cluster.restart_down_nodes()
    values = [v for _, _, v in read_all(cluster.bootstrap, "faults", 3)]
    assert sorted(set(acked) - set(values)) == []  # every acknowledged record is there
    assert len(values) == len(set(values))  # and only once


def _raw_produce(port: int, topic: str, partition: int, value: bytes) -> int:
    """One acks=all Produce v8 sent straight to one broker; its error code."""
    import kio.schema.produce.v8.request as request
    from kio.static.primitive import i16, i32, i32Timedelta

    batch = build_batch([NewRecord(b"stale", value, int(time.time() * 1000))])
    produce = request.ProduceRequest(
        transactional_id=None,
        acks=i16(-1),
        timeout=i32Timedelta.parse(datetime.timedelta(seconds=5)),
        topic_data=(
            request.TopicProduceData(
                name=topic,  # type: ignore[arg-type]
                partition_data=(request.PartitionProduceData(index=i32(partition), records=batch),),
            ),
        ),
    )
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(encode_request(7, "stale-check", produce))
        size = struct.unpack(">i", read_exactly(conn, 4))[0]
        _, response = decode_response(read_exactly(conn, size), 0, 8)
    return int(response.responses[0].partition_responses[0].error_code)  # type: ignore[attr-defined]


def test_a_paused_leader_is_fenced_and_acknowledges_nothing_in_its_stale_epoch(
    cluster: ServedCluster,
) -> None:
    old = leader_of(cluster.bootstrap, "faults", 0)
    cluster.signal_node(f"b{old}", signal.SIGSTOP)
    try:
        others = ",".join(
            f"127.0.0.1:{cluster.port + b}" for b in range(cluster.brokers) if b != old
        )
        deadline = time.monotonic() + WAIT_S
        while leader_of(others, "faults", 0) == old and time.monotonic() < deadline:
            time.sleep(0.5)  # the session times out, and the controller elects another leader
        new = leader_of(others, "faults", 0)
        assert new != old
    finally:
        cluster.signal_node(f"b{old}", signal.SIGCONT)
    # At once, before it learns of the new epoch, the old leader is asked to take a write.
    error = _raw_produce(cluster.port + old, "faults", 0, b"written-to-a-stale-leader")
    assert error != 0
    values = [v for _, _, v in read_all(cluster.bootstrap, "faults", 3)]
    assert b"written-to-a-stale-leader" not in values


def test_a_cluster_started_again_on_its_data_directory_has_every_topic_record_and_commit(
    tmp_path: pytest.TempPathFactory,
) -> None:
    from confluent_kafka import Consumer, Producer, TopicPartition

    data_dir = tmp_path
    with ServedCluster(data_dir, brokers=3, topics=["kept:3:3"]) as first:  # type: ignore[arg-type]
        producer = Producer({"bootstrap.servers": first.bootstrap, "enable.idempotence": True})
        for i in range(500):
            producer.produce("kept", key=str(i).encode(), value=f"kept-{i}".encode())
        assert producer.flush(60) == 0
        committed_before = _read_some_and_commit(first.bootstrap, "kept", "keepers", 100)
        before = sorted(read_all(first.bootstrap, "kept", 3))
        port = first.port
    with ServedCluster(data_dir, brokers=3, topics=[], port=port) as second:  # type: ignore[arg-type]
        assert sorted(read_all(second.bootstrap, "kept", 3)) == before
        assert len(before) == 500
        consumer = Consumer({"bootstrap.servers": second.bootstrap, "group.id": "keepers"})
        committed = consumer.committed([TopicPartition("kept", p) for p in range(3)], timeout=30)
        consumer.close()
        assert {tp.partition: tp.offset for tp in committed} == committed_before


def _read_some_and_commit(bootstrap: str, topic: str, group: str, at_least: int) -> dict[int, int]:
    """A member of `group` reads at least `at_least` records, commits, and leaves: the offsets
    it committed, by partition."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": group,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
        }
    )
    consumer.subscribe([topic])
    read = 0
    deadline = time.monotonic() + WAIT_S
    while read < at_least and time.monotonic() < deadline:
        read += sum(1 for m in consumer.consume(num_messages=50, timeout=0.5) if m.error() is None)
    assert read >= at_least
    consumer.commit(asynchronous=False)
    committed = consumer.committed([TopicPartition(topic, p) for p in range(3)], timeout=30)
    consumer.close()
    offsets = {tp.partition: tp.offset for tp in committed}
    assert sum(o for o in offsets.values() if o > 0) >= at_least
    return offsets
