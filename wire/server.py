"""An asyncio TCP server of the Kafka protocol: frames in, a handler's responses out.

Rules of this module:
- It binds loopback unless told otherwise, and port 0 picks a free port.
- Each connection reads frames with `RequestDecoder`, decodes each request
  with `apis.decode_request`, and answers in order, one request at a time, as
  Kafka does on one connection.
- ApiVersions is answered here, from the table in apis.py; every other
  request goes to the handler, which returns kio's response object of the
  same API and version, or None for a request that gets no answer (Produce
  with acks=0).
- A `FrameError` is the peer's fault: the reason is logged and that
  connection alone is closed. A handler that raises, or answers with the
  wrong API or version, is this host's fault: it is logged with its
  traceback and that connection is closed. Other connections go on.
- `close()` stops listening, ends every connection and waits for their
  tasks, so nothing is left running.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from collections.abc import Awaitable, Callable
from types import TracebackType

from kafka_verify.wire.apis import (
    ApiVersionsTooNew,
    DecodedRequest,
    api_versions_response,
    decode_request,
    encode_response,
)
from kafka_verify.wire.errors import FrameError
from kafka_verify.wire.frames import API_VERSIONS_KEY, DEFAULT_MAX_FRAME_BYTES, RequestDecoder
from kio.static.protocol import ResponsePayload

log = logging.getLogger(__name__)

Handler = Callable[[DecodedRequest], Awaitable[ResponsePayload | None]]


async def cancel_all(tasks: set[asyncio.Task[None]]) -> None:
    """Cancel every task of `tasks` and wait for each, until the set (which the tasks leave
    as they end) is empty; a task added meanwhile is cancelled too."""
    while tasks:
        running = list(tasks)
        for task in running:
            task.cancel()
        await asyncio.gather(*running, return_exceptions=True)


READ_CHUNK_BYTES = 65_536


class KafkaServer:
    """Serves the Kafka protocol on one listening socket; use as `async with KafkaServer(...)`."""

    def __init__(
        self,
        handler: Handler,
        host: str = "127.0.0.1",
        port: int = 0,
        max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES,
    ) -> None:
        self.handler = handler
        self.host = host
        self.requested_port = port
        self.max_frame_bytes = max_frame_bytes
        self._server: asyncio.Server | None = None
        self._connections: set[asyncio.Task[None]] = set()
        self._closing = False
        self.closed_for_frame_errors = 0
        # Requests answered, by (API key, version), ApiVersions included.
        self.request_counts: Counter[tuple[int, int]] = Counter()

    @property
    def port(self) -> int:
        if self._server is None:
            raise RuntimeError("the server is not started")
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    @property
    def open_connections(self) -> int:
        return len(self._connections)

    async def start(self) -> None:
        self._server = await asyncio.start_server(
            self._accept, host=self.host, port=self.requested_port
        )

    async def close(self) -> None:
        self._closing = True
        if self._server is not None:
            self._server.close()
        # Connections accepted from now on are refused in `_accept`, so this set only shrinks.
        await cancel_all(self._connections)
        if self._server is not None:
            await self._server.wait_closed()
            self._server = None

    async def __aenter__(self) -> KafkaServer:
        await self.start()
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        await self.close()

    def _accept(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        """Start a connection's task (called by asyncio, synchronously, as each one is made).

        Registering the task here, not from inside it, means `close()` never misses a
        connection whose task has not run yet.
        """
        if self._closing:
            writer.close()
            return
        task = asyncio.get_running_loop().create_task(self._connection(reader, writer))
        self._connections.add(task)
        task.add_done_callback(self._connections.discard)

    async def _connection(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        peer = writer.get_extra_info("peername")
        try:
            await self._serve(reader, writer)
        except FrameError as error:
            self.closed_for_frame_errors += 1
            log.warning("closing the connection from %s: %s", peer, error.reason)
        except (ConnectionError, asyncio.IncompleteReadError):
            log.info("the connection from %s was lost", peer)
        except asyncio.CancelledError:
            log.debug("closing the connection from %s: the server is closing", peer)
            raise
        except Exception:
            log.exception("closing the connection from %s after an internal error", peer)
        finally:
            writer.close()
            with contextlib.suppress(ConnectionError, asyncio.CancelledError):
                await writer.wait_closed()

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        decoder = RequestDecoder(self.max_frame_bytes)
        while True:
            data = await reader.read(READ_CHUNK_BYTES)
            if not data:
                decoder.close()  # a FrameError if the peer left inside a frame
                return
            decoder.feed(data)
            for frame in decoder.frames():
                decoded = decode_request(frame)
                answer = await self._answer(decoded)
                if answer is not None:
                    writer.write(answer)
                    await writer.drain()

    async def _answer(self, decoded: DecodedRequest | ApiVersionsTooNew) -> bytes | None:
        header = decoded.header
        self.request_counts[header.api_key, header.api_version] += 1
        if isinstance(decoded, ApiVersionsTooNew):
            return decoded.answer()
        if header.api_key == API_VERSIONS_KEY:
            response: ResponsePayload | None = api_versions_response(header.api_version)
        else:
            response = await self.handler(decoded)
        if response is None:
            return None
        if (response.__api_key__, response.__version__) != (header.api_key, header.api_version):
            raise RuntimeError(
                f"the handler answered API {header.api_key} v{header.api_version}"
                f" with API {response.__api_key__} v{response.__version__}"
            )
        return encode_response(header.correlation_id, response)
