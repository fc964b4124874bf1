"""The Kafka protocol front end of a broker process: Kafka requests in, the impl broker's messages out.

The reference broker (impl/broker.py, impl/coordinator.py) speaks its own
messages (impl/messages.py, impl/group_messages.py). This module turns each
Kafka request that `KafkaServer` hands it into those messages, sends them to
the local broker node through the process's `NodePort`, and turns the answers
into kio's response of the request's API and version.

Rules of this module:
- Nothing of the broker's behaviour is decided here: offsets, leaders,
  fencing, dedupe, group membership and commits are the impl's answers. The
  front end only translates, and holds what the impl has no field for: the
  members' group protocols and the leader's raw assignments.
- Each response is described once, as version-agnostic field values; `_build`
  keeps the fields that the request's version has, so one translation serves
  every version. A field that the version needs and the description lacks is
  a bug, and raises.
- An impl error name maps by name to Kafka's `ErrorCode`; a name Kafka has no
  code for (other than the ones mapped here on purpose) is a bug, and raises:
  the server logs it and closes that connection.
- A record batch is checked (framing, CRC32C) before anything is sent: a bad
  one is CORRUPT_MESSAGE for its partition and is never appended. Batches are
  stored as the producer sent them; on fetch the leader's offset and epoch
  are written into the bytes that the CRC does not cover.
- Topics are the impl's: the configured ones, and those the coordination
  service created since (CreateTopics, or a Metadata request naming an
  unknown topic when `auto_create_topics` is on, as Kafka does by default).
  The front end keeps the broker's table of them (`TopicTable`) and asks
  again when a request names a topic it does not know. The internal offsets
  topic is never a client's to read or write.
- Ids handed to clients and written to logs (producer ids, record ids) are
  unique across the cluster and across restarts: they are built from the
  broker index, its persisted incarnation and a counter.
"""

from __future__ import annotations

import asyncio
import dataclasses
import logging
import struct
import types
import typing
import uuid
from collections.abc import Awaitable, Callable, Hashable, Mapping, Sequence
from datetime import timedelta
from functools import lru_cache
from typing import Any, Protocol, TypeVar

from kafka_verify.impl import group_messages as gm
from kafka_verify.impl import messages as m
from kafka_verify.impl.bootstrap import initial_topics
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.zk import TopicRecord
from kafka_verify.wire.apis import SUPPORTED_APIS, DecodedRequest
from kafka_verify.wire.batches import CorruptBatch, assign_offset_and_epoch, split_batches
from kafka_verify.wire.frames import RequestHeader
from kio.index import load_response_schema
from kio.schema.errors import ErrorCode
from kio.static.protocol import ResponsePayload

log = logging.getLogger(__name__)

__all__ = [
    "AssignmentError",
    "KafkaFrontend",
    "NodePort",
    "TopicTable",
    "decode_assignment",
    "encode_assignment",
    "kafka_error",
]

# How long a request to the local broker may take when nothing in it waits on
# purpose (produce acks and rebalances have their own waits).
IMPL_CALL_TIMEOUT_S = 10.0
# A JoinGroup or SyncGroup waits for the rebalance: its timeout and this margin.
REBALANCE_MARGIN_S = 5.0
# A fetch that found nothing asks again this often until its max wait passes.
LONG_POLL_INTERVAL_S = 0.005
# Batches per fetched partition: the byte limit is what bounds a fetch.
FETCH_MAX_BATCHES = 1_000_000
CLUSTER_ID = "kafka-verify"
NO_THROTTLE = timedelta(0)
NO_AUTHORIZED_OPERATIONS = -(2**31)  # Kafka's "not requested" value
GROUP_KEY = 0
TOPIC_ID_NAMESPACE = uuid.UUID("6f1c1e0a-4b7e-4c8e-9a57-6b6166b1e0a1")
COUNTER_BITS = 31

R = TypeVar("R")


class NodePort(Protocol):
    """What the front end uses of the broker process that hosts it."""

    index: int  # this broker's index (node "b{index}")
    incarnation: int  # this broker process's life number, persisted
    config: ClusterConfig
    addresses: Mapping[int, tuple[str, int]]  # broker index -> advertised Kafka (host, port)

    def next_request_id(self) -> int:
        """A request id unique within this process life."""
        ...

    async def call(self, message: m.Message, timeout_s: float) -> object:
        """Deliver an impl request to the local broker node and return its answer (same
        request_id); raises asyncio.TimeoutError when none comes within `timeout_s`."""
        ...

    def cast(self, message: m.Message) -> None:
        """Deliver an impl request that gets no answer (Produce with acks=0)."""
        ...


# -- errors ----------------------------------------------------------------------------------------

# Impl error names that are not Kafka's, with the code a Kafka client understands for them.
_RENAMED_ERRORS: Mapping[str, ErrorCode] = types.MappingProxyType(
    {
        # The record was appended, then the broker stopped leading before it was committed:
        # the client retries with the new leader, as after any lost leadership.
        m.LEADERSHIP_LOST: ErrorCode.not_leader_or_follower,
        # Kafka's controller answers so when it cannot reach its quorum in time.
        m.COORDINATION_UNAVAILABLE: ErrorCode.request_timed_out,
    }
)


