"""The built-in reference cluster that `kafka-verify run`, `mutants` and the quality tests drive.

One definition, so the campaign that gates CI, the mutation campaign and the
tests all exercise the same shape of cluster.
"""

from __future__ import annotations

from kafka_verify.impl.config import ClusterConfig


def reference_cluster(
    bugs: frozenset[str] = frozenset(),
    *,
    brokers: int = 3,
    partitions: int = 2,
    replication: int = 3,
    min_insync: int = 2,
    groups: int = 2,
) -> ClusterConfig:
    """3 brokers, topic t with 2 partitions at RF 3 and min ISR 2, two consumer groups.

    Raises ValueError (one sentence) for an impossible shape or an unknown bug.
    """
    return ClusterConfig(
        brokers=brokers,
        partitions=partitions,
        replication=replication,
        min_insync=min_insync,
        groups=groups,
        consumers=3 if groups else 1,
        # Small enough that retention by size and by time runs within a schedule.
        retention_records=8,
        retention_ms=30_000,
        # Flushing rarely (as Kafka does by default) leaves crashes something to lose.
        flush_interval_ms=5_000,
        bugs=bugs,
    )
