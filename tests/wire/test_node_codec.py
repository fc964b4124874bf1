"""The nodes' own messages as JSON data on node-to-node TCP: round trips and rejected frames."""

from __future__ import annotations

import base64
import json
import struct
import typing
from dataclasses import dataclass, fields, is_dataclass
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_verify.impl import group_messages, group_store, messages, zk
from kafka_verify.impl.log import StoredRecord
from kafka_verify.wire.node_codec import (
    CALL_TYPES,
    FRAME_TYPES,
    HOST_FRAMES,
    MESSAGE_TYPES,
    Hello,
    NodeCodecError,
    NodeFrameDecoder,
    ZkCallReply,
    ZkCallRequest,
    dataclass_codec,
    decode_envelope,
    decode_message,
    encode_envelope,
    encode_frame,
    encode_message,
    encode_node_frame,
    from_data,
    to_data,
)

INTS = st.integers(-(2**63), 2**63 - 1)
NAMES = st.text(max_size=12)
LEADERS = st.lists(st.tuples(INTS, st.none() | INTS, INTS), max_size=4).map(tuple)
RECORDS = st.lists(
    st.builds(StoredRecord, INTS, INTS, INTS, INTS, INTS, INTS, st.binary(max_size=32)), max_size=4
).map(tuple)
PAIRS = st.lists(st.tuples(INTS, INTS), max_size=4).map(tuple)
TOPIC_RECORDS = st.builds(
    zk.TopicRecord,
    name=NAMES,
    first_partition=INTS,
    replicas=st.lists(st.lists(INTS, max_size=3).map(tuple), max_size=3).map(tuple),
)
TOPICS = st.lists(TOPIC_RECORDS, max_size=3).map(tuple)

