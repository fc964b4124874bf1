"""The nodes' own messages (impl/messages.py, impl/group_messages.py) as data on node-to-node TCP.

A message is JSON, `{"type": "<class name>", "value": {<field>: <value>}}`, in
a frame of a big-endian int32 size and that many bytes of UTF-8, as Kafka's
frames are.

Rules of this module:
- Messages are data, never code: `json`, never pickle or eval.
- The codec is generic over the frozen dataclasses, built from their type
  hints: int, str, None, `X | None`, `tuple[X, ...]`, fixed tuples,
  `frozenset[X]` and nested dataclasses (StoredRecord). A type outside these
  fails when the codec is built, at import, not when a message is sent.
- Decoding validates field by field: an unknown type, a missing or extra
  field, a value of the wrong type (a bool is not an int) or an int outside
  64 bits raises `NodeCodecError` naming the field, and nothing else escapes.
- Encoding is canonical: frozensets are written sorted, keys in field
  order, so the same message gives the same bytes.
"""

from __future__ import annotations

import base64
import binascii
import json
import struct
import types
import typing
from collections.abc import Callable, Iterator, Mapping
from dataclasses import fields, is_dataclass
from types import MappingProxyType
from typing import Any

from kafka_verify.impl import group_messages, messages
from kafka_verify.wire.errors import FrameError
from kafka_verify.wire.frames import FrameSplitter

DEFAULT_MAX_NODE_FRAME_BYTES = 64 * 1024 * 1024
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SIZE = struct.Struct(">i")

Encoder = Callable[[Any, str], Any]
Decoder = Callable[[Any, str], Any]


class NodeCodecError(Exception):
    """Bytes from a peer node are not one of the nodes' messages: the reason is one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _message_classes() -> tuple[type, ...]:
    """Every message dataclass of the two modules, in the order they are written."""
    found: list[type] = []
    for module in (messages, group_messages):
        for value in vars(module).values():
            if (
                isinstance(value, type)
                and is_dataclass(value)
                and value.__module__ == module.__name__
            ):
                found.append(value)
    return tuple(found)


# -- building a codec from type hints -------------------------------------------------


def _codec_for(hint: Any, owner: str) -> tuple[Encoder, Decoder]:
    if hint is int:
        return _encode_int, _decode_int
    if hint is str:
        return _encode_str, _decode_str
    if hint is type(None):
        return _encode_none, _decode_none
    if hint is bytes:
        return _encode_bytes, _decode_bytes
    if isinstance(hint, type) and is_dataclass(hint):
        return _dataclass_codec(hint)
    origin = typing.get_origin(hint)
    args = typing.get_args(hint)
    if origin in (types.UnionType, typing.Union):
        return _union_codec(args, owner)
    if origin is tuple and len(args) == 2 and args[1] is Ellipsis:
        return _sequence_codec(args[0], owner)
    if origin is tuple:
        return _fixed_tuple_codec(args, owner)
    if origin is frozenset:
        return _frozenset_codec(args[0], owner)
    raise TypeError(f"{owner}: the node codec has no encoding for type {hint!r}")


def _dataclass_codec(cls: type) -> tuple[Encoder, Decoder]:
    hints = typing.get_type_hints(cls)
    layout = tuple(
        (field.name, *_codec_for(hints[field.name], cls.__name__)) for field in fields(cls)
    )
    names = frozenset(name for name, _, _ in layout)

    def encode(value: Any, path: str) -> Any:
        if type(value) is not cls:
            raise NodeCodecError(f"{path} is a {type(value).__name__}, not a {cls.__name__}")
        return {name: enc(getattr(value, name), f"{path}.{name}") for name, enc, _ in layout}

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, dict):
            raise NodeCodecError(f"{path} must be an object of {cls.__name__}'s fields")
        missing = [name for name, _, _ in layout if name not in value]
        if missing:
            raise NodeCodecError(f"{path} lacks field {missing[0]!r} of {cls.__name__}")
        extra = sorted(set(value) - names)
        if extra:
            raise NodeCodecError(f"{path} has field {extra[0]!r}, which {cls.__name__} has not")
        return cls(**{name: dec(value[name], f"{path}.{name}") for name, _, dec in layout})

    return encode, decode


def _union_codec(args: tuple[Any, ...], owner: str) -> tuple[Encoder, Decoder]:
    options = [arg for arg in args if arg is not type(None)]
    if len(options) != 1 or len(args) != 2:
        raise TypeError(f"{owner}: the node codec encodes only `X | None` unions, not {args!r}")
    inner_encode, inner_decode = _codec_for(options[0], owner)

    def encode(value: Any, path: str) -> Any:
        return None if value is None else inner_encode(value, path)

    def decode(value: Any, path: str) -> Any:
        return None if value is None else inner_decode(value, path)

    return encode, decode


def _sequence_codec(item: Any, owner: str) -> tuple[Encoder, Decoder]:
    item_encode, item_decode = _codec_for(item, owner)

    def encode(value: Any, path: str) -> Any:
        if type(value) is not tuple:
            raise NodeCodecError(f"{path} must be a tuple")
        return [item_encode(element, f"{path}[{i}]") for i, element in enumerate(value)]

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise NodeCodecError(f"{path} must be a list")
        return tuple(item_decode(element, f"{path}[{i}]") for i, element in enumerate(value))

    return encode, decode


def _fixed_tuple_codec(items: tuple[Any, ...], owner: str) -> tuple[Encoder, Decoder]:
    codecs = [_codec_for(item, owner) for item in items]

    def encode(value: Any, path: str) -> Any:
        if type(value) is not tuple or len(value) != len(codecs):
            raise NodeCodecError(f"{path} must be a tuple of {len(codecs)}")
        return [
            enc(element, f"{path}[{i}]") for i, ((enc, _), element) in enumerate(zip(codecs, value))
        ]

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, list) or len(value) != len(codecs):
            raise NodeCodecError(f"{path} must be a list of {len(codecs)}")
        return tuple(
            dec(element, f"{path}[{i}]") for i, ((_, dec), element) in enumerate(zip(codecs, value))
        )

    return encode, decode


def _frozenset_codec(item: Any, owner: str) -> tuple[Encoder, Decoder]:
    item_encode, item_decode = _codec_for(item, owner)

    def encode(value: Any, path: str) -> Any:
        if type(value) is not frozenset:
            raise NodeCodecError(f"{path} must be a frozenset")
        encoded = [item_encode(element, f"{path}[]") for element in value]
        return sorted(encoded, key=lambda element: json.dumps(element, sort_keys=True))

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise NodeCodecError(f"{path} must be a list")
        decoded = [item_decode(element, f"{path}[{i}]") for i, element in enumerate(value)]
        result = frozenset(decoded)
        if len(result) != len(decoded):
            raise NodeCodecError(f"{path} repeats an element of a set")
        return result

    return encode, decode


def _encode_int(value: Any, path: str) -> Any:
    return _decode_int(value, path)


def _decode_int(value: Any, path: str) -> Any:
    if type(value) is not int:
        raise NodeCodecError(f"{path} must be an integer, not {type(value).__name__}")
    if not _INT64_MIN <= value <= _INT64_MAX:
        raise NodeCodecError(f"{path} is outside 64-bit integers")
    return value


def _encode_str(value: Any, path: str) -> Any:
    return _decode_str(value, path)


def _decode_str(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise NodeCodecError(f"{path} must be a string, not {type(value).__name__}")
    return value


def _encode_bytes(value: Any, path: str) -> Any:
    if type(value) is not bytes:
        raise NodeCodecError(f"{path} must be bytes, not {type(value).__name__}")
    return base64.b64encode(value).decode("ascii")


def _decode_bytes(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise NodeCodecError(f"{path} must be a base64 string, not {type(value).__name__}")
    try:
        return base64.b64decode(value, validate=True)
    except binascii.Error as error:
        raise NodeCodecError(f"{path} is not valid base64: {error}") from None


def _encode_none(value: Any, path: str) -> Any:
    return _decode_none(value, path)


def _decode_none(value: Any, path: str) -> Any:
    if value is not None:
        raise NodeCodecError(f"{path} must be null")
    return None


# -- the codec ------------------------------------------------------------------------

MESSAGE_TYPES: Mapping[str, type] = MappingProxyType(
    {cls.__name__: cls for cls in _message_classes()}
)
_CODECS: Mapping[type, tuple[Encoder, Decoder]] = MappingProxyType(
    {cls: _dataclass_codec(cls) for cls in MESSAGE_TYPES.values()}
)
assert len(MESSAGE_TYPES) == len(_message_classes()), "two message classes share a name"


def to_data(message: object) -> dict[str, Any]:
    """The message as JSON-ready data: its type's name and its fields."""
    codec = _CODECS.get(type(message))
    if codec is None:
        raise NodeCodecError(f"{type(message).__name__} is not a node message")
    name = type(message).__name__
    return {"type": name, "value": codec[0](message, name)}


