"""The real host of one node: an unchanged impl node on an asyncio loop, TCP to its peers, real timers.

Rules of this module:
- One node per process: the coordination node "zk" (`ZkHost`) or a broker
  "b{i}" (`BrokerHost`). A broker's handlers run exactly as in
  impl/world.py: one task takes one event at a time (a message, a timer, a
  client request) and performs each effect as the handler yields it.
- A `ZkCall` is a synchronous RPC: the handler stays suspended until the
  reply and no other event of the node runs meanwhile, as in the
  simulation. No connection, or no reply within `request_timeout_ms`, is
  `ZkError(CONNECTION_LOSS)`, the world's answer for an unreachable service.
- A `Send` goes on this node's one outbound connection to the peer, kept
  open and reopened in the background; a message to a peer that is not
  connected, or whose connection holds `MAX_BUFFERED_BYTES` unsent, is
  dropped, as the simulated network loses it. A node that is not an
  addressed peer (a probe, a test client) is answered on the connection it
  opened.
- Every connection starts with a `Hello` frame, whose envelope names the
  sender; every frame after it must come from the same sender. A bad frame
  closes that connection alone, with the reason logged; the node goes on.
- Milliseconds are `time.monotonic()` since the host was built.
- The zk node writes its whole state (zk_state.py) after every call that
  changed it, before it answers.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import time
from collections import Counter
from collections.abc import AsyncIterator, Callable, Coroutine, Mapping
from dataclasses import dataclass
from pathlib import Path

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
from kafka_verify.impl.group_store import GROUP_CALLS, GroupStore
from kafka_verify.impl.log import PartitionLog
from kafka_verify.impl.messages import Message
from kafka_verify.impl.zk import CONNECTION_LOSS, Coordination, ZkError
from kafka_verify.wire import zk_state
from kafka_verify.wire.node_codec import (
    MESSAGE_TYPES,
    Hello,
    NodeCodecError,
    NodeFrameDecoder,
    ZkCallReply,
    ZkCallRequest,
    encode_node_frame,
)
from kafka_verify.wire.server import cancel_all

log = logging.getLogger(__name__)

ZK = "zk"
KAFKA = "kafka"  # the local Kafka front end, as the broker sees it
READ_CHUNK_BYTES = 65_536
MAX_BUFFERED_BYTES = 32 * 1024 * 1024
# Request ids of the Kafka front end: above every id a broker (incarnation * 10**9 + n)
# or its coordinator (negative) ever forms, so a reply to the front end is never mistaken.
KAFKA_REQUEST_BASE = 1 << 62
INCARNATION_FILE = "incarnation"

# The log of one partition in this broker's data directory.
LogFactory = Callable[[int], PartitionLog]
PARTITION_DIR_PREFIX = "partition-"


def partition_dir(data_dir: Path, partition: int) -> Path:
    return data_dir / f"{PARTITION_DIR_PREFIX}{partition}"


def existing_partitions(data_dir: Path) -> list[int]:
    """The partitions whose log directories a broker's data directory holds."""
    found = []
    if data_dir.is_dir():
        for entry in data_dir.iterdir():
            suffix = entry.name.removeprefix(PARTITION_DIR_PREFIX)
            if entry.is_dir() and entry.name != suffix and suffix.isdigit():
                found.append(int(suffix))
    return found


Address = tuple[str, int]


@dataclass(frozen=True, slots=True)
class Topology:
    """Where every node listens for its peers, and where every broker serves Kafka clients."""

    node_addresses: Mapping[str, Address]  # "zk", "b0", ... -> node port
    kafka_addresses: Mapping[int, Address]  # broker index -> advertised Kafka address


class PeerProtocolError(Exception):
    """A peer sent a frame it may not send here: the reason is one sentence."""


