"""Real Kafka clients against `kafka-verify serve`: 3 brokers, RF 3, min ISR 2.

Each client (kafka-python, confluent-kafka, aiokafka, kafkajs) produces 10,000
keyed records with headers (acks=all, idempotent where it can be) to a
3-partition topic and reads every one back: once each, in send order within each
partition, byte for byte. Consumer groups rebalance when a member joins or
leaves, give each partition to one member, and keep their commits across a
member's restart.
"""

from __future__ import annotations

import asyncio
import base64
import json
import shutil
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import ServedCluster

RECORDS = 10_000
PARTITIONS = 3
REPO = Path(__file__).resolve().parents[2]
CLIENT_TOPICS = ("kafka-python", "confluent", "aiokafka", "kafkajs", "groups-kp", "groups-ck")


def key(i: int) -> bytes:
    return f"key-{i % 17}".encode()


def value(i: int) -> bytes:
    return f"value-{i}-".encode() + bytes([i % 256]) * (i % 50)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    served = ServedCluster(
        tmp_path_factory.mktemp("clients"),
        brokers=3,
        topics=[f"{name}:{PARTITIONS}:3" for name in CLIENT_TOPICS],
    )
    served.start()
    try:
        yield served
    finally:
        served.stop()


def check_read_back(read: list[tuple[int, int, bytes, bytes, int]]) -> None:
    """(partition, offset, key, value, index) of every record read: each sent record once,
    byte for byte, in send order within its partition, at increasing offsets."""
    indices = sorted(index for *_, index in read)
    assert indices == list(range(RECORDS))
    for partition, _, k, v, index in read:
        assert (k, v) == (key(index), value(index)), f"record {index} in partition {partition}"
    for partition in range(PARTITIONS):
        mine = [(offset, index) for p, offset, _, _, index in read if p == partition]
        assert mine == sorted(mine)
        assert [index for _, index in mine] == sorted(index for _, index in mine)
        assert len({offset for offset, _ in mine}) == len(mine)
    assert len({p for p, *_ in read}) == PARTITIONS  # 17 keys spread over every partition


# -- one client each: produce 10,000, read them all back ------------------------------------


def test_kafka_python_round_trip(cluster: ServedCluster) -> None:
    from kafka import KafkaConsumer, KafkaProducer, TopicPartition

    topic = "kafka-python"
    producer = KafkaProducer(
        bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
    )
    futures = [
        producer.send(topic, key=key(i), value=value(i), headers=[("index", str(i).encode())])
        for i in range(RECORDS)
    ]
    producer.flush(timeout=120)
    assert all(f.get(timeout=60).offset >= 0 for f in futures)
    producer.close()

    consumer = KafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
    partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
    consumer.assign(partitions)
    consumer.seek_to_beginning(*partitions)
    read: list[tuple[int, int, bytes, bytes, int]] = []
    deadline = time.monotonic() + 120
    while len(read) < RECORDS and time.monotonic() < deadline:
        for batch in consumer.poll(timeout_ms=1000).values():
            for m in batch:
                (index,) = [int(v) for h, v in m.headers if h == "index"]
                read.append((m.partition, m.offset, m.key, m.value, index))
    consumer.close()
    check_read_back(read)


def test_confluent_kafka_round_trip(cluster: ServedCluster) -> None:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, Producer, TopicPartition

    topic = "confluent"
    producer = Producer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "enable.idempotence": True,
            "acks": "all",
            "linger.ms": 5,
        }
    )
    failures: list[str] = []

    def delivered(error: object, message: object) -> None:
        if error is not None:
            failures.append(str(error))

    for i in range(RECORDS):
        while True:
            try:
                producer.produce(
                    topic,
                    key=key(i),
                    value=value(i),
                    headers=[("index", str(i).encode())],
                    on_delivery=delivered,
                )
                break
            except BufferError:
                producer.poll(0.05)
    assert producer.flush(120) == 0
    assert failures == []

    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": "ck-reader",
            "enable.auto.commit": False,
        }
    )
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(PARTITIONS)])
    read: list[tuple[int, int, bytes, bytes, int]] = []
    deadline = time.monotonic() + 120
    while len(read) < RECORDS and time.monotonic() < deadline:
        for m in consumer.consume(num_messages=1000, timeout=1.0):
            assert m.error() is None, m.error()
            (index,) = [int(v) for h, v in m.headers() if h == "index"]
            read.append((m.partition(), m.offset(), m.key(), m.value(), index))
    consumer.close()
    check_read_back(read)


def test_aiokafka_round_trip(cluster: ServedCluster) -> None:
    from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

    topic = "aiokafka"

    async def run() -> list[tuple[int, int, bytes, bytes, int]]:
        producer = AIOKafkaProducer(
            bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True, linger_ms=5
        )
        await producer.start()
        try:
            sent = []
            for i in range(RECORDS):
                headers = [("index", str(i).encode())]
                sent.append(await producer.send(topic, key=key(i), value=value(i), headers=headers))
            offsets = [(await f).offset for f in sent]
            assert all(offset >= 0 for offset in offsets)
        finally:
            await producer.stop()
        consumer = AIOKafkaConsumer(bootstrap_servers=cluster.bootstrap, enable_auto_commit=False)
        await consumer.start()
        read: list[tuple[int, int, bytes, bytes, int]] = []
        try:
            partitions = [TopicPartition(topic, p) for p in range(PARTITIONS)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            deadline = time.monotonic() + 120
            while len(read) < RECORDS and time.monotonic() < deadline:
                batches = await consumer.getmany(timeout_ms=1000)
                for batch in batches.values():
                    for m in batch:
                        (index,) = [int(v) for h, v in m.headers if h == "index"]
                        read.append((m.partition, m.offset, m.key, m.value, index))
        finally:
            await consumer.stop()
        return read

    check_read_back(asyncio.run(run()))


def test_kafkajs_round_trip(cluster: ServedCluster) -> None:
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (.ci/run installs it and kafkajs)"
    assert (REPO / "node_modules" / "kafkajs").is_dir(), "run `npm ci` first (.ci/run does)"
    done = subprocess.run(
        [
            node,
            str(REPO / "tests/wire/js/roundtrip.js"),
            cluster.bootstrap,
            "kafkajs",
            str(RECORDS),
            "js-readers",
        ],
        capture_output=True,
        text=True,
        timeout=300,
        cwd=REPO,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    read = []
    for line in done.stdout.splitlines():
        r = json.loads(line)
        read.append(
            (
                int(r["partition"]),
                int(r["offset"]),
                base64.b64decode(r["key"]),
                base64.b64decode(r["value"]),
                int(r["index"]),
            )
        )
    check_read_back(read)
