"""The asyncio Kafka server over real loopback sockets: ApiVersions, a handler, and malformed peers."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import struct
import threading
from collections.abc import Awaitable, Callable
from datetime import timedelta
from typing import Any

import pytest
from kafka_verify.wire.apis import (
    SUPPORTED_APIS,
    UNSUPPORTED_VERSION,
    DecodedRequest,
    decode_response,
    encode_request,
)
from kafka_verify.wire.batches import NewRecord, build_batch
from kafka_verify.wire.server import KafkaServer
from kio.schema.api_versions.v0 import ApiVersionsRequest as ApiVersionsV0
from kio.schema.api_versions.v3 import ApiVersionsRequest as ApiVersionsV3
from kio.schema.errors import ErrorCode
from kio.schema.heartbeat.v3 import HeartbeatRequest as HeartbeatV3
from kio.schema.heartbeat.v3 import HeartbeatResponse as HeartbeatResponseV3
from kio.schema.metadata.v12 import MetadataResponse as MetadataResponseV12
from kio.schema.metadata.v12.response import MetadataResponseBroker
from kio.schema.types import BrokerId
from kio.static.primitive import i32, i32Timedelta

IO_TIMEOUT_S = 5.0
NO_THROTTLE = i32Timedelta.parse(timedelta(0))


def _run(test: Callable[[], Awaitable[None]]) -> None:
    """Run one async test, then require that it left no task and no thread behind."""
    threads_before = set(threading.enumerate())

    async def checked() -> None:
        async with asyncio.timeout(60):
            await test()
        assert asyncio.all_tasks() == {asyncio.current_task()}

    asyncio.run(checked())
    left = [thread.name for thread in set(threading.enumerate()) - threads_before]
    assert left == [], f"threads left running: {left}"


async def _no_handler(request: DecodedRequest) -> Any:
    raise AssertionError(f"the handler was not expected to see {request.header}")


async def _heartbeats(request: DecodedRequest) -> Any:
    if request.header.api_key == 12 and request.header.api_version == 3:
        return HeartbeatResponseV3(throttle_time=NO_THROTTLE, error_code=ErrorCode.none)
    return None  # the stand-in for Produce with acks=0: no answer


class Client:
    """A raw Kafka connection: write request frames, read response frames."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer

    @classmethod
    async def connect(cls, port: int) -> Client:
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        return cls(reader, writer)

    async def send(self, data: bytes) -> None:
        self.writer.write(data)
        await self.writer.drain()

    async def response(self, api_key: int, version: int) -> tuple[int, Any]:
        size_bytes = await asyncio.wait_for(self.reader.readexactly(4), IO_TIMEOUT_S)
        (size,) = struct.unpack(">i", size_bytes)
        payload = await asyncio.wait_for(self.reader.readexactly(size), IO_TIMEOUT_S)
        return decode_response(payload, api_key, version)

    async def closed_by_server(self) -> bool:
        try:
            rest = await asyncio.wait_for(self.reader.read(), IO_TIMEOUT_S)
        except ConnectionError:
            return True
        return rest == b""

    async def close(self) -> None:
        self.writer.close()
        with contextlib.suppress(ConnectionError):
            await self.writer.wait_closed()


async def _api_versions_ok(client: Client, correlation_id: int = 1) -> bool:
    await client.send(encode_request(correlation_id, "t", ApiVersionsV0()))
    got_id, response = await client.response(18, 0)
    return got_id == correlation_id and response.error_code == ErrorCode.none


def test_api_versions_is_answered_in_every_served_version() -> None:
    async def test() -> None:
        async with KafkaServer(_no_handler) as server:
            client = await Client.connect(server.port)
            for version, request in [
                (0, ApiVersionsV0()),
                (3, ApiVersionsV3(client_software_name="t", client_software_version="1")),
            ]:
                await client.send(encode_request(10 + version, "t", request))
                correlation_id, response = await client.response(18, version)
                assert correlation_id == 10 + version
                ranges = {e.api_key: (e.min_version, e.max_version) for e in response.api_keys}
                assert ranges == {
                    api.api_key: (api.advertised_min_version, api.max_version)
                    for api in SUPPORTED_APIS.values()
                }
            await client.close()
            assert server.request_counts == {(18, 0): 1, (18, 3): 1}

    _run(test)


def test_an_api_versions_too_new_gets_unsupported_version_in_v0() -> None:
    async def test() -> None:
        async with KafkaServer(_no_handler) as server:
            client = await Client.connect(server.port)
            payload = struct.pack(">hhih", 18, 9, 5, 1) + b"t" + b"\x00" + b"\x03ab"
            await client.send(struct.pack(">i", len(payload)) + payload)
            correlation_id, response = await client.response(18, 0)
            assert (correlation_id, response.error_code) == (5, UNSUPPORTED_VERSION)
            # The connection stays open, and the client falls back to a version served.
            assert await _api_versions_ok(client, correlation_id=6)
            await client.close()

    _run(test)


