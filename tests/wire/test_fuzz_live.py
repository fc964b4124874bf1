"""10,000 malformed frames against a running broker: each closes only its own connection.

Afterwards the broker process is the same one, it still serves, a connection
opened before the fuzz still works, and the records written before it read back
unchanged.
"""

from __future__ import annotations

import random
import socket
import struct
from collections.abc import Iterator

import pytest
from kafka_verify.wire.apis import decode_response, encode_request
from served import ServedCluster, read_all

FRAMES = 10_000


def malformed_frame(rng: random.Random) -> bytes:
    """One frame of the kinds a broker must survive: each is wrong in one way."""
    kind = rng.randrange(6)
    if kind == 0:  # a length far beyond the frame limit
        return struct.pack(">i", rng.randrange(200_000_000, 2**31 - 1)) + b"\x00" * 8
    if kind == 1:  # a negative length
        return struct.pack(">i", -rng.randrange(1, 2**31))
    if kind == 2:  # a body shorter than its length says, then the sender goes away
        body = rng.randbytes(rng.randrange(0, 64))
        return struct.pack(">i", len(body) + rng.randrange(1, 1000)) + body
    if kind == 3:  # an API key nobody serves
        header = struct.pack(">hhih", rng.randrange(100, 32_000), 0, rng.randrange(2**31), -1)
        return struct.pack(">i", len(header)) + header
    if kind == 4:  # a served API in a version beyond the table (Produce v99)
        header = struct.pack(">hhih", 0, rng.randrange(20, 99), rng.randrange(2**31), -1)
        body = rng.randbytes(rng.randrange(0, 100))
        return struct.pack(">i", len(header) + len(body)) + header + body
    # a known header (Metadata v9) followed by garbage
    header = struct.pack(">hhih", 3, 9, 1, -1) + b"\x00"
    body = rng.randbytes(rng.randrange(1, 200))
    return struct.pack(">i", len(header) + len(body)) + header + body


def api_versions_works(conn: socket.socket) -> bool:
    from kio.schema.api_versions.v3.request import ApiVersionsRequest

    request = ApiVersionsRequest(client_software_name="fuzz", client_software_version="1")
    conn.sendall(encode_request(11, "fuzz", request))
    size = struct.unpack(">i", _exactly(conn, 4))[0]
    correlation, response = decode_response(_exactly(conn, size), 18, 3)
    return correlation == 11 and int(response.error_code) == 0  # type: ignore[attr-defined]


def _exactly(conn: socket.socket, size: int) -> bytes:
    data = b""
    while len(data) < size:
        chunk = conn.recv(size - len(data))
        if not chunk:
            raise ConnectionError("closed")
        data += chunk
    return data


@pytest.fixture
def cluster(tmp_path: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    with ServedCluster(tmp_path, brokers=1, topics=["kept:1:1"]) as served:  # type: ignore[arg-type]
        yield served


def test_ten_thousand_malformed_frames_leave_the_broker_serving_with_its_data(
    cluster: ServedCluster,
) -> None:
    from confluent_kafka import Producer

    producer = Producer({"bootstrap.servers": cluster.bootstrap, "enable.idempotence": True})
    for i in range(200):
        producer.produce("kept", key=str(i).encode(), value=f"kept-{i}".encode())
    assert producer.flush(60) == 0
    before = read_all(cluster.bootstrap, "kept", 1)
    pid = cluster.pid_of("b0")

    bystander = socket.create_connection(("127.0.0.1", cluster.port), timeout=30)
    assert api_versions_works(bystander)
    rng = random.Random(20261201)
    closed = 0
    for _ in range(FRAMES):
        with socket.create_connection(("127.0.0.1", cluster.port), timeout=30) as conn:
            conn.sendall(malformed_frame(rng))
            conn.shutdown(socket.SHUT_WR)
            try:
                while conn.recv(65_536):
                    pass  # an error answer may come first (ApiVersions never here); then the close
                closed += 1
            except ConnectionResetError:
                closed += 1
    assert closed == FRAMES  # every malformed frame ended its connection
    assert api_versions_works(bystander)  # the connection opened before the fuzz is untouched
    bystander.close()
    assert cluster.pid_of("b0") == pid
    assert read_all(cluster.bootstrap, "kept", 1) == before
    assert len(before) == 200
