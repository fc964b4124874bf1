"""Real Kafka clients behind one small interface: confluent-kafka (librdkafka) and kafka-python.

Rules of this module:
- A send waits for its own acknowledgement, as Jepsen's does, and says what
  the client knows: ("ok", offset), or ("ok", None) when the client reports
  success without an offset (librdkafka does, when a broker answers
  DUPLICATE_SEQUENCE_NUMBER); ("fail", reason) only when the record was
  certainly not written (refused before it left the client, or an error that
  a broker gives only without appending), else ("info", reason): a timeout
  or a lost connection leaves the outcome unknown.
- A poll returns (partition, offset, value) of the records it read; errors
  the client reports for one partition (a leader moving) are not records and
  are dropped, as an application would retry them.
- `-X key=value` settings pass through unchanged to confluent-kafka, whose
  librdkafka names they are; for kafka-python, dots become underscores and a
  setting goes to each client class that knows it. A setting no client knows,
  or a value a client refuses, is a `ClientSettingError` (one sentence).
- A consumer commits what it has read: the position after the last record
  it returned of each partition it owns (`positions`), given explicitly, so
  the history can say what each commit asked for. Positions of partitions a
  rebalance takes away are forgotten in the rebalance callback, before the
  client can commit them again. A commit that the client answers with an
  error raises `CommitError`: "fail" for the group's definite refusals
  (generation, membership, rebalance), else "info" (a timeout or a lost
  coordinator leaves the outcome unknown).
- In subscribe mode confluent-kafka's rebalance callbacks (assigned, revoked,
  lost) are kept, in order, as (event, partitions) for the caller to take
  with `rebalances()` and record: librdkafka runs them inside the client's
  own calls (poll). kafka-python's listener runs on its own I/O loop, so its
  callbacks only keep positions right and are not reported.
- Nothing here records history: the caller records around each call.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any, Protocol

CLIENTS = ("confluent", "kafka-python")
# Broker errors that answer a produce without appending it (Kafka's error codes): any
# other error may come after an earlier attempt was written, so it leaves the send unknown.
DEFINITE_PRODUCE_ERRORS = frozenset(
    {
        "MSG_SIZE_TOO_LARGE",
        "INVALID_REQUIRED_ACKS",
        "TOPIC_AUTHORIZATION_FAILED",
        "CLUSTER_AUTHORIZATION_FAILED",
        "INVALID_RECORD",
        "RECORD_LIST_TOO_LARGE",
        "UNKNOWN_TOPIC_OR_PART",
        "_UNKNOWN_PARTITION",
        "_UNKNOWN_TOPIC",
        "_INVALID_ARG",
    }
)
DEFINITE_KAFKA_PYTHON_ERRORS = frozenset(
    {
        "MessageSizeTooLargeError",
        "InvalidRequiredAcksError",
        "TopicAuthorizationFailedError",
        "ClusterAuthorizationFailedError",
        "InvalidRecordError",
        "RecordListTooLargeError",
        "UnknownTopicOrPartitionError",
    }
)

# Commit errors by which a group refuses a commit outright (Kafka's error names): any other
# error (a timeout, a coordinator moving) may follow an attempt that was applied.
DEFINITE_COMMIT_ERRORS = frozenset(
    {
        "ILLEGAL_GENERATION",
        "UNKNOWN_MEMBER_ID",
        "REBALANCE_IN_PROGRESS",
        "FENCED_INSTANCE_ID",
        "CommitFailedError",
        "IllegalGenerationError",
        "UnknownMemberIdError",
        "RebalanceInProgressError",
        "FencedInstanceIdError",
    }
)

SendOutcome = tuple[str, int | str | None]  # ("ok", offset) | ("fail"|"info", reason)
Polled = tuple[int, int, bytes]  # partition, offset, value
Rebalance = tuple[str, list[int]]  # ("assigned" | "revoked" | "lost", partitions)


def _offset(offset: int | None) -> int | None:
    """An acknowledged send's offset, or None when the client has none to give (None or < 0)."""
    return int(offset) if offset is not None and offset >= 0 else None


