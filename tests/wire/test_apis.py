"""The table of served APIs, and the round trip of every served request and response through kio."""

from __future__ import annotations

import struct
from dataclasses import fields
from datetime import timedelta

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from kafka_verify.wire.apis import (
    SUPPORTED_APIS,
    UNSUPPORTED_VERSION,
    ApiVersionsTooNew,
    DecodedRequest,
    SupportedApi,
    api_versions_response,
    decode_request,
    decode_request_frame,
    decode_response,
    encode_request,
    encode_response,
)
from kafka_verify.wire.frames import FrameError, RequestDecoder
from kafka_verify.wire.schema_walk import check_shape
from kio.index import load_request_schema, load_response_schema
from kio.schema.errors import ErrorCode
from kio.schema.index import api_key_map, schema_name_map
from kio.static.primitive import Records, i16, i64Timedelta

# kio leaves the records bytes of Produce and Fetch without a strategy; any bytes will do here.
st.register_type_strategy(Records, st.binary(max_size=64))
# kio's reader turns an int64 of milliseconds into a timedelta through floating point, which
# is exact only far below the int64 range its own strategy draws from (a value of 150,000
# years came back 1 ms off). Kafka's clients send -1 or hours for OffsetCommit's retention,
# the one such field served, so the draws cover -1 to a century.
_CENTURY_MS = 100 * 366 * 24 * 3600 * 1000
st.register_type_strategy(
    i64Timedelta,
    st.integers(-1, _CENTURY_MS).map(lambda ms: i64Timedelta.parse(timedelta(milliseconds=ms))),
)

SERVED = [
    (api.api_key, version)
    for api in SUPPORTED_APIS.values()
    for version in range(api.min_version, api.max_version + 1)
]
ROUND_TRIP = settings(
    max_examples=10, deadline=None, suppress_health_check=list(HealthCheck), database=None
)


def test_the_table_is_the_one_asked_for() -> None:
    ranges = {
        api.name: (api.advertised_min_version, api.min_version, api.max_version)
        for api in SUPPORTED_APIS.values()
    }
    assert ranges == {
        "ApiVersions": (0, 0, 3),
        "Metadata": (1, 1, 12),
        "Produce": (0, 3, 10),  # advertised from 0 for librdkafka (KAFKA-18659)
        "Fetch": (4, 4, 12),
        "ListOffsets": (1, 1, 7),
        "OffsetCommit": (2, 2, 9),
        "InitProducerId": (0, 0, 4),
        "CreateTopics": (2, 2, 7),
        "FindCoordinator": (0, 0, 2),
        "JoinGroup": (0, 0, 5),
        "SyncGroup": (0, 0, 3),
        "Heartbeat": (0, 0, 3),
        "LeaveGroup": (0, 0, 3),
        "OffsetFetch": (1, 1, 9),
        "OffsetForLeaderEpoch": (2, 2, 4),
    }


@pytest.mark.parametrize("api", SUPPORTED_APIS.values(), ids=lambda api: api.name)
def test_every_served_version_has_kio_schemas_and_the_names_match(api: SupportedApi) -> None:
    kio_versions = set(schema_name_map[api_key_map[api.api_key]])
    assert set(range(api.min_version, api.max_version + 1)) <= kio_versions
    assert api_key_map[api.api_key].replace("_", "") == api.name.lower()
    assert api.advertised_min_version <= api.min_version


@pytest.mark.parametrize(("api_key", "version"), SERVED)
@ROUND_TRIP
@given(data=st.data())
def test_every_served_request_round_trips(api_key: int, version: int, data: st.DataObject) -> None:
    schema = load_request_schema(api_key, version)
    body = data.draw(st.from_type(schema))
    correlation_id = data.draw(st.integers(-(2**31), 2**31 - 1))
    client_id = data.draw(st.none() | st.text(max_size=10))
    frame = encode_request(correlation_id, client_id, body)
    decoder = RequestDecoder()
    decoder.feed(frame)
    [request_frame] = list(decoder.frames())
    decoded = decode_request(request_frame)
    assert isinstance(decoded, DecodedRequest)
    assert decoded.body == body
    assert decoded.header.correlation_id == correlation_id
    assert decoded.header.client_id == client_id
    assert (decoded.header.api_key, decoded.header.api_version) == (api_key, version)


@pytest.mark.parametrize(("api_key", "version"), SERVED)
@ROUND_TRIP
@given(data=st.data())
def test_every_served_response_round_trips(api_key: int, version: int, data: st.DataObject) -> None:
    schema = load_response_schema(api_key, version)
    body = data.draw(st.from_type(schema))
    correlation_id = data.draw(st.integers(-(2**31), 2**31 - 1))
    frame = encode_response(correlation_id, body)
    assert struct.unpack_from(">i", frame)[0] == len(frame) - 4
    assert decode_response(frame[4:], api_key, version) == (correlation_id, body)
    # A flexible response carries header v1 (an empty tagged-field byte after the id),
    # except ApiVersions, whose header is always v0.
    header_bytes = 5 if schema.__flexible__ and api_key != 18 else 4
    assert check_shape(schema, frame[4 + header_bytes :]) == len(frame) - 4 - header_bytes


