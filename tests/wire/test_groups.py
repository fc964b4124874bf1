"""Consumer groups of real clients (kafka-python, confluent-kafka, aiokafka and kafkajs, the
last in a Node process) against `kafka-verify serve`.

Two members split a 3-partition topic; a third joining and one leaving each
rebalance it, and at every settled moment each partition has exactly one owner.
Members commit what they read, and a member that starts again in the group
resumes at the committed offsets: it reads only what was produced since.
"""

from __future__ import annotations

import base64
import contextlib
import json
import shutil
import signal
import subprocess
import threading
import time
import traceback
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from served import ServedCluster

PARTITIONS = 3
REPO = Path(__file__).resolve().parents[2]
KAFKA_PYTHON_POLL_MS = 3_000
SETTLE_TIMEOUT_S = 90.0


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    served = ServedCluster(
        tmp_path_factory.mktemp("groups"),
        brokers=3,
        topics=[
            f"{name}:{PARTITIONS}:3"
            for name in ("groups-kp", "groups-ck", "groups-aio", "groups-js")
        ],
    )
    served.start()
    try:
        yield served
    finally:
        served.stop()


@dataclass
class Member:
    """One group member polling in its own thread; what it owns and what it read."""

    name: str
    poll: Callable[[], list[tuple[int, int, bytes]]]  # (partition, offset, value) read
    owned: Callable[[], frozenset[int]]
    commit: Callable[[], None]
    close: Callable[[], None]
    read: list[tuple[int, int, bytes]] = field(default_factory=list)
    stop: threading.Event = field(default_factory=threading.Event)
    owns: frozenset[int] = frozenset()
    error: BaseException | None = None
    trace: str = ""
    thread: threading.Thread | None = None

    def start(self) -> Member:
        self.thread = threading.Thread(target=self._run, name=self.name, daemon=True)
        self.thread.start()
        return self

    def _run(self) -> None:
        try:
            while not self.stop.is_set():
                got = self.poll()
                self.read.extend(got)
                if got:
                    self.commit()
                self.owns = self.owned()
        except BaseException as error:  # reported by the test, not lost in the thread
            self.error = error
            self.trace = traceback.format_exc()
        finally:
            self.close()

    def leave(self) -> None:
        self.stop.set()
        assert self.thread is not None
        self.thread.join(60)
        assert not self.thread.is_alive(), f"{self.name} did not stop"


def settled(members: list[Member]) -> bool:
    owned = [m.owns for m in members]
    together = [p for o in owned for p in o]
    return sorted(together) == list(range(PARTITIONS)) and all(owned)


