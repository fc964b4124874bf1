"""Producer and consumer clients, sans-IO like the brokers.

Producer "p{i}": a partitioner (explicit partition, else an FNV-1a hash of the
key, else round robin), at most one request in flight per partition (so sends
land in order), retries with backoff until a delivery timeout, a request timeout, metadata refresh on
leadership errors, and idempotence by producer id and per-partition sequence.
Outcomes follow Jepsen: `ok` with the offset, `fail` only when no attempt can
have been appended, `info` when the outcome is unknown.

Consumer "c{i}", assign mode: reads every partition of the topic from offset 0,
only below the high watermark; resets to the earliest (or latest) offset when
its position is out of range. The consumer that joins a group is group_member.py's.

Each client handles the message types of its table of handlers and ignores every
other one, for the reason its table of ignored types gives.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass

from kafka_verify.impl import group_messages as gm
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import TOPIC, ClusterConfig
from kafka_verify.impl.dispatch import route
from kafka_verify.impl.effects import ClientOp, Handler, Observe, Send, SetTimer

FNV_OFFSET = 0x811C9DC5
FNV_PRIME = 0x01000193


def fnv1a(key: str) -> int:
    """32-bit FNV-1a of the key's UTF-8 bytes: a stable hash (Python's hash() is salted per process)."""
    value = FNV_OFFSET
    for byte in key.encode("utf-8"):
        value = ((value ^ byte) * FNV_PRIME) & 0xFFFFFFFF
    return value


class _MetadataClient:
    """What producers and consumers share: a leader table and how to refresh it."""

    def __init__(self, name: str, config: ClusterConfig, incarnation: int) -> None:
        self.name = name
        self.config = config
        self.incarnation = incarnation
        model = config.model_config()
        # Clients start with the run's initial metadata, as if fetched at bootstrap.
        self.leaders: dict[int, tuple[int | None, int]] = {
            p: (model.replicas_of(p)[0], 0) for p in range(config.partitions)
        }
        self._next_request = incarnation * 1_000_000_000
        self._metadata_request: tuple[int, int] | None = None  # (request id, sent at)

    def _request_id(self) -> int:
        self._next_request += 1
        return self._next_request

    def _refresh_metadata(self, now_ms: int) -> Handler:
        pending = self._metadata_request
        if pending is not None and now_ms - pending[1] < self.config.request_timeout_ms:
            return
        request_id = self._request_id()
        self._metadata_request = (request_id, now_ms)
        # Ask every broker: a dead one never answers, and the newest leader epochs win.
        for broker in range(self.config.brokers):
            yield Send(f"b{broker}", m.Metadata(request_id))

    def _forget_leader(self, partition: int) -> None:
        _, epoch = self.leaders.get(partition, (None, -1))
        self.leaders[partition] = (None, epoch)

    def _on_metadata_response(self, msg: m.MetadataResponse, now_ms: int) -> Handler:
        self._on_metadata(msg)
        yield from ()

    def _on_metadata(self, msg: m.MetadataResponse) -> None:
        # Any answer is news, even a late one: the leader epochs say which entries are newer.
        if self._metadata_request is not None and msg.request_id == self._metadata_request[0]:
            self._metadata_request = None
        for p, leader, epoch in msg.leaders:
            known = self.leaders.get(p, (None, -1))
            if epoch > known[1] or (epoch == known[1] and known[0] is None):
                self.leaders[p] = (leader, epoch)
                self._leader_changed(p)

    def _leader_changed(self, partition: int) -> None:
        """A hook: the client learned a new leader for `partition`."""

    def start(self, now_ms: int) -> Handler:
        yield from ()

    def crash_ops(self, now_ms: int) -> list[ClientOp]:
        return []


@dataclass(slots=True)
class _Attempt:
    record_id: int
    producer_id: int
    seq: int
    first_sent_ms: int = 0
    request_id: int | None = None  # the request awaiting an answer, if any
    maybe_appended: bool = False  # some attempt had no definite answer


class Producer(_MetadataClient):
    def __init__(self, index: int, config: ClusterConfig, incarnation: int) -> None:
        super().__init__(f"p{index}", config, incarnation)
        self.index = index
        self.queues: dict[int, deque[int]] = {p: deque() for p in range(config.partitions)}
        self.inflight: dict[int, _Attempt] = {}
        self.seqs: dict[int, int] = {p: 0 for p in range(config.partitions)}
        self.producer_ids: dict[int, int] = {
            p: self._new_producer_id(0) for p in range(config.partitions)
        }
        self._resets = 0
        self._round_robin = 0

    def _new_producer_id(self, reset: int) -> int:
        if not self.config.idempotent:
            return -1
        # Unique across producers, restarts and resets without a broker round trip.
        return (self.incarnation * 1_000_003 + reset) * max(1, self.config.producers) + self.index

    def choose_partition(self, partition: int | None, key: str | None) -> int:
        if partition is not None:
            return partition
        if key is not None:
            return fnv1a(key) % self.config.partitions
        chosen = self._round_robin % self.config.partitions
        self._round_robin += 1
        return chosen

    def _op(self, kind: str, p: int, offset: int | None, record_id: int, now_ms: int) -> Observe:
        return Observe(ClientOp(self.name, kind, "send", [TOPIC, p, offset, record_id], now_ms))

    def send(self, record_id: int, partition: int | None, key: str | None, now_ms: int) -> Handler:
        p = self.choose_partition(partition, key)
        yield self._op("invoke", p, None, record_id, now_ms)
        self.queues[p].append(record_id)
        if p not in self.inflight:
            yield from self._next(p, now_ms)

    def _next(self, p: int, now_ms: int) -> Handler:
        if p in self.inflight or not self.queues[p]:
            return
        record_id = self.queues[p].popleft()
        self.inflight[p] = _Attempt(record_id, self.producer_ids[p], self.seqs[p], now_ms)
        yield from self._attempt(p, now_ms)

    def _attempt(self, p: int, now_ms: int) -> Handler:
        attempt = self.inflight[p]
        leader, _ = self.leaders.get(p, (None, -1))
        if leader is None:
            yield from self._refresh_metadata(now_ms)
            yield SetTimer(f"retry:{p}", self.config.retry_backoff_ms)
            return
        attempt.request_id = self._request_id()
        acks = self.config.acks
        yield Send(
            f"b{leader}",
            m.Produce(
                attempt.request_id, p, attempt.record_id, attempt.producer_id, attempt.seq, acks
            ),
        )
        if acks == 0:
            # Nobody answers acks=0: the outcome is unknown the moment it is sent.
            yield from self._finish(p, "info", None, now_ms)
            return
        yield SetTimer(f"timeout:{p}", self.config.request_timeout_ms)

    def _finish(self, p: int, kind: str, offset: int | None, now_ms: int) -> Handler:
        attempt = self.inflight.pop(p)
        yield self._op(kind, p, offset, attempt.record_id, now_ms)
        if kind == "ok" or (kind == "info" and self.config.acks == 0):
            self.seqs[p] += 1
        elif kind == "info":
            # The sequence may or may not have been used: start a fresh producer id.
            self._resets += 1
            self.producer_ids[p], self.seqs[p] = self._new_producer_id(self._resets), 0
        yield from self._next(p, now_ms)

    def _retry(self, p: int, now_ms: int, refresh: bool) -> Handler:
        attempt = self.inflight[p]
        attempt.request_id = None
        if now_ms - attempt.first_sent_ms >= self.config.delivery_timeout_ms:
            yield from self._finish(p, "info" if attempt.maybe_appended else "fail", None, now_ms)
            return
        if refresh:
            self._forget_leader(p)
            yield from self._refresh_metadata(now_ms)
        yield SetTimer(f"retry:{p}", self.config.retry_backoff_ms)

    def on_timer(self, name: str, now_ms: int) -> Handler:
        kind, _, part = name.partition(":")
        p = int(part)
        attempt = self.inflight.get(p)
        if attempt is None:
            return
        if kind == "timeout" and attempt.request_id is not None:
            attempt.maybe_appended = True
            yield from self._refresh_metadata(
                now_ms
            )  # the leader may have moved; keep using it meanwhile
            yield from self._retry(p, now_ms, refresh=False)
        elif kind == "retry" and attempt.request_id is None:
            yield from self._attempt(p, now_ms)

    def handle(self, src: str, message: m.Message, now_ms: int) -> Handler:
        handler = PRODUCER_HANDLERS.get(type(message))
        if handler is not None:
            yield from handler(self, message, now_ms)

    def _on_produce_response(self, message: m.ProduceResponse, now_ms: int) -> Handler:
        attempt = self.inflight.get(message.partition)
        if attempt is None or message.request_id != attempt.request_id:
            return  # late or duplicated answer to an earlier attempt
        if message.error == m.NONE:
            yield from self._finish(message.partition, "ok", message.offset, now_ms)
            return
        if message.error not in m.DEFINITE_PRODUCE_ERRORS:
            attempt.maybe_appended = True
        refresh = message.error in (m.NOT_LEADER, m.LEADERSHIP_LOST)
        yield from self._retry(message.partition, now_ms, refresh)

    def crash_ops(self, now_ms: int) -> list[ClientOp]:
        """A crashed producer's sends: in flight -> unknown outcome; still queued -> never sent."""
        ops = [
            ClientOp(self.name, "info", "send", [TOPIC, p, None, a.record_id], now_ms)
            for p, a in sorted(self.inflight.items())
        ]
        for p, queue in sorted(self.queues.items()):
            ops.extend(
                ClientOp(self.name, "fail", "send", [TOPIC, p, None, r], now_ms) for r in queue
            )
        return ops