@dataclass(frozen=True)
class PartitionView:
    """One partition as a client's metadata shows it: its leader and its replicas, in the
    order the cluster prefers them as leader (empty when the client library does not say)."""

    leader: int | None
    replicas: tuple[int, ...]


@dataclass(frozen=True)
class BrokerMetadata:
    """What one broker's Metadata answer says: the controller it names, and each partition's
    leader, replicas and in-sync replicas (as that broker knows them)."""

    controller: int | None
    partitions: dict[int, PartitionView]
    isrs: dict[int, tuple[int, ...]]
    brokers: dict[int, str]  # broker id -> HOST:PORT, as the cluster advertises them


def find_coordinator(bootstrap: str, group: str, timeout_s: float = 5.0) -> int | None:
    """The broker id that FindCoordinator (v0, plaintext) names as `group`'s coordinator,
    asked of each bootstrap broker in turn; None when none names one. Neither client library
    says which broker coordinates a group, so this asks the cluster the way they do."""
    from kio.schema.errors import ErrorCode
    from kio.schema.find_coordinator.v0.request import FindCoordinatorRequest
    from kio.schema.find_coordinator.v0.response import FindCoordinatorResponse

    for address in bootstrap.split(","):
        answer = _ask_raw(
            address,
            FindCoordinatorRequest(key=group),
            FindCoordinatorResponse,
            timeout_s,  # type: ignore[arg-type]
        )
        if answer is None:
            continue  # this broker is down or answered nonsense: ask the next
        if answer.error_code == ErrorCode.none and answer.node_id >= 0:
            return int(answer.node_id)
    return None


def broker_metadata(address: str, topic: str, timeout_s: float = 5.0) -> BrokerMetadata | None:
    """One broker's own Metadata answer (v1, plaintext) about `topic`; None when it does not
    answer. Client libraries ask whichever broker they like and keep no ISR, so this asks the
    one broker named, as they do: a partition's leader is the broker whose ISR is current."""
    from kio.schema.errors import ErrorCode
    from kio.schema.metadata.v1.request import MetadataRequest, MetadataRequestTopic
    from kio.schema.metadata.v1.response import MetadataResponse

    request = MetadataRequest(topics=(MetadataRequestTopic(name=topic),))  # type: ignore[arg-type]
    answer = _ask_raw(address, request, MetadataResponse, timeout_s)
    if answer is None:
        return None
    partitions: dict[int, PartitionView] = {}
    isrs: dict[int, tuple[int, ...]] = {}
    for found in answer.topics:
        if found.name != topic or found.error_code != ErrorCode.none:
            continue
        for p in found.partitions:
            leader = int(p.leader_id) if p.leader_id >= 0 else None
            partitions[int(p.partition_index)] = PartitionView(
                leader, tuple(int(r) for r in p.replica_nodes)
            )
            isrs[int(p.partition_index)] = tuple(sorted(int(r) for r in p.isr_nodes))
    controller = int(answer.controller_id) if answer.controller_id >= 0 else None
    brokers = {int(b.node_id): f"{b.host}:{b.port}" for b in answer.brokers}
    return BrokerMetadata(controller, partitions, isrs, brokers)


def ask_metadata(
    bootstrap: str, topic: str, broker: int | None = None, timeout_s: float = 5.0
) -> BrokerMetadata | None:
    """The Metadata answer of the first bootstrap broker that gives one or, with `broker`, of
    that broker itself (at the address the cluster advertises for it); None without one."""
    for address in bootstrap.split(","):
        first = broker_metadata(address, topic, timeout_s)
        if first is None:
            continue
        if broker is None:
            return first
        address = first.brokers.get(broker, "")
        return broker_metadata(address, topic, timeout_s) if address else None
    return None


