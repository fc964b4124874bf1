"""Kafka's length-prefixed frames on a byte stream, and the request header inside each.

Rules of this module:
- A frame is a big-endian int32 size followed by that many bytes. A request
  frame's bytes start with the request header; the rest is the body, which
  `apis.py` decodes.
- The decoders are incremental and sans-IO: `feed` bytes as they arrive,
  then pull complete frames. Feeding the same bytes in any split gives the
  same frames.
- Everything malformed raises `FrameError` with a one-sentence reason, and
  nothing else escapes: a negative or oversized size, a header that does not
  parse, an API key Kafka does not have, a stream that ends inside a frame.
  After a `FrameError` the decoder stays failed, since the stream is out of
  step.
- The header version follows from the API key and version (Kafka's
  `requestHeaderVersion`): v2 for flexible versions, v1 otherwise, v0 only for
  ControlledShutdown v0. An ApiVersions request of a version newer than any
  known is read with the newest header, so that it can still be answered.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

from kafka_verify.wire.errors import FrameError
from kafka_verify.wire.schema_walk import walk
from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema
from kio.schema.request_header.v1 import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2 import RequestHeader as RequestHeaderV2
from kio.serial import entity_reader

__all__ = [
    "DEFAULT_MAX_FRAME_BYTES",
    "FrameError",
    "FrameSplitter",
    "RequestDecoder",
    "RequestFrame",
    "RequestHeader",
    "parse_request_header",
    "request_header_version",
]

# Kafka's socket.request.max.bytes default: a larger frame is refused before it is buffered.
DEFAULT_MAX_FRAME_BYTES = 104_857_600
SIZE_PREFIX_BYTES = 4
API_VERSIONS_KEY = 18
CONTROLLED_SHUTDOWN_KEY = 7
_COMMON_HEADER = struct.Struct(">hhi")  # api key, api version, correlation id: every header version


@dataclass(frozen=True, slots=True)
class RequestHeader:
    """What every request says about itself, whichever header version carried it."""

    api_key: int
    api_version: int
    correlation_id: int
    client_id: str | None
    header_version: int


@dataclass(frozen=True, slots=True)
class RequestFrame:
    """One complete request: its parsed header and the body bytes after it."""

    header: RequestHeader
    body: bytes


class FrameSplitter:
    """Splits a byte stream into the payloads of its length-prefixed frames."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        if max_frame_bytes < 0:
            raise ValueError(f"max_frame_bytes must be >= 0, not {max_frame_bytes}")
        self.max_frame_bytes = max_frame_bytes
        self._buffer = bytearray()
        self._failure: FrameError | None = None

    @property
    def buffered_bytes(self) -> int:
        return len(self._buffer)

    def feed(self, data: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self._buffer += data

    def payloads(self) -> Iterator[bytes]:
        """Every complete frame's payload buffered so far, in order; raises FrameError on a bad size."""
        if self._failure is not None:
            raise self._failure
        start = 0  # frames are sliced from here, and the buffer is cut once, at the end
        try:
            while len(self._buffer) - start >= SIZE_PREFIX_BYTES:
                (size,) = struct.unpack_from(">i", self._buffer, start)
                if size < 0:
                    self._fail(f"frame size {size} is negative")
                if size > self.max_frame_bytes:
                    self._fail(
                        f"frame size {size} exceeds the maximum of {self.max_frame_bytes} bytes"
                    )
                end = start + SIZE_PREFIX_BYTES + size
                if len(self._buffer) < end:
                    return
                payload = bytes(self._buffer[start + SIZE_PREFIX_BYTES : end])
                start = end
                yield payload
        finally:
            if self._failure is None:
                del self._buffer[:start]

    def close(self) -> None:
        """The peer closed the stream: bytes of an unfinished frame are an error."""
        if self._failure is not None:
            raise self._failure
        if self._buffer:
            self._fail(f"the stream ended inside a frame, {len(self._buffer)} bytes short of whole")

    def _fail(self, reason: str) -> None:
        self._failure = FrameError(reason)
        self._buffer.clear()
        raise self._failure


class RequestDecoder:
    """Incremental decoder of request frames: feed bytes, then pull `frames()`."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_FRAME_BYTES) -> None:
        self._splitter = FrameSplitter(max_frame_bytes)
        self._failure: FrameError | None = None

    def feed(self, data: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        self._splitter.feed(data)

    def frames(self) -> Iterator[RequestFrame]:
        """The complete requests buffered so far; raises FrameError at the first malformed one."""
        if self._failure is not None:
            raise self._failure
        for payload in self._splitter.payloads():
            try:
                header, header_size = parse_request_header(payload)
            except FrameError as error:
                self._failure = error
                raise
            yield RequestFrame(header, payload[header_size:])

    def close(self) -> None:
        if self._failure is not None:
            raise self._failure
        self._splitter.close()


def parse_request_header(payload: bytes) -> tuple[RequestHeader, int]:
    """The header at the start of a frame's payload, and its size in bytes."""
    if len(payload) < _COMMON_HEADER.size:
        raise FrameError(f"a request header needs at least 8 bytes, the frame has {len(payload)}")
    api_key, api_version, correlation_id = _COMMON_HEADER.unpack_from(payload, 0)
    header_version = request_header_version(api_key, api_version)
    if header_version == 0:
        return RequestHeader(api_key, api_version, correlation_id, None, 0), _COMMON_HEADER.size
    schema = RequestHeaderV2 if header_version == 2 else RequestHeaderV1
    shape = walk(schema, payload)
    parsed: RequestHeaderV1 | RequestHeaderV2
    try:
        if header_version == 2:
            parsed, read = entity_reader(RequestHeaderV2)(shape.known, 0)
        else:
            parsed, read = entity_reader(RequestHeaderV1)(shape.known, 0)
    except Exception as error:
        # kio's native reader signals bad input with several exception types
        # (its SerialError family, ValueError, KeyError); each means "does not parse".
        raise FrameError(f"the request header does not parse: {error}") from None
    if read != len(shape.known):
        raise FrameError(
            f"the request header took {read} bytes where its shape takes {len(shape.known)}"
        )
    header = RequestHeader(
        api_key=parsed.request_api_key,
        api_version=parsed.request_api_version,
        correlation_id=parsed.correlation_id,
        client_id=parsed.client_id,
        header_version=header_version,
    )
    return header, shape.size


def request_header_version(api_key: int, api_version: int) -> int:
    """The header version a request of this API key and version is sent with."""
    if api_key == CONTROLLED_SHUTDOWN_KEY and api_version == 0:
        return 0  # the only request whose header has no client id
    return _header_version_from_schema(api_key, api_version)


@lru_cache(maxsize=4096)
def _header_version_from_schema(api_key: int, api_version: int) -> int:
    try:
        schema = load_request_schema(api_key, api_version)
    except UnknownAPIKey:
        raise FrameError(f"API key {api_key} is not a Kafka API") from None
    except UnknownEntity:
        if api_key == API_VERSIONS_KEY:
            # Kafka reads an ApiVersions header by the newest layout it knows, so a
            # client newer than the broker still gets its UNSUPPORTED_VERSION answer.
            return 2 if api_version >= 3 else 1
        raise FrameError(f"API key {api_key} has no version {api_version}") from None
    return int(schema.__header_schema__.__version__)
