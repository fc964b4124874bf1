"""The Kafka front end over a real one-broker impl cluster, driven by real Kafka clients.

The port under the front end runs the impl `Broker` itself, its effects performed
as impl/world.py performs them (Send, ZkCall, Flush, SetTimer), on an asyncio loop
with the monotonic clock: it is the reference broker, not a stand-in. The front
end is served by `KafkaServer` on a free loopback port, and kafka-python and
confluent-kafka talk to it as they would to any Kafka cluster.
"""

from __future__ import annotations

import asyncio
import contextlib
import struct
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any

import kafka.errors
import pytest
from kafka import KafkaConsumer, KafkaProducer, TopicPartition
from kafka.admin import KafkaAdminClient, NewTopic
from kafka_verify.impl import messages as m
from kafka_verify.impl.bootstrap import initial_coordination, initial_group_store
from kafka_verify.impl.broker import Broker
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.effects import (
    Flush,
    Handler,
    Observe,
    OpenLog,
    Reply,
    Send,
    SetTimer,
    ZkCall,
)
from kafka_verify.impl.group_store import GROUP_CALLS
from kafka_verify.impl.log import PartitionLog
from kafka_verify.wire.apis import decode_response, encode_request
from kafka_verify.wire.batches import CORRUPT_MESSAGE, NewRecord, build_batch
from kafka_verify.wire.frontend import (
    KafkaFrontend,
    decode_assignment,
    encode_assignment,
    kafka_error,
)
from kafka_verify.wire.server import KafkaServer
from kio.schema.errors import ErrorCode
from kio.schema.metadata.v1 import request as metadata_v1
from kio.schema.metadata.v12 import request as metadata_v12
from kio.schema.produce.v8 import request as produce_v8

WAIT_S = 120.0  # generous: every wait below ends as soon as its condition holds
TOPICS = (("events", 1), ("orders", 3))
BROKER = "b0"
FRONT_END = "kafka"


def _config() -> ClusterConfig:
    return ClusterConfig(
        brokers=1,
        replication=1,
        min_insync=1,
        groups=1,
        any_group=True,
        producers=0,
        consumers=0,
        retention_ms=None,
        retention_records=None,
        topics=TOPICS,
        partitions=sum(count for _, count in TOPICS),
        flush_interval_ms=50,
    )


class LocalBroker:
    """A `NodePort` over the impl broker of a one-broker cluster, run on this asyncio loop."""

    def __init__(self, config: ClusterConfig) -> None:
        self.index = 0
        self.incarnation = 0
        self.config = config
        self.addresses: dict[int, tuple[str, int]] = {}
        self._loop = asyncio.get_running_loop()
        self._started = self._loop.time()
        model = config.model_config()
        self.zk = initial_coordination(config)
        self.group_store = initial_group_store(config)
        self.logs = {p: PartitionLog(config.segment_records) for p in range(model.partitions)}
        session, broker_epoch = self.zk.registrations[0]
        self.broker = Broker.initial(0, config, self.logs, session, broker_epoch)
        self._waiting: dict[int, asyncio.Future[object]] = {}
        self._timers: dict[str, asyncio.TimerHandle] = {}
        self._request_id = 0
        self._run(self.broker.start(self._now_ms()))

    def close(self) -> None:
        for timer in self._timers.values():
            timer.cancel()
        self._timers.clear()

    def _now_ms(self) -> int:
        return int((self._loop.time() - self._started) * 1000)

    def next_request_id(self) -> int:
        self._request_id += 1
        return self._request_id

    async def call(self, message: object, timeout_s: float) -> object:
        request_id: int = getattr(message, "request_id")  # noqa: B009  # every impl request has one
        answer = self._loop.create_future()
        self._waiting[request_id] = answer
        try:
            self._deliver(FRONT_END, message)
            return await asyncio.wait_for(answer, timeout_s)
        finally:
            self._waiting.pop(request_id, None)

    def cast(self, message: object) -> None:
        self._deliver(FRONT_END, message)

    def _deliver(self, src: str, message: object) -> None:
        self._run(self.broker.handle(src, message, self._now_ms()))  # type: ignore[arg-type]

    def _fire(self, name: str) -> None:
        self._timers.pop(name, None)
        self._run(self.broker.on_timer(name, self._now_ms()))

    def _run(self, handler: Handler) -> None:
        try:
            effect = next(handler)
            while True:
                effect = handler.send(self._perform(effect))
        except StopIteration:
            pass

    def _perform(self, effect: object) -> Reply:
        if isinstance(effect, Send):
            if effect.dst == FRONT_END:
                waiting = self._waiting.get(getattr(effect.message, "request_id", -1))
                if waiting is not None and not waiting.done():
                    waiting.set_result(effect.message)
            elif effect.dst == BROKER:  # the controller, in this broker, to its own replicas
                self._loop.call_soon(self._deliver, BROKER, effect.message)
        elif isinstance(effect, ZkCall):
            if isinstance(effect.request, GROUP_CALLS):
                return self.group_store.call(effect.request, self.zk.partitions)
            return self.zk.call(effect.request, self._now_ms())
        elif isinstance(effect, Flush):
            self.logs[effect.partition].flush(effect.hw)
        elif isinstance(effect, OpenLog):
            return self.logs.setdefault(effect.partition, PartitionLog(self.config.segment_records))
        elif isinstance(effect, SetTimer):
            earlier = self._timers.pop(effect.name, None)
            if earlier is not None:
                earlier.cancel()  # a timer set again replaces the one before, as in the world
            self._timers[effect.name] = self._loop.call_later(
                effect.delay_ms / 1000, self._fire, effect.name
            )
        elif not isinstance(effect, Observe):
            raise TypeError(f"the broker yielded {effect!r}, which is not an effect")
        return None