@pytest.mark.parametrize(("api_key", "version"), SERVED[::3])
@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck), database=None)
@given(data=st.data())
def test_a_damaged_request_decodes_or_is_one_frame_error(
    api_key: int, version: int, data: st.DataObject
) -> None:
    body = data.draw(st.from_type(load_request_schema(api_key, version)))
    payload = bytearray(encode_request(1, "c", body)[4:])
    for _ in range(data.draw(st.integers(1, 4))):
        action = data.draw(st.sampled_from(["flip", "cut", "insert"]))
        at = data.draw(st.integers(0, len(payload)))
        if action == "flip" and at < len(payload):
            payload[at] = data.draw(st.integers(0, 255))
        elif action == "cut":
            del payload[at:]
        else:
            payload[at:at] = data.draw(st.binary(min_size=1, max_size=6))
    try:
        decoded = decode_request_frame(bytes(payload))
    except FrameError as error:
        assert error.reason
    else:
        assert isinstance(decoded, DecodedRequest | ApiVersionsTooNew)


@settings(max_examples=1500, deadline=None, database=None)
@given(
    served=st.sampled_from(SERVED),
    client_id=st.none() | st.text(max_size=4),
    body=st.binary(max_size=80),
)
def test_any_body_after_a_served_header_decodes_or_is_one_frame_error(
    served: tuple[int, int], client_id: str | None, body: bytes
) -> None:
    api_key, version = served
    schema = load_request_schema(api_key, version)
    payload = struct.pack(">hhi", api_key, version, 1) + _client_id(client_id)
    if schema.__flexible__:
        payload += b"\x00"  # header v2: no tagged fields
    try:
        decoded = decode_request_frame(payload + body)
    except FrameError as error:
        assert error.reason
    else:
        assert isinstance(decoded, DecodedRequest)
        assert type(decoded.body) is schema
        assert decoded.header.client_id == client_id


def _client_id(client_id: str | None) -> bytes:
    if client_id is None:
        return struct.pack(">h", -1)
    raw = client_id.encode("utf-8")
    return struct.pack(">h", len(raw)) + raw


@pytest.mark.parametrize(("api_key", "version"), [(3, 12), (9, 9), (0, 10), (1, 12), (2, 7)])
def test_a_compact_array_count_near_two_to_the_32_is_refused_not_allocated(
    api_key: int, version: int
) -> None:
    # kio's native reader would reserve memory for this count and abort the process.
    header = struct.pack(">hhih", api_key, version, 1, -1) + b"\x00"
    payload = header + b"\xf0\xff\xff\xff\x0f" + b"\x00" * 8
    with pytest.raises(FrameError):
        decode_request_frame(payload)


def test_an_unknown_api_key_or_an_unserved_version_is_a_frame_error() -> None:
    with pytest.raises(FrameError, match="not a Kafka API"):
        decode_request_frame(struct.pack(">hhih", 1000, 0, 1, -1))
    # DescribeGroups is a Kafka API but not served here.
    with pytest.raises(FrameError, match="API key 15 is not served"):
        decode_request_frame(struct.pack(">hhih", 15, 0, 1, -1) + struct.pack(">i", 0))
    # Produce v2 is advertised for librdkafka's sake, but refused when sent: Kafka's schema
    # (and so kio's) no longer has it. Produce v11 has a schema but is not served.
    with pytest.raises(FrameError, match="API key 0 has no version 2"):
        decode_request_frame(struct.pack(">hhih", 0, 2, 1, -1))
    with pytest.raises(FrameError, match="Produce version 11 is outside the served 3-10"):
        decode_request_frame(struct.pack(">hhih", 0, 11, 1, -1) + b"\x00")
    with pytest.raises(FrameError, match="Metadata version 13 is outside"):
        decode_request_frame(struct.pack(">hhih", 3, 13, 1, -1) + b"\x00\x01\x00\x00")


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while value >= 0x80:
        out.append(value & 0x7F | 0x80)
        value >>= 7
    return bytes([*out, value])


