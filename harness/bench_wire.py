"""`kafka-verify bench --wire`: the real host's speed, measured with a real client.

With confluent-kafka (librdkafka), 100-byte records and linger 5 ms, against a
3-broker `kafka-verify serve` cluster with RF 3 and acks=all (or any cluster
named with `--bootstrap`), it reports:
- `produce_records_per_s`: an idempotent producer sending as fast as it can;
- `consume_records_per_s`: one consumer reading all of that back, timed from its
  first record, after a few seconds' pause in which the followers catch up (with
  `CONSUMER_SETTINGS`, which the JSON repeats);
- `produce_p50_ms` and `produce_p99_ms`: send-to-acknowledgement latency at a
  fixed 2,000 records/s.

Rules of this module:
- It is a benchmark, not a test: figures are reported, never asserted.
- A cluster it starts runs in a temporary directory, on free loopback ports,
  and is stopped (every process) before the bench returns, whatever happens.
"""

from __future__ import annotations

import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from kafka_verify.wire.cluster import ServeSettings, free_port_run, running_cluster

RECORD_BYTES = 100
LINGER_MS = 5
LATENCY_RATE_PER_S = 2_000
LATENCY_SECONDS = 10.0
PARTITIONS = 3
SETTLE_S = 3.0
# librdkafka prefetches until its queue holds queued.min.messages (100,000), then postpones
# that partition's next fetch by fetch.queue.backoff.ms, 1 s by default. A broker that
# answers a 1 MB fetch in a few milliseconds fills the queue before the application has
# drained it, and the default turns the bench into a measure of that pause (about a second
# in every 200,000 records). Kafka's own perf tools are tuned for throughput in the same way.
CONSUMER_SETTINGS: dict[str, Any] = {"fetch.queue.backoff.ms": 10}


def run_wire_bench(
    bootstrap: str | None, records: int, brokers: int = 3, replication: int = 3
) -> dict[str, Any]:
    """Figures of one bench run, against `bootstrap`, or against a `serve` cluster of `brokers`
    brokers and RF `replication` that it starts and stops."""
    try:
        import confluent_kafka  # noqa: F401
    except ImportError:
        raise RuntimeError(
            "bench --wire needs confluent-kafka: pip install 'confluent-kafka>=2.16'"
        ) from None
    topic = "bench" if bootstrap is None else f"kafka-verify-bench-{uuid.uuid4().hex[:8]}"
    with _cluster(bootstrap, topic, brokers, replication) as servers:
        produced = _produce_flat_out(servers, topic, records)
        # Acknowledged is not yet replicated everywhere and flushed: let the followers finish,
        # so the consume phase measures reading, not reading beside replication.
        time.sleep(SETTLE_S)
        consumed = _consume_all(servers, topic, records)
        latencies = _produce_at_rate(servers, topic, LATENCY_RATE_PER_S, LATENCY_SECONDS)
    latencies.sort()
    return {
        "cluster": "serve" if bootstrap is None else bootstrap,
        "brokers": brokers if bootstrap is None else None,
        "replication": replication if bootstrap is None else None,
        "records": records,
        "record_bytes": RECORD_BYTES,
        "produce_records_per_s": round(records / produced, 1),
        "consume_records_per_s": round(records / consumed, 1),
        "produce_p50_ms": round(_percentile(latencies, 0.50), 2),
        "produce_p99_ms": round(_percentile(latencies, 0.99), 2),
        "latency_rate_per_s": LATENCY_RATE_PER_S,
        "consumer_settings": dict(CONSUMER_SETTINGS),
    }


@contextmanager
def _cluster(bootstrap: str | None, topic: str, brokers: int, replication: int) -> Iterator[str]:
    if bootstrap is not None:
        _create_topic(bootstrap, topic)
        yield bootstrap
        return
    settings = ServeSettings(
        brokers=brokers,
        topics=((topic, PARTITIONS),),
        replication=replication,
        min_insync=min(2, replication),
        port=free_port_run(brokers),
    )
    with (
        tempfile.TemporaryDirectory(prefix="kafka-verify-bench-") as data_dir,
        running_cluster(Path(data_dir), settings) as cluster,
    ):
        yield cluster.bootstrap()