# What a refused CreateTopics says, beyond its code.
_CREATE_ERRORS: Mapping[str, str] = types.MappingProxyType(
    {
        "TOPIC_ALREADY_EXISTS": "the topic exists",
        m.INVALID_TOPIC: "a topic name is 1 to 249 of [A-Za-z0-9._-], and not internal (__)",
        "INVALID_PARTITIONS": "a topic needs at least one partition",
        "INVALID_REPLICATION_FACTOR": "the replication factor is between 1 and the brokers",
    }
)


def kafka_error(name: str) -> ErrorCode:
    """Kafka's code for an impl error name; RuntimeError for a name Kafka has no code for."""
    renamed = _RENAMED_ERRORS.get(name)
    if renamed is not None:
        return renamed
    try:
        return ErrorCode[name.lower()]
    except KeyError:
        raise RuntimeError(
            f"the impl answered error {name!r}, which Kafka has no code for"
        ) from None


# -- responses, built from version-agnostic values ---------------------------------------------------


@lru_cache(maxsize=1024)
def _cached_hints(schema: Hashable) -> dict[str, Any]:
    return typing.get_type_hints(schema)


def _hints(schema: type) -> dict[str, Any]:
    return _cached_hints(typing.cast(Hashable, schema))


def _entity_of(hint: Any) -> tuple[type | None, bool]:
    """The kio entity class inside a field's type, and whether the field is a tuple of them."""
    for arg in (hint, *typing.get_args(hint)):
        if dataclasses.is_dataclass(arg) and isinstance(arg, type):
            return arg, False
        origin = typing.get_origin(arg)
        if origin is tuple:
            (item, *_) = typing.get_args(arg)
            if dataclasses.is_dataclass(item) and isinstance(item, type):
                return item, True
    return None, False


def _build(schema: type[R], values: Mapping[str, Any]) -> R:
    """An instance of the kio entity `schema` from the values of the fields it has.

    Values of fields this version lacks are dropped; nested entities are given as
    mappings (or sequences of mappings) and built the same way.
    """
    hints = _hints(schema)
    fields: dict[str, Any] = {}
    for field in dataclasses.fields(schema):  # type: ignore[arg-type]  # kio entities are dataclasses
        if field.name not in values:
            continue
        value = values[field.name]
        entity, many = _entity_of(hints[field.name])
        if entity is not None and value is not None:
            if many:
                value = tuple(_build(entity, item) for item in value)
            elif isinstance(value, Mapping):
                value = _build(entity, value)
        fields[field.name] = value
    return schema(**fields)


def _field(body: object, name: str, default: Any) -> Any:
    """A request field that only some versions have."""
    return getattr(body, name, default)


# -- the consumer protocol's assignment --------------------------------------------------------------


class AssignmentError(ValueError):
    """A SyncGroup assignment that is not the consumer protocol's Assignment."""


def decode_assignment(
    data: bytes,
) -> tuple[int, tuple[tuple[str, tuple[int, ...]], ...], bytes | None]:
    """(version, ((topic, partitions), ...), user data) of a consumer protocol Assignment."""
    at = 0

    def take(size: int) -> bytes:
        nonlocal at
        if at + size > len(data):
            raise AssignmentError(f"the assignment ends {at + size - len(data)} bytes early")
        chunk = data[at : at + size]
        at += size
        return chunk

    def int16() -> int:
        value: int = struct.unpack(">h", take(2))[0]
        return value

    def int32() -> int:
        value: int = struct.unpack(">i", take(4))[0]
        return value

    version = int16()
    topics: list[tuple[str, tuple[int, ...]]] = []
    count = int32()
    if count < 0 or count > len(data):
        raise AssignmentError(f"the assignment claims {count} topics")
    for _ in range(count):
        length = int16()
        if length < 0:
            raise AssignmentError("an assigned topic has a null name")
        try:
            name = take(length).decode("utf-8")
        except UnicodeDecodeError:
            raise AssignmentError("an assigned topic's name is not UTF-8") from None
        partitions = int32()
        if partitions < 0 or partitions > len(data):
            raise AssignmentError(f"an assigned topic claims {partitions} partitions")
        topics.append((name, tuple(int32() for _ in range(partitions))))
    user_data: bytes | None = None
    if at < len(data):  # later versions may add fields after it, which are kept in the raw bytes
        length = int32()
        user_data = None if length < 0 else take(length)
    return version, tuple(topics), user_data


def encode_assignment(
    topics: Sequence[tuple[str, Sequence[int]]], user_data: bytes | None = None, version: int = 0
) -> bytes:
    """A consumer protocol Assignment of these partitions."""
    out = bytearray(struct.pack(">hi", version, len(topics)))
    for name, partitions in topics:
        encoded = name.encode("utf-8")
        out += struct.pack(">h", len(encoded)) + encoded
        out += struct.pack(f">i{len(partitions)}i", len(partitions), *partitions)
    if user_data is None:
        out += struct.pack(">i", -1)
    else:
        out += struct.pack(">i", len(user_data)) + user_data
    return bytes(out)


# -- the front end -----------------------------------------------------------------------------------


@dataclasses.dataclass(slots=True)
class _Generation:
    """What the front end remembers of a group's generation: its protocol and raw assignments."""

    generation: int
    protocol: str | None = None
    assignments: dict[str, tuple[tuple[int, ...], bytes]] = dataclasses.field(default_factory=dict)


Values = dict[str, Any]
Translation = Callable[[RequestHeader, Any], Awaitable[Values | None]]


