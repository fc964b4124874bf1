"""Request frames on a byte stream: sizes, headers, split feeding, and malformed input."""

from __future__ import annotations

import struct

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_verify.wire.apis import encode_request
from kafka_verify.wire.frames import (
    FrameError,
    FrameSplitter,
    RequestDecoder,
    RequestFrame,
    RequestHeader,
    parse_request_header,
    request_header_version,
)
from kio.schema.api_versions.v3 import ApiVersionsRequest as ApiVersionsV3
from kio.schema.heartbeat.v3 import HeartbeatRequest as HeartbeatV3
from kio.schema.metadata.v1 import MetadataRequest as MetadataV1
from kio.schema.metadata.v12 import MetadataRequest as MetadataV12
from kio.static.primitive import i32


def _frames(decoder: RequestDecoder) -> list[RequestFrame]:
    return list(decoder.frames())


def _api_versions_v3(correlation_id: int = 7, client_id: str | None = "client") -> bytes:
    body = ApiVersionsV3(client_software_name="kv", client_software_version="1.0")
    return encode_request(correlation_id, client_id, body)


def _metadata_v1(correlation_id: int = 8) -> bytes:
    return encode_request(correlation_id, "client", MetadataV1(topics=None))


def _sized(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def test_a_v2_header_is_parsed_with_its_client_id_and_the_body_follows() -> None:
    decoder = RequestDecoder()
    decoder.feed(_api_versions_v3(correlation_id=41))
    [frame] = _frames(decoder)
    assert frame.header == RequestHeader(18, 3, 41, "client", header_version=2)
    # The body is the two compact strings and an empty tagged-field section.
    assert frame.body == b"\x03kv\x041.0\x00"


def test_a_v1_header_is_parsed_and_a_null_client_id_is_none() -> None:
    decoder = RequestDecoder()
    decoder.feed(encode_request(5, None, MetadataV1(topics=None)))
    [frame] = _frames(decoder)
    assert frame.header == RequestHeader(3, 1, 5, None, header_version=1)
    assert frame.body == struct.pack(">i", -1)


def test_a_v0_header_has_no_client_id() -> None:
    # ControlledShutdown v0 is the one request sent with header v0.
    payload = struct.pack(">hhi", 7, 0, 99) + struct.pack(">i", 3)
    header, size = parse_request_header(payload)
    assert header == RequestHeader(7, 0, 99, None, header_version=0)
    assert size == 8


def test_an_unknown_tagged_field_in_a_v2_header_is_skipped_as_kafka_skips_it() -> None:
    frame = _api_versions_v3(correlation_id=3)
    plain = parse_request_header(frame[4:])
    # The same header with one tagged field (tag 9, two bytes) no schema knows.
    at = 8 + 2 + len("client")  # after the common fields and the client id
    tagged = frame[4 : 4 + at] + b"\x01\x09\x02hi" + frame[4 + at + 1 :]
    header, size = parse_request_header(tagged)
    assert header == plain[0]
    assert size == plain[1] + 4
    assert tagged[size:] == frame[4 + plain[1] :]  # the body starts after the tagged field


def test_header_versions_follow_kafkas_rule() -> None:
    assert request_header_version(3, 8) == 1  # Metadata v8 is not flexible
    assert request_header_version(3, 9) == 2  # Metadata v9 is
    assert request_header_version(18, 2) == 1
    assert request_header_version(18, 3) == 2
    # An ApiVersions newer than any known is read with the newest header, to be answered.
    assert request_header_version(18, 999) == 2
    with pytest.raises(FrameError, match="API key 999 is not a Kafka API"):
        request_header_version(999, 0)
    with pytest.raises(FrameError, match="has no version 99"):
        request_header_version(3, 99)


def test_frames_come_out_in_order_and_a_partial_frame_waits() -> None:
    stream = _api_versions_v3(1) + _metadata_v1(2) + _api_versions_v3(3)
    decoder = RequestDecoder()
    decoder.feed(stream[:-3])
    assert [frame.header.correlation_id for frame in _frames(decoder)] == [1, 2]
    decoder.feed(stream[-3:])
    assert [frame.header.correlation_id for frame in _frames(decoder)] == [3]
    decoder.close()  # nothing left over


def test_a_negative_size_is_refused() -> None:
    decoder = RequestDecoder()
    decoder.feed(struct.pack(">i", -1))
    with pytest.raises(FrameError, match="frame size -1 is negative"):
        _frames(decoder)


def test_an_oversized_frame_is_refused_before_its_body_arrives() -> None:
    decoder = RequestDecoder(max_frame_bytes=1000)
    decoder.feed(struct.pack(">i", 1001))
    with pytest.raises(FrameError, match="exceeds the maximum of 1000 bytes"):
        _frames(decoder)


def test_a_frame_exactly_at_the_maximum_is_read() -> None:
    frame = _metadata_v1()
    decoder = RequestDecoder(max_frame_bytes=len(frame) - 4)
    decoder.feed(frame)
    assert len(_frames(decoder)) == 1


def test_a_stream_that_ends_inside_a_frame_is_an_error_at_close() -> None:
    decoder = RequestDecoder()
    decoder.feed(_metadata_v1()[:-1])
    assert _frames(decoder) == []
    with pytest.raises(FrameError, match="the stream ended inside a frame"):
        decoder.close()


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"", "at least 8 bytes"),
        (b"\x00\x03\x00\x01\x00\x00", "at least 8 bytes"),
        (struct.pack(">hhi", 999, 0, 1), "not a Kafka API"),
        (struct.pack(">hhi", 3, 1, 1), "client_id's length needs 2 bytes"),
        (struct.pack(">hhih", 3, 1, 1, 5) + b"ab", "client_id needs 5 bytes"),
        (struct.pack(">hhih", 3, 1, 1, -2), "client_id has length -2"),
        # v2: a legacy client id, then a tagged-field count far larger than the frame.
        (struct.pack(">hhih", 3, 12, 1, -1) + b"\xff\xff\xff\xff\x0f", "tagged fields cannot fit"),
        (struct.pack(">hhih", 3, 12, 1, -1) + b"\x01\x05\x03ab", "tagged field 5 claims 3 bytes"),
        (struct.pack(">hhih", 3, 12, 1, -1) + b"\xff\xff\xff\xff\xff\xff", "longer than 5 bytes"),
        (struct.pack(">hhih", 3, 12, 1, 1) + b"\xff\x00", "does not parse"),  # not UTF-8
    ],
)
def test_a_header_that_does_not_parse_is_one_frame_error(payload: bytes, reason: str) -> None:
    decoder = RequestDecoder()
    decoder.feed(_sized(payload))
    with pytest.raises(FrameError, match=reason):
        _frames(decoder)