@dataclass
class Served:
    """A running front end: its Kafka port, and a way to run code on its loop."""

    port: int
    broker: LocalBroker
    loop: asyncio.AbstractEventLoop
    server: KafkaServer
    errors: list[BaseException] = field(default_factory=list)

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def on_loop(self, function: Callable[[], Any]) -> Any:
        async def run() -> Any:
            return function()

        return asyncio.run_coroutine_threadsafe(run(), self.loop).result(WAIT_S)

    def log_end(self, topic: str, index: int) -> int:
        def leo() -> int:
            record = next(t for t in self.broker.broker.topics if t.name == topic)
            log = self.broker.logs.get(record.first_partition + index)
            return -1 if log is None else log.leo

        return int(self.on_loop(leo))


@pytest.fixture
def served() -> Iterator[Served]:
    """The front end on a loop in a thread of its own, so the blocking clients can run here."""
    ready: list[Served] = []
    started = threading.Event()
    stop: list[asyncio.Event] = []

    async def main() -> None:
        broker = LocalBroker(_config())
        frontend = KafkaFrontend(broker)
        try:
            async with KafkaServer(frontend.handle) as server:
                broker.addresses[0] = ("127.0.0.1", server.port)
                stop.append(asyncio.Event())
                ready.append(Served(server.port, broker, asyncio.get_running_loop(), server))
                started.set()
                await stop[0].wait()
        finally:
            broker.close()
            started.set()

    thread = threading.Thread(target=asyncio.run, args=(main(),), name="frontend")
    thread.start()
    try:
        assert started.wait(WAIT_S) and ready, "the front end did not start"
        yield ready[0]
    finally:
        if stop:
            ready[0].loop.call_soon_threadsafe(stop[0].set)
        thread.join(WAIT_S)
        assert not thread.is_alive(), "the front end's loop did not stop"


def _wait_until(
    condition: Callable[[], bool], what: str, step: Callable[[], None] | None = None
) -> None:
    deadline = time.monotonic() + WAIT_S
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"gave up waiting for {what}")
        if step is not None:
            step()
        else:
            time.sleep(0.05)


# -- pieces of the translation ----------------------------------------------------------------------


def test_impl_error_names_map_to_kafka_codes_and_an_unknown_name_raises() -> None:
    assert kafka_error(m.NONE) == ErrorCode.none
    assert kafka_error(m.FENCED_LEADER_EPOCH) == ErrorCode.fenced_leader_epoch
    assert kafka_error(m.LEADERSHIP_LOST) == ErrorCode.not_leader_or_follower
    assert kafka_error("INCONSISTENT_GROUP_PROTOCOL") == ErrorCode.inconsistent_group_protocol
    with pytest.raises(RuntimeError, match="no code"):
        kafka_error("NOT_A_KAFKA_ERROR")


