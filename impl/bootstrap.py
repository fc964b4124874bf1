"""The cluster's first state, shared by both hosts: the coordination records and the group store.

Rules of this module:
- Pure construction from the config: the same config gives the same state, so
  the simulated world and a fresh real cluster start from the same place.
- Broker i is registered in order, so it holds session i + 1 and broker
  epoch i + 1; every partition is led by its first replica in epoch 0 with
  the full replica set in sync, as `Broker.initial` assumes.
"""

from __future__ import annotations

from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.coordinator import group_names, offsets_partition
from kafka_verify.impl.group_store import GroupStore
from kafka_verify.impl.zk import (
    OFFSETS_TOPIC,
    Coordination,
    Lease,
    PartitionRecord,
    TopicRecord,
    ZkRegister,
)


def initial_topics(config: ClusterConfig) -> tuple[TopicRecord, ...]:
    """The configured topics, then the offsets topic (with groups), on the model's assignment."""
    model = config.model_config()
    layout = list(config.topic_layout())
    if config.groups:
        layout.append((OFFSETS_TOPIC, config.offsets_partitions))
    topics, first = [], 0
    for name, count in layout:
        replicas = tuple(model.replicas_of(p) for p in range(first, first + count))
        topics.append(TopicRecord(name, first, replicas))
        first += count
    return tuple(topics)


def initial_coordination(config: ClusterConfig) -> Coordination:
    """The coordination service at time 0: every partition record, the lease of b0, every broker registered."""
    model = config.model_config()
    records = []
    for p in range(model.partitions):
        replicas = model.replicas_of(p)
        # Broker i registers with broker epoch i + 1 (see the registrations below).
        records.append(PartitionRecord(replicas[0], 0, frozenset(replicas), 0, replicas[0] + 1))
    zk = Coordination(config, tuple(records), Lease(0, 1, 0, session=1), initial_topics(config))
    for i in range(config.brokers):
        zk.call(ZkRegister(i), 0)
    return zk


def initial_group_store(config: ClusterConfig) -> GroupStore:
    """The group store at time 0: every group empty, on its offsets partition."""
    return GroupStore.initial({g: offsets_partition(g, config) for g in group_names(config)})
