"""The reference cluster's configuration: shape, client settings, retention, timing, seeded bugs."""

from __future__ import annotations

from dataclasses import dataclass, fields

from kafka_verify import model
from kafka_verify.impl.bugs import BUGS

TOPIC = "t"


@dataclass(frozen=True, slots=True)
class ClusterConfig:
    """Everything that shapes one simulated cluster. Times are virtual milliseconds."""

    brokers: int = 3
    partitions: int = 1  # partitions of the one user topic "t"
    replication: int = 3
    min_insync: int = 2
    acks: int = -1  # producer acks: 0, 1 or -1 (all)
    idempotent: bool = True
    producers: int = 2  # "p0", "p1", ...
    consumers: int = 1  # "c0", ... (assign mode: read every partition of "t")
    retention_ms: int | None = 120_000
    retention_records: int | None = 40  # per partition
    bugs: frozenset[str] = frozenset()
    session_timeout_ms: int = 6_000
    heartbeat_interval_ms: int = 2_000
    controller_interval_ms: int = 250
    replica_fetch_interval_ms: int = 200
    replica_lag_time_max_ms: int = 5_000
    request_timeout_ms: int = 3_000
    message_lifetime_ms: int = 10_000  # a message still in flight this long is lost
    retry_backoff_ms: int = 100
    delivery_timeout_ms: int = (
        15_000  # a producer gives a record up this long after first sending it
    )
    flush_interval_ms: int = 500
    retention_check_interval_ms: int = 1_000
    segment_records: int = 4
    fetch_max_records: int = 16
    reset_earliest: bool = True  # consumer auto.offset.reset: earliest (else latest)
    # Consumer groups "g0", ...; with groups > 0 the internal offsets topic's partitions
    # follow the user topic's in the model's partition tuple, replicated like them.
    groups: int = 0
    offsets_partitions: int = 1
    group_check_interval_ms: int = 500
    rebalance_timeout_ms: int = 12_000  # how long a join phase waits for members to rejoin
    # The user topics in order, as (name, partitions): their partitions are the model's
    # partitions 0, 1, ... in that order. Empty: the one topic TOPIC of `partitions` partitions.
    topics: tuple[tuple[str, int], ...] = ()
    # Serve a group of any name (the real host's clients name their own), not only "g0", ...
    any_group: bool = False
    # Kafka's auto.create.topics.enable, num.partitions and default.replication.factor: a
    # topic a client's Metadata names that does not exist is created with these. Only the
    # real host's front end acts on them (the simulated clients use the configured topics).
    auto_create_topics: bool = False
    default_partitions: int = 1
    default_replication: int = 1

    def __post_init__(self) -> None:
        self.model_config()  # the model's own shape checks, with its own sentences
        if self.acks not in (0, 1, -1):
            raise ValueError(f"acks must be 0, 1 or -1 (all), not {self.acks}")
        if self.idempotent and self.acks != -1:
            raise ValueError("an idempotent producer needs acks=-1 (all); set idempotent=False")
        if self.producers < 0 or self.consumers < 0:
            raise ValueError("the numbers of producers and consumers cannot be negative")
        if self.retention_ms is not None and self.retention_ms <= 0:
            raise ValueError(f"retention_ms must be positive or None, not {self.retention_ms}")
        if self.retention_records is not None and self.retention_records < 1:
            raise ValueError(
                f"retention_records must be at least 1 or None, not {self.retention_records}"
            )
        for f in fields(self):
            if f.name.endswith("_ms") and f.name != "retention_ms" and getattr(self, f.name) <= 0:
                raise ValueError(f"{f.name} must be positive, not {getattr(self, f.name)}")
        if self.heartbeat_interval_ms >= self.session_timeout_ms:
            raise ValueError("heartbeat_interval_ms must be shorter than session_timeout_ms")
        if self.groups < 0 or self.offsets_partitions < 1:
            raise ValueError("groups must be >= 0 and offsets_partitions >= 1")
        if self.segment_records < 1 or self.fetch_max_records < 1:
            raise ValueError("segment_records and fetch_max_records must be >= 1")
        if self.topics:
            names = [name for name, _ in self.topics]
            if len(set(names)) != len(names) or not all(names):
                raise ValueError("topic names must be distinct and not empty")
            if any(count < 1 for _, count in self.topics):
                raise ValueError("every topic needs at least one partition")
            if sum(count for _, count in self.topics) != self.partitions:
                raise ValueError(
                    f"the topics' partitions add up to {sum(c for _, c in self.topics)},"
                    f" not to partitions={self.partitions}"
                )
        if self.default_partitions < 1 or not 1 <= self.default_replication <= self.brokers:
            raise ValueError(
                "default_partitions must be >= 1 and default_replication between 1 and brokers"
            )
        for name in sorted(self.bugs):
            if name not in BUGS:
                raise ValueError(f"there is no bug named {name!r}; `kafka-verify bugs` lists them")

    def topic_layout(self) -> tuple[tuple[str, int], ...]:
        """The user topics as (name, partitions), in the order of their model partitions."""
        return self.topics or ((TOPIC, self.partitions),)

    def topic_partitions(self) -> tuple[tuple[str, int], ...]:
        """(topic, partition within it) of each model partition of the user topics."""
        return tuple((name, index) for name, count in self.topic_layout() for index in range(count))

    def model_partition(self, topic: str, index: int) -> int | None:
        """The model partition of `topic`'s partition `index`, or None if there is none."""
        first = 0
        for name, count in self.topic_layout():
            if name == topic:
                return first + index if 0 <= index < count else None
            first += count
        return None

    def model_config(self) -> model.Config:
        """The model's view of this cluster; the model is the spec, so no bugs."""
        return model.Config(
            brokers=self.brokers,
            partitions=self.partitions + (self.offsets_partitions if self.groups else 0),
            replication=self.replication,
            min_insync=self.min_insync,
            groups=self.groups,
            members=max(1, self.consumers),
            group_partitions=self.partitions,
            idempotent=self.idempotent,
        )