class TopicTable:
    """The cluster's topics as the local broker last told them: names to partitions and back."""

    def __init__(self, records: Sequence[TopicRecord]) -> None:
        self.records: tuple[TopicRecord, ...] = ()
        self._by_name: dict[str, TopicRecord] = {}
        self._located: dict[int, tuple[str, int]] = {}
        self.update(records)

    def update(self, records: Sequence[TopicRecord]) -> None:
        """Take the broker's table if it knows at least as many topics (they are only added)."""
        if len(records) < len(self.records):
            return
        self.records = tuple(records)
        self._by_name = {r.name: r for r in records if not r.internal}
        self._located = {
            r.first_partition + i: (r.name, i)
            for r in self._by_name.values()
            for i in range(r.partitions)
        }

    def user_topics(self) -> list[TopicRecord]:
        """Every topic a client may use, in the order they were made."""
        return list(self._by_name.values())

    def get(self, name: str) -> TopicRecord | None:
        return self._by_name.get(name)

    def partition(self, name: str, index: int) -> int | None:
        """The cluster's partition number of `name`'s partition `index`, or None."""
        record = self._by_name.get(name)
        if record is None or not 0 <= index < record.partitions:
            return None
        return record.first_partition + index

    def located(self, p: int) -> tuple[str, int]:
        """(topic, index) of the cluster's partition `p`."""
        return self._located[p]


