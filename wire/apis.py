"""The Kafka APIs this host serves, their versions, and the codecs of their bodies.

Rules of this module:
- `SUPPORTED_APIS` is the one table of what is served: each API key with the
  versions it is decoded in. The ApiVersions answer is built from it, and
  nothing outside it is decoded.
- Bodies are kio's objects, generated from Kafka's own message schemas; no
  request or response struct is written by hand here.
- A request of an unknown API key, or of a version outside the table, is a
  `FrameError` (Kafka closes such a connection), with one exception: an
  ApiVersions request of any version gets `ApiVersionsTooNew`, to be answered
  in version 0 with UNSUPPORTED_VERSION and the supported ranges, so that a
  client newer than this host can fall back.
- Produce is served from version 3 but advertised from version 0, as Kafka 4
  does: librdkafka refuses a broker whose Produce range starts above 2
  (KAFKA-18659, noted in Kafka's ProduceRequest.json). Versions 0-2 are still
  refused if sent.
- Response headers follow the response schema (kio's `__header_schema__`):
  v1 for flexible versions, except ApiVersions, whose response header is
  always v0 so that any client can read it.
"""

from __future__ import annotations

import io
import struct
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import timedelta
from types import MappingProxyType
from typing import Any

from kafka_verify.wire.errors import FrameError
from kafka_verify.wire.frames import (
    API_VERSIONS_KEY,
    SIZE_PREFIX_BYTES,
    RequestFrame,
    RequestHeader,
    parse_request_header,
)
from kafka_verify.wire.schema_walk import walk
from kio.index import UnknownAPIKey, UnknownEntity, load_request_schema, load_response_schema
from kio.schema.api_versions import v0 as api_versions_v0
from kio.schema.api_versions import v1 as api_versions_v1
from kio.schema.api_versions import v2 as api_versions_v2
from kio.schema.api_versions import v3 as api_versions_v3
from kio.schema.errors import ErrorCode
from kio.schema.request_header.v1 import RequestHeader as RequestHeaderV1
from kio.schema.request_header.v2 import RequestHeader as RequestHeaderV2
from kio.schema.response_header.v0 import ResponseHeader as ResponseHeaderV0
from kio.schema.response_header.v1 import ResponseHeader as ResponseHeaderV1
from kio.serial import entity_reader, entity_writer
from kio.static.primitive import i16, i32, i32Timedelta
from kio.static.protocol import Entity, RequestPayload, ResponsePayload

UNSUPPORTED_VERSION = ErrorCode.unsupported_version  # 35

ApiVersionsResponse = (
    api_versions_v0.ApiVersionsResponse
    | api_versions_v1.ApiVersionsResponse
    | api_versions_v2.ApiVersionsResponse
    | api_versions_v3.ApiVersionsResponse
)


@dataclass(frozen=True, slots=True)
class SupportedApi:
    """One API this host serves: the versions it decodes, and the lowest it advertises."""

    api_key: int
    name: str
    min_version: int
    max_version: int
    advertised_min_version: int

    def supports(self, version: int) -> bool:
        return self.min_version <= version <= self.max_version


def _api(
    key: int, name: str, low: int, high: int, advertised_low: int | None = None
) -> SupportedApi:
    return SupportedApi(key, name, low, high, low if advertised_low is None else advertised_low)


SUPPORTED_APIS: Mapping[int, SupportedApi] = MappingProxyType(
    {
        api.api_key: api
        for api in (
            _api(0, "Produce", 3, 10, advertised_low=0),
            _api(1, "Fetch", 4, 12),
            _api(2, "ListOffsets", 1, 7),
            _api(3, "Metadata", 1, 12),
            _api(8, "OffsetCommit", 2, 9),
            _api(9, "OffsetFetch", 1, 9),
            _api(10, "FindCoordinator", 0, 2),
            _api(11, "JoinGroup", 0, 5),
            _api(12, "Heartbeat", 0, 3),
            _api(13, "LeaveGroup", 0, 3),
            _api(14, "SyncGroup", 0, 3),
            _api(18, "ApiVersions", 0, 3),
            _api(19, "CreateTopics", 2, 7),
            _api(22, "InitProducerId", 0, 4),
            _api(23, "OffsetForLeaderEpoch", 2, 4),
        )
    }
)


@dataclass(frozen=True, slots=True)
class DecodedRequest:
    """A request read off the wire: its header and kio's object for its body."""

    header: RequestHeader
    body: RequestPayload


@dataclass(frozen=True, slots=True)
class ApiVersionsTooNew:
    """An ApiVersions request of a version this host does not decode: answer it in version 0."""

    header: RequestHeader

    def answer(self) -> bytes:
        response = api_versions_response(0, error_code=UNSUPPORTED_VERSION)
        return encode_response(self.header.correlation_id, response)


def decode_request(frame: RequestFrame) -> DecodedRequest | ApiVersionsTooNew:
    """kio's object for the frame's body; FrameError if the API, version or body is not served."""
    header = frame.header
    api = SUPPORTED_APIS.get(header.api_key)
    if api is None:
        raise FrameError(f"API key {header.api_key} is not served by this host")
    if not api.supports(header.api_version):
        if header.api_key == API_VERSIONS_KEY:
            return ApiVersionsTooNew(header)
        raise FrameError(
            f"{api.name} version {header.api_version} is outside the served"
            f" {api.min_version}-{api.max_version}"
        )
    schema = load_request_schema(header.api_key, header.api_version)
    body = _read_body(
        schema, frame.body, f"{api.name} v{header.api_version} request", trailing_allowed=True
    )
    return DecodedRequest(header, body)  # type: ignore[arg-type]  # the schema is a request's