# Each message class with its fields' strategies (built by keyword, so a renamed or
# added field fails here rather than passing untested).
STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    messages.LeaderAndIsr: st.builds(
        messages.LeaderAndIsr,
        partition=INTS,
        leader=INTS,
        leader_epoch=INTS,
        isr=st.frozensets(INTS, max_size=5),
        zk_version=INTS,
        controller_epoch=INTS,
        broker_epoch=INTS,
        replicas=st.lists(INTS, max_size=3).map(tuple),
    ),
    messages.LeaderAndIsrResponse: st.builds(
        messages.LeaderAndIsrResponse, partition=INTS, leader_epoch=INTS, broker_epoch=INTS
    ),
    messages.UpdateMetadata: st.builds(
        messages.UpdateMetadata,
        leaders=LEADERS,
        controller_epoch=INTS,
        broker_epoch=INTS,
        topics=TOPICS,
    ),
    messages.UpdateMetadataResponse: st.builds(
        messages.UpdateMetadataResponse, leaders=LEADERS, broker_epoch=INTS, topics=TOPICS
    ),
    messages.Metadata: st.builds(messages.Metadata, request_id=INTS),
    messages.MetadataResponse: st.builds(
        messages.MetadataResponse, request_id=INTS, leaders=LEADERS, topics=TOPICS
    ),
    messages.CreateTopic: st.builds(
        messages.CreateTopic, request_id=INTS, name=NAMES, partitions=INTS, replication=INTS
    ),
    messages.CreateTopicResponse: st.builds(
        messages.CreateTopicResponse,
        request_id=INTS,
        name=NAMES,
        error=NAMES,
        topic=st.none() | TOPIC_RECORDS,
    ),
    messages.Produce: st.builds(
        messages.Produce,
        request_id=INTS,
        partition=INTS,
        record_id=INTS,
        producer_id=INTS,
        seq=INTS,
        acks=INTS,
        count=INTS,
        payload=st.binary(max_size=64),
    ),
    messages.ProduceResponse: st.builds(
        messages.ProduceResponse,
        request_id=INTS,
        partition=INTS,
        error=NAMES,
        offset=st.none() | INTS,
    ),
    messages.Fetch: st.builds(
        messages.Fetch,
        request_id=INTS,
        partition=INTS,
        fetch_offset=INTS,
        current_leader_epoch=INTS,
        replica=st.none() | INTS,
        max_records=INTS,
        max_bytes=st.none() | INTS,
    ),
    messages.FetchResponse: st.builds(
        messages.FetchResponse,
        request_id=INTS,
        partition=INTS,
        error=NAMES,
        fetch_offset=INTS,
        records=RECORDS,
        high_watermark=INTS,
        log_start=INTS,
        log_end=INTS,
        base_offset=INTS,
    ),
    messages.OffsetsForLeaderEpoch: st.builds(
        messages.OffsetsForLeaderEpoch,
        request_id=INTS,
        partition=INTS,
        requested_epoch=INTS,
        current_leader_epoch=INTS,
    ),
    messages.OffsetsForLeaderEpochResponse: st.builds(
        messages.OffsetsForLeaderEpochResponse,
        request_id=INTS,
        partition=INTS,
        error=NAMES,
        epoch=INTS,
        end_offset=INTS,
    ),
    messages.ListOffsets: st.builds(
        messages.ListOffsets,
        request_id=INTS,
        partition=INTS,
        current_leader_epoch=INTS,
        timestamp_ms=INTS,
    ),
    messages.ListOffsetsResponse: st.builds(
        messages.ListOffsetsResponse,
        request_id=INTS,
        partition=INTS,
        error=NAMES,
        offset=INTS,
        leader_epoch=INTS,
    ),
    group_messages.FindCoordinator: st.builds(
        group_messages.FindCoordinator, request_id=INTS, group=NAMES
    ),
    group_messages.FindCoordinatorResponse: st.builds(
        group_messages.FindCoordinatorResponse,
        request_id=INTS,
        group=NAMES,
        coordinator=st.none() | INTS,
    ),
    group_messages.JoinGroup: st.builds(
        group_messages.JoinGroup, request_id=INTS, group=NAMES, member=NAMES
    ),
    group_messages.JoinGroupResponse: st.builds(
        group_messages.JoinGroupResponse,
        request_id=INTS,
        error=NAMES,
        generation=INTS,
        leader=st.none() | NAMES,
        members=st.lists(NAMES, max_size=4).map(tuple),
    ),
    group_messages.SyncGroup: st.builds(
        group_messages.SyncGroup,
        request_id=INTS,
        group=NAMES,
        member=NAMES,
        generation=INTS,
        assignment=st.lists(st.tuples(INTS, NAMES), max_size=4).map(tuple),
    ),
    group_messages.SyncGroupResponse: st.builds(
        group_messages.SyncGroupResponse,
        request_id=INTS,
        error=NAMES,
        generation=INTS,
        partitions=st.lists(INTS, max_size=4).map(tuple),
    ),
    group_messages.Heartbeat: st.builds(
        group_messages.Heartbeat, request_id=INTS, group=NAMES, member=NAMES, generation=INTS
    ),
    group_messages.HeartbeatResponse: st.builds(
        group_messages.HeartbeatResponse, request_id=INTS, error=NAMES
    ),
    group_messages.LeaveGroup: st.builds(
        group_messages.LeaveGroup, request_id=INTS, group=NAMES, member=NAMES
    ),
    group_messages.LeaveGroupResponse: st.builds(
        group_messages.LeaveGroupResponse, request_id=INTS, error=NAMES
    ),
    group_messages.OffsetCommit: st.builds(
        group_messages.OffsetCommit,
        request_id=INTS,
        group=NAMES,
        member=NAMES,
        generation=INTS,
        offsets=PAIRS,
    ),
    group_messages.OffsetCommitResponse: st.builds(
        group_messages.OffsetCommitResponse, request_id=INTS, error=NAMES
    ),
    group_messages.OffsetFetch: st.builds(
        group_messages.OffsetFetch,
        request_id=INTS,
        group=NAMES,
        partitions=st.lists(INTS, max_size=4).map(tuple),
    ),
    group_messages.OffsetFetchResponse: st.builds(
        group_messages.OffsetFetchResponse, request_id=INTS, error=NAMES, offsets=PAIRS
    ),
}
ANY_MESSAGE = st.one_of(*STRATEGIES.values())


def _defined_in(module: object) -> set[type]:
    return {
        value
        for value in vars(module).values()
        if isinstance(value, type) and is_dataclass(value) and value.__module__ == module.__name__  # type: ignore[attr-defined]
    }


def test_every_message_class_of_both_modules_is_in_the_codec_and_the_tests() -> None:
    every = _defined_in(messages) | _defined_in(group_messages)
    assert set(MESSAGE_TYPES.values()) == every
    assert set(STRATEGIES) == every
    assert set(MESSAGE_TYPES) == {cls.__name__ for cls in every}