def wait_settled(members: list[Member]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        for m in members:
            assert m.error is None, f"{m.name}: {m.trace}"
        if settled(members):
            time.sleep(2.0)  # still settled a little later: not a moment inside a rebalance
            if settled(members):
                return
        time.sleep(0.2)
    raise AssertionError(f"the group never settled: {[sorted(m.owns) for m in members]}")


def kafka_python_member(cluster: ServedCluster, topic: str, group: str, name: str) -> Member:
    from kafka import KafkaConsumer

    consumer = KafkaConsumer(
        topic,
        bootstrap_servers=cluster.bootstrap,
        group_id=group,
        client_id=name,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        session_timeout_ms=6000,
        heartbeat_interval_ms=1000,
    )

    def poll() -> list[tuple[int, int, bytes]]:
        # Long polls: kafka-python 3.0.12 can lose a rebalance when a poll's deadline passes
        # while its JoinGroup/SyncGroup task is in flight and the task then completes: the
        # next poll reads need_rejoin() as False and never takes the task's assignment, so
        # the member stops heartbeating, is expelled, and never rejoins
        # (docs/findings/2026-12-01-kafka-python-lost-rebalance.md). A poll that outlasts a
        # rebalance round on a loaded machine gives that race little room.
        batches = consumer.poll(timeout_ms=KAFKA_PYTHON_POLL_MS)
        return [(m.partition, m.offset, m.value) for b in batches.values() for m in b]

    def commit() -> None:
        from kafka.errors import CommitFailedError, RebalanceInProgressError

        # The group is rebalancing: what was read is read again by the partition's next owner.
        with contextlib.suppress(CommitFailedError, RebalanceInProgressError):
            consumer.commit()

    return Member(
        name,
        poll,
        lambda: frozenset(tp.partition for tp in consumer.assignment()),
        commit,
        consumer.close,
    )


def confluent_member(cluster: ServedCluster, topic: str, group: str, name: str) -> Member:
    from confluent_kafka import Consumer

    consumer = Consumer(
        {
            "bootstrap.servers": cluster.bootstrap,
            "group.id": group,
            "client.id": name,
            "auto.offset.reset": "earliest",
            "enable.auto.commit": False,
            "session.timeout.ms": 6000,
            "heartbeat.interval.ms": 1000,
            "partition.assignment.strategy": "range",
        }
    )
    consumer.subscribe([topic])

    def poll() -> list[tuple[int, int, bytes]]:
        got = []
        for m in consumer.consume(num_messages=500, timeout=0.2):
            if m.error() is None:
                got.append((m.partition(), m.offset(), m.value()))
        return got

    def commit() -> None:
        from confluent_kafka import KafkaError, KafkaException

        retriable = {
            KafkaError.REBALANCE_IN_PROGRESS,
            KafkaError.ILLEGAL_GENERATION,
            KafkaError.UNKNOWN_MEMBER_ID,
            KafkaError._NO_OFFSET,
        }
        try:
            consumer.commit(asynchronous=False)
        except KafkaException as error:
            # A rebalance: what was read is read again by the partition's next owner.
            if error.args[0].code() not in retriable:
                raise

    return Member(
        name,
        poll,
        lambda: frozenset(tp.partition for tp in consumer.assignment()),
        commit,
        consumer.close,
    )


def aiokafka_member(cluster: ServedCluster, topic: str, group: str, name: str) -> Member:
    """An aiokafka consumer on an event loop of its own, run only by the member's thread
    (and, to start it, by this one before that thread exists)."""
    import asyncio

    from aiokafka import AIOKafkaConsumer
    from aiokafka.errors import CommitFailedError, IllegalStateError

    loop = asyncio.new_event_loop()

    async def start() -> AIOKafkaConsumer:
        consumer = AIOKafkaConsumer(
            topic,
            bootstrap_servers=cluster.bootstrap,
            group_id=group,
            client_id=name,
            auto_offset_reset="earliest",
            enable_auto_commit=False,
            session_timeout_ms=6000,
            heartbeat_interval_ms=1000,
        )
        await consumer.start()
        return consumer

    consumer = loop.run_until_complete(start())

    def poll() -> list[tuple[int, int, bytes]]:
        batches = loop.run_until_complete(consumer.getmany(timeout_ms=200))
        return [(m.partition, m.offset, m.value) for b in batches.values() for m in b]

    def commit() -> None:
        # A rebalance: what was read is read again by the partition's next owner.
        with contextlib.suppress(CommitFailedError, IllegalStateError):
            loop.run_until_complete(consumer.commit())

    def close() -> None:
        loop.run_until_complete(consumer.stop())
        loop.close()

    return Member(
        name,
        poll,
        lambda: frozenset(tp.partition for tp in consumer.assignment()),
        commit,
        close,
    )


def kafkajs_member(cluster: ServedCluster, topic: str, group: str, name: str) -> Member:
    """A kafkajs member in a Node process of its own (tests/wire/js/group_member.js): what it
    prints is read by a thread here; it commits each record itself, and SIGTERM makes it leave."""
    node = shutil.which("node")
    assert node is not None, "Node.js is needed (.ci/run installs it and kafkajs)"
    assert (REPO / "node_modules" / "kafkajs").is_dir(), "run `npm ci` first (.ci/run does)"
    process = subprocess.Popen(
        [node, str(REPO / "tests/wire/js/group_member.js"), cluster.bootstrap, topic, group, name],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        cwd=REPO,
    )
    lock = threading.Lock()
    pending: list[tuple[int, int, bytes]] = []
    owned: list[frozenset[int]] = [frozenset()]

    def read_lines() -> None:
        assert process.stdout is not None
        for line in process.stdout:
            event = json.loads(line)
            with lock:
                if "owns" in event:
                    owned[0] = frozenset(event["owns"])
                else:
                    value = base64.b64decode(event["value"])
                    pending.append((event["partition"], event["offset"], value))

    reader = threading.Thread(target=read_lines, name=f"{name}-stdout", daemon=True)
    reader.start()

    def poll() -> list[tuple[int, int, bytes]]:
        time.sleep(0.1)
        if process.poll() is not None:
            assert process.stderr is not None
            raise RuntimeError(f"{name} exited with {process.returncode}: {process.stderr.read()}")
        with lock:
            got = list(pending)
            pending.clear()
        return got

    def owns() -> frozenset[int]:
        with lock:
            return owned[0]

    def close() -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(10)
        reader.join(10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()

    return Member(name, poll, owns, lambda: None, close)


def produce(cluster: ServedCluster, topic: str, values: list[bytes]) -> None:
    from kafka import KafkaProducer

    producer = KafkaProducer(
        bootstrap_servers=cluster.bootstrap, acks="all", enable_idempotence=True
    )
    for i, v in enumerate(values):
        producer.send(topic, key=str(i).encode(), value=v)
    producer.flush(timeout=60)
    producer.close()


def wait_read(members: list[Member], expected: set[bytes]) -> None:
    deadline = time.monotonic() + SETTLE_TIMEOUT_S
    while time.monotonic() < deadline:
        if {v for m in members for _, _, v in m.read} >= expected:
            return
        time.sleep(0.2)
    raise AssertionError("the group did not read every record")


@pytest.mark.parametrize(
    ("make", "topic"),
    [
        (kafka_python_member, "groups-kp"),
        (confluent_member, "groups-ck"),
        (aiokafka_member, "groups-aio"),
        (kafkajs_member, "groups-js"),
    ],
    ids=["kafka-python", "confluent-kafka", "aiokafka", "kafkajs"],
)
def test_a_group_rebalances_owns_each_partition_once_and_resumes_at_its_commits(
    cluster: ServedCluster, make: Callable[[ServedCluster, str, str, str], Member], topic: str
) -> None:
    group = f"readers-{topic}"
    first = [f"a-{i}".encode() for i in range(300)]
    produce(cluster, topic, first)
    members = [make(cluster, topic, group, f"m{i}").start() for i in range(2)]
    everyone = list(members)
    try:
        wait_settled(members)
        third = make(cluster, topic, group, "m2").start()
        members.append(third)
        everyone.append(third)
        wait_settled(members)
        assert all(len(m.owns) == 1 for m in members)  # three members, three partitions
        members[0].leave()
        members = members[1:]
        wait_settled(members)
        wait_read(everyone, set(first))  # what the leaver read and committed is not read again
    finally:
        for m in everyone:
            if not m.stop.is_set():
                m.leave()
    for m in everyone:
        assert m.error is None, f"{m.name}: {m.trace}"

    # Everyone has gone; what was read was committed. A member that comes back reads only
    # what is produced from now on.
    later = [f"b-{i}".encode() for i in range(60)]
    produce(cluster, topic, later)
    again = make(cluster, topic, group, "m3").start()
    try:
        wait_read([again], set(later))
        time.sleep(2.0)
    finally:
        again.leave()
    assert again.error is None
    assert sorted(v for _, _, v in again.read) == sorted(later)
