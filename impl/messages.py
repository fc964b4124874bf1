"""The messages nodes exchange over the simulated network (Kafka API names), as frozen dataclasses.

Requests carry a `request_id` chosen by the sender; the answer echoes it, so a
late, duplicated or stale answer is recognised and ignored. Error codes are
Kafka's names. Calls to the coordination service are not messages: see zk.py.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_verify.impl.group_messages import GroupMessage
from kafka_verify.impl.log import StoredRecord
from kafka_verify.impl.zk import TopicRecord
from kafka_verify.model.values import fast_init

NONE = "NONE"
NOT_LEADER = "NOT_LEADER_OR_FOLLOWER"
FENCED_LEADER_EPOCH = "FENCED_LEADER_EPOCH"
UNKNOWN_LEADER_EPOCH = "UNKNOWN_LEADER_EPOCH"
OFFSET_OUT_OF_RANGE = "OFFSET_OUT_OF_RANGE"
NOT_ENOUGH_REPLICAS = "NOT_ENOUGH_REPLICAS"
NOT_ENOUGH_REPLICAS_AFTER_APPEND = "NOT_ENOUGH_REPLICAS_AFTER_APPEND"
OUT_OF_ORDER_SEQUENCE = "OUT_OF_ORDER_SEQUENCE_NUMBER"
LEADERSHIP_LOST = "LEADERSHIP_LOST_AFTER_APPEND"
INVALID_TOPIC = "INVALID_TOPIC_EXCEPTION"
COORDINATION_UNAVAILABLE = "COORDINATION_UNAVAILABLE"  # the coordination service did not answer

# Errors that prove the record was not appended (a producer may report "fail").
DEFINITE_PRODUCE_ERRORS = frozenset({NOT_LEADER, NOT_ENOUGH_REPLICAS, OUT_OF_ORDER_SEQUENCE})

# (partition, leader or None, leader epoch) for every partition.
LeaderTable = tuple[tuple[int, int | None, int], ...]
# Every topic, in the order of its first partition.
TopicTable = tuple[TopicRecord, ...]
# (partition, its in-sync replicas) as one broker knows them.
IsrTable = tuple[tuple[int, tuple[int, ...]], ...]


@fast_init
@dataclass(frozen=True, slots=True)
class LeaderAndIsr:
    """Controller -> replica: this partition's leader, epoch and ISR (with the quorum record version)."""

    partition: int
    leader: int
    leader_epoch: int
    isr: frozenset[int]
    zk_version: int
    controller_epoch: int
    broker_epoch: int
    replicas: tuple[int, ...]  # the partition's assigned replicas


@fast_init
@dataclass(frozen=True, slots=True)
class LeaderAndIsrResponse:
    partition: int
    leader_epoch: int
    broker_epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class UpdateMetadata:
    """Controller -> every broker: the topics and who leads what, so brokers can answer client
    Metadata requests."""

    leaders: LeaderTable
    controller_epoch: int
    broker_epoch: int
    topics: TopicTable


@fast_init
@dataclass(frozen=True, slots=True)
class UpdateMetadataResponse:
    leaders: LeaderTable
    broker_epoch: int
    topics: TopicTable


@fast_init
@dataclass(frozen=True, slots=True)
class Metadata:
    request_id: int


@fast_init
@dataclass(frozen=True, slots=True)
class MetadataResponse:
    """What the answering broker knows: each partition's leader, its ISR (as its leader has it
    when this broker leads, else as the last LeaderAndIsr said) and the controller."""

    request_id: int
    leaders: LeaderTable
    topics: TopicTable
    isrs: IsrTable = ()
    controller: int | None = None


@fast_init
@dataclass(frozen=True, slots=True)
class CreateTopic:
    """Client -> any broker: create topic `name` (Kafka's CreateTopics, one topic)."""

    request_id: int
    name: str
    partitions: int
    replication: int


@fast_init
@dataclass(frozen=True, slots=True)
class CreateTopicResponse:
    """NONE with the new topic, or why not: TOPIC_ALREADY_EXISTS, INVALID_TOPIC_EXCEPTION,
    INVALID_PARTITIONS, INVALID_REPLICATION_FACTOR or COORDINATION_UNAVAILABLE."""

    request_id: int
    name: str
    error: str
    topic: TopicRecord | None


@fast_init
@dataclass(frozen=True, slots=True)
class Produce:
    """One record batch for a partition: `count` records, from base sequence `seq`.

    The simulation's batches hold one record and no bytes; the real host passes the
    producer's batch as `payload`, which the broker stores and serves unchanged.
    """

    request_id: int
    partition: int
    record_id: int
    producer_id: int  # -1 when the producer is not idempotent
    seq: int
    acks: int
    count: int = 1
    payload: bytes = b""


@fast_init
@dataclass(frozen=True, slots=True)
class ProduceResponse:
    request_id: int
    partition: int
    error: str
    offset: int | None


@fast_init
@dataclass(frozen=True, slots=True)
class Fetch:
    """A follower (replica = its broker index) or a consumer (replica None) reads from the leader."""

    request_id: int
    partition: int
    fetch_offset: int
    current_leader_epoch: int  # -1: unknown, not checked
    replica: int | None
    max_records: int  # batches
    max_bytes: int | None = None  # of payload, past the first batch (None: no limit)


@fast_init
@dataclass(frozen=True, slots=True)
class FetchResponse:
    request_id: int
    partition: int
    error: str
    fetch_offset: int
    records: tuple[StoredRecord, ...]
    high_watermark: int
    log_start: int
    log_end: int
    # The first offset of the first batch in `records` (before `fetch_offset` when that
    # offset is inside a batch); each later batch starts where the one before it ends.
    base_offset: int = -1


@fast_init
@dataclass(frozen=True, slots=True)
class OffsetsForLeaderEpoch:
    request_id: int
    partition: int
    requested_epoch: int
    current_leader_epoch: int


@fast_init
@dataclass(frozen=True, slots=True)
class OffsetsForLeaderEpochResponse:
    request_id: int
    partition: int
    error: str
    epoch: int
    end_offset: int


EARLIEST_TIMESTAMP = -2
LATEST_TIMESTAMP = -1


@fast_init
@dataclass(frozen=True, slots=True)
class ListOffsets:
    """A consumer asks the leader for an offset: the log start (EARLIEST_TIMESTAMP), the high
    watermark (LATEST_TIMESTAMP), or the first batch appended at or after `timestamp_ms`."""

    request_id: int
    partition: int
    current_leader_epoch: int  # -1: unknown, not checked
    timestamp_ms: int


@fast_init
@dataclass(frozen=True, slots=True)
class ListOffsetsResponse:
    request_id: int
    partition: int
    error: str
    offset: int
    leader_epoch: int


ReplicationMessage = (
    LeaderAndIsr
    | LeaderAndIsrResponse
    | UpdateMetadata
    | UpdateMetadataResponse
    | Metadata
    | MetadataResponse
    | Produce
    | ProduceResponse
    | Fetch
    | FetchResponse
    | OffsetsForLeaderEpoch
    | OffsetsForLeaderEpochResponse
    | ListOffsets
    | ListOffsetsResponse
    | CreateTopic
    | CreateTopicResponse
)

# Every message a node sends: these and the consumer-group protocol's (group_messages.py).
Message = ReplicationMessage | GroupMessage