@pytest.mark.parametrize("cls", list(STRATEGIES), ids=lambda cls: cls.__name__)
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_every_message_round_trips(cls: type, data: st.DataObject) -> None:
    message = data.draw(STRATEGIES[cls])
    payload = encode_message(message)
    assert decode_message(payload) == message
    assert type(decode_message(payload)) is cls
    assert encode_message(decode_message(payload)) == payload  # canonical
    assert list(json.loads(payload)["value"]) == [field.name for field in fields(cls)]


def test_the_encoding_is_plain_tagged_json() -> None:
    message = messages.LeaderAndIsr(0, 2, 5, frozenset({3, 1, 2}), 7, 1, 4, (2, 3, 1))
    assert json.loads(encode_message(message)) == {
        "type": "LeaderAndIsr",
        "value": {
            "partition": 0,
            "leader": 2,
            "leader_epoch": 5,
            "isr": [1, 2, 3],
            "zk_version": 7,
            "controller_epoch": 1,
            "broker_epoch": 4,
            "replicas": [2, 3, 1],
        },
    }
    batch = StoredRecord(9, 1, -1, 0, 100, count=2, payload=b"\x00\xff")
    response = messages.FetchResponse(1, 0, "NONE", 0, (batch,), 1, 0, 1, 0)
    assert to_data(response)["value"]["records"] == [
        {
            "record_id": 9,
            "epoch": 1,
            "producer_id": -1,
            "seq": 0,
            "timestamp_ms": 100,
            "count": 2,
            "payload": "AP8=",
        }
    ]
    assert from_data(to_data(response)) == response


def _valid() -> dict[str, Any]:
    return to_data(messages.ProduceResponse(1, 0, "NONE", 5))


@pytest.mark.parametrize(
    ("mutate", "reason"),
    [
        (lambda d: {"type": "Pickle", "value": {}}, "message type 'Pickle' is not a node message"),
        (lambda d: {"type": 3, "value": {}}, "message type 3 is not"),
        (lambda d: {"value": d["value"]}, 'exactly "type" and "value"'),
        (lambda d: [d], 'exactly "type" and "value"'),
        (lambda d: {**d, "extra": 1}, 'exactly "type" and "value"'),
        (lambda d: {**d, "value": [1]}, "must be an object of ProduceResponse's fields"),
        (
            lambda d: {**d, "value": {k: v for k, v in d["value"].items() if k != "offset"}},
            "lacks field 'offset'",
        ),
        (lambda d: {**d, "value": {**d["value"], "spare": 1}}, "has field 'spare'"),
        (lambda d: {**d, "value": {**d["value"], "offset": "5"}}, "offset must be an integer"),
        (lambda d: {**d, "value": {**d["value"], "offset": True}}, "must be an integer, not bool"),
        (lambda d: {**d, "value": {**d["value"], "offset": 5.0}}, "must be an integer, not float"),
        (lambda d: {**d, "value": {**d["value"], "offset": 2**63}}, "outside 64-bit"),
        (lambda d: {**d, "value": {**d["value"], "error": None}}, "error must be a string"),
    ],
)
def test_malformed_data_is_one_codec_error(mutate: Any, reason: str) -> None:
    with pytest.raises(NodeCodecError, match=reason):
        from_data(mutate(_valid()))


def test_collections_are_checked_element_by_element() -> None:
    data = to_data(messages.LeaderAndIsr(0, 2, 5, frozenset({1}), 7, 1, 4, (1,)))
    with pytest.raises(NodeCodecError, match=r"isr repeats an element"):
        from_data({**data, "value": {**data["value"], "isr": [1, 1]}})
    with pytest.raises(NodeCodecError, match=r"isr\[0\] must be an integer"):
        from_data({**data, "value": {**data["value"], "isr": ["1"]}})
    update = to_data(messages.UpdateMetadata(((0, None, 1),), 1, 1, ()))
    with pytest.raises(NodeCodecError, match=r"leaders\[0\] must be a list of 3"):
        from_data({**update, "value": {**update["value"], "leaders": [[0, 1]]}})
    with pytest.raises(NodeCodecError, match=r"leaders must be a list"):
        from_data({**update, "value": {**update["value"], "leaders": {"0": 1}}})
    fetched = to_data(
        messages.FetchResponse(1, 0, "NONE", 0, (StoredRecord(9, 1, -1, 0, 1),), 1, 0, 1)
    )
    fetched["value"]["records"][0].pop("seq")
    with pytest.raises(NodeCodecError, match=r"records\[0\] lacks field 'seq' of StoredRecord"):
        from_data(fetched)