def test_unknown_tagged_fields_are_skipped_where_kafka_skips_them() -> None:
    from kio.schema.metadata.v12 import MetadataRequest
    from kio.schema.metadata.v12.request import MetadataRequestTopic

    body = MetadataRequest(
        topics=(MetadataRequestTopic(topic_id=None, name="t"),),
        include_topic_authorized_operations=True,
    )
    frame = encode_request(1, "c", body)
    known = decode_request_frame(frame[4:])
    assert isinstance(known, DecodedRequest)
    # The body's own tagged section is its last byte (0 fields); the topic's is the byte
    # before the two booleans. Give each a tag from a newer schema.
    payload = bytearray(frame[4:])
    payload[-1:] = _uvarint(2) + b"\x07\x01z" + b"\x2a\x00"
    topic_tags_at = len(payload) - 6 - 3
    assert payload[topic_tags_at] == 0
    payload[topic_tags_at : topic_tags_at + 1] = b"\x01\x63\x03abc"
    decoded = decode_request_frame(bytes(payload))
    assert isinstance(decoded, DecodedRequest)
    assert decoded.body == body


def test_an_unknown_tag_inside_a_known_tagged_value_is_refused() -> None:
    # ApiVersions v3's supported_features (tag 0) holds entities with tagged sections of
    # their own; dropping a tag in there would change tag 0's size.
    from kio.schema.api_versions.v3.response import SupportedFeatureKey

    response = api_versions_response(3)
    with_feature = type(response)(
        error_code=response.error_code,
        api_keys=response.api_keys,
        throttle_time=response.throttle_time,
        supported_features=(SupportedFeatureKey(name="f", min_version=i16(0), max_version=i16(1)),),
    )
    frame = bytearray(encode_response(1, with_feature))
    assert decode_response(bytes(frame[4:]), 18, 3) == (1, with_feature)
    # The feature entry ends ...name, min, max, then its empty tagged section; the section
    # after it, the response's own, holds tag 0: [count=1][tag 0][size][array].
    feature = b"\x02f" + struct.pack(">hh", 0, 1) + b"\x00"
    at = bytes(frame).rindex(feature) + len(feature) - 1
    frame[at : at + 1] = b"\x01\x63\x00"
    size_at = bytes(frame).rindex(b"\x01\x00", 0, at - len(feature)) + 1
    frame[size_at + 1] += 2  # tag 0's size grows by the two bytes added
    with pytest.raises(FrameError, match="unknown inside a tagged field's value"):
        decode_response(bytes(frame[4:]), 18, 3)


def test_trailing_bytes_after_a_request_body_are_ignored_as_kafka_ignores_them() -> None:
    frame = encode_request(1, "c", api_versions_body_v3())
    decoded = decode_request_frame(frame[4:] + b"\x01\x00\x00")
    assert decoded.body == api_versions_body_v3()  # type: ignore[union-attr]


def test_trailing_bytes_after_a_response_body_are_a_frame_error() -> None:
    from kafka_verify.wire.apis import api_versions_response, encode_response

    frame = encode_response(1, api_versions_response(3))
    with pytest.raises(FrameError, match="1 bytes after its last field"):
        decode_response(frame[4:] + b"\x00", 18, 3)


def api_versions_body_v3() -> object:
    from kio.schema.api_versions.v3 import ApiVersionsRequest

    return ApiVersionsRequest(client_software_name="kv", client_software_version="1")


@pytest.mark.parametrize("version", [4, 5, 300, -1])
def test_an_api_versions_request_too_new_is_answered_in_v0_with_unsupported_version(
    version: int,
) -> None:
    # A client newer than this host: header v2 (flexible), a body this host cannot know.
    payload = struct.pack(">hhih", 18, version, 77, 3) + b"cli" + b"\x00" + b"\x05junk"
    decoded = decode_request_frame(payload)
    assert isinstance(decoded, ApiVersionsTooNew)
    answer = decoded.answer()
    correlation_id, response = decode_response(answer[4:], 18, 0)
    assert correlation_id == 77
    assert response.error_code == UNSUPPORTED_VERSION == ErrorCode(35)
    advertised = {
        entry.api_key: (entry.min_version, entry.max_version) for entry in response.api_keys
    }
    assert advertised[18] == (0, 3)
    assert advertised[0] == (0, 10)
    assert len(advertised) == len(SUPPORTED_APIS)


@pytest.mark.parametrize("version", [0, 1, 2, 3])
def test_the_api_versions_answer_lists_every_served_api(version: int) -> None:
    response = api_versions_response(version)
    assert response.error_code == ErrorCode.none
    listed = [(e.api_key, e.min_version, e.max_version) for e in response.api_keys]
    assert listed == sorted(
        (api.api_key, api.advertised_min_version, api.max_version)
        for api in SUPPORTED_APIS.values()
    )
    frame = encode_response(9, response)
    # The ApiVersions response header is v0 in every version: size, then correlation id, then
    # the body's error code.
    assert frame[4:8] == struct.pack(">i", 9)
    assert frame[8:10] == b"\x00\x00"
    assert decode_response(frame[4:], 18, version) == (9, response)
    if version:
        assert {f.name for f in fields(response)} >= {"throttle_time"}
    with pytest.raises(ValueError, match="versions 0-3"):
        api_versions_response(4)