def test_a_consumer_assignment_decodes_to_what_was_encoded() -> None:
    data = encode_assignment([("orders", [0, 2]), ("events", [0])], user_data=b"\x01\x02")
    assert decode_assignment(data) == (0, (("orders", (0, 2)), ("events", (0,))), b"\x01\x02")
    assert decode_assignment(encode_assignment([])) == (0, (), None)


# -- kafka-python against the front end ---------------------------------------------------------------


def _records(count: int) -> list[tuple[bytes, bytes, list[tuple[str, bytes]], int]]:
    base = 1_700_000_000_000
    return [
        (
            f"key-{i}".encode(),
            f"value-{i}".encode() * (1 + i % 3),
            [("trace", f"t{i}".encode()), ("n", bytes([i]))],
            base + i * 7,
        )
        for i in range(count)
    ]


def test_kafka_python_reads_back_byte_for_byte_what_an_idempotent_producer_wrote(
    served: Served,
) -> None:
    sent = _records(25)
    producer = KafkaProducer(
        bootstrap_servers=served.bootstrap,
        enable_idempotence=True,
        acks="all",
        linger_ms=20,
        request_timeout_ms=30_000,
    )
    try:
        # The first records one batch each (each send waits for its answer), the rest together.
        offsets = [
            producer.send("events", key=k, value=v, headers=h, timestamp_ms=ts)
            .get(timeout=WAIT_S)
            .offset
            for k, v, h, ts in sent[:8]
        ]
        futures = [
            producer.send("events", key=k, value=v, headers=h, timestamp_ms=ts)
            for k, v, h, ts in sent[8:]
        ]
        producer.flush(WAIT_S)
        offsets += [future.get(timeout=WAIT_S).offset for future in futures]
    finally:
        producer.close(timeout=WAIT_S)
    assert offsets == list(range(len(sent)))
    assert served.log_end("events", 0) == len(sent)
    stored = served.on_loop(lambda: list(served.broker.logs[0].records))
    assert len(stored) >= 9 and all(batch.producer_id >= 0 for batch in stored)
    assert [batch.seq for batch in stored[:8]] == list(range(8))  # idempotent: sequenced

    consumer = KafkaConsumer(
        bootstrap_servers=served.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=200,
    )
    try:
        partition = TopicPartition("events", 0)
        consumer.assign([partition])
        assert consumer.beginning_offsets([partition]) == {partition: 0}
        assert consumer.end_offsets([partition]) == {partition: len(sent)}
        read: list[Any] = []

        def poll() -> None:
            for batch in consumer.poll(timeout_ms=500).values():
                read.extend(batch)

        _wait_until(lambda: len(read) >= len(sent), "the records to come back", poll)
    finally:
        consumer.close()
    assert [r.offset for r in read] == list(range(len(sent)))
    assert [(r.key, r.value, list(r.headers), r.timestamp) for r in read] == [
        (k, v, h, ts) for k, v, h, ts in sent
    ]


def test_an_idle_consumer_long_polls_and_sees_a_later_record(served: Served) -> None:
    consumer = KafkaConsumer(
        bootstrap_servers=served.bootstrap,
        enable_auto_commit=False,
        auto_offset_reset="earliest",
        fetch_max_wait_ms=300,
    )
    producer = KafkaProducer(bootstrap_servers=served.bootstrap, acks=1)
    try:
        partition = TopicPartition("orders", 1)
        consumer.assign([partition])
        assert (
            consumer.poll(timeout_ms=1_000) == {}
        )  # an empty partition: the fetch waits, then ends
        producer.send("orders", key=b"k", value=b"later", partition=1).get(timeout=WAIT_S)
        read: list[Any] = []

        def poll() -> None:
            for batch in consumer.poll(timeout_ms=500).values():
                read.extend(batch)

        _wait_until(lambda: bool(read), "the later record", poll)
        assert [(r.offset, r.key, r.value) for r in read] == [(0, b"k", b"later")]
    finally:
        producer.close(timeout=WAIT_S)
        consumer.close()