def _create_topic(bootstrap: str, topic: str) -> None:
    """On another cluster, a fresh topic for this run: RF 3, or every broker if fewer."""
    from confluent_kafka.admin import AdminClient, NewTopic  # type: ignore[attr-defined]

    admin = AdminClient({"bootstrap.servers": bootstrap})
    brokers = len(admin.list_topics(timeout=30).brokers)
    new = NewTopic(topic, num_partitions=PARTITIONS, replication_factor=min(3, brokers))
    for future in admin.create_topics([new], operation_timeout=30).values():
        future.result(timeout=60)


def _producer(servers: str) -> Any:
    from confluent_kafka import Producer

    return Producer(
        {
            "bootstrap.servers": servers,
            "acks": "all",
            "enable.idempotence": True,
            "linger.ms": LINGER_MS,
        }
    )


def _produce_flat_out(servers: str, topic: str, records: int) -> float:
    producer = _producer(servers)
    payload = b"x" * RECORD_BYTES
    failures: list[str] = []

    def delivered(error: Any, _message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    _warm_up(producer, topic)
    started = time.perf_counter()
    for i in range(records):
        while True:
            try:
                producer.produce(
                    topic, value=payload, key=str(i % 1000).encode(), on_delivery=delivered
                )
                break
            except BufferError:
                producer.poll(0.001)
    remaining = producer.flush(300)
    elapsed = time.perf_counter() - started
    if remaining or failures:
        raise RuntimeError(
            f"the bench producer lost {remaining + len(failures)} records: {failures[:3]}"
        )
    return elapsed


def _warm_up(producer: Any, topic: str) -> None:
    """Metadata, a producer id and a first batch, so the timed part measures steady state."""
    producer.produce(topic, value=b"warm-up")
    if producer.flush(60):
        raise RuntimeError("the cluster did not acknowledge a first record within a minute")


def _consume_all(servers: str, topic: str, records: int) -> float:
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer(
        {
            "bootstrap.servers": servers,
            "group.id": f"bench-{uuid.uuid4().hex[:8]}",
            "enable.auto.commit": False,
            **CONSUMER_SETTINGS,
        }
    )
    partitions = consumer.list_topics(topic, timeout=30).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    wanted = records + 1  # and the warm-up record
    read = 0
    # The clock starts at the first record: before it, librdkafka connects, reads metadata
    # and looks up the start offsets (about half a second), which is not reading speed.
    started = None
    deadline = time.perf_counter() + 300
    while read < wanted and time.perf_counter() < deadline:
        # Never ask for more than is left: consume() waits out its whole timeout for a
        # batch it cannot fill, and that wait at the end is not reading speed.
        batch = consumer.consume(num_messages=min(10_000, wanted - read), timeout=1.0)
        for message in batch:
            if message.error() is None:
                if started is None:
                    started = time.perf_counter()
                read += 1
    if started is None:
        raise RuntimeError("the bench consumer read nothing in 5 minutes")
    elapsed = time.perf_counter() - started
    consumer.close()
    if read < wanted:
        raise RuntimeError(f"the bench consumer read {read} of {wanted} records in 5 minutes")
    return elapsed


def _produce_at_rate(servers: str, topic: str, rate: int, seconds: float) -> list[float]:
    """Send-to-acknowledgement latencies (ms) of records sent at a fixed rate."""
    producer = _producer(servers)
    _warm_up(producer, topic)
    latencies: list[float] = []
    payload = b"y" * RECORD_BYTES

    def delivered_at(sent: float) -> Callable[[Any, Any], None]:
        def delivered(error: Any, _message: Any) -> None:
            if error is None:
                latencies.append((time.perf_counter() - sent) * 1000)

        return delivered

    started = time.perf_counter()
    total = int(rate * seconds)
    for i in range(total):
        due = started + i / rate
        while (now := time.perf_counter()) < due:
            producer.poll(min(0.001, due - now))
        producer.produce(topic, value=payload, on_delivery=delivered_at(time.perf_counter()))
        producer.poll(0)
    producer.flush(60)
    if len(latencies) < total:
        raise RuntimeError(
            f"{total - len(latencies)} of {total} timed records were not acknowledged"
        )
    return latencies


def _percentile(sorted_values: list[float], q: float) -> float:
    if not sorted_values:
        return float("nan")
    index = min(len(sorted_values) - 1, int(q * len(sorted_values)))
    return sorted_values[index]
