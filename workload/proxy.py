"""The fault proxy: TCP forwarding on loopback, one port per link, cut and slowed on command.

Rules of this module:
- It runs as its own process, `python -m kafka_verify.workload.proxy --link
  SRC,DST,HOST:PORT ...`, on one asyncio loop. A link is one direction of
  who connects to whom: `b0->b1` carries the connections b0 opens to b1,
  `client->b0` those Kafka clients open to b0. Each link listens on its own
  port and forwards every byte of every connection, both ways, to its target.
- Faults are data, kept per link:
  - `cut`, mode `stall`: nothing moves on the link's connections and a new
    connection is held unanswered until the heal, as when a partition loses
    every packet (TCP buffers fill, the sender feels backpressure, then
    whatever survived is delivered late);
  - `cut`, mode `reset`: the link's connections are reset and a new one is
    reset at once, as when a partition answers with RST;
  - `slow`: `delay_ms` is added to every chunk in each direction, and `drop`
    is the probability that a chunk resets its connection instead of
    passing, and that a new connection is reset at accept. TCP has no way to
    lose single bytes, so a drop loses the whole connection and what was in
    flight on it; the peers reconnect, as they do after a real loss.
- The control port speaks JSON lines on loopback: one object per request
  (`op` is cut, slow, heal, faults, links or stats; cut, slow and heal take
  `links`, a list of names, and heal without it heals all), one answer per line,
  `{"ok": true, ...}` or `{"ok": false, "error": SENTENCE}`. A bad line gets
  an error answer and the proxy goes on; nothing read is evaluated or unpickled.
- A heal always works, mid-fault included: it clears the link's faults at
  once, releases stalled connections and drops the added delay even of chunks
  already waiting.
- The only randomness is `random.Random(seed)`, with the seed it was given
  (`--seed`, or a `slow` request's `seed`, which starts it afresh).
- SIGTERM and SIGINT stop it, as does the end of its launcher (`--parent-pid`).
  `ready-file` is written once every port listens, and names them all.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import logging
import os
import random
import signal
import socket
import struct
import sys
from collections import Counter
from collections.abc import Callable, Coroutine, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

log = logging.getLogger("kafka_verify.workload.proxy")

CHUNK_BYTES = 65_536
QUEUED_CHUNKS = 64  # per direction of a connection: what a slow link holds before backpressure
CONNECT_TIMEOUT_S = 5.0
CONTROL_LINE_LIMIT = 65_536
ANSWER_LIMIT = 16 * 1024 * 1024  # a stats answer grows with the links; a request does not
CONTROL_TIMEOUT_S = 10.0
MAX_DELAY_MS = 60_000
PARENT_CHECK_INTERVAL_S = 0.5
CUT_MODES = ("stall", "reset")
OPS = ("cut", "slow", "heal", "faults", "links", "stats")


class ControlError(Exception):
    """A control request that cannot be done: the reason is one sentence."""


class ProxyError(RuntimeError):
    """The proxy could not be reached, or refused a request: one sentence."""


@dataclass(frozen=True, slots=True)
class LinkSpec:
    src: str
    dst: str
    target_host: str
    target_port: int
    listen_port: int = 0  # 0: any free port

    @property
    def name(self) -> str:
        return f"{self.src}->{self.dst}"

    @classmethod
    def parse(cls, text: str) -> LinkSpec:
        """`SRC,DST,HOST:PORT[,LISTEN_PORT]`; ValueError (one sentence) otherwise."""
        parts = text.split(",")
        if len(parts) not in (3, 4) or not parts[0] or not parts[1] or ":" not in parts[2]:
            raise ValueError(f"--link {text!r} is not SRC,DST,HOST:PORT[,LISTEN_PORT]")
        host, _, port = parts[2].rpartition(":")
        listen = parts[3] if len(parts) == 4 else "0"
        if not port.isdigit() or not listen.isdigit() or not host:
            raise ValueError(f"--link {text!r} is not SRC,DST,HOST:PORT[,LISTEN_PORT]")
        return cls(parts[0], parts[1], host, int(port), int(listen))


@dataclass(slots=True)
class Fault:
    cut: str | None = None  # "stall" or "reset"
    delay_ms: int = 0
    drop: float = 0.0

    def active(self) -> bool:
        return self.cut is not None or self.delay_ms > 0 or self.drop > 0

    def as_json(self) -> dict[str, object]:
        return {"cut": self.cut, "delay_ms": self.delay_ms, "drop": self.drop}


class _Dropped(Exception):
    """A slow link's drop took this connection."""