def test_other_requests_go_to_the_handler_and_are_answered_in_order() -> None:
    async def test() -> None:
        async with KafkaServer(_heartbeats) as server:
            client = await Client.connect(server.port)
            heartbeat = HeartbeatV3(
                group_id="g", generation_id=i32(1), member_id="m", group_instance_id=None
            )
            # Pipelined in one write: the answers come back in the order asked.
            await client.send(
                encode_request(1, "t", heartbeat)
                + encode_request(2, "t", ApiVersionsV0())
                + encode_request(3, "t", heartbeat)
            )
            assert (await client.response(12, 3))[0] == 1
            assert (await client.response(18, 0))[0] == 2
            assert (await client.response(12, 3))[0] == 3
            await client.close()

    _run(test)


def test_a_request_the_handler_leaves_unanswered_gets_no_response() -> None:
    async def test() -> None:
        from kio.schema.heartbeat.v2 import HeartbeatRequest as HeartbeatV2

        async with KafkaServer(_heartbeats) as server:
            client = await Client.connect(server.port)
            quiet = HeartbeatV2(group_id="g", generation_id=i32(1), member_id="m")
            await client.send(
                encode_request(1, "t", quiet) + encode_request(2, "t", ApiVersionsV0())
            )
            # The first answer on the wire is the ApiVersions one.
            assert (await client.response(18, 0))[0] == 2
            await client.close()

    _run(test)


def test_a_handler_failure_closes_only_its_connection(caplog: pytest.LogCaptureFixture) -> None:
    async def failing(request: DecodedRequest) -> Any:
        raise RuntimeError("handler bug")

    async def test() -> None:
        async with KafkaServer(failing) as server:
            bystander = await Client.connect(server.port)
            victim = await Client.connect(server.port)
            heartbeat = HeartbeatV3(
                group_id="g", generation_id=i32(1), member_id="m", group_instance_id=None
            )
            await victim.send(encode_request(1, "t", heartbeat))
            assert await victim.closed_by_server()
            assert await _api_versions_ok(bystander)
            await victim.close()
            await bystander.close()

    with caplog.at_level(logging.ERROR, logger="kafka_verify.wire.server"):
        _run(test)
    assert "internal error" in caplog.text
    assert "handler bug" in caplog.text


def test_a_response_of_the_wrong_version_is_refused_as_an_internal_error(
    caplog: pytest.LogCaptureFixture,
) -> None:
    async def wrong(request: DecodedRequest) -> Any:
        return MetadataResponseV12(throttle_time=NO_THROTTLE, brokers=(), topics=())

    async def test() -> None:
        async with KafkaServer(wrong) as server:
            client = await Client.connect(server.port)
            heartbeat = HeartbeatV3(
                group_id="g", generation_id=i32(1), member_id="m", group_instance_id=None
            )
            await client.send(encode_request(1, "t", heartbeat))
            assert await client.closed_by_server()
            await client.close()

    with caplog.at_level(logging.ERROR, logger="kafka_verify.wire.server"):
        _run(test)
    assert "answered API 12 v3 with API 3 v12" in caplog.text


def _malformed_frames(seed: int, count: int) -> list[tuple[bytes, bool]]:
    """(bytes, end the stream after them) for `count` malformed frames of many kinds."""
    rng = random.Random(seed)
    good = encode_request(
        1, "t", ApiVersionsV3(client_software_name="t", client_software_version="1")
    )
    produce_header = struct.pack(">hhih", 0, 9, 1, -1) + b"\x00"
    kinds: list[Callable[[], tuple[bytes, bool]]] = [
        lambda: (struct.pack(">i", -rng.randint(1, 2**31)), False),
        lambda: (struct.pack(">i", rng.randint(2**20 + 1, 2**31 - 1)), False),
        # A frame too short for a header (or, if the bytes run out first, a stream that ends).
        lambda: (struct.pack(">i", rng.randint(0, 7)) + bytes(rng.randint(0, 7)), True),
        lambda: (_sized(struct.pack(">hhi", rng.randint(70, 2**15 - 1), 0, 1)), False),
        lambda: (_sized(struct.pack(">hhih", 3, rng.randint(13, 500), 1, -1)), False),
        lambda: (_sized(struct.pack(">hhih", 15, 0, 1, -1)), False),  # a Kafka API not served
        lambda: (_sized(produce_header + b"\xf0\xff\xff\xff\x0f" + bytes(10)), False),
        lambda: (_sized(struct.pack(">hhi", 3, 12, 1) + rng.randbytes(rng.randint(0, 40))), False),
        lambda: (good[: rng.randint(1, len(good) - 1)], True),  # the stream ends inside a frame
        lambda: (_corrupt(good, rng), False),
        lambda: (rng.randbytes(rng.randint(4, 64)), True),
    ]
    frames = []
    for _ in range(count):
        frames.append(rng.choice(kinds)())
    return frames