def test_only_node_messages_are_encoded() -> None:
    with pytest.raises(NodeCodecError, match="int is not a node message"):
        to_data(5)
    with pytest.raises(NodeCodecError, match="must be a frozenset"):
        to_data(messages.LeaderAndIsr(0, 2, 5, {1}, 7, 1, 4, (1,)))  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b"\xff\xfe", "not UTF-8"),
        (b"{not json", "not JSON"),
        (b"[" * 100_000 + b"]" * 100_000, "nests too deeply|not JSON"),
        (b'{"type": "Metadata", "value": {"request_id": 1e400}}', "must be an integer"),
        (b"NaN", 'exactly "type" and "value"'),
    ],
)
def test_bad_payloads_are_one_codec_error(payload: bytes, reason: str) -> None:
    with pytest.raises(NodeCodecError, match=reason):
        decode_message(payload)


def test_frames_split_anywhere_give_the_same_messages() -> None:
    sent = [messages.Metadata(1), group_messages.HeartbeatResponse(2, "NONE"), messages.Metadata(3)]
    stream = b"".join(encode_frame(message) for message in sent)
    for cut in range(len(stream) + 1):
        decoder = NodeFrameDecoder()
        received: list[object] = []
        for chunk in (stream[:cut], stream[cut:]):
            decoder.feed(chunk)
            received.extend(decoder.messages())
        decoder.close()
        assert received == sent


def test_bad_node_frames_are_rejected_and_the_decoder_stays_failed() -> None:
    decoder = NodeFrameDecoder(max_frame_bytes=100)
    decoder.feed(struct.pack(">i", 101))
    with pytest.raises(NodeCodecError, match="exceeds the maximum of 100 bytes"):
        list(decoder.messages())
    with pytest.raises(NodeCodecError, match="exceeds the maximum"):
        decoder.feed(b"")
    decoder = NodeFrameDecoder()
    decoder.feed(encode_frame(messages.Metadata(1)) + struct.pack(">i", 2) + b"{}")
    received = []
    with pytest.raises(NodeCodecError, match='exactly "type" and "value"'):
        for message in decoder.messages():
            received.append(message)
    assert received == [messages.Metadata(1)]
    decoder = NodeFrameDecoder()
    decoder.feed(encode_frame(messages.Metadata(1))[:-1])
    assert list(decoder.messages()) == []
    with pytest.raises(NodeCodecError, match="ended inside a frame"):
        decoder.close()


@settings(max_examples=300, deadline=None)
@given(
    stream=st.one_of(
        st.binary(max_size=120),
        st.lists(ANY_MESSAGE, max_size=3).map(lambda sent: b"".join(encode_frame(m) for m in sent)),
    ),
    junk=st.binary(max_size=12),
)
def test_any_bytes_give_messages_or_one_codec_error(stream: bytes, junk: bytes) -> None:
    decoder = NodeFrameDecoder(max_frame_bytes=1 << 16)
    try:
        decoder.feed(stream + junk)
        for message in decoder.messages():
            assert type(message) in MESSAGE_TYPES.values()
        decoder.close()
    except NodeCodecError as error:
        assert error.reason


# -- the coordination calls, the host's frames and the generic field types -------------------