@dataclass(eq=False)
class _Connection:
    """One client connection through a link, and the upstream connection to its target."""

    downstream: asyncio.StreamWriter
    upstream: asyncio.StreamWriter | None = None
    task: asyncio.Task[None] | None = None

    def reset(self) -> None:
        """Abort both sides with RST (SO_LINGER 0), and stop forwarding."""
        for writer in (self.downstream, self.upstream):
            if writer is not None:
                _abort_with_reset(writer)
        if self.task is not None and self.task is not asyncio.current_task():
            self.task.cancel()


def _abort_with_reset(writer: asyncio.StreamWriter) -> None:
    sock = writer.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    writer.transport.abort()


@dataclass(eq=False)
class Link:
    spec: LinkSpec
    fault: Fault = field(default_factory=Fault)
    server: asyncio.Server | None = None
    connections: set[_Connection] = field(default_factory=set)
    stats: Counter[str] = field(default_factory=Counter)
    # Replaced (and the old one set) at every fault change: whoever waits on a fault wakes.
    changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def listen_port(self) -> int:
        assert self.server is not None
        port: int = self.server.sockets[0].getsockname()[1]
        return port

    def set_fault(self, fault: Fault) -> None:
        self.fault = fault
        previous, self.changed = self.changed, asyncio.Event()
        previous.set()
        if fault.cut == "reset":
            for connection in list(self.connections):
                self.stats["reset"] += 1
                connection.reset()

    async def passable(self) -> None:
        """Return once the link is not stalled (at once when it is not)."""
        while self.fault.cut == "stall":
            await self.changed.wait()

    async def wait_change(self, timeout_s: float) -> None:
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self.changed.wait(), timeout_s)