def _sized(payload: bytes) -> bytes:
    return struct.pack(">i", len(payload)) + payload


def _corrupt(frame: bytes, rng: random.Random) -> bytes:
    body = bytearray(frame[4:])
    body[8:] = rng.randbytes(len(body) - 8)  # keep the API key and version, garble the rest
    body[8:10] = b"\x00\x01"  # a one-byte client id, so the damage lands in the body
    return _sized(bytes(body) + b"\xff" * rng.randint(1, 5))


def test_a_fuzz_of_malformed_frames_closes_each_bad_connection_and_the_server_goes_on(
    caplog: pytest.LogCaptureFixture,
) -> None:
    frames = _malformed_frames(seed=20261201, count=300)

    async def test() -> None:
        async with KafkaServer(_no_handler, max_frame_bytes=2**20) as server:
            bystander = await Client.connect(server.port)
            closed = 0
            for index, (data, end_stream) in enumerate(frames):
                client = await Client.connect(server.port)
                await client.send(data)
                if end_stream:
                    client.writer.write_eof()
                closed += await client.closed_by_server()
                await client.close()
                if index % 50 == 0:
                    assert await _api_versions_ok(bystander, correlation_id=index)
            assert closed == len(frames)
            # Still serving: the bystander and a new connection get ApiVersions answered.
            assert await _api_versions_ok(bystander, correlation_id=10_000)
            fresh = await Client.connect(server.port)
            assert await _api_versions_ok(fresh)
            await fresh.close()
            await bystander.close()
            async with asyncio.timeout(IO_TIMEOUT_S):
                while server.open_connections:  # the server sees the clients' ends
                    await asyncio.sleep(0.01)
            # Each bad connection was closed for its own frame error.
            assert server.closed_for_frame_errors == len(frames)

    with caplog.at_level(logging.WARNING, logger="kafka_verify.wire.server"):
        _run(test)
    assert "closing the connection from" in caplog.text
    assert "Traceback" not in caplog.text


def test_a_produce_with_a_corrupt_batch_still_reaches_the_handler_as_bytes() -> None:
    # Batches are the handler's to check (CORRUPT_MESSAGE is a per-partition answer, not a
    # framing error): the server hands the records bytes over untouched.
    from kio.schema.produce.v9 import ProduceRequest
    from kio.schema.produce.v9.request import PartitionProduceData, TopicProduceData
    from kio.static.primitive import i16

    seen: list[bytes] = []

    async def produce(request: DecodedRequest) -> Any:
        seen.append(request.body.topic_data[0].partition_data[0].records)  # type: ignore[attr-defined]
        return None

    batch = bytearray(build_batch([NewRecord(b"k", b"v", 1)]))
    batch[-1] ^= 0xFF

    async def test() -> None:
        async with KafkaServer(produce) as server:
            client = await Client.connect(server.port)
            request = ProduceRequest(
                transactional_id=None,
                acks=i16(0),
                timeout=i32Timedelta.parse(timedelta(seconds=1)),
                topic_data=(
                    TopicProduceData(
                        name="t",
                        partition_data=(PartitionProduceData(index=i32(0), records=bytes(batch)),),
                    ),
                ),
            )
            await client.send(
                encode_request(1, "t", request) + encode_request(2, "t", ApiVersionsV0())
            )
            assert (await client.response(18, 0))[0] == 2
            await client.close()

    _run(test)
    assert seen == [bytes(batch)]


def test_kafka_python_negotiates_api_versions_and_reads_metadata() -> None:
    compat = pytest.importorskip("kafka.net.compat")
    handled: list[tuple[int, int]] = []

    async def test() -> None:
        server = KafkaServer(_no_handler)
        await server.start()

        async def metadata(request: DecodedRequest) -> Any:
            handled.append((request.header.api_key, request.header.api_version))
            broker = MetadataResponseBroker(
                node_id=BrokerId(0), host="127.0.0.1", port=i32(server.port)
            )
            return MetadataResponseV12(
                throttle_time=NO_THROTTLE, brokers=(broker,), controller_id=BrokerId(0), topics=()
            )

        server.handler = metadata

        def negotiate() -> object:
            client = compat.KafkaNetClient(
                bootstrap_servers=f"127.0.0.1:{server.port}",
                request_timeout_ms=20_000,
                api_version_auto_timeout_ms=20_000,
            )
            try:
                return client.check_version(timeout_ms=20_000)
            except Exception as error:
                return error
            finally:
                client.close()

        try:
            version = await asyncio.to_thread(negotiate)
        finally:
            await server.close()
        counts = dict(server.request_counts)
        # kafka-python names the newest Kafka release whose API ranges fit the ones served.
        assert version == (3, 0), f"{version!r}; requests seen: {counts}"
        assert set(handled) == {(3, 12)}, counts
        # Its first ApiVersions is v4, newer than served: answered UNSUPPORTED_VERSION, it
        # falls back to v3.
        assert counts.get((18, 4), 0) >= 1, counts
        assert counts.get((18, 3), 0) >= 1, counts

    _run(test)