def encode_response(correlation_id: int, response: ResponsePayload) -> bytes:
    """One response frame: size, the header its schema names, and the body."""
    buffer = io.BytesIO()
    buffer.write(b"\0" * SIZE_PREFIX_BYTES)
    header_schema = response.__header_schema__
    header: Entity
    if header_schema is ResponseHeaderV1:
        header = ResponseHeaderV1(correlation_id=i32(correlation_id))
    else:
        header = ResponseHeaderV0(correlation_id=i32(correlation_id))
    _write(buffer, header)
    _write(buffer, response)
    return _with_size(buffer)


def encode_request(correlation_id: int, client_id: str | None, request: RequestPayload) -> bytes:
    """One request frame, as a client sends it (for tests and for this host's own clients)."""
    buffer = io.BytesIO()
    buffer.write(b"\0" * SIZE_PREFIX_BYTES)
    fields: dict[str, Any] = {
        "request_api_key": i16(request.__api_key__),
        "request_api_version": i16(request.__version__),
        "correlation_id": i32(correlation_id),
        "client_id": client_id,
    }
    header: Entity
    if request.__header_schema__ is RequestHeaderV2:
        header = RequestHeaderV2(**fields)
    else:
        header = RequestHeaderV1(**fields)
    _write(buffer, header)
    _write(buffer, request)
    return _with_size(buffer)


def decode_response(payload: bytes, api_key: int, api_version: int) -> tuple[int, ResponsePayload]:
    """The correlation id and kio's object of a response frame's payload (without its size)."""
    try:
        schema = load_response_schema(api_key, api_version)
    except (UnknownAPIKey, UnknownEntity):
        raise FrameError(
            f"API key {api_key} version {api_version} has no response schema"
        ) from None
    header_schema: type[Entity] = (
        ResponseHeaderV1 if schema.__header_schema__ is ResponseHeaderV1 else ResponseHeaderV0
    )
    header_shape = walk(header_schema, payload)
    header_size = header_shape.size
    header, _ = _reader(header_schema)(header_shape.known, 0)
    body = _read_body(schema, payload[header_size:], f"API key {api_key} v{api_version} response")
    return int(header.correlation_id), body  # type: ignore[return-value]  # a response schema's


def decode_request_frame(payload: bytes) -> DecodedRequest | ApiVersionsTooNew:
    """A whole request frame's payload (without its size) to kio's object."""
    header, header_size = parse_request_header(payload)
    return decode_request(RequestFrame(header, payload[header_size:]))


def api_versions_response(
    version: int, error_code: ErrorCode = ErrorCode.none
) -> ApiVersionsResponse:
    """The ApiVersions answer in `version` (0-3): every supported API with its advertised range."""
    modules: dict[int, Any] = {
        0: api_versions_v0,
        1: api_versions_v1,
        2: api_versions_v2,
        3: api_versions_v3,
    }
    module = modules.get(version)
    if module is None:
        raise ValueError(f"ApiVersions responses are built in versions 0-3, not {version}")
    entry_type = module.response.ApiVersion
    api_keys = tuple(
        entry_type(
            api_key=i16(api.api_key),
            min_version=i16(api.advertised_min_version),
            max_version=i16(api.max_version),
        )
        for api in sorted(SUPPORTED_APIS.values(), key=lambda api: api.api_key)
    )
    response: ApiVersionsResponse
    if version == 0:
        response = module.ApiVersionsResponse(error_code=error_code, api_keys=api_keys)
    else:
        response = module.ApiVersionsResponse(
            error_code=error_code,
            api_keys=api_keys,
            throttle_time=i32Timedelta.parse(timedelta(0)),
        )
    return response


def _read_body(
    schema: type[Entity], body: bytes, what: str, trailing_allowed: bool = False
) -> Entity:
    """The body as kio's object. A request may carry bytes after its last field, which are
    ignored, as Kafka's request parser ignores them (librdkafka 2.16's Metadata v12 sends
    three); anywhere else they are a FrameError."""
    shape = walk(schema, body)
    if shape.size != len(body) and not trailing_allowed:
        raise FrameError(f"the {what} has {len(body) - shape.size} bytes after its last field")
    try:
        value: Entity
        value, read = _reader(schema)(shape.known, 0)
    except Exception as error:
        # kio's native reader signals bad input with several exception types
        # (its SerialError family, ValueError, KeyError); each means "does not parse".
        raise FrameError(f"the {what} does not parse: {error}") from None
    if read != len(shape.known):
        raise FrameError(f"the {what} took {read} bytes where its shape takes {len(shape.known)}")
    return value


def _reader(schema: type[Entity]) -> Any:
    return entity_reader(schema)


def _write(buffer: io.BytesIO, entity: Entity) -> None:
    entity_writer(type(entity))(buffer, entity)


def _with_size(buffer: io.BytesIO) -> bytes:
    frame = bytearray(buffer.getvalue())
    struct.pack_into(">i", frame, 0, len(frame) - SIZE_PREFIX_BYTES)
    return bytes(frame)