class Proxy:
    """Every link's listener and connections, their faults, and the control port."""

    def __init__(self, specs: Sequence[LinkSpec], seed: int, host: str = "127.0.0.1") -> None:
        names = [spec.name for spec in specs]
        if len(set(names)) != len(names):
            raise ValueError("every link is named once (SRC->DST)")
        self.host = host
        self.links = {spec.name: Link(spec) for spec in specs}
        self.rng = random.Random(seed)
        self.control: asyncio.Server | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # -- lifecycle ----------------------------------------------------------------------------

    async def start(self, control_port: int = 0) -> None:
        for link in self.links.values():
            link.server = await asyncio.start_server(
                lambda r, w, link=link: self._spawn(self._forward(link, r, w)),  # type: ignore[misc]
                host=self.host,
                port=link.spec.listen_port,
            )
        self.control = await asyncio.start_server(
            lambda r, w: self._spawn(self._control(r, w)),
            host=self.host,
            port=control_port,
            limit=CONTROL_LINE_LIMIT,
        )

    @property
    def control_port(self) -> int:
        assert self.control is not None
        port: int = self.control.sockets[0].getsockname()[1]
        return port

    async def close(self) -> None:
        servers = [link.server for link in self.links.values()] + [self.control]
        for server in servers:
            if server is not None:
                server.close()
        for link in self.links.values():
            for connection in list(link.connections):
                connection.reset()
        while self._tasks:
            running = list(self._tasks)
            for task in running:
                task.cancel()
            await asyncio.gather(*running, return_exceptions=True)
        for server in servers:
            if server is not None:
                await server.wait_closed()

    def _spawn(self, coroutine: Coroutine[object, object, None]) -> None:
        task = asyncio.get_running_loop().create_task(coroutine)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    def describe(self) -> dict[str, object]:
        """What the ready file (and serve's cluster.json) says: pid, control address, links."""
        return {
            "pid": os.getpid(),
            "control": f"{self.host}:{self.control_port}",
            "links": [
                {
                    "name": link.spec.name,
                    "src": link.spec.src,
                    "dst": link.spec.dst,
                    "listen": f"{self.host}:{link.listen_port}",
                    "target": f"{link.spec.target_host}:{link.spec.target_port}",
                }
                for link in self.links.values()
            ],
        }

    # -- forwarding ---------------------------------------------------------------------------

    def _drops(self, link: Link) -> bool:
        return link.fault.drop > 0 and self.rng.random() < link.fault.drop

    async def _forward(
        self, link: Link, reader: asyncio.StreamReader, writer: asyncio.StreamWriter
    ) -> None:
        connection = _Connection(writer, task=asyncio.current_task())
        link.connections.add(connection)
        link.stats["accepted"] += 1
        graceful = False
        try:
            if link.fault.cut == "reset" or self._drops(link):
                link.stats["reset"] += 1
                return
            await link.passable()  # a stalled link holds a new connection unanswered
            if link.fault.cut == "reset":
                link.stats["reset"] += 1
                return
            spec = link.spec
            try:
                up_reader, up_writer = await asyncio.wait_for(
                    asyncio.open_connection(spec.target_host, spec.target_port), CONNECT_TIMEOUT_S
                )
            except (OSError, TimeoutError):
                link.stats["target_unreachable"] += 1
                return  # the target is down: the client sees its connection reset
            connection.upstream = up_writer
            try:
                async with asyncio.TaskGroup() as group:
                    group.create_task(self._direction(link, reader, up_writer, "up_bytes"))
                    group.create_task(self._direction(link, up_reader, writer, "down_bytes"))
                graceful = True
            except* _Dropped:
                link.stats["dropped"] += 1
            except* (ConnectionError, OSError):
                link.stats["connection_errors"] += 1
        finally:
            link.connections.discard(connection)
            if graceful:
                for side in (writer, connection.upstream):
                    if side is not None:
                        side.close()
            else:
                connection.reset()

    async def _direction(
        self,
        link: Link,
        reader: asyncio.StreamReader,
        writer: asyncio.StreamWriter,
        counter: str,
    ) -> None:
        """One direction of one connection: a reader into a delay line, a writer out of it."""
        queue: asyncio.Queue[tuple[float, bytes] | None] = asyncio.Queue(QUEUED_CHUNKS)
        async with asyncio.TaskGroup() as group:
            group.create_task(self._read_into(link, reader, queue, counter))
            group.create_task(self._write_from(link, writer, queue))

    async def _read_into(
        self,
        link: Link,
        reader: asyncio.StreamReader,
        queue: asyncio.Queue[tuple[float, bytes] | None],
        counter: str,
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            await link.passable()  # stalled: the bytes stay in the kernel, the sender waits
            data = await reader.read(CHUNK_BYTES)
            if not data:
                await queue.put(None)
                return
            link.stats[counter] += len(data)
            await queue.put((loop.time(), data))

    async def _write_from(
        self,
        link: Link,
        writer: asyncio.StreamWriter,
        queue: asyncio.Queue[tuple[float, bytes] | None],
    ) -> None:
        loop = asyncio.get_running_loop()
        while True:
            item = await queue.get()
            if item is None:
                if writer.can_write_eof():
                    writer.write_eof()  # a half-close passes through
                return
            read_at, data = item
            while True:
                await link.passable()
                # The delay is read now, not when the chunk came: a heal releases it at once.
                wait_s = read_at + link.fault.delay_ms / 1000 - loop.time()
                if wait_s <= 0:
                    break
                await link.wait_change(wait_s)
            if self._drops(link):
                raise _Dropped
            writer.write(data)
            await writer.drain()

    # -- control ------------------------------------------------------------------------------

    async def _control(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                try:
                    line = await reader.readline()
                except ValueError:  # longer than CONTROL_LINE_LIMIT: the line cannot be found
                    answer = _error(f"a control line is longer than {CONTROL_LINE_LIMIT} bytes")
                    writer.write(json.dumps(answer).encode() + b"\n")
                    await writer.drain()
                    return
                if not line:
                    return
                if not line.strip():
                    continue
                writer.write(json.dumps(self.command(line)).encode() + b"\n")
                await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    def command(self, line: bytes) -> dict[str, object]:
        """Do one control request; its answer, an error answer for a bad one."""
        try:
            request = json.loads(line)
        except (ValueError, UnicodeDecodeError):
            return _error("the control line is not JSON")
        if not isinstance(request, dict):
            return _error("a control request is a JSON object")
        op = request.get("op")
        try:
            if op == "links":
                return {"ok": True, "links": self.describe()["links"]}
            if op == "faults":
                return {"ok": True, "faults": self.faults()}
            if op == "stats":
                return {"ok": True, "stats": {n: dict(k.stats) for n, k in self.links.items()}}
            if op == "cut":
                mode = request.get("mode", "stall")
                if mode not in CUT_MODES:
                    raise ControlError(f"a cut's mode is one of {', '.join(CUT_MODES)}")
                for link in self._links(request):
                    link.set_fault(Fault(mode, link.fault.delay_ms, link.fault.drop))
            elif op == "slow":
                delay_ms, drop = _slowness(request)
                links = self._links(request)
                seed = request.get("seed")
                if seed is not None:
                    if type(seed) is not int:
                        raise ControlError("seed is an integer")
                    self.rng.seed(seed)  # the drops that follow are the seed's
                for link in links:
                    link.set_fault(Fault(link.fault.cut, delay_ms, drop))
            elif op == "heal":
                healed = self._links(request) if "links" in request else list(self.links.values())
                for link in healed:
                    link.set_fault(Fault())
            else:
                raise ControlError(f"op is one of {', '.join(OPS)}")
        except ControlError as error:
            return _error(str(error))
        log.info("%s: faults now %s", op, self.faults())
        return {"ok": True, "faults": self.faults()}

    def faults(self) -> dict[str, dict[str, object]]:
        return {n: k.fault.as_json() for n, k in self.links.items() if k.fault.active()}

    def _links(self, request: dict[str, Any]) -> list[Link]:
        names = request.get("links")
        if not isinstance(names, list) or not all(isinstance(n, str) for n in names):
            raise ControlError("links is a list of link names")
        unknown = sorted(set(names) - set(self.links))
        if unknown:
            raise ControlError(f"the proxy has no link named {unknown[0]!r}")
        return [self.links[n] for n in dict.fromkeys(names)]


def _slowness(request: dict[str, Any]) -> tuple[int, float]:
    delay_ms, drop = request.get("delay_ms", 0), request.get("drop", 0.0)
    if type(delay_ms) is not int or not 0 <= delay_ms <= MAX_DELAY_MS:
        raise ControlError(f"delay_ms is a whole number of milliseconds from 0 to {MAX_DELAY_MS}")
    if type(drop) not in (int, float) or not 0.0 <= drop <= 1.0:
        raise ControlError("drop is a probability from 0 to 1")
    return delay_ms, float(drop)


def _error(sentence: str) -> dict[str, object]:
    return {"ok": False, "error": sentence}


# -- the control client (the nemesis's side) ------------------------------------------------


class ProxyControl:
    """Requests to a proxy's control port, one connection per request."""

    def __init__(self, address: str, timeout_s: float = CONTROL_TIMEOUT_S) -> None:
        host, _, port = address.rpartition(":")
        if not host or not port.isdigit():
            raise ValueError(f"the proxy's control address {address!r} is not HOST:PORT")
        self.address = (host, int(port))
        self.timeout_s = timeout_s

    def request(self, op: str, **fields: object) -> dict[str, Any]:
        line = json.dumps({"op": op, **fields}).encode() + b"\n"
        try:
            with socket.create_connection(self.address, timeout=self.timeout_s) as connection:
                connection.sendall(line)
                with connection.makefile("rb") as answers:
                    answer = answers.readline(ANSWER_LIMIT)
        except OSError as error:
            raise ProxyError(f"the proxy at {self.address[0]}:{self.address[1]}: {error}") from None
        try:
            data = json.loads(answer)
        except ValueError:
            raise ProxyError("the proxy's answer is not JSON") from None
        if not isinstance(data, dict) or data.get("ok") is not True:
            reason = data.get("error") if isinstance(data, dict) else None
            raise ProxyError(f"the proxy refused {op}: {reason}")
        return data

    def cut(self, links: Sequence[str], mode: str = "stall") -> dict[str, Any]:
        return self.request("cut", links=list(links), mode=mode)

    def slow(self, links: Sequence[str], delay_ms: int, drop: float = 0.0) -> dict[str, Any]:
        return self.request("slow", links=list(links), delay_ms=delay_ms, drop=drop)

    def heal(self, links: Sequence[str] | None = None) -> dict[str, Any]:
        return self.request("heal") if links is None else self.request("heal", links=list(links))

    def faults(self) -> dict[str, Any]:
        faults: dict[str, Any] = self.request("faults")["faults"]
        return faults


# -- the process ----------------------------------------------------------------------------


async def _serve(args: argparse.Namespace, specs: list[LinkSpec]) -> int:
    proxy = Proxy(specs, args.seed, args.host)
    try:
        await proxy.start(args.control_port)
    except OSError as error:
        print(f"proxy: cannot listen: {error.strerror}", file=sys.stderr)
        await proxy.close()
        return 2
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    if args.ready_file is not None:
        _write_atomically(args.ready_file, proxy.describe())
    log.info("proxy is up (pid %d), control port %d", os.getpid(), proxy.control_port)
    watch = loop.create_task(_watch_parent(args.parent_pid, stop.set))
    await stop.wait()
    watch.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await watch
    await proxy.close()
    log.info("proxy stopped")
    return 0


async def _watch_parent(parent: int, stop: Callable[[], None]) -> None:
    if parent <= 0:
        return
    while os.getppid() == parent:
        await asyncio.sleep(PARENT_CHECK_INTERVAL_S)
    log.warning("the launcher (pid %d) is gone; stopping", parent)
    stop()


def _write_atomically(path: Path, data: object) -> None:
    temporary = path.with_name(path.name + ".tmp")
    temporary.write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    os.replace(temporary, path)


def main(argv: Sequence[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m kafka_verify.workload.proxy")
    parser.add_argument(
        "--link", action="append", default=[], metavar="SRC,DST,HOST:PORT[,LISTEN_PORT]"
    )
    parser.add_argument("--host", default="127.0.0.1", help="where links and control listen")
    parser.add_argument("--control-port", type=int, default=0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--ready-file", type=Path, default=None)
    parser.add_argument("--parent-pid", type=int, default=0)
    args = parser.parse_args(argv)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s proxy %(levelname)s %(message)s")
    try:
        specs = [LinkSpec.parse(text) for text in args.link]
        if not specs:
            raise ValueError("the proxy needs at least one --link")
        if len({s.name for s in specs}) != len(specs):
            raise ValueError("every link is named once (SRC->DST)")
    except ValueError as error:
        print(f"proxy: {error}", file=sys.stderr)
        return 2
    return asyncio.run(_serve(args, specs))


if __name__ == "__main__":
    sys.exit(main())