def _ask_raw(address: str, request: Any, response_type: Any, timeout_s: float) -> Any:
    """One request (request header v1, response header v0) to the broker at HOST:PORT, and its
    decoded answer; None when the broker is down or answers nonsense."""
    import io
    import socket
    import struct

    from kio.schema.request_header.v1 import RequestHeader
    from kio.schema.response_header.v0 import ResponseHeader
    from kio.serial import entity_reader, entity_writer
    from kio.static.primitive import i16, i32

    frame = io.BytesIO()
    header = RequestHeader(
        request_api_key=i16(type(request).__api_key__),
        request_api_version=i16(type(request).__version__),
        correlation_id=i32(1),
        client_id="kafka-verify-nemesis",
    )
    entity_writer(RequestHeader)(frame, header)
    entity_writer(type(request))(frame, request)
    payload = struct.pack(">i", len(frame.getvalue())) + frame.getvalue()
    host, _, port = address.strip().rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s) as conn:
            conn.sendall(payload)
            size = struct.unpack(">i", _read_exactly(conn, 4))[0]
            answer = _read_exactly(conn, size)
        _, at = entity_reader(ResponseHeader)(answer, 0)
        decoded, _ = entity_reader(response_type)(answer, at)
    except (OSError, ValueError, struct.error):
        return None
    return decoded