def test_create_topics_makes_a_topic_and_refuses_what_kafka_refuses(served: Served) -> None:
    admin = KafkaAdminClient(bootstrap_servers=served.bootstrap, request_timeout_ms=30_000)
    try:
        with pytest.raises(kafka.errors.TopicAlreadyExistsError):
            admin.create_topics([NewTopic("orders", 3, 1)])
        with pytest.raises(kafka.errors.InvalidTopicError):
            admin.create_topics([NewTopic("no spaces", 1, 1)])
        with pytest.raises(kafka.errors.InvalidTopicError):
            admin.create_topics([NewTopic("__consumer_offsets", 1, 1)])
        with pytest.raises(kafka.errors.InvalidReplicationFactorError):
            admin.create_topics([NewTopic("too-wide", 1, 2)])  # one broker
        admin.create_topics([NewTopic("brand-new", 2, 1)])
    finally:
        admin.close()

    # A one-broker cluster: the broker elects itself on its controller's next tick.
    def brand_new_led() -> bool:
        response = _exchange(served.port, metadata_v1.MetadataRequest(topics=None))
        topic = next((t for t in response.topics if t.name == "brand-new"), None)
        return topic is not None and all(p.leader_id == 0 for p in topic.partitions)

    _wait_until(brand_new_led, "the created topic's leaders")
    producer = KafkaProducer(bootstrap_servers=served.bootstrap, acks=1)
    try:
        producer.send("brand-new", value=b"first", partition=1).get(timeout=WAIT_S)
    finally:
        producer.close(timeout=WAIT_S)
    _wait_until(lambda: served.log_end("brand-new", 1) == 1, "the record in the new topic")
    everything = _exchange(served.port, metadata_v1.MetadataRequest(topics=None))
    assert [(t.name, len(t.partitions)) for t in everything.topics] == [
        *TOPICS,
        ("brand-new", 2),
    ]
    assert [(b.node_id, b.port) for b in everything.brokers] == [(0, served.port)]
    assert all(
        (p.error_code, p.leader_id) == (ErrorCode.none, 0)
        for t in everything.topics
        for p in t.partitions
    )


def test_without_auto_creation_an_unknown_topic_stays_unknown(served: Served) -> None:
    assert not served.broker.config.auto_create_topics
    for request in (
        metadata_v1.MetadataRequest(topics=(metadata_v1.MetadataRequestTopic(name="unheard"),)),
        metadata_v12.MetadataRequest(
            topics=(metadata_v12.MetadataRequestTopic(topic_id=None, name="unheard"),),
            allow_auto_topic_creation=True,
            include_topic_authorized_operations=False,
        ),
    ):
        (topic,) = _exchange(served.port, request).topics
        assert (topic.name, topic.error_code) == ("unheard", ErrorCode.unknown_topic_or_partition)
    everything = _exchange(served.port, metadata_v1.MetadataRequest(topics=None))
    assert "unheard" not in [t.name for t in everything.topics]


def test_acks_zero_records_get_no_answer_and_are_stored(served: Served) -> None:
    producer = KafkaProducer(bootstrap_servers=served.bootstrap, acks=0)
    try:
        for n in range(5):
            producer.send("orders", value=f"fire-{n}".encode(), partition=0)
        producer.flush(WAIT_S)
    finally:
        producer.close(timeout=WAIT_S)
    _wait_until(lambda: served.log_end("orders", 0) == 5, "the acks=0 records to be stored")


# -- a raw Produce request with a corrupt batch --------------------------------------------------------


def _exchange(port: int, request: Any, correlation_id: int = 1) -> Any:
    """Send one request on a fresh connection and decode its answer."""

    async def exchange() -> Any:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        try:
            writer.write(encode_request(correlation_id, "raw", request))
            await writer.drain()
            (size,) = struct.unpack(">i", await reader.readexactly(4))
            payload = await reader.readexactly(size)
            got_id, response = decode_response(payload, request.__api_key__, request.__version__)
            assert got_id == correlation_id
            return response
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError):
                await writer.wait_closed()

    return asyncio.run(asyncio.wait_for(exchange(), WAIT_S))


def _raw_produce(port: int, records: bytes, correlation_id: int) -> Any:
    request = produce_v8.ProduceRequest(
        transactional_id=None,
        acks=-1,
        timeout=timedelta(seconds=30),
        topic_data=(
            produce_v8.TopicProduceData(
                name="events",
                partition_data=(produce_v8.PartitionProduceData(index=0, records=records),),
            ),
        ),
    )
    return _exchange(port, request, correlation_id)


