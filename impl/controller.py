"""The active controller, hosted by the broker that holds the lease in the coordination service.

Each tick it works from a fresh read of the coordination service:
1. elect a leader for every partition whose leader is gone (unregistered, or
   re-registered under a new broker epoch, i.e. bounced) and for every offline
   partition with a live ISR member, choosing from ISR ∩ registered (clean);
   every election is a compare-and-set conditioned on the controller epoch;
2. send LeaderAndIsr to every live replica that has not acknowledged the
   current leader epoch under its current broker epoch, and UpdateMetadata to
   every live broker that has not acknowledged the current topics and leader table.
A partition's replicas are the coordination service's assignment (its topics),
so a topic created at runtime is elected and announced the same way: its
records start with no leader, and the first election names its first live replica.
Messages are re-sent after `request_timeout_ms` until acknowledged, since the
network may lose them.
"""

from __future__ import annotations

from kafka_verify.impl import bugs
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.effects import Handler, Observe, Send, ZkCall
from kafka_verify.impl.zk import PartitionRecord, ZkCluster, ZkElect, ZkWritten
from kafka_verify.model.actions import ElectLeader

NOT_DUE_MS = 2**62  # no request held back: a time no run's virtual clock reaches


class Controller:
    def __init__(self, broker: int, epoch: int, config: ClusterConfig) -> None:
        self.broker = broker
        self.epoch = epoch
        self.config = config
        self.model = config.model_config()
        # (partition, broker) -> (leader epoch, broker epoch) acknowledged
        self.acked: dict[tuple[int, int], tuple[int, int]] = {}
        self.metadata_acked: dict[int, tuple[m.LeaderTable, m.TopicTable, int]] = {}
        self.last_sent_ms: dict[tuple[object, ...], int] = {}
        # Counts the acknowledgements taken in (what a tick reads besides the cluster).
        self.acks_taken = 0
        # Of the last tick: whether it wrote or sent anything, and when the first request it
        # held back (sent too recently) falls due.
        self.acted = False
        self.next_due_ms = NOT_DUE_MS

    def assume_initial_state_known(self, topics: m.TopicTable) -> None:
        """At the start of a run every broker already knows the initial topics and leaders
        (broker i has epoch i + 1)."""
        table: m.LeaderTable = tuple(
            (p, self.model.replicas_of(p)[0], 0) for p in range(self.model.partitions)
        )
        for b in range(self.model.brokers):
            self.metadata_acked[b] = (table, topics, b + 1)
        for p in range(self.model.partitions):
            for b in self.model.replicas_of(p):
                self.acked[(p, b)] = (0, b + 1)

    def tick(self, cluster: ZkCluster, now_ms: int) -> Handler:
        """Elect where a leader is gone, and (re)send what a broker has not acknowledged.

        Afterwards `acted` says whether it did anything; if not, a tick with the same cluster
        and acknowledgements does nothing either until `next_due_ms`."""
        self.acted, self.next_due_ms = False, NOT_DUE_MS
        records = list(cluster.partitions)
        for p, record in enumerate(records):
            choice = self._election(record, cluster.replicas[p], cluster.registrations)
            if choice is None:
                continue
            leader, isr = choice
            broker_epoch = cluster.registrations.get(leader, -1) if leader is not None else -1
            fenced = not bugs.enabled(self.config, bugs.CONTROLLER_SPLIT_BRAIN)
            self.acted = True
            reply = yield ZkCall(
                ZkElect(p, self.epoch, record.version, leader, isr, broker_epoch, fenced)
            )
            if isinstance(reply, ZkWritten):
                records[p] = reply.record
                yield Observe(ElectLeader(p, leader, isr, self.epoch))
        yield from self._send_leader_and_isr(records, cluster, now_ms)
        yield from self._send_metadata(records, cluster, now_ms)

    def _election(
        self, record: PartitionRecord, replicas: tuple[int, ...], registered: dict[int, int]
    ) -> tuple[int | None, frozenset[int]] | None:
        """(new leader or None, new ISR) if the partition of `record` needs an election now, else None."""
        leader = record.leader
        if leader is not None and registered.get(leader) == record.leader_broker_epoch:
            return None
        live = frozenset(b for b in record.isr if b in registered)
        if live:
            # Prefer a replica other than the one that just went away or bounced.
            others = [b for b in replicas if b in live and b != leader]
            return (others[0] if others else leader), live
        if bugs.enabled(self.config, bugs.UNCLEAN_ELECTION):
            outside = [b for b in replicas if b in registered]
            if outside:
                return outside[0], frozenset({outside[0]})
        if leader is None:
            return None
        return None, record.isr

    def _due(self, key: tuple[object, ...], now_ms: int) -> bool:
        last = self.last_sent_ms.get(key)
        if last is not None and now_ms - last < self.config.request_timeout_ms:
            self.next_due_ms = min(self.next_due_ms, last + self.config.request_timeout_ms)
            return False
        self.last_sent_ms[key] = now_ms
        self.acted = True  # the caller sends it
        return True

    def _send_leader_and_isr(
        self, records: list[PartitionRecord], cluster: ZkCluster, now_ms: int
    ) -> Handler:
        registered = cluster.registrations
        for p, record in enumerate(records):
            if record.leader is None:
                continue
            replicas = cluster.replicas[p]
            for b in replicas:
                if b not in registered:
                    continue
                current = (record.leader_epoch, registered[b])
                if self.acked.get((p, b)) == current or not self._due(
                    ("lai", p, b, *current), now_ms
                ):
                    continue
                message = m.LeaderAndIsr(
                    p,
                    record.leader,
                    record.leader_epoch,
                    record.isr,
                    record.version,
                    self.epoch,
                    registered[b],
                    replicas,
                )
                yield Send(f"b{b}", message)

    def _send_metadata(
        self, records: list[PartitionRecord], cluster: ZkCluster, now_ms: int
    ) -> Handler:
        table: m.LeaderTable = tuple([(p, r.leader, r.leader_epoch) for p, r in enumerate(records)])
        topics = cluster.topics
        for b in sorted(cluster.registrations):
            current = (table, topics, cluster.registrations[b])
            if self.metadata_acked.get(b) == current or not self._due(
                ("meta", b, *current), now_ms
            ):
                continue
            yield Send(
                f"b{b}", m.UpdateMetadata(table, self.epoch, cluster.registrations[b], topics)
            )

    def on_leader_and_isr_response(self, src: int, response: m.LeaderAndIsrResponse) -> None:
        self.acked[(response.partition, src)] = (response.leader_epoch, response.broker_epoch)
        self.acks_taken += 1

    def on_metadata_response(self, src: int, response: m.UpdateMetadataResponse) -> None:
        self.metadata_acked[src] = (response.leaders, response.topics, response.broker_epoch)
        self.acks_taken += 1