class KafkaFrontend:
    """Serves Kafka requests from the local impl broker; `handle` is `KafkaServer`'s handler."""

    def __init__(self, port: NodePort) -> None:
        self.port = port
        self.config = port.config
        self.topics = TopicTable(initial_topics(port.config))
        self._counter = 0
        # group -> member -> its protocols (name, metadata), as its last JoinGroup named them
        self._protocols: dict[str, dict[str, tuple[tuple[str, bytes], ...]]] = {}
        self._generations: dict[str, _Generation] = {}
        self._translations: dict[int, Translation] = {
            0: self._produce,
            1: self._fetch,
            2: self._list_offsets,
            3: self._metadata,
            8: self._offset_commit,
            9: self._offset_fetch,
            10: self._find_coordinator,
            11: self._join_group,
            12: self._heartbeat,
            13: self._leave_group,
            14: self._sync_group,
            19: self._create_topics,
            22: self._init_producer_id,
            23: self._offset_for_leader_epoch,
        }
        missing = set(SUPPORTED_APIS) - set(self._translations) - {18}  # ApiVersions: the server's
        if missing:
            raise RuntimeError(f"the front end translates no request of API keys {sorted(missing)}")

    async def handle(self, decoded: DecodedRequest) -> ResponsePayload | None:
        header = decoded.header
        translation = self._translations.get(header.api_key)
        if translation is None:
            raise RuntimeError(f"the front end has no translation of API key {header.api_key}")
        values = await translation(header, decoded.body)
        if values is None:
            return None
        schema = load_response_schema(header.api_key, header.api_version)
        response: ResponsePayload = _build(schema, values)  # type: ignore[arg-type]
        return response

    # -- helpers ---------------------------------------------------------------------------------

    def _unique_id(self) -> int:
        """Unique across the cluster's brokers and across this broker's lives."""
        self._counter += 1
        if self._counter >= 1 << COUNTER_BITS:
            raise RuntimeError("this broker life has used up its ids; restart it")
        life = (self.port.incarnation << COUNTER_BITS) | self._counter
        return life * self.config.brokers + self.port.index

    async def _ask(self, message: m.Message, answer_type: type[R], timeout_s: float) -> R | None:
        """The impl's answer to `message`, or None if it did not come in time."""
        try:
            answer = await self.port.call(message, timeout_s)
        except TimeoutError:
            return None
        if not isinstance(answer, answer_type):
            raise RuntimeError(
                f"the broker answered {type(message).__name__} with {type(answer).__name__}"
            )
        return answer

    async def _refresh_topics(self) -> dict[int, tuple[int | None, int]]:
        """Ask the broker for its topics and leaders; the leaders, or {} if it did not answer."""
        answer = await self._ask_metadata()
        if answer is None:
            return {}
        return {p: (leader, epoch) for p, leader, epoch in answer.leaders}

    async def _ask_metadata(self) -> m.MetadataResponse | None:
        """The broker's metadata (its topics are learnt on the way), or None without an answer."""
        answer = await self._ask(
            m.Metadata(self.port.next_request_id()), m.MetadataResponse, IMPL_CALL_TIMEOUT_S
        )
        if answer is not None:
            self.topics.update(answer.topics)
        return answer

    async def _partition(self, topic: str, index: int) -> int | None:
        """The cluster's partition of (topic, index); a topic not known yet is asked for once,
        as it may have been created through another broker."""
        p = self.topics.partition(topic, index)
        if p is None and self.topics.get(topic) is None:
            await self._refresh_topics()
            p = self.topics.partition(topic, index)
        return p

    def _topic_id(self, topic: str) -> uuid.UUID:
        return uuid.uuid5(TOPIC_ID_NAMESPACE, topic)

    # -- Metadata --------------------------------------------------------------------------------

    async def _metadata(self, header: RequestHeader, body: Any) -> Values:
        known = await self._ask_metadata()
        leaders = {} if known is None else {p: (b, e) for p, b, e in known.leaders}
        isrs = {} if known is None else dict(known.isrs)
        requested: list[tuple[str | None, uuid.UUID | None]]
        if body.topics is None:
            requested = [(t.name, None) for t in self.topics.user_topics()]
        else:
            requested = [(t.name, _field(t, "topic_id", None)) for t in body.topics]
        by_id = {self._topic_id(t.name): t.name for t in self.topics.user_topics()}
        # Before version 4 every Metadata request may create the topics it names.
        auto_create = self.config.auto_create_topics and bool(
            _field(body, "allow_auto_topic_creation", True)
        )
        topics = []
        for name, topic_id in requested:
            if name is None and topic_id is not None:
                name = by_id.get(topic_id)
                if name is None:
                    topics.append(self._unknown_topic(None, topic_id, ErrorCode.unknown_topic_id))
                    continue
            if name is None:
                raise RuntimeError("a Metadata topic named neither by name nor by id was decoded")
            if self.topics.get(name) is None and auto_create:
                topics.append(await self._auto_create(name))
                continue
            topics.append(self._topic_metadata(name, leaders, isrs))
        controller = None if known is None else known.controller
        return {
            "throttle_time": NO_THROTTLE,
            "brokers": [
                {"node_id": index, "host": host, "port": port, "rack": None}
                for index, (host, port) in sorted(self.port.addresses.items())
            ],
            "cluster_id": CLUSTER_ID,
            # The controller this broker knows; any broker answers the requests a client sends
            # the controller (CreateTopics), so it names itself when it knows none.
            "controller_id": self.port.index if controller is None else controller,
            "topics": topics,
        }

    def _unknown_topic(
        self, name: str | None, topic_id: uuid.UUID | None, error: ErrorCode
    ) -> Values:
        return {
            "error_code": error,
            "name": name,
            "topic_id": topic_id or uuid.UUID(int=0),
            "is_internal": False,
            "partitions": [],
            "topic_authorized_operations": NO_AUTHORIZED_OPERATIONS,
        }

    async def _auto_create(self, name: str) -> Values:
        """Create `name` as Kafka's auto.create.topics.enable does: the answer names no leader
        yet (LEADER_NOT_AVAILABLE), and the client asks again."""
        reply = await self._create_topic(
            name, self.config.default_partitions, self.config.default_replication
        )
        if reply is not None and reply.error == m.NONE:
            return self._unknown_topic(name, None, ErrorCode.leader_not_available)
        if reply is not None and reply.error == "TOPIC_ALREADY_EXISTS":
            await self._refresh_topics()  # made meanwhile through another broker
            return self._unknown_topic(name, None, ErrorCode.leader_not_available)
        error = ErrorCode.request_timed_out if reply is None else kafka_error(reply.error)
        return self._unknown_topic(name, None, error)

    async def _create_topic(
        self, name: str, partitions: int, replication: int
    ) -> m.CreateTopicResponse | None:
        request = m.CreateTopic(self.port.next_request_id(), name, partitions, replication)
        reply = await self._ask(request, m.CreateTopicResponse, IMPL_CALL_TIMEOUT_S)
        if reply is not None and reply.topic is not None:
            self.topics.update((*self.topics.records, reply.topic))
        return reply

    def _topic_metadata(
        self,
        name: str,
        leaders: Mapping[int, tuple[int | None, int]],
        isrs: Mapping[int, tuple[int, ...]],
    ) -> Values:
        record = self.topics.get(name)
        if record is None:
            return self._unknown_topic(name, None, ErrorCode.unknown_topic_or_partition)
        partitions = []
        for index, replicas in enumerate(record.replicas):
            p = record.first_partition + index
            leader, epoch = leaders.get(p, (None, -1))
            partitions.append(
                {
                    "error_code": (
                        ErrorCode.none if leader is not None else ErrorCode.leader_not_available
                    ),
                    "partition_index": index,
                    "leader_id": -1 if leader is None else leader,
                    "leader_epoch": epoch,
                    "replica_nodes": tuple(replicas),
                    # The ISR as this broker knows it (every replica before it knows one).
                    "isr_nodes": isrs.get(p, tuple(replicas)),
                    "offline_replicas": (),
                }
            )
        return {
            "error_code": ErrorCode.none,
            "name": name,
            "topic_id": self._topic_id(name),
            "is_internal": False,
            "partitions": partitions,
            "topic_authorized_operations": NO_AUTHORIZED_OPERATIONS,
        }

    # -- Produce ---------------------------------------------------------------------------------

    async def _produce(self, header: RequestHeader, body: Any) -> Values | None:
        acks = int(body.acks)
        timeout_s = max(0.0, body.timeout.total_seconds())
        jobs: list[tuple[str, Awaitable[Values]]] = []
        for topic in body.topic_data:
            for partition in topic.partition_data:
                job = self._produce_partition(
                    topic.name, int(partition.index), partition.records, acks, timeout_s
                )
                jobs.append((topic.name, job))
        answers = await asyncio.gather(*(job for _, job in jobs))
        if acks == 0:
            return None
        responses: dict[str, list[Values]] = {}
        for (name, _), answer in zip(jobs, answers, strict=True):
            responses.setdefault(name, []).append(answer)
        return {
            "responses": [
                {"name": name, "partition_responses": partitions}
                for name, partitions in responses.items()
            ],
            "throttle_time": NO_THROTTLE,
        }

    async def _produce_partition(
        self, topic: str, index: int, records: bytes | None, acks: int, timeout_s: float
    ) -> Values:
        def answer(error: ErrorCode, offset: int = -1, message: str | None = None) -> Values:
            return {
                "index": index,
                "error_code": error,
                "base_offset": offset,
                "log_append_time": None,
                "log_start_offset": -1,
                "record_errors": (),
                "error_message": message,
            }

        p = await self._partition(topic, index)
        if p is None:
            return answer(ErrorCode.unknown_topic_or_partition)
        try:
            batches = split_batches(bytes(records or b""))
        except CorruptBatch as corrupt:
            log.info("a corrupt batch for %s-%d: %s", topic, index, corrupt.reason)
            return answer(ErrorCode.corrupt_message, message=corrupt.reason)
        if len(batches) != 1:
            return answer(
                ErrorCode.invalid_record,
                message=f"a Produce of version 3 or later carries one batch, not {len(batches)}",
            )
        (batch,) = batches
        produce = m.Produce(
            request_id=self.port.next_request_id(),
            partition=p,
            record_id=self._unique_id(),
            producer_id=batch.producer_id,
            seq=batch.base_sequence,
            acks=acks,
            count=batch.last_offset_delta + 1,
            payload=batch.raw,
        )
        if acks == 0:
            self.port.cast(produce)
            return answer(ErrorCode.none)
        reply = await self._ask(produce, m.ProduceResponse, timeout_s)
        if reply is None:
            return answer(ErrorCode.request_timed_out)
        if reply.error != m.NONE:
            return answer(kafka_error(reply.error))
        if reply.offset is None:
            # A retry of a batch the broker wrote but no longer remembers the offset of.
            return answer(ErrorCode.duplicate_sequence_number)
        return answer(ErrorCode.none, reply.offset)

    # -- Fetch -----------------------------------------------------------------------------------

    async def _fetch(self, header: RequestHeader, body: Any) -> Values:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + max(0.0, body.max_wait.total_seconds())
        limit = int(body.max_bytes) if int(body.max_bytes) > 0 else None
        while True:
            jobs = [
                (topic.topic, self._fetch_partition(topic.topic, partition, limit))
                for topic in body.topics
                for partition in topic.partitions
            ]
            answers = await asyncio.gather(*(job for _, job in jobs))
            done = any(has_data or error for _, has_data, error in answers)
            if done or loop.time() >= deadline:
                break
            await asyncio.sleep(min(LONG_POLL_INTERVAL_S, max(0.0, deadline - loop.time())))
        responses: dict[str, list[Values]] = {}
        for (name, _), (values, _, _) in zip(jobs, answers, strict=True):
            responses.setdefault(name, []).append(values)
        return {
            "throttle_time": NO_THROTTLE,
            "error_code": ErrorCode.none,
            "session_id": 0,  # sessionless: every fetch names all its partitions
            "responses": [
                {"topic": name, "partitions": partitions} for name, partitions in responses.items()
            ],
        }

    async def _fetch_partition(
        self, topic: str, partition: Any, limit: int | None
    ) -> tuple[Values, bool, bool]:
        """The partition's answer, whether it holds records, and whether it is an error."""
        index = int(partition.partition)

        def answer(
            error: ErrorCode, hw: int = -1, log_start: int = -1, records: bytes = b""
        ) -> Values:
            return {
                "partition_index": index,
                "error_code": error,
                "high_watermark": hw,
                "last_stable_offset": hw,
                "log_start_offset": log_start,
                "aborted_transactions": (),
                "preferred_read_replica": -1,
                "records": records,
            }

        p = await self._partition(topic, index)
        if p is None:
            return answer(ErrorCode.unknown_topic_or_partition), False, True
        max_bytes = int(partition.partition_max_bytes)
        if limit is not None:
            max_bytes = min(max_bytes, limit)
        fetch = m.Fetch(
            request_id=self.port.next_request_id(),
            partition=p,
            fetch_offset=int(partition.fetch_offset),
            current_leader_epoch=int(_field(partition, "current_leader_epoch", -1)),
            replica=None,
            max_records=FETCH_MAX_BATCHES,
            max_bytes=max(0, max_bytes),
        )
        reply = await self._ask(fetch, m.FetchResponse, IMPL_CALL_TIMEOUT_S)
        if reply is None:
            return answer(ErrorCode.request_timed_out), False, True
        if reply.error != m.NONE:
            error = kafka_error(reply.error)
            return answer(error, reply.high_watermark, reply.log_start), False, True
        records = bytearray()
        base = reply.base_offset
        for stored in reply.records:
            if not stored.payload:
                break  # a record without the producer's bytes is not a client's batch
            at = len(records)
            records += stored.payload
            assign_offset_and_epoch(records, base, stored.epoch, at)
            base += stored.count
        values = answer(ErrorCode.none, reply.high_watermark, reply.log_start, bytes(records))
        return values, bool(records), False

    # -- ListOffsets and OffsetForLeaderEpoch --------------------------------------------------

    async def _list_offsets(self, header: RequestHeader, body: Any) -> Values:
        async def one(topic: str, partition: Any) -> Values:
            index = int(partition.partition_index)
            timestamp = int(partition.timestamp)

            def answer(error: ErrorCode, offset: int = -1, epoch: int = -1) -> Values:
                return {
                    "partition_index": index,
                    "error_code": error,
                    "timestamp": -1,
                    "offset": offset,
                    "leader_epoch": epoch,
                }

            p = await self._partition(topic, index)
            if p is None:
                return answer(ErrorCode.unknown_topic_or_partition)
            if timestamp < m.EARLIEST_TIMESTAMP:
                # -3 (the largest timestamp) and the like: the impl looks up only these.
                return answer(ErrorCode.invalid_request)
            request = m.ListOffsets(
                self.port.next_request_id(),
                p,
                int(_field(partition, "current_leader_epoch", -1)),
                timestamp,
            )
            reply = await self._ask(request, m.ListOffsetsResponse, IMPL_CALL_TIMEOUT_S)
            if reply is None:
                return answer(ErrorCode.request_timed_out)
            if reply.error != m.NONE:
                return answer(kafka_error(reply.error))
            return answer(ErrorCode.none, reply.offset, reply.leader_epoch)

        topics = await self._per_partition([(t.name, t.partitions) for t in body.topics], one)
        return {
            "throttle_time": NO_THROTTLE,
            "topics": [{"name": name, "partitions": parts} for name, parts in topics],
        }

    async def _offset_for_leader_epoch(self, header: RequestHeader, body: Any) -> Values:
        async def one(topic: str, partition: Any) -> Values:
            index = int(partition.partition)

            def answer(error: ErrorCode, epoch: int = -1, end: int = -1) -> Values:
                return {
                    "error_code": error,
                    "partition": index,
                    "leader_epoch": epoch,
                    "end_offset": end,
                }

            p = await self._partition(topic, index)
            if p is None:
                return answer(ErrorCode.unknown_topic_or_partition)
            request = m.OffsetsForLeaderEpoch(
                self.port.next_request_id(),
                p,
                int(partition.leader_epoch),
                int(_field(partition, "current_leader_epoch", -1)),
            )
            reply = await self._ask(request, m.OffsetsForLeaderEpochResponse, IMPL_CALL_TIMEOUT_S)
            if reply is None:
                return answer(ErrorCode.request_timed_out)
            if reply.error != m.NONE:
                return answer(kafka_error(reply.error))
            return answer(ErrorCode.none, reply.epoch, reply.end_offset)

        topics = await self._per_partition([(t.topic, t.partitions) for t in body.topics], one)
        return {
            "throttle_time": NO_THROTTLE,
            "topics": [{"topic": name, "partitions": parts} for name, parts in topics],
        }

    async def _per_partition(
        self,
        topics: Sequence[tuple[str, Sequence[Any]]],
        one: Callable[[str, Any], Awaitable[Values]],
    ) -> list[tuple[str, list[Values]]]:
        """`one` of every (topic, partition), run concurrently, grouped back by topic in order."""
        jobs = [
            (name, one(name, partition)) for name, partitions in topics for partition in partitions
        ]
        answers = await asyncio.gather(*(job for _, job in jobs))
        grouped: dict[str, list[Values]] = {}
        for (name, _), answer in zip(jobs, answers, strict=True):
            grouped.setdefault(name, []).append(answer)
        return list(grouped.items())

    # -- InitProducerId and CreateTopics ---------------------------------------------------------

    async def _init_producer_id(self, header: RequestHeader, body: Any) -> Values:
        if body.transactional_id is not None:
            return {
                "throttle_time": NO_THROTTLE,
                "error_code": ErrorCode.invalid_request,  # transactions are not served
                "producer_id": -1,
                "producer_epoch": -1,
            }
        return {
            "throttle_time": NO_THROTTLE,
            "error_code": ErrorCode.none,
            "producer_id": self._unique_id(),
            "producer_epoch": 0,
        }

    async def _create_topics(self, header: RequestHeader, body: Any) -> Values:
        validate_only = bool(_field(body, "validate_only", False))

        async def one(topic: Any) -> Values:
            def answer(
                error: ErrorCode, message: str | None = None, record: TopicRecord | None = None
            ) -> Values:
                return {
                    "name": topic.name,
                    "topic_id": self._topic_id(topic.name) if record is not None else None,
                    "error_code": error,
                    "error_message": message,
                    "topic_config_error_code": 0,
                    "num_partitions": record.partitions if record is not None else -1,
                    "replication_factor": len(record.replicas[0]) if record is not None else -1,
                    "configs": None,
                }

            # -1 asks for the broker's defaults (CreateTopics v4 and later).
            partitions = int(topic.num_partitions)
            replication = int(topic.replication_factor)
            partitions = self.config.default_partitions if partitions == -1 else partitions
            replication = self.config.default_replication if replication == -1 else replication
            if topic.assignments:
                return answer(
                    ErrorCode.invalid_request,
                    "replica assignments are the cluster's own: give partitions and RF instead",
                )
            if validate_only:
                if self.topics.get(topic.name) is not None:
                    return answer(ErrorCode.topic_already_exists, f"{topic.name!r} exists")
                return answer(ErrorCode.none)
            reply = await self._create_topic(topic.name, partitions, replication)
            if reply is None:
                return answer(
                    ErrorCode.request_timed_out, "the coordination service did not answer"
                )
            if reply.error != m.NONE:
                return answer(kafka_error(reply.error), _CREATE_ERRORS.get(reply.error))
            return answer(ErrorCode.none, record=reply.topic)

        # One at a time: each creation numbers its partitions after the one before.
        results = [await one(topic) for topic in body.topics]
        return {"throttle_time": NO_THROTTLE, "topics": results}

    # -- groups ----------------------------------------------------------------------------------

    async def _find_coordinator(self, header: RequestHeader, body: Any) -> Values:
        def answer(error: ErrorCode, node: int = -1, message: str | None = None) -> Values:
            host, port = self.port.addresses.get(node, ("", -1))
            return {
                "throttle_time": NO_THROTTLE,
                "error_code": error,
                "error_message": message,
                "node_id": node,
                "host": host,
                "port": port,
            }

        if int(_field(body, "key_type", GROUP_KEY)) != GROUP_KEY:
            return answer(ErrorCode.invalid_request, message="transactions are not served")
        request = gm.FindCoordinator(self.port.next_request_id(), body.key)
        reply = await self._ask(request, gm.FindCoordinatorResponse, IMPL_CALL_TIMEOUT_S)
        if reply is None or reply.coordinator is None:
            return answer(ErrorCode.coordinator_not_available)
        if reply.coordinator not in self.port.addresses:
            return answer(
                ErrorCode.coordinator_not_available,
                message=f"the coordinator b{reply.coordinator} has no known address",
            )
        return answer(ErrorCode.none, reply.coordinator)

    def _rebalance_wait_s(self) -> float:
        return self.config.rebalance_timeout_ms / 1000 + REBALANCE_MARGIN_S

    async def _join_group(self, header: RequestHeader, body: Any) -> Values:
        group: str = body.group_id
        member: str = body.member_id or f"{header.client_id or 'member'}-{uuid.uuid4()}"
        protocols = tuple((p.name, bytes(p.metadata)) for p in body.protocols)
        self._protocols.setdefault(group, {})[member] = protocols

        def answer(error: ErrorCode, **values: Any) -> Values:
            return {
                "throttle_time": NO_THROTTLE,
                "error_code": error,
                "generation_id": -1,
                "protocol_name": "",
                "leader": "",
                "member_id": member,
                "members": (),
            } | values

        request = gm.JoinGroup(self.port.next_request_id(), group, member)
        reply = await self._ask(request, gm.JoinGroupResponse, self._rebalance_wait_s())
        if reply is None:
            # Retriable for every client: it finds the coordinator again and rejoins.
            return answer(ErrorCode.coordinator_not_available)
        if reply.error != gm.NONE:
            if reply.error == gm.UNKNOWN_MEMBER_ID:
                self._protocols.get(group, {}).pop(member, None)
            return answer(kafka_error(reply.error))
        # Members' protocols are forgotten only when they leave or are unknown to the
        # coordinator: an answer for an older generation may list fewer members than have
        # joined since, and forgetting those would hand the next leader empty metadata.
        known = self._protocols.setdefault(group, {})
        generation = self._generation(group, reply.generation)
        if generation.protocol is None:
            generation.protocol = self._choose_protocol(group, reply.leader, reply.members)
        protocol = generation.protocol
        if protocol is None:
            return answer(ErrorCode.inconsistent_group_protocol)
        members = []
        if member == reply.leader:
            for name in reply.members:
                metadata = dict(known.get(name, ())).get(protocol, b"")
                members.append({"member_id": name, "group_instance_id": None, "metadata": metadata})
        return answer(
            ErrorCode.none,
            generation_id=reply.generation,
            protocol_name=protocol,
            leader=reply.leader or "",
            members=members,
        )

    def _generation(self, group: str, generation: int) -> _Generation:
        known = self._generations.get(group)
        if known is None or known.generation != generation:
            known = _Generation(generation)
            self._generations[group] = known
        return known

    def _choose_protocol(
        self, group: str, leader: str | None, members: Sequence[str]
    ) -> str | None:
        """The first of the leader's protocols that every member offers."""
        known = self._protocols.get(group, {})
        offered = [{name for name, _ in known[member]} for member in members if member in known]
        for name, _ in known.get(leader or "", ()):
            if all(name in names for names in offered):
                return name
        return None

    async def _sync_group(self, header: RequestHeader, body: Any) -> Values:
        group: str = body.group_id
        member: str = body.member_id
        generation = int(body.generation_id)

        def answer(error: ErrorCode, assignment: bytes = b"") -> Values:
            return {"throttle_time": NO_THROTTLE, "error_code": error, "assignment": assignment}

        pairs: list[tuple[int, str]] = []
        raw: dict[str, tuple[tuple[int, ...], bytes]] = {}
        for given in body.assignments:
            data = bytes(given.assignment)
            try:
                _, topics, _ = decode_assignment(data)
            except AssignmentError as error:
                log.info("group %s: %s's assignment does not decode: %s", group, member, error)
                return answer(ErrorCode.inconsistent_group_protocol)
            mine: list[int] = []
            for topic, indexes in topics:
                for index in indexes:
                    p = await self._partition(topic, index)
                    if p is None:
                        return answer(ErrorCode.unknown_topic_or_partition)
                    pairs.append((p, given.member_id))
                    mine.append(p)
            raw[given.member_id] = (tuple(sorted(mine)), data)
        if raw:
            self._generation(group, generation).assignments = raw
        request = gm.SyncGroup(
            self.port.next_request_id(), group, member, generation, tuple(sorted(pairs))
        )
        reply = await self._ask(request, gm.SyncGroupResponse, self._rebalance_wait_s())
        if reply is None:
            return answer(ErrorCode.rebalance_in_progress)
        if reply.error != gm.NONE:
            return answer(kafka_error(reply.error))
        partitions = tuple(sorted(reply.partitions))
        known = self._generations.get(group)
        if known is not None and known.generation == reply.generation:
            given_raw = known.assignments.get(member)
            if given_raw is not None and given_raw[0] == partitions:
                return answer(ErrorCode.none, given_raw[1])  # the leader's bytes, user data and all
        return answer(ErrorCode.none, encode_assignment(self._by_topic(partitions)))

    def _by_topic(self, partitions: Sequence[int]) -> list[tuple[str, list[int]]]:
        grouped: dict[str, list[int]] = {}
        for p in partitions:
            topic, index = self.topics.located(p)
            grouped.setdefault(topic, []).append(index)
        return list(grouped.items())

    async def _heartbeat(self, header: RequestHeader, body: Any) -> Values:
        request = gm.Heartbeat(
            self.port.next_request_id(), body.group_id, body.member_id, int(body.generation_id)
        )
        reply = await self._ask(request, gm.HeartbeatResponse, IMPL_CALL_TIMEOUT_S)
        error = ErrorCode.coordinator_not_available if reply is None else kafka_error(reply.error)
        return {"throttle_time": NO_THROTTLE, "error_code": error}

    async def _leave_group(self, header: RequestHeader, body: Any) -> Values:
        group: str = body.group_id
        members: list[str]
        if header.api_version >= 3:
            members = [identity.member_id for identity in body.members]
        else:
            members = [body.member_id]

        async def leave(member: str) -> ErrorCode:
            request = gm.LeaveGroup(self.port.next_request_id(), group, member)
            reply = await self._ask(request, gm.LeaveGroupResponse, IMPL_CALL_TIMEOUT_S)
            if reply is None:
                return ErrorCode.coordinator_not_available
            if reply.error in (gm.NONE, gm.UNKNOWN_MEMBER_ID):
                self._protocols.get(group, {}).pop(member, None)
            return kafka_error(reply.error)

        errors = await asyncio.gather(*(leave(member) for member in members))
        if header.api_version >= 3:
            return {
                "throttle_time": NO_THROTTLE,
                "error_code": ErrorCode.none,
                "members": [
                    {"member_id": member, "group_instance_id": None, "error_code": error}
                    for member, error in zip(members, errors, strict=True)
                ],
            }
        return {"throttle_time": NO_THROTTLE, "error_code": errors[0]}

    async def _offset_commit(self, header: RequestHeader, body: Any) -> Values:
        offsets: list[tuple[int, int]] = []
        for topic in body.topics:
            for partition in topic.partitions:
                p = await self._partition(topic.name, int(partition.partition_index))
                if p is not None:
                    offsets.append((p, int(partition.committed_offset)))
        error = ErrorCode.none
        if offsets:
            request = gm.OffsetCommit(
                self.port.next_request_id(),
                body.group_id,
                body.member_id,
                int(body.generation_id_or_member_epoch),
                tuple(offsets),
            )
            # A commit is answered once its record is committed in the offsets topic.
            reply = await self._ask(request, gm.OffsetCommitResponse, IMPL_CALL_TIMEOUT_S)
            error = ErrorCode.request_timed_out if reply is None else kafka_error(reply.error)
        return {
            "throttle_time": NO_THROTTLE,
            "topics": [
                {
                    "name": topic.name,
                    "partitions": [
                        {
                            "partition_index": partition.partition_index,
                            "error_code": (
                                error
                                if self.topics.partition(topic.name, int(partition.partition_index))
                                is not None
                                else ErrorCode.unknown_topic_or_partition
                            ),
                        }
                        for partition in topic.partitions
                    ],
                }
                for topic in body.topics
            ],
        }

    async def _offset_fetch(self, header: RequestHeader, body: Any) -> Values:
        if header.api_version >= 8:
            groups = await asyncio.gather(
                *(self._group_offsets(group.group_id, group.topics) for group in body.groups)
            )
            return {
                "throttle_time": NO_THROTTLE,
                "groups": [
                    {"group_id": group.group_id, "topics": topics, "error_code": error}
                    for group, (topics, error) in zip(body.groups, groups, strict=True)
                ],
            }
        topics, error = await self._group_offsets(body.group_id, body.topics)
        return {"throttle_time": NO_THROTTLE, "topics": topics, "error_code": error}

    async def _group_offsets(
        self, group: str, requested: Sequence[Any] | None
    ) -> tuple[list[Values], ErrorCode]:
        """The committed offsets a group's OffsetFetch asks for (None: every one there is)."""
        wanted: list[tuple[str, list[int]]]
        if requested is None:
            wanted = [(t.name, list(range(t.partitions))) for t in self.topics.user_topics()]
        else:
            wanted = [(t.name, [int(i) for i in t.partition_indexes]) for t in requested]
        model = [
            p
            for name, indexes in wanted
            for i in indexes
            if (p := self.topics.partition(name, i)) is not None
        ]
        request = gm.OffsetFetch(self.port.next_request_id(), group, tuple(sorted(set(model))))
        reply = await self._ask(request, gm.OffsetFetchResponse, IMPL_CALL_TIMEOUT_S)
        error = ErrorCode.coordinator_not_available if reply is None else kafka_error(reply.error)
        committed = dict(reply.offsets) if reply is not None else {}
        topics = []
        for name, indexes in wanted:
            partitions = []
            for i in indexes:
                p = self.topics.partition(name, i)
                if requested is None and p not in committed:
                    continue  # asked for everything: only what has a committed offset
                partitions.append(
                    {
                        "partition_index": i,
                        "committed_offset": committed.get(p, -1) if p is not None else -1,
                        "committed_leader_epoch": -1,
                        "metadata": "",
                        "error_code": (
                            ErrorCode.unknown_topic_or_partition if p is None else error
                        ),
                    }
                )
            if partitions or requested is not None:
                topics.append({"name": name, "partitions": partitions})
        return topics, error