def test_a_corrupt_batch_gets_corrupt_message_and_is_not_stored(served: Served) -> None:
    batch = build_batch([NewRecord(b"k", b"v", 1_700_000_000_000, (("h", b"x"),))])
    corrupt = bytearray(batch)
    corrupt[-2] ^= 0xFF  # inside the records, which the CRC covers
    response = _raw_produce(served.port, bytes(corrupt), correlation_id=7)
    (answer,) = response.responses[0].partition_responses
    assert answer.error_code.value == CORRUPT_MESSAGE
    assert served.log_end("events", 0) == 0

    good = _raw_produce(served.port, batch, correlation_id=8)
    (answer,) = good.responses[0].partition_responses
    assert (answer.error_code, answer.base_offset) == (ErrorCode.none, 0)
    assert served.log_end("events", 0) == 1


# -- a consumer group of kafka-python consumers --------------------------------------------------------


class GroupMember:
    """A subscribed kafka-python consumer polling in a thread of its own."""

    def __init__(self, bootstrap: str, group: str, name: str) -> None:
        self.consumer = KafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group,
            client_id=name,
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            fetch_max_wait_ms=200,
            heartbeat_interval_ms=1_000,
        )
        self.consumer.subscribe(["orders"])
        self.lock = threading.Lock()
        self.read: list[Any] = []
        self.assigned: frozenset[int] = frozenset()
        self.commit_now = threading.Event()
        self.committed = threading.Event()
        self.stop = threading.Event()
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._poll, name=name)
        self.thread.start()

    def _poll(self) -> None:
        try:
            while not self.stop.is_set():
                batches = self.consumer.poll(timeout_ms=200)
                with self.lock:
                    for batch in batches.values():
                        self.read.extend(batch)
                    self.assigned = frozenset(tp.partition for tp in self.consumer.assignment())
                if self.commit_now.is_set():
                    self.commit_now.clear()
                    self.consumer.commit()
                    self.committed.set()
        except BaseException as error:  # reported by the test, in its own thread
            self.failure = error
        finally:
            self.consumer.close()

    def partitions(self) -> frozenset[int]:
        with self.lock:
            return self.assigned

    def offsets_read(self) -> dict[int, list[int]]:
        with self.lock:
            read: dict[int, list[int]] = {}
            for record in self.read:
                read.setdefault(record.partition, []).append(record.offset)
            return read

    def close(self) -> None:
        self.stop.set()
        self.thread.join(WAIT_S)
        assert not self.thread.is_alive(), "a group member's thread did not stop"


def test_a_group_of_two_splits_the_partitions_commits_and_a_restarted_member_resumes(
    served: Served,
) -> None:
    producer = KafkaProducer(bootstrap_servers=served.bootstrap, acks="all")
    members: list[GroupMember] = []
    try:
        for index in range(3):
            for n in range(4):
                producer.send("orders", value=f"first-{index}-{n}".encode(), partition=index)
        producer.flush(WAIT_S)
        members = [GroupMember(served.bootstrap, "audit", f"member-{i}") for i in range(2)]

        def split() -> bool:
            owned = [member.partitions() for member in members]
            return all(owned) and sorted(p for o in owned for p in o) == [0, 1, 2]

        _wait_until(split, "the two members to split the three partitions")
        owned = [member.partitions() for member in members]
        assert owned[0].isdisjoint(owned[1]) and owned[0] | owned[1] == {0, 1, 2}

        def all_read() -> bool:
            for member in members:
                read = member.offsets_read()
                if any(sorted(set(read.get(p, []))) != [0, 1, 2, 3] for p in member.partitions()):
                    return False
            return split()

        _wait_until(all_read, "each member to read its partitions")
        for member in members:
            assert set(member.offsets_read()) <= member.partitions()
            member.commit_now.set()
        for member in members:
            assert member.committed.wait(WAIT_S), "a member's commit did not complete"
        assert all(member.failure is None for member in members)
    finally:
        for member in members:
            member.close()
    assert all(member.failure is None for member in members), [m.failure for m in members]

    try:
        for index in range(3):
            producer.send("orders", value=f"second-{index}".encode(), partition=index)
        producer.flush(WAIT_S)
    finally:
        producer.close(timeout=WAIT_S)

    restarted = GroupMember(served.bootstrap, "audit", "member-again")
    try:
        _wait_until(
            lambda: restarted.partitions() == {0, 1, 2}, "the restarted member's assignment"
        )
        _wait_until(
            lambda: all(restarted.offsets_read().get(p) for p in range(3)),
            "the restarted member to read every partition",
        )
        read = restarted.offsets_read()
        # It resumes at the committed offset 4 of each partition: nothing before it is read again.
        assert {p: offsets[0] for p, offsets in read.items()} == {0: 4, 1: 4, 2: 4}
    finally:
        restarted.close()
    assert restarted.failure is None

    checker = KafkaConsumer(
        bootstrap_servers=served.bootstrap, group_id="audit", enable_auto_commit=False
    )
    try:
        assert [checker.committed(TopicPartition("orders", p)) for p in range(3)] == [4, 4, 4]
    finally:
        checker.close()