class _Link:
    """One open TCP connection: envelopes written by this node."""

    def __init__(self, writer: asyncio.StreamWriter) -> None:
        self.writer = writer

    def send(self, frame: bytes) -> bool:
        if self.writer.is_closing():
            return False
        if self.writer.transport.get_write_buffer_size() > MAX_BUFFERED_BYTES:
            return False  # a stalled peer: the network loses what it cannot carry
        self.writer.write(frame)
        return True

    def close(self) -> None:
        self.writer.close()


class _Peer:
    """An addressed peer: its outbound link when connected, and who waits for the next attempt."""

    def __init__(self, name: str, address: Address) -> None:
        self.name = name
        self.address = address
        self.link: _Link | None = None
        self._attempt: asyncio.Future[None] | None = None

    def attempt_done(self) -> None:
        if self._attempt is not None and not self._attempt.done():
            self._attempt.set_result(None)
        self._attempt = None

    def next_attempt(self) -> asyncio.Future[None]:
        if self._attempt is None:
            self._attempt = asyncio.get_running_loop().create_future()
        return self._attempt


class NodeHost:
    """The network and clock of one node; `BrokerHost` and `ZkHost` add the node itself."""

    def __init__(
        self,
        name: str,
        config: ClusterConfig,
        topology: Topology,
        data_dir: Path,
        bind_host: str = "127.0.0.1",
    ) -> None:
        self.name = name
        self.config = config
        self.topology = topology
        self.data_dir = data_dir
        self.bind_host = bind_host
        self.observed: Counter[str] = Counter()
        self.closed_for_bad_frames = 0
        self._started_at = time.monotonic()
        self._peers: dict[str, _Peer] = {}
        self._inbound: dict[str, _Link] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._server: asyncio.Server | None = None
        self._closing = False

    # -- clock and lifecycle ---------------------------------------------------------------

    def now_ms(self) -> int:
        return int((time.monotonic() - self._started_at) * 1000)

    @property
    def node_port(self) -> int:
        if self._server is None:
            raise RuntimeError("the node host is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    def _outbound_peers(self) -> tuple[str, ...]:
        return ()

    async def start(self) -> None:
        _, port = self.topology.node_addresses[self.name]
        self._server = await asyncio.start_server(self._accept, host=self.bind_host, port=port)
        for peer in self._outbound_peers():
            self._peers[peer] = _Peer(peer, self.topology.node_addresses[peer])
            self._spawn(self._keep_connected(self._peers[peer]))

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        await cancel_all(self._tasks)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> asyncio.Task[None]:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)
        return task

    # -- connections -------------------------------------------------------------------------

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if self._closing:
            writer.close()
            return
        self._spawn(self._inbound_connection(reader, writer))

    async def _inbound_connection(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        link = _Link(writer)
        peer = writer.get_extra_info("peername")
        sender: str | None = None
        try:
            decoder = NodeFrameDecoder()
            async for src, item in self._frames(reader, decoder):
                if sender is None:
                    if not isinstance(item, Hello):
                        raise PeerProtocolError(f"its first frame is a {type(item).__name__}")
                    if src in (self.name, KAFKA):
                        raise PeerProtocolError(f"it says it is {src!r}, a name it may not take")
                    sender = src
                    self._inbound[src] = link
                    continue
                if src != sender:
                    raise PeerProtocolError(f"it said it was {sender!r}, then {src!r}")
                self._received(src, item, link)
        except (NodeCodecError, PeerProtocolError) as error:
            self.closed_for_bad_frames += 1
            reason = error.reason if isinstance(error, NodeCodecError) else str(error)
            log.warning("%s: closing the connection from %s: %s", self.name, peer, reason)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("%s: the connection from %s was lost", self.name, peer)
        finally:
            if sender is not None and self._inbound.get(sender) is link:
                del self._inbound[sender]
            self._link_lost(link)
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _frames(
        self, reader: asyncio.StreamReader, decoder: NodeFrameDecoder
    ) -> AsyncIterator[tuple[str, object]]:
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                decoder.close()  # a NodeCodecError if the peer left inside a frame
                return
            decoder.feed(data)
            for envelope in decoder.envelopes():
                yield envelope

    async def _keep_connected(self, peer: _Peer) -> None:
        backoff_s = self.config.retry_backoff_ms / 1000
        timeout_s = self.config.request_timeout_ms / 1000
        while not self._closing:
            try:
                reader, writer = await asyncio.wait_for(
                    asyncio.open_connection(*peer.address), timeout_s
                )
            except (OSError, TimeoutError):
                peer.attempt_done()
                await asyncio.sleep(backoff_s)
                continue
            link = _Link(writer)
            link.send(encode_node_frame(self.name, Hello()))
            peer.link = link
            peer.attempt_done()
            try:
                async for src, item in self._frames(reader, NodeFrameDecoder()):
                    if src != peer.name:
                        raise PeerProtocolError(f"{peer.name} sent a frame as {src!r}")
                    self._received(src, item, link)
            except (NodeCodecError, PeerProtocolError) as error:
                self.closed_for_bad_frames += 1
                reason = error.reason if isinstance(error, NodeCodecError) else str(error)
                log.warning("%s: closing the connection to %s: %s", self.name, peer.name, reason)
            except (ConnectionError, asyncio.IncompleteReadError):
                log.info("%s: the connection to %s was lost", self.name, peer.name)
            finally:
                peer.link = None
                self._link_lost(link)
                writer.close()
            await asyncio.sleep(backoff_s)

    def _send_frame(self, dst: str, item: object) -> bool:
        """Write one envelope to `dst`; False when it is lost (no connection, or a stalled one)."""
        peer = self._peers.get(dst)
        link = peer.link if peer is not None else self._inbound.get(dst)
        if link is None:
            return False
        try:
            return link.send(encode_node_frame(self.name, item))
        except (ConnectionError, RuntimeError):
            return False

    # -- what subclasses handle -------------------------------------------------------------

    def _received(self, src: str, item: object, link: _Link) -> None:
        raise NotImplementedError

    def _link_lost(self, link: _Link) -> None:
        """A connection closed: calls waiting on it are answered now."""

    async def shutdown(self) -> None:
        """A graceful stop: make what must be durable durable, then close."""
        await self.close()


# -- the coordination node ------------------------------------------------------------------


class ZkHost(NodeHost):
    """The coordination node: Coordination and GroupStore, persisted after every change."""

    def __init__(
        self,
        config: ClusterConfig,
        topology: Topology,
        data_dir: Path,
        bind_host: str = "127.0.0.1",
    ) -> None:
        super().__init__(ZK, config, topology, data_dir, bind_host)
        self.zk: Coordination
        self.group_store: GroupStore
        stored = zk_state.read_state(data_dir)
        if stored is None:
            self.zk, self.group_store = initial_coordination(config), initial_group_store(config)
            self.zk.restarted(self.now_ms())
            self._written = b""
            self._persist()
        else:
            self.zk, self.group_store = zk_state.restore(stored, config, self.now_ms())
            self._written = stored
        self.calls_answered = 0

    def _persist(self) -> None:
        payload = zk_state.encode_state(self.zk, self.group_store)
        if payload != self._written:
            zk_state.write_state(self.data_dir, payload)
            self._written = payload

    def _received(self, src: str, item: object, link: _Link) -> None:
        if not isinstance(item, ZkCallRequest):
            raise PeerProtocolError(
                f"the coordination node takes calls, not a {type(item).__name__}"
            )
        request = item.request
        if isinstance(request, GROUP_CALLS):
            reply: object = self.group_store.call(request, self.zk.partitions)
        else:
            reply = self.zk.call(request, self.now_ms())
        self._persist()  # durable before the caller hears of it
        self.calls_answered += 1
        link.send(encode_node_frame(self.name, ZkCallReply(item.call_id, reply)))  # type: ignore[arg-type]


# -- a broker ------------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Deliver:
    src: str
    message: Message


@dataclass(frozen=True, slots=True)
class _Timer:
    name: str
    seq: int


class BrokerHost(NodeHost):
    """Broker b{index}: its handlers driven one event at a time; also the front end's `NodePort`."""

    def __init__(
        self,
        index: int,
        config: ClusterConfig,
        topology: Topology,
        data_dir: Path,
        log_factory: LogFactory,
        bind_host: str = "127.0.0.1",
    ) -> None:
        super().__init__(f"b{index}", config, topology, data_dir, bind_host)
        self.index = index
        self.addresses: Mapping[int, Address] = topology.kafka_addresses
        model = config.model_config()
        hosted = {p for p in range(model.partitions) if index in model.replicas_of(p)}
        # Partitions of topics created at runtime are found on disk, as Kafka scans its log dirs.
        hosted |= set(existing_partitions(data_dir))
        self._log_factory = log_factory
        self.logs = {p: log_factory(p) for p in sorted(hosted)}
        self.incarnation = _next_incarnation(data_dir)
        if self.incarnation == 0:
            session, broker_epoch = initial_coordination(config).registrations[index]
            self.broker = Broker.initial(index, config, self.logs, session, broker_epoch)
        else:
            self.broker = Broker(index, config, self.logs, self.incarnation)
        self._events: asyncio.Queue[_Deliver | _Timer] = asyncio.Queue()
        self._timers: dict[str, tuple[int, asyncio.TimerHandle]] = {}
        self._timer_seq = 0
        self._calls: dict[int, tuple[_Link, asyncio.Future[Reply]]] = {}
        self._next_call = 0
        self._awaiting: dict[int, asyncio.Future[object]] = {}
        self._next_kafka_request = KAFKA_REQUEST_BASE
        self.worker: asyncio.Task[None] | None = None

    def _outbound_peers(self) -> tuple[str, ...]:
        return tuple(n for n in self.topology.node_addresses if n != self.name)

    async def start(self) -> None:
        await super().start()
        self.worker = self._spawn(self._work())

    # -- the node port (for the Kafka front end) --------------------------------------------

    def next_request_id(self) -> int:
        self._next_kafka_request += 1
        return self._next_kafka_request

    async def call(self, message: Message, timeout_s: float) -> object:
        request_id: int = message.request_id  # type: ignore[union-attr]
        future: asyncio.Future[object] = asyncio.get_running_loop().create_future()
        self._awaiting[request_id] = future
        self._events.put_nowait(_Deliver(KAFKA, message))
        try:
            return await asyncio.wait_for(future, timeout_s)
        finally:
            self._awaiting.pop(request_id, None)

    def cast(self, message: Message) -> None:
        self._events.put_nowait(_Deliver(KAFKA, message))

    # -- events --------------------------------------------------------------------------------

    async def _work(self) -> None:
        await self._run(self.broker.start(self.now_ms()))
        while True:
            event = await self._events.get()
            if isinstance(event, _Timer):
                current = self._timers.get(event.name)
                if current is None or current[0] != event.seq:
                    continue  # replaced after it fired, as the world skips a stale timer
                del self._timers[event.name]
                await self._run(self.broker.on_timer(event.name, self.now_ms()))
            else:
                await self._run(self.broker.handle(event.src, event.message, self.now_ms()))

    async def _run(self, handler: Handler) -> None:
        try:
            effect = next(handler)
            while True:
                reply: Reply = None
                if isinstance(effect, ZkCall):
                    reply = await self._zk_call(effect)
                elif isinstance(effect, OpenLog):
                    if effect.partition not in self.logs:
                        self.logs[effect.partition] = self._log_factory(effect.partition)
                    reply = self.logs[effect.partition]
                else:
                    self._perform(effect)
                effect = handler.send(reply)
        except StopIteration:
            pass

    def _perform(self, effect: object) -> None:
        if isinstance(effect, Send):
            self._send(effect)
        elif isinstance(effect, SetTimer):
            self._set_timer(effect)
        elif isinstance(effect, Flush):
            self.logs[effect.partition].flush(effect.hw)
        elif isinstance(effect, Observe):
            self.observed[type(effect.item).__name__] += 1
        else:
            raise TypeError(f"{self.name} yielded {effect!r}, which is not an effect")

    def _send(self, effect: Send) -> None:
        if effect.dst == KAFKA:
            request_id = getattr(effect.message, "request_id", None)
            future = self._awaiting.pop(request_id, None) if isinstance(request_id, int) else None
            if future is not None and not future.done():
                future.set_result(effect.message)
            return  # an answer nobody waits for (acks=0, or too late) is dropped
        if effect.dst == self.name:
            # To itself (the controller's UpdateMetadata to its own broker): a later event,
            # as the simulated network delivers it.
            self._events.put_nowait(_Deliver(self.name, effect.message))
            return
        self._send_frame(effect.dst, effect.message)

    def _set_timer(self, effect: SetTimer) -> None:
        old = self._timers.pop(effect.name, None)
        if old is not None:
            old[1].cancel()
        self._timer_seq += 1
        event = _Timer(effect.name, self._timer_seq)
        handle = asyncio.get_running_loop().call_later(
            effect.delay_ms / 1000, self._events.put_nowait, event
        )
        self._timers[effect.name] = (event.seq, handle)

    async def _zk_call(self, effect: ZkCall) -> Reply:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.config.request_timeout_ms / 1000
        peer = self._peers[ZK]
        if peer.link is None:
            # One connection attempt may be under way (the service just came back): wait for it.
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(asyncio.shield(peer.next_attempt()), deadline - loop.time())
        link = peer.link
        if link is None:
            return ZkError(CONNECTION_LOSS)
        self._next_call += 1
        call_id = self._next_call
        future: asyncio.Future[Reply] = loop.create_future()
        self._calls[call_id] = (link, future)
        try:
            if not link.send(encode_node_frame(self.name, ZkCallRequest(call_id, effect.request))):
                return ZkError(CONNECTION_LOSS)
            return await asyncio.wait_for(future, max(0.0, deadline - loop.time()))
        except TimeoutError:
            return ZkError(CONNECTION_LOSS)
        finally:
            self._calls.pop(call_id, None)

    def _received(self, src: str, item: object, link: _Link) -> None:
        if isinstance(item, ZkCallReply):
            if src != ZK:
                raise PeerProtocolError(f"{src} sent a coordination reply")
            # Only the connection the call went out on answers it.
            pending = self._calls.get(item.call_id)
            if pending is not None and pending[0] is link and not pending[1].done():
                pending[1].set_result(item.reply)
            return  # a reply after its call timed out is dropped
        if type(item).__name__ not in MESSAGE_TYPES or isinstance(item, Hello):
            raise PeerProtocolError(f"a broker takes node messages, not a {type(item).__name__}")
        self._events.put_nowait(_Deliver(src, item))  # type: ignore[arg-type]

    def _link_lost(self, link: _Link) -> None:
        for other, future in self._calls.values():
            if other is link and not future.done():
                future.set_result(ZkError(CONNECTION_LOSS))

    async def shutdown(self) -> None:
        """Stop taking events, flush every log with its replica's high watermark, close."""
        if self.worker is not None:
            self.worker.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self.worker
        for r in self.broker.replicas.values():
            r.log.flush(r.hw)
        await self.close()


def _next_incarnation(data_dir: Path) -> int:
    """0 in a fresh directory, else one more than the last start; written durably before use."""
    path = data_dir / INCARNATION_FILE
    try:
        text = path.read_text(encoding="ascii").strip()
    except FileNotFoundError:
        incarnation = 0
    else:
        if not text.isdigit():
            raise ValueError(f"{path} does not hold an incarnation number")
        incarnation = int(text) + 1
    temporary = path.with_suffix(".tmp")
    with open(temporary, "w", encoding="ascii") as file:
        file.write(f"{incarnation}\n")
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, path)
    zk_state.fsync_directory(data_dir)
    return incarnation