def _read_exactly(conn: Any, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("the broker closed the connection")
        data += chunk
    return data


class ClientSettingError(ValueError):
    """A `-X` setting no client takes, or a value a client refuses: one sentence."""


class CommitError(Exception):
    """A commit the client answered with an error: `kind` is "fail" (refused) or "info"."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind
        self.reason = reason


def commit_error(name: str, detail: str) -> CommitError:
    """The CommitError for a client error named `name` (Kafka's name or the exception's)."""
    kind = "fail" if name in DEFINITE_COMMIT_ERRORS else "info"
    return CommitError(kind, f"{name}: {detail}"[:200])


class _Positions:
    """What a consumer has read of each partition it owns, and its rebalance callbacks."""

    def __init__(self) -> None:
        self.next_offset: dict[int, int] = {}
        self.events: list[Rebalance] = []

    def read(self, partition: int, offset: int) -> None:
        if offset + 1 > self.next_offset.get(partition, -1):
            self.next_offset[partition] = offset + 1

    def rebalanced(self, event: str, partitions: list[int]) -> None:
        self.events.append((event, sorted(partitions)))
        if event != "assigned":
            for p in partitions:
                self.next_offset.pop(p, None)

    def take_events(self) -> list[Rebalance]:
        events, self.events = self.events, []
        return events


class ProducerClient(Protocol):
    def send(self, topic: str, partition: int, value: bytes, timeout_s: float) -> SendOutcome: ...

    def close(self) -> None: ...


class ConsumerClient(Protocol):
    def assign(self, topic: str, partitions: list[int], from_beginning: bool) -> None: ...

    def subscribe(self, topic: str) -> None: ...

    def poll(self, timeout_s: float, max_records: int) -> list[Polled]: ...

    def positions(self) -> dict[int, int]:
        """Partition -> the offset after the last record read of it, for partitions owned now."""
        ...

    def commit(self, offsets: dict[int, int]) -> dict[int, int]:
        """Commit these offsets; what the client says it committed (CommitError if not)."""
        ...

    def rebalances(self) -> list[Rebalance]:
        """The rebalance callbacks since the last call, in order."""
        ...

    def high_watermarks(
        self, topic: str, partitions: list[int], timeout_s: float
    ) -> dict[int, int]:
        """Each partition's high watermark (read_committed: its last stable offset)."""
        ...

    def close(self) -> None:
        """Close without committing: what a crash looks like to the group."""
        ...


@dataclass(frozen=True)
class ClientFactory:
    """Makes producers and consumers of one client library with the user's settings."""

    client: str
    bootstrap: str
    settings: Mapping[str, str]

    def producer(self) -> ProducerClient:
        if self.client == "confluent":
            return ConfluentProducer(self.bootstrap, self.settings)
        return KafkaPythonProducer(self.bootstrap, self.settings)

    def consumer(self, group: str) -> ConsumerClient:
        if self.client == "confluent":
            return ConfluentConsumer(self.bootstrap, group, self.settings)
        return KafkaPythonConsumer(self.bootstrap, group, self.settings)

    def leaders(self, topic: str, timeout_s: float = 5.0) -> dict[int, int]:
        """Partition -> the broker id that leads it, as the cluster's metadata says now;
        partitions without a leader are left out."""
        return {
            p: view.leader
            for p, view in self.layout(topic, timeout_s).items()
            if view.leader is not None
        }

    def layout(self, topic: str, timeout_s: float = 5.0) -> dict[int, PartitionView]:
        """Partition -> its leader (None without one) and replicas in the metadata's order,
        as the cluster says now. Security settings (-X) are used as given."""
        if self.client == "confluent":
            from confluent_kafka.admin import AdminClient

            config: dict[str, Any] = _confluent_config(
                self.bootstrap, {}, self.settings, ADMIN_DROP
            )
            metadata = AdminClient(config).list_topics(topic, timeout=timeout_s)
            found = metadata.topics.get(topic)
            if found is None or found.error is not None:
                return {}
            return {
                p.id: PartitionView(
                    p.leader if p.leader >= 0 else None, tuple(int(r) for r in p.replicas)
                )
                for p in found.partitions.values()
            }
        from kafka import KafkaConsumer  # type: ignore[import-untyped]

        consumer = KafkaConsumer(
            bootstrap_servers=self.bootstrap.split(","),
            request_timeout_ms=int(timeout_s * 1000) + 1000,
            **kafka_python_settings(self.settings, _SECURITY_SETTINGS),
        )
        try:
            consumer.topics()  # a metadata request
            cluster = consumer._client.cluster
            partitions = cluster.partitions_for_topic(topic) or set()
            views = {}
            for p in partitions:
                leader = cluster.leader_for_partition(_kafka_python_partition(topic, p))
                # kafka-python's public metadata names leaders, not replica order.
                views[p] = PartitionView(
                    int(leader) if leader is not None and leader >= 0 else None, ()
                )
            return views
        finally:
            consumer.close()

    def eager_groups(self) -> bool:
        """Whether groups rebalance eagerly under these settings (both clients' default):
        not with a cooperative assignor, the KIP-848 protocol, or static membership."""
        for key, value in self.settings.items():
            name = key.replace("_", ".").lower()
            if name == "partition.assignment.strategy" and "cooperative" in value.lower():
                return False
            if name == "group.protocol" and value.strip().lower() == "consumer":
                return False
            if name == "group.instance.id" and value.strip():
                return False
        return True

    def idempotent(self) -> bool:
        """Whether producers deduplicate retries under these settings (both default to yes)."""
        key = "enable.idempotence"
        value = self.settings.get(key, "true")
        return value.strip().lower() in ("true", "1", "yes")

    def acks(self) -> int:
        """What producers' acknowledgements wait for under these settings, as Kafka's `acks`:
        -1 (all, the workload's default), 1 or 0. librdkafka also takes request.required.acks."""
        acks = -1
        for key, value in self.settings.items():
            if key.replace("_", ".").lower() in ("acks", "request.required.acks"):
                spelled = value.strip().lower()
                if spelled not in _ACKS:
                    raise ClientSettingError(f"-X {key}={value}: acks must be all, -1, 1 or 0")
                acks = _ACKS[spelled]
        return acks


# Kafka's spellings of `acks`: all and -1 are one setting.
_ACKS = {"all": -1, "-1": -1, "1": 1, "0": 0}


# What an admin client takes of the user's -X settings: not the producer's or consumer's own.
ADMIN_DROP = frozenset(
    {
        "acks",
        "enable.idempotence",
        "isolation.level",
        "auto.offset.reset",
        "enable.auto.commit",
        "linger.ms",
    }
)
_SECURITY_SETTINGS = {
    name: None
    for name in (
        "security_protocol",
        "sasl_mechanism",
        "sasl_plain_username",
        "sasl_plain_password",
        "ssl_cafile",
        "ssl_certfile",
        "ssl_keyfile",
        "ssl_check_hostname",
    )
}


def _kafka_python_partition(topic: str, partition: int) -> object:
    from kafka import TopicPartition  # type: ignore[import-untyped]

    return TopicPartition(topic, partition)


def parse_settings(pairs: list[str]) -> dict[str, str]:
    """`key=value` strings as a dict; a pair without `=` is a ClientSettingError."""
    settings: dict[str, str] = {}
    for pair in pairs:
        key, equals, value = pair.partition("=")
        if not equals or not key.strip():
            raise ClientSettingError(f"-X {pair!r} is not key=value")
        settings[key.strip()] = value.strip()
    return settings


# -- confluent-kafka ---------------------------------------------------------------------------


PRODUCER_DEFAULTS = {
    "acks": "all",
    "enable.idempotence": "true",
    "linger.ms": "1",
    "request.timeout.ms": "5000",
    "message.timeout.ms": "10000",
}
START_QUERY_TIMEOUT_S = 10.0  # an assignment's committed-offset and log-start queries
CONSUMER_DEFAULTS = {
    "enable.auto.commit": "false",
    "auto.offset.reset": "earliest",
    "session.timeout.ms": "6000",
    "heartbeat.interval.ms": "1000",
}
# librdkafka names that belong to one side: kept from the other, which would only warn.
PRODUCER_ONLY = frozenset({*PRODUCER_DEFAULTS, "retries", "max.in.flight", "compression.type"})
CONSUMER_ONLY = frozenset({*CONSUMER_DEFAULTS, "isolation.level", "group.instance.id"})


def _librdkafka_log() -> logging.Logger:
    """Where librdkafka's log goes: a logger that keeps quiet unless the user configures it
    (every fault makes each client log its lost connections)."""
    log = logging.getLogger("kafka_verify.workload.librdkafka")
    if not log.handlers:
        log.addHandler(logging.NullHandler())
        log.propagate = False
    return log


def _confluent_config(
    bootstrap: str, defaults: Mapping[str, str], settings: Mapping[str, str], drop: frozenset[str]
) -> dict[str, object]:
    config: dict[str, object] = {"bootstrap.servers": bootstrap, **defaults}
    config.update({k: v for k, v in settings.items() if k not in drop})
    config["logger"] = _librdkafka_log()
    return config


def _confluent_error(error: Exception) -> ClientSettingError:
    return ClientSettingError(f"confluent-kafka refused the settings: {error}")


class ConfluentProducer:
    def __init__(self, bootstrap: str, settings: Mapping[str, str]) -> None:
        from confluent_kafka import KafkaException, Producer

        config = _confluent_config(bootstrap, PRODUCER_DEFAULTS, settings, CONSUMER_ONLY)
        try:
            self._producer = Producer(config)
        except KafkaException as error:
            raise _confluent_error(error) from None

    def send(self, topic: str, partition: int, value: bytes, timeout_s: float) -> SendOutcome:
        from confluent_kafka import KafkaException

        done: list[SendOutcome] = []

        def delivered(error: Any, message: Any) -> None:
            if error is None:
                done.append(("ok", _offset(message.offset())))
            elif error.name() in DEFINITE_PRODUCE_ERRORS:
                done.append(("fail", error.name()))
            else:
                done.append(("info", error.name()))

        try:
            self._producer.produce(topic, value=value, partition=partition, on_delivery=delivered)
        except KafkaException as error:
            if error.args and error.args[0].fatal():
                raise  # this producer is done for: the caller starts another
            return ("fail", f"not enqueued: {error}")
        except BufferError as error:
            return ("fail", f"not enqueued: {error}")
        deadline = time.monotonic() + timeout_s
        while not done and time.monotonic() < deadline:
            self._producer.poll(0.05)
        return done[0] if done else ("info", "timed out")

    def close(self) -> None:
        # Undelivered records stay unknown (their sends are already info); do not wait on them.
        self._producer.purge()
        self._producer.flush(1.0)


class ConfluentConsumer:
    def __init__(self, bootstrap: str, group: str, settings: Mapping[str, str]) -> None:
        from confluent_kafka import Consumer, KafkaException

        config = _confluent_config(
            bootstrap, {"group.id": group, **CONSUMER_DEFAULTS}, settings, PRODUCER_ONLY
        )
        try:
            self._consumer = Consumer(config)
        except KafkaException as error:
            raise _confluent_error(error) from None
        reset = str(config.get("auto.offset.reset", "largest")).lower()
        self._reset_earliest = reset in ("earliest", "smallest", "beginning")
        self._positions = _Positions()
        self._topic = ""

    def assign(self, topic: str, partitions: list[int], from_beginning: bool) -> None:
        from confluent_kafka import OFFSET_BEGINNING, OFFSET_STORED, TopicPartition

        logical = OFFSET_BEGINNING if from_beginning else OFFSET_STORED
        starts = self._explicit_starts(topic, partitions, from_beginning)
        self._topic = topic
        self._positions.next_offset.clear()
        self._consumer.assign(
            [TopicPartition(topic, p, starts.get(p, logical)) for p in partitions]
        )

    def _explicit_starts(
        self, topic: str, partitions: list[int], from_beginning: bool
    ) -> dict[int, int]:
        """Where each partition starts, as a concrete offset: the committed one, else (with
        `auto.offset.reset=earliest`) the log start. librdkafka resolves a logical start
        (stored, beginning) with an offset query that a late answer to an earlier copy of it
        restarts, mid-consumption, sending the consumer back to the log start
        (docs/findings/2026-12-01-librdkafka-stale-list-offsets.md): a concrete offset asks
        nothing. A partition left out keeps its logical start, as when a query fails."""
        from confluent_kafka import KafkaException, TopicPartition

        starts: dict[int, int] = {}
        try:
            if not from_beginning:
                asked = [TopicPartition(topic, p) for p in partitions]
                for tp in self._consumer.committed(asked, timeout=START_QUERY_TIMEOUT_S):
                    if tp.error is None and tp.offset >= 0:
                        starts[tp.partition] = int(tp.offset)
            if from_beginning or self._reset_earliest:
                for p in partitions:
                    if p not in starts:
                        low, _ = self._consumer.get_watermark_offsets(
                            TopicPartition(topic, p), timeout=START_QUERY_TIMEOUT_S
                        )
                        starts[p] = int(low)
        except KafkaException:
            pass  # a cluster in trouble: the logical start, as librdkafka resolves it
        return starts

    def subscribe(self, topic: str) -> None:
        positions = self._positions

        # The client assigns and unassigns by itself after each callback returns.
        def assigned(_: Any, partitions: list[Any]) -> None:
            positions.rebalanced("assigned", [tp.partition for tp in partitions])

        def revoked(_: Any, partitions: list[Any]) -> None:
            positions.rebalanced("revoked", [tp.partition for tp in partitions])

        def lost(_: Any, partitions: list[Any]) -> None:
            positions.rebalanced("lost", [tp.partition for tp in partitions])

        self._topic = topic
        self._consumer.subscribe([topic], on_assign=assigned, on_revoke=revoked, on_lost=lost)

    def poll(self, timeout_s: float, max_records: int) -> list[Polled]:
        messages = self._consumer.consume(num_messages=max_records, timeout=timeout_s)
        out: list[Polled] = []
        for m in messages:
            if m.error() is None:
                partition, offset, value = m.partition(), m.offset(), m.value()
                if partition is not None and offset is not None and isinstance(value, bytes):
                    out.append((partition, offset, value))
                    self._positions.read(partition, offset)
        return out

    def positions(self) -> dict[int, int]:
        return dict(self._positions.next_offset)

    def commit(self, offsets: dict[int, int]) -> dict[int, int]:
        from confluent_kafka import KafkaException, TopicPartition

        asked = [TopicPartition(self._topic, p, o) for p, o in sorted(offsets.items())]
        try:
            answered = self._consumer.commit(offsets=asked, asynchronous=False)
        except KafkaException as exception:
            error: Any = exception.args[0] if exception.args else None
            name = error.name() if hasattr(error, "name") else type(exception).__name__
            raise commit_error(str(name), str(exception)) from None
        committed: dict[int, int] = {}
        for tp in answered or []:
            if tp.error is not None:  # one partition refused: the others' fate is not one answer
                raise commit_error(tp.error.name(), f"partition {tp.partition}: {tp.error}")
            committed[tp.partition] = int(tp.offset)
        return committed

    def rebalances(self) -> list[Rebalance]:
        return self._positions.take_events()

    def high_watermarks(
        self, topic: str, partitions: list[int], timeout_s: float
    ) -> dict[int, int]:
        from confluent_kafka import TopicPartition

        marks: dict[int, int] = {}
        for p in partitions:
            _, high = self._consumer.get_watermark_offsets(
                TopicPartition(topic, p), timeout=timeout_s
            )
            marks[p] = int(high)
        return marks

    def close(self) -> None:
        self._consumer.close()


# -- kafka-python ------------------------------------------------------------------------------


def _kafka_python_value(text: str) -> object:
    lowered = text.lower()
    if lowered in ("true", "false"):
        return lowered == "true"
    try:
        return int(text)
    except ValueError:
        return text


def kafka_python_settings(
    settings: Mapping[str, str], known: Mapping[str, object]
) -> dict[str, object]:
    """The settings one kafka-python class knows, with their values typed."""
    out: dict[str, object] = {}
    for key, value in settings.items():
        name = key.replace(".", "_")
        if name in known:
            out[name] = _kafka_python_value(value)
    return out


def check_kafka_python_settings(settings: Mapping[str, str]) -> None:
    """Every setting is known to kafka-python's producer or consumer."""
    from kafka import KafkaConsumer, KafkaProducer  # type: ignore[import-untyped]

    for key in settings:
        name = key.replace(".", "_")
        if name not in KafkaProducer.DEFAULT_CONFIG and name not in KafkaConsumer.DEFAULT_CONFIG:
            raise ClientSettingError(f"-X {key}: kafka-python has no setting {name!r}")


class KafkaPythonProducer:
    def __init__(self, bootstrap: str, settings: Mapping[str, str]) -> None:
        from kafka import KafkaProducer  # type: ignore[import-untyped]

        check_kafka_python_settings(settings)
        config: dict[str, object] = {
            "acks": "all",
            "enable_idempotence": True,
            "linger_ms": 1,
            "request_timeout_ms": 5000,
            "delivery_timeout_ms": 10000,
            "max_block_ms": 10000,
        }
        config.update(kafka_python_settings(settings, KafkaProducer.DEFAULT_CONFIG))
        try:
            self._producer = KafkaProducer(bootstrap_servers=bootstrap.split(","), **config)
        except Exception as error:  # kafka-python raises several types for a bad config
            raise ClientSettingError(f"kafka-python refused the settings: {error}") from None

    def send(self, topic: str, partition: int, value: bytes, timeout_s: float) -> SendOutcome:
        from kafka.errors import KafkaError, KafkaTimeoutError  # type: ignore[import-untyped]

        try:
            future = self._producer.send(topic, value=value, partition=partition)
        except KafkaError as error:  # refused before it left the client
            return ("fail", f"not enqueued: {type(error).__name__}")
        try:
            metadata = future.get(timeout=timeout_s)
        except KafkaTimeoutError:
            return ("info", "timed out")
        except KafkaError as error:
            name = type(error).__name__
            return ("fail", name) if name in DEFINITE_KAFKA_PYTHON_ERRORS else ("info", name)
        return ("ok", _offset(metadata.offset))

    def close(self) -> None:
        self._producer.close(timeout=1)


COMMIT_TIMEOUT_MS = 10000  # kafka-python would otherwise wait on a lost coordinator for ever


class KafkaPythonConsumer:
    def __init__(self, bootstrap: str, group: str, settings: Mapping[str, str]) -> None:
        from kafka import KafkaConsumer  # type: ignore[import-untyped]

        check_kafka_python_settings(settings)
        config: dict[str, object] = {
            "group_id": group,
            "enable_auto_commit": False,
            "auto_offset_reset": "earliest",
            "session_timeout_ms": 6000,
            "heartbeat_interval_ms": 1000,
            "request_timeout_ms": 10000,
        }
        config.update(kafka_python_settings(settings, KafkaConsumer.DEFAULT_CONFIG))
        try:
            self._consumer = KafkaConsumer(bootstrap_servers=bootstrap.split(","), **config)
        except Exception as error:  # kafka-python raises several types for a bad config
            raise ClientSettingError(f"kafka-python refused the settings: {error}") from None
        self._positions = _Positions()
        self._topic = ""

    def assign(self, topic: str, partitions: list[int], from_beginning: bool) -> None:
        from kafka import TopicPartition  # type: ignore[import-untyped]

        assigned = [TopicPartition(topic, p) for p in partitions]
        self._topic = topic
        self._positions.next_offset.clear()
        self._consumer.assign(assigned)
        if from_beginning:
            self._consumer.seek_to_beginning(*assigned)

    def subscribe(self, topic: str) -> None:
        from kafka import ConsumerRebalanceListener

        positions = self._positions

        class Listener(ConsumerRebalanceListener):  # type: ignore[misc]
            def on_partitions_assigned(self, assigned: list[Any]) -> None:
                positions.rebalanced("assigned", [tp.partition for tp in assigned])

            def on_partitions_revoked(self, revoked: list[Any]) -> None:
                positions.rebalanced("revoked", [tp.partition for tp in revoked])

            def on_partitions_lost(self, lost: list[Any]) -> None:
                positions.rebalanced("lost", [tp.partition for tp in lost])

        self._topic = topic
        self._consumer.subscribe([topic], listener=Listener())

    def poll(self, timeout_s: float, max_records: int) -> list[Polled]:
        batches = self._consumer.poll(timeout_ms=int(timeout_s * 1000), max_records=max_records)
        out: list[Polled] = []
        for tp, records in batches.items():
            for r in records:
                out.append((tp.partition, r.offset, r.value))
                self._positions.read(tp.partition, r.offset)
        return out

    def positions(self) -> dict[int, int]:
        return dict(self._positions.next_offset)

    def commit(self, offsets: dict[int, int]) -> dict[int, int]:
        from kafka import OffsetAndMetadata, TopicPartition
        from kafka.errors import KafkaError  # type: ignore[import-untyped]

        asked = {
            TopicPartition(self._topic, p): OffsetAndMetadata(o, "", -1) for p, o in offsets.items()
        }
        try:
            self._consumer.commit(asked, timeout_ms=COMMIT_TIMEOUT_MS)
        except KafkaError as error:
            raise commit_error(type(error).__name__, str(error)) from None
        # kafka-python answers a synchronous commit with nothing, or raises: what it was asked.
        return dict(offsets)

    def rebalances(self) -> list[Rebalance]:
        # kafka-python 3 runs the listener on its own I/O loop, not inside the call that
        # drains it, so its callbacks cannot be dated within a call: none are reported.
        self._positions.take_events()
        return []

    def high_watermarks(
        self, topic: str, partitions: list[int], timeout_s: float
    ) -> dict[int, int]:
        from kafka import TopicPartition  # type: ignore[import-untyped]

        ends = self._consumer.end_offsets([TopicPartition(topic, p) for p in partitions])
        return {tp.partition: int(offset) for tp, offset in ends.items()}

    def close(self) -> None:
        self._consumer.close(autocommit=False)