class Consumer(_MetadataClient):
    def __init__(self, index: int, config: ClusterConfig, incarnation: int) -> None:
        super().__init__(f"c{index}", config, incarnation)
        self.positions: dict[int, int] = {p: 0 for p in range(config.partitions)}
        self.fetching: dict[int, tuple[int, int]] = {}  # partition -> (request id, sent at)

    def start(self, now_ms: int) -> Handler:
        if self.incarnation > 0:
            # A restarted consumer is a new process that reads from the start again:
            # say so in the history, so a re-read is not taken for a backwards poll.
            value = [f"{TOPIC}/{p}" for p in range(self.config.partitions)]
            yield Observe(ClientOp(self.name, "ok", "assign", value, now_ms))

    def _leader_changed(self, partition: int) -> None:
        self.fetching.pop(partition, None)  # the old leader's answer no longer matters

    def poll(self, now_ms: int) -> Handler:
        for p in range(self.config.partitions):
            leader, epoch = self.leaders.get(p, (None, -1))
            if leader is None:
                yield from self._refresh_metadata(now_ms)
                continue
            pending = self.fetching.get(p)
            if pending is not None:
                if now_ms - pending[1] < self.config.request_timeout_ms:
                    continue
                yield from self._refresh_metadata(now_ms)  # no answer: the leader may have moved
            request_id = self._request_id()
            self.fetching[p] = (request_id, now_ms)
            yield Send(
                f"b{leader}",
                m.Fetch(
                    request_id, p, self.positions[p], epoch, None, self.config.fetch_max_records
                ),
            )

    def handle(self, src: str, message: m.Message, now_ms: int) -> Handler:
        handler = CONSUMER_HANDLERS.get(type(message))
        if handler is not None:
            yield from handler(self, message, now_ms)

    def _on_fetch_response(self, message: m.FetchResponse, now_ms: int) -> Handler:
        p = message.partition
        pending = self.fetching.get(p)
        if pending is None or pending[0] != message.request_id:
            return
        del self.fetching[p]
        if message.error == m.OFFSET_OUT_OF_RANGE:
            self.positions[p] = (
                message.log_start if self.config.reset_earliest else message.high_watermark
            )
        elif message.error != m.NONE:
            self._forget_leader(p)
            yield from self._refresh_metadata(now_ms)
        elif message.records and message.fetch_offset == self.positions[p]:
            pairs = [[message.fetch_offset + i, r.record_id] for i, r in enumerate(message.records)]
            self.positions[p] += len(pairs)
            yield Observe(ClientOp(self.name, "ok", "poll", {f"{TOPIC}/{p}": pairs}, now_ms))

    def on_timer(self, name: str, now_ms: int) -> Handler:
        yield from ()