# -- confluent-kafka (librdkafka) against the front end -----------------------------------------------


def test_confluent_kafka_reads_back_what_its_idempotent_producer_wrote(served: Served) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    sent = _records(30)
    delivered: list[tuple[int, int]] = []
    failures: list[str] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))
        else:
            delivered.append((message.partition(), message.offset()))

    producer = confluent_kafka.Producer(
        {
            "bootstrap.servers": served.bootstrap,
            "enable.idempotence": True,
            "linger.ms": 5,
            "batch.num.messages": 7,
        }
    )
    for k, v, h, ts in sent:
        producer.produce(
            "orders", key=k, value=v, headers=h, timestamp=ts, partition=2, on_delivery=on_delivery
        )
    assert producer.flush(WAIT_S) == 0
    assert failures == []
    assert sorted(delivered) == [(2, offset) for offset in range(len(sent))]

    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": served.bootstrap,
            "group.id": "reader",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 200,
        }
    )
    try:
        consumer.assign([confluent_kafka.TopicPartition("orders", 2, 0)])
        read: list[Any] = []

        def poll() -> None:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                read.append(message)

        _wait_until(lambda: len(read) >= len(sent), "the records to come back", poll)
        low, high = consumer.get_watermark_offsets(
            confluent_kafka.TopicPartition("orders", 2), timeout=WAIT_S
        )
    finally:
        consumer.close()
    assert (low, high) == (0, len(sent))
    assert [r.offset() for r in read] == list(range(len(sent)))
    assert [(r.key(), r.value(), r.headers(), r.timestamp()[1]) for r in read] == [
        (k, v, h, ts) for k, v, h, ts in sent
    ]


def test_a_confluent_kafka_group_member_reads_every_partition_and_commits(served: Served) -> None:
    confluent_kafka = pytest.importorskip("confluent_kafka")
    producer = confluent_kafka.Producer({"bootstrap.servers": served.bootstrap})
    for index in range(3):
        for n in range(3):
            producer.produce("orders", value=f"{index}-{n}".encode(), partition=index)
    assert producer.flush(WAIT_S) == 0
    consumer = confluent_kafka.Consumer(
        {
            "bootstrap.servers": served.bootstrap,
            "group.id": "librdkafka-group",
            "enable.auto.commit": False,
            "auto.offset.reset": "earliest",
            "fetch.wait.max.ms": 200,
        }
    )
    try:
        consumer.subscribe(["orders"])
        read: dict[int, list[int]] = {}

        def poll() -> None:
            message = consumer.poll(0.5)
            if message is not None:
                assert message.error() is None, message.error()
                read.setdefault(message.partition(), []).append(message.offset())

        _wait_until(lambda: sum(map(len, read.values())) >= 9, "every partition's records", poll)
        assert read == {0: [0, 1, 2], 1: [0, 1, 2], 2: [0, 1, 2]}
        assert {tp.partition for tp in consumer.assignment()} == {0, 1, 2}
        consumer.commit(asynchronous=False)
        committed = consumer.committed(
            [confluent_kafka.TopicPartition("orders", p) for p in range(3)], timeout=WAIT_S
        )
        assert sorted((tp.partition, tp.offset) for tp in committed) == [(0, 3), (1, 3), (2, 3)]
    finally:
        consumer.close()