def from_data(data: object) -> object:
    """The message that `data` describes, validated field by field."""
    if not isinstance(data, dict) or set(data) != {"type", "value"}:
        raise NodeCodecError('a node message must be an object with exactly "type" and "value"')
    name = data["type"]
    cls = MESSAGE_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise NodeCodecError(f"message type {name!r} is not a node message")
    return _CODECS[cls][1](data["value"], name)


def encode_message(message: object) -> bytes:
    """The message as UTF-8 JSON (canonical: the same message gives the same bytes)."""
    return json.dumps(to_data(message), separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def decode_message(payload: bytes) -> object:
    """The message in a UTF-8 JSON payload; NodeCodecError if it is not one."""
    try:
        data = json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise NodeCodecError("the node message is not UTF-8") from None
    except RecursionError:
        raise NodeCodecError("the node message nests too deeply to be one") from None
    except ValueError as error:
        raise NodeCodecError(f"the node message is not JSON: {error}") from None
    try:
        return from_data(data)
    except RecursionError:
        raise NodeCodecError("the node message nests too deeply to be one") from None


def encode_frame(message: object) -> bytes:
    """One node-to-node frame: the payload's size, then the payload."""
    payload = encode_message(message)
    return _SIZE.pack(len(payload)) + payload


class NodeFrameDecoder:
    """Incremental decoder of node-to-node frames: feed bytes, then pull `messages()`."""

    def __init__(self, max_frame_bytes: int = DEFAULT_MAX_NODE_FRAME_BYTES) -> None:
        self._splitter = FrameSplitter(max_frame_bytes)
        self._failure: NodeCodecError | None = None

    def feed(self, data: bytes) -> None:
        if self._failure is not None:
            raise self._failure
        try:
            self._splitter.feed(data)
        except FrameError as error:
            raise self._fail(error.reason) from None

    def messages(self) -> Iterator[object]:
        """The complete messages buffered so far; NodeCodecError at the first bad one."""
        if self._failure is not None:
            raise self._failure
        try:
            for payload in self._splitter.payloads():
                try:
                    yield decode_message(payload)
                except NodeCodecError as error:
                    raise self._fail(error.reason) from None
        except FrameError as error:
            raise self._fail(error.reason) from None

    def close(self) -> None:
        if self._failure is not None:
            raise self._failure
        try:
            self._splitter.close()
        except FrameError as error:
            raise self._fail(error.reason) from None

    def _fail(self, reason: str) -> NodeCodecError:
        self._failure = NodeCodecError(reason)
        return self._failure