def test_kafka_python_produces_batches_that_split_check_and_read_back() -> None:
    producer_module = pytest.importorskip("kafka")
    import time
    import uuid

    from kafka_verify.wire.batches import (
        assign_offset_and_epoch,
        iter_records,
        parse_batch,
        split_batches,
    )
    from kio.index import load_payload_module
    from kio.schema.metadata.v12.response import (
        MetadataResponsePartition,
        MetadataResponseTopic,
    )
    from kio.schema.types import TopicName
    from kio.static.constants import EntityType
    from kio.static.primitive import i64

    log_bytes = bytearray()  # the one partition's log: batches as sent, offsets assigned
    leader_epoch = 4

    async def test() -> None:
        server = KafkaServer(_no_handler)
        await server.start()

        async def broker(request: DecodedRequest) -> Any:
            key, version = request.header.api_key, request.header.api_version
            if key == 3:
                partition = MetadataResponsePartition(
                    error_code=ErrorCode.none,
                    partition_index=i32(0),
                    leader_id=BrokerId(0),
                    leader_epoch=i32(leader_epoch),
                    replica_nodes=(BrokerId(0),),
                    isr_nodes=(BrokerId(0),),
                    offline_replicas=(),
                )
                topic = MetadataResponseTopic(
                    error_code=ErrorCode.none,
                    name=TopicName("t"),
                    topic_id=uuid.UUID(int=1),
                    partitions=(partition,),
                )
                broker_entry = MetadataResponseBroker(
                    node_id=BrokerId(0), host="127.0.0.1", port=i32(server.port)
                )
                return MetadataResponseV12(
                    throttle_time=NO_THROTTLE,
                    brokers=(broker_entry,),
                    controller_id=BrokerId(0),
                    topics=(topic,),
                )
            assert key == 0, f"unexpected API {key} v{version}"
            schema = load_payload_module(0, version, EntityType.response)
            [topic_data] = request.body.topic_data  # type: ignore[attr-defined]
            [partition_data] = topic_data.partition_data
            base_offset = _next_offset(log_bytes)
            for batch in split_batches(partition_data.records):
                raw = bytearray(batch.raw)
                assign_offset_and_epoch(raw, _next_offset(log_bytes), leader_epoch)
                log_bytes.extend(raw)
            answer = schema.PartitionProduceResponse(
                index=partition_data.index,
                error_code=ErrorCode.none,
                base_offset=i64(base_offset),
                record_errors=(),
            )
            return schema.ProduceResponse(
                responses=(
                    schema.TopicProduceResponse(
                        name=topic_data.name, partition_responses=(answer,)
                    ),
                ),
                throttle_time=NO_THROTTLE,
            )

        server.handler = broker

        def produce() -> list[tuple[int, int]]:
            producer = producer_module.KafkaProducer(
                bootstrap_servers=f"127.0.0.1:{server.port}",
                request_timeout_ms=20_000,
                max_block_ms=20_000,
                enable_idempotence=False,
            )
            try:
                sent = [
                    producer.send("t", key=b"k%d" % i, value=b"v%d" % i, headers=[("h", b"x")])
                    for i in range(3)
                ]
                return [(m.partition, m.offset) for m in (f.get(timeout=20) for f in sent)]
            finally:
                producer.close(timeout=10)

        try:
            acked = await asyncio.to_thread(produce)
        finally:
            await server.close()
        assert acked == [(0, 0), (0, 1), (0, 2)]

    before_ms = int(time.time() * 1000)
    _run(test)
    after_ms = int(time.time() * 1000)
    batches = split_batches(bytes(log_bytes))  # every stored batch still passes its CRC
    assert {batch.partition_leader_epoch for batch in batches} == {leader_epoch}
    records = [record for batch in batches for record in iter_records(parse_batch(batch.raw))]
    assert [(r.offset, r.key, r.value, r.headers) for r in records] == [
        (i, b"k%d" % i, b"v%d" % i, (("h", b"x"),)) for i in range(3)
    ]
    # The producer's millisecond timestamps come through whole.
    assert all(before_ms <= r.timestamp_ms <= after_ms for r in records)


def _next_offset(log_bytes: bytearray) -> int:
    from kafka_verify.wire.batches import split_batches

    batches = split_batches(bytes(log_bytes))
    return batches[-1].last_offset + 1 if batches else 0