# What a client does with each message type: each is handled (the tables of handlers below)
# or deliberately ignored, with the reason (the tables of reasons). A test walks every pair.
NOT_FOR_CLIENTS: dict[type, str] = {
    **dict.fromkeys(
        (
            m.LeaderAndIsr,
            m.LeaderAndIsrResponse,
            m.UpdateMetadata,
            m.UpdateMetadataResponse,
            m.OffsetsForLeaderEpoch,
            m.OffsetsForLeaderEpochResponse,
        ),
        "traffic between the controller and the brokers: never addressed to a client",
    ),
    **dict.fromkeys(
        (m.Metadata, m.Produce, m.Fetch, m.ListOffsets, m.CreateTopic),
        "a request that only brokers serve: never sent to a client",
    ),
    m.ListOffsetsResponse: (
        "the simulated consumers start at the log start or end from a fetch's answer;"
        " only the real host's Kafka clients ask ListOffsets"
    ),
    m.CreateTopicResponse: (
        "the simulated clients use the configured topics; only the real host's Kafka"
        " clients create topics"
    ),
    **dict.fromkeys(
        gm.REQUEST_TYPES,
        "a request that only a group coordinator (a broker) serves: never sent to a client",
    ),
}
_NO_GROUP = "an answer to a group request, which a client outside consumer groups never sends"

_PRODUCER_ROUTES = (
    route(m.MetadataResponse, Producer._on_metadata_response),
    route(m.ProduceResponse, Producer._on_produce_response),
)
PRODUCER_HANDLERS: dict[type, Callable[[Producer, object, int], Handler]] = dict(_PRODUCER_ROUTES)
PRODUCER_IGNORED: dict[type, str] = {
    **NOT_FOR_CLIENTS,
    m.FetchResponse: "a producer never fetches",
    **dict.fromkeys(gm.RESPONSE_TYPES, _NO_GROUP),
}

_CONSUMER_ROUTES = (
    route(m.MetadataResponse, Consumer._on_metadata_response),
    route(m.FetchResponse, Consumer._on_fetch_response),
)
CONSUMER_HANDLERS: dict[type, Callable[[Consumer, object, int], Handler]] = dict(_CONSUMER_ROUTES)
CONSUMER_IGNORED: dict[type, str] = {
    **NOT_FOR_CLIENTS,
    m.ProduceResponse: "a consumer never produces",
    **dict.fromkeys(gm.RESPONSE_TYPES, _NO_GROUP),
}