PARTITION_RECORDS = st.builds(
    zk.PartitionRecord,
    leader=st.none() | INTS,
    leader_epoch=INTS,
    isr=st.frozensets(INTS, max_size=4),
    version=INTS,
    leader_broker_epoch=INTS,
)
LEASES = st.builds(zk.Lease, holder=st.none() | INTS, epoch=INTS, version=INTS, session=INTS)
GROUP_RECORDS = st.builds(
    group_store.GroupRecord,
    group=NAMES,
    phase=NAMES,
    generation=INTS,
    members=st.frozensets(NAMES, max_size=3),
    joined=st.frozensets(NAMES, max_size=3),
    leader=st.none() | NAMES,
    assignment=st.lists(st.tuples(INTS, NAMES), max_size=3).map(tuple),
    told=st.lists(
        st.tuples(
            NAMES,
            st.builds(
                group_store.MemberTold, generation=INTS, owned=st.frozensets(INTS, max_size=3)
            ),
        ),
        max_size=3,
    ).map(tuple),
)
CALL_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    zk.ZkRegister: st.builds(zk.ZkRegister, broker=INTS),
    zk.ZkHeartbeat: st.builds(zk.ZkHeartbeat, session=INTS),
    zk.ZkRead: st.just(zk.ZkRead()),
    zk.ZkTakeLease: st.builds(zk.ZkTakeLease, broker=INTS, session=INTS, expected_version=INTS),
    zk.ZkElect: st.builds(
        zk.ZkElect,
        partition=INTS,
        controller_epoch=INTS,
        expected_version=INTS,
        leader=st.none() | INTS,
        isr=st.frozensets(INTS, max_size=4),
        leader_broker_epoch=INTS,
        fenced=st.booleans(),
    ),
    zk.ZkUpdateIsr: st.builds(
        zk.ZkUpdateIsr,
        partition=INTS,
        leader=INTS,
        leader_epoch=INTS,
        expected_version=INTS,
        isr=st.frozensets(INTS, max_size=4),
        fenced=st.booleans(),
    ),
    zk.ZkCreateTopic: st.builds(zk.ZkCreateTopic, name=NAMES, partitions=INTS, replication=INTS),
    zk.ZkRegistered: st.builds(zk.ZkRegistered, session=INTS, broker_epoch=INTS),
    zk.ZkOk: st.just(zk.ZkOk()),
    zk.ZkCluster: st.builds(
        zk.ZkCluster,
        registrations=st.dictionaries(INTS, INTS, max_size=4),
        lease=LEASES,
        lease_alive=st.booleans(),
        partitions=st.lists(PARTITION_RECORDS, max_size=3).map(tuple),
        topics=TOPICS,
        replicas=st.lists(st.lists(INTS, max_size=3).map(tuple), max_size=3).map(tuple),
    ),
    zk.ZkTopicCreated: st.builds(zk.ZkTopicCreated, topic=TOPIC_RECORDS),
    zk.ZkLeaseTaken: st.builds(zk.ZkLeaseTaken, epoch=INTS),
    zk.ZkWritten: st.builds(zk.ZkWritten, record=PARTITION_RECORDS),
    zk.ZkError: st.builds(zk.ZkError, code=NAMES),
    group_store.GroupRead: st.builds(group_store.GroupRead, partition=INTS),
    group_store.GroupWrite: st.builds(
        group_store.GroupWrite,
        partition=INTS,
        leader=INTS,
        leader_epoch=INTS,
        groups=st.lists(GROUP_RECORDS, max_size=2).map(tuple),
        applied=st.none() | INTS,
    ),
    group_store.GroupSnapshot: st.builds(
        group_store.GroupSnapshot,
        groups=st.lists(GROUP_RECORDS, max_size=2).map(tuple),
        applied=INTS,
    ),
}
REQUEST_TYPES = (*typing.get_args(zk.ZkRequest), *typing.get_args(group_store.GroupCall))
REPLY_TYPES = (*typing.get_args(zk.ZkReply), group_store.GroupSnapshot)
HOST_FRAME_STRATEGIES: dict[type, st.SearchStrategy[Any]] = {
    Hello: st.builds(Hello, version=INTS),
    ZkCallRequest: st.builds(
        ZkCallRequest, call_id=INTS, request=st.one_of(*(CALL_STRATEGIES[c] for c in REQUEST_TYPES))
    ),
    ZkCallReply: st.builds(
        ZkCallReply, call_id=INTS, reply=st.one_of(*(CALL_STRATEGIES[c] for c in REPLY_TYPES))
    ),
}


def test_every_call_and_host_frame_is_in_the_codec_and_the_tests() -> None:
    assert set(CALL_TYPES.values()) == set(REQUEST_TYPES) | set(REPLY_TYPES)
    assert set(CALL_STRATEGIES) == set(CALL_TYPES.values())
    assert set(HOST_FRAME_STRATEGIES) == set(HOST_FRAMES)
    assert set(FRAME_TYPES.values()) == set(MESSAGE_TYPES.values()) | set(CALL_STRATEGIES) | set(
        HOST_FRAMES
    )


@pytest.mark.parametrize(
    "cls", [*CALL_STRATEGIES, *HOST_FRAME_STRATEGIES], ids=lambda cls: cls.__name__
)
@settings(max_examples=30, deadline=None)
@given(data=st.data(), src=st.text(min_size=1, max_size=8))
def test_every_call_and_host_frame_round_trips_in_an_envelope(
    cls: type, data: st.DataObject, src: str
) -> None:
    item = data.draw({**CALL_STRATEGIES, **HOST_FRAME_STRATEGIES}[cls])
    payload = encode_envelope(src, item)
    assert decode_envelope(payload) == (src, item)
    assert encode_envelope(*decode_envelope(payload)) == payload  # canonical
    decoder = NodeFrameDecoder()
    decoder.feed(encode_node_frame(src, item))
    assert list(decoder.envelopes()) == [(src, item)]


