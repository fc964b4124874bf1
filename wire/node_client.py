"""A one-shot client of a node's port: say hello, send one impl request, read its answer.

Rules of this module:
- It speaks the node protocol exactly as peers do (a `Hello` envelope, then
  envelopes), under a name that is no node's, so the node answers on this
  connection.
- It waits for the first message whose `request_id` is the request's (for a
  call to the coordination node, the reply with its `call_id`) and skips any
  other; a closed connection or the timeout is `NodeClientError`.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
from collections.abc import Callable

from kafka_verify.impl.group_store import GroupCall, GroupSnapshot
from kafka_verify.impl.messages import Message
from kafka_verify.impl.zk import ZkReply, ZkRequest
from kafka_verify.wire.node_codec import (
    Hello,
    NodeCodecError,
    NodeFrameDecoder,
    ZkCallReply,
    ZkCallRequest,
    encode_node_frame,
)


class NodeClientError(Exception):
    """No answer came: the reason is one sentence."""


async def node_request(
    host: str, port: int, message: Message, timeout_s: float, name: str | None = None
) -> object:
    """Send `message` to the node at host:port and return its answer."""
    request_id = getattr(message, "request_id", None)
    return await _ask(
        host, port, message, lambda answer: _id_of(answer) == request_id, timeout_s, name
    )


async def zk_request(
    host: str, port: int, request: ZkRequest | GroupCall, timeout_s: float
) -> ZkReply | GroupSnapshot:
    """Make one call to the coordination node at host:port and return its reply."""
    answer = await _ask(
        host,
        port,
        ZkCallRequest(1, request),
        lambda answer: isinstance(answer, ZkCallReply) and answer.call_id == 1,
        timeout_s,
        None,
    )
    assert isinstance(answer, ZkCallReply)
    return answer.reply


def _id_of(answer: object) -> object:
    return getattr(answer, "request_id", None)


async def _ask(
    host: str,
    port: int,
    message: object,
    wanted: Callable[[object], bool],
    timeout_s: float,
    name: str | None,
) -> object:
    sender = name or f"probe-{os.getpid()}"
    try:
        return await asyncio.wait_for(_exchange(host, port, sender, message, wanted), timeout_s)
    except TimeoutError:
        raise NodeClientError(f"{host}:{port} did not answer within {timeout_s} s") from None
    except OSError as error:
        raise NodeClientError(f"cannot reach {host}:{port}: {error.strerror or error}") from None


async def _exchange(
    host: str, port: int, sender: str, message: object, wanted: Callable[[object], bool]
) -> object:
    reader, writer = await asyncio.open_connection(host, port)
    try:
        writer.write(encode_node_frame(sender, Hello()) + encode_node_frame(sender, message))
        await writer.drain()
        decoder = NodeFrameDecoder()
        while True:
            data = await reader.read(65_536)
            if not data:
                raise NodeClientError(f"{host}:{port} closed the connection")
            decoder.feed(data)
            try:
                for _, answer in decoder.envelopes():
                    if wanted(answer):
                        return answer
            except NodeCodecError as error:
                raise NodeClientError(f"{host}:{port} sent a bad frame: {error.reason}") from None
    finally:
        writer.close()
        with contextlib.suppress(ConnectionError):
            await writer.wait_closed()