def test_after_an_error_the_decoder_stays_failed() -> None:
    decoder = RequestDecoder()
    decoder.feed(struct.pack(">i", -5))
    with pytest.raises(FrameError):
        _frames(decoder)
    with pytest.raises(FrameError, match="negative"):
        decoder.feed(_metadata_v1())
    with pytest.raises(FrameError, match="negative"):
        decoder.close()


def test_frames_before_a_bad_one_are_still_delivered() -> None:
    decoder = RequestDecoder()
    decoder.feed(_metadata_v1(1) + _metadata_v1(2) + struct.pack(">i", -1))
    seen: list[int] = []
    with pytest.raises(FrameError):
        for frame in decoder.frames():
            seen.append(frame.header.correlation_id)
    assert seen == [1, 2]


def _outcome(chunks: list[bytes], max_frame_bytes: int) -> tuple[list[RequestFrame], str | None]:
    """The frames a decoder yields for the chunks fed one by one, and its error if any."""
    decoder = RequestDecoder(max_frame_bytes)
    frames: list[RequestFrame] = []
    try:
        for chunk in chunks:
            decoder.feed(chunk)
            frames.extend(decoder.frames())
        decoder.close()
    except FrameError as error:
        assert error.reason and error.reason == str(error)
        return frames, error.reason
    return frames, None


_VALID_FRAMES = st.sampled_from(
    [
        _api_versions_v3(1),
        _metadata_v1(2),
        encode_request(3, "c", MetadataV12(topics=(), include_topic_authorized_operations=False)),
        encode_request(
            4,
            None,
            HeartbeatV3(group_id="g", generation_id=i32(1), member_id="m", group_instance_id=None),
        ),
    ]
)
_STREAMS = st.lists(
    st.one_of(_VALID_FRAMES, st.binary(max_size=40), _VALID_FRAMES.map(lambda f: f[:-1])),
    max_size=6,
).map(b"".join)


@settings(max_examples=400, deadline=None)
@given(stream=st.one_of(st.binary(max_size=200), _STREAMS), max_frame_bytes=st.integers(0, 300))
def test_any_bytes_give_frames_or_a_frame_error(stream: bytes, max_frame_bytes: int) -> None:
    frames, error = _outcome([stream], max_frame_bytes)
    for frame in frames:
        assert isinstance(frame.header, RequestHeader)
        assert len(frame.body) <= max_frame_bytes
    if error is None:
        assert sum(4 + len(f.body) for f in frames) <= len(stream)


@settings(max_examples=300, deadline=None)
@given(stream=_STREAMS, cuts=st.lists(st.integers(0, 400), max_size=8))
def test_split_feeding_gives_the_same_frames(stream: bytes, cuts: list[int]) -> None:
    points = sorted({min(cut, len(stream)) for cut in cuts})
    chunks = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)])]
    assert _outcome(chunks, 1000) == _outcome([stream], 1000)


def test_the_splitter_hands_back_raw_payloads() -> None:
    splitter = FrameSplitter(max_frame_bytes=10)
    splitter.feed(_sized(b"abc") + _sized(b"") + b"\x00\x00")
    assert list(splitter.payloads()) == [b"abc", b""]
    assert splitter.buffered_bytes == 2
    with pytest.raises(ValueError, match="max_frame_bytes"):
        FrameSplitter(max_frame_bytes=-1)