def test_a_union_of_dataclasses_is_tagged_and_checked() -> None:
    frame = ZkCallRequest(3, zk.ZkElect(0, 1, 2, None, frozenset({1}), 4, fenced=False))
    data = to_data(frame)
    assert data["value"]["request"]["type"] == "ZkElect"
    assert data["value"]["request"]["value"]["fenced"] is False
    bad = {**data, "value": {**data["value"], "request": {"type": "ZkOk", "value": {}}}}
    with pytest.raises(NodeCodecError, match="request is of type 'ZkOk', not one of"):
        from_data(bad)
    flag = {**data["value"]["request"]["value"], "fenced": 0}
    with pytest.raises(NodeCodecError, match="fenced must be true or false, not int"):
        from_data(
            {**data, "value": {**data["value"], "request": {"type": "ZkElect", "value": flag}}}
        )


def test_dicts_are_lists_of_pairs_without_repeated_keys() -> None:
    cluster = zk.ZkCluster({2: 5, 0: 1}, zk.Lease(0, 1, 0, 1), True, (), (), ())
    data = to_data(cluster)
    assert data["value"]["registrations"] == [[0, 1], [2, 5]]
    data["value"]["registrations"] = [[0, 1], [0, 2]]
    with pytest.raises(NodeCodecError, match="registrations repeats the key 0"):
        from_data(data)
    data["value"]["registrations"] = {"0": 1}
    with pytest.raises(NodeCodecError, match="registrations must be a list of"):
        from_data(data)


@dataclass(frozen=True, slots=True)
class _Blob:
    payload: bytes
    limit: int | None


def test_bytes_are_base64_and_optional_ints_are_null() -> None:
    encode, decode = dataclass_codec(_Blob)
    blob = _Blob(b"\x00\xffkafka", None)
    data = encode(blob, "blob")
    assert data == {"payload": base64.b64encode(b"\x00\xffkafka").decode(), "limit": None}
    assert decode(json.loads(json.dumps(data)), "blob") == blob
    assert decode({"payload": "", "limit": 5}, "blob") == _Blob(b"", 5)
    with pytest.raises(NodeCodecError, match=r"blob.payload is not base64"):
        decode({"payload": "not base64!", "limit": None}, "blob")
    with pytest.raises(NodeCodecError, match=r"blob.payload must be a base64 string"):
        decode({"payload": [1], "limit": None}, "blob")
    with pytest.raises(NodeCodecError, match=r"blob.payload must be bytes"):
        encode(_Blob("text", None), "blob")  # type: ignore[arg-type]


def test_an_offset_record_among_stored_records_keeps_its_class() -> None:
    records = (
        StoredRecord(1, 0, -1, 0, 5),
        group_store.OffsetRecord(
            2, 0, -1, 0, 6, group="g0", member="c0", generation=1, partition=0, offset=9
        ),
    )
    response = messages.FetchResponse(1, 0, "NONE", 0, records, 2, 0, 2, 0)
    data = to_data(response)
    assert "@type" not in data["value"]["records"][0]
    assert data["value"]["records"][1]["@type"] == "OffsetRecord"
    back = from_data(data)
    assert back == response
    assert type(back.records[1]) is group_store.OffsetRecord  # type: ignore[attr-defined]
    data["value"]["records"][1]["@type"] = "Pickle"
    with pytest.raises(NodeCodecError, match="is of type 'Pickle', which is not a StoredRecord"):
        from_data(data)


@pytest.mark.parametrize(
    ("payload", "reason"),
    [
        (b'{"type": "Metadata", "value": {"request_id": 1}}', 'exactly "src", "type" and "value"'),
        (b'{"src": "", "type": "Hello", "value": {"version": 1}}', "src must be a node name"),
        (b'{"src": 3, "type": "Hello", "value": {"version": 1}}', "src must be a node name"),
        (b'{"src": "b0", "type": "Nope", "value": {}}', "message type 'Nope' is not"),
        (b"\xff", "not UTF-8"),
    ],
)
def test_bad_envelopes_are_one_codec_error(payload: bytes, reason: str) -> None:
    with pytest.raises(NodeCodecError, match=reason):
        decode_envelope(payload)
