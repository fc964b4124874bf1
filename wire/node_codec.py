"""The nodes' own messages (impl/messages.py, impl/group_messages.py) as data on node-to-node TCP.

A message is JSON, `{"type": "<class name>", "value": {<field>: <value>}}`, in
a frame of a big-endian int32 size and that many bytes of UTF-8, as Kafka's
frames are.

Rules of this module:
- Messages are data, never code: `json`, never pickle or eval.
- The codec is generic over the frozen dataclasses, built from their type
  hints: int, bool, str, bytes (base64 text), None, `X | None`, unions of
  dataclasses (tagged with the class name), `tuple[X, ...]`, fixed tuples,
  `frozenset[X]`, `dict[K, V]` (a list of pairs) and nested dataclasses
  (StoredRecord). A value of a dataclass subclass where its base is declared
  (an OffsetRecord among StoredRecords) carries its class in an "@type" key.
  A type outside these fails when the codec is built, at import, not when a
  message is sent.
- Besides the nodes' messages it encodes the calls to the coordination
  service and their replies (impl/zk.py, impl/group_store.py), and the
  host's own frames: `Hello` opens a connection, `ZkCallRequest` and
  `ZkCallReply` carry one synchronous call. A node frame is an envelope,
  `{"src": <sender>, "type": ..., "value": ...}`.
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
from dataclasses import dataclass, fields, is_dataclass
from types import MappingProxyType
from typing import Any, TypeVar

from kafka_verify.impl import group_messages, group_store, messages, zk
from kafka_verify.wire.errors import FrameError
from kafka_verify.wire.frames import FrameSplitter

DEFAULT_MAX_NODE_FRAME_BYTES = 64 * 1024 * 1024
_INT64_MIN, _INT64_MAX = -(2**63), 2**63 - 1
_SIZE = struct.Struct(">i")

_T = TypeVar("_T")
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
    if hint is bool:
        return _encode_bool, _decode_bool
    if hint is bytes:
        return _encode_bytes, _decode_bytes
    if hint is int:
        return _encode_int, _decode_int
    if hint is str:
        return _encode_str, _decode_str
    if hint is type(None):
        return _encode_none, _decode_none
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
    if origin is dict:
        return _dict_codec(args[0], args[1], owner)
    raise TypeError(f"{owner}: the node codec has no encoding for type {hint!r}")


def _dataclass_codec(cls: type) -> tuple[Encoder, Decoder]:
    encode_exact, decode_exact = _exact_dataclass_codec(cls)
    subclasses = {sub.__name__: sub for sub in _dataclass_subclasses(cls)}
    if not subclasses:
        return encode_exact, decode_exact
    sub_codecs = {name: _exact_dataclass_codec(sub) for name, sub in subclasses.items()}

    def encode(value: Any, path: str) -> Any:
        if type(value) is cls:
            return encode_exact(value, path)
        name = type(value).__name__
        if subclasses.get(name) is not type(value):
            raise NodeCodecError(f"{path} is a {name}, not a {cls.__name__}")
        return {_SUBCLASS_KEY: name, **sub_codecs[name][0](value, path)}

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, dict) or _SUBCLASS_KEY not in value:
            return decode_exact(value, path)
        name = value[_SUBCLASS_KEY]
        codec = sub_codecs.get(name) if isinstance(name, str) else None
        if codec is None:
            raise NodeCodecError(f"{path} is of type {name!r}, which is not a {cls.__name__}")
        return codec[1]({k: v for k, v in value.items() if k != _SUBCLASS_KEY}, path)

    return encode, decode


_SUBCLASS_KEY = "@type"  # not a Python identifier, so never a field's name


def _dataclass_subclasses(cls: type) -> list[type]:
    found: list[type] = []
    subclass: type
    for subclass in cls.__subclasses__():
        if is_dataclass(subclass):
            found.append(subclass)
        found.extend(_dataclass_subclasses(subclass))
    return found


def _exact_dataclass_codec(cls: type) -> tuple[Encoder, Decoder]:
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
    nullable = len(options) < len(args)
    if len(options) == 1:
        inner_encode, inner_decode = _codec_for(options[0], owner)
    elif all(isinstance(arg, type) and is_dataclass(arg) for arg in options):
        inner_encode, inner_decode = _tagged_codec(options, owner)
    else:
        raise TypeError(
            f"{owner}: the node codec encodes only `X | None` and unions of dataclasses, not {args!r}"
        )
    if not nullable:
        return inner_encode, inner_decode

    def encode(value: Any, path: str) -> Any:
        return None if value is None else inner_encode(value, path)

    def decode(value: Any, path: str) -> Any:
        return None if value is None else inner_decode(value, path)

    return encode, decode


def _tagged_codec(options: list[type], owner: str) -> tuple[Encoder, Decoder]:
    by_name = {cls.__name__: (cls, *_dataclass_codec(cls)) for cls in options}
    if len(by_name) != len(options):
        raise TypeError(f"{owner}: two classes of a union share a name")

    def encode(value: Any, path: str) -> Any:
        entry = by_name.get(type(value).__name__)
        if entry is None or entry[0] is not type(value):
            raise NodeCodecError(
                f"{path} is a {type(value).__name__}, not one of {sorted(by_name)}"
            )
        return {"type": type(value).__name__, "value": entry[1](value, path)}

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, dict) or set(value) != {"type", "value"}:
            raise NodeCodecError(f'{path} must be an object with exactly "type" and "value"')
        name = value["type"]
        entry = by_name.get(name) if isinstance(name, str) else None
        if entry is None:
            raise NodeCodecError(f"{path} is of type {name!r}, not one of {sorted(by_name)}")
        return entry[2](value["value"], path)

    return encode, decode


def _dict_codec(key: Any, item: Any, owner: str) -> tuple[Encoder, Decoder]:
    key_encode, key_decode = _codec_for(key, owner)
    item_encode, item_decode = _codec_for(item, owner)

    def encode(value: Any, path: str) -> Any:
        if type(value) is not dict:
            raise NodeCodecError(f"{path} must be a dict")
        pairs = [
            [key_encode(k, f"{path}[]"), item_encode(v, f"{path}[{k!r}]")] for k, v in value.items()
        ]
        return sorted(pairs, key=lambda pair: json.dumps(pair[0], sort_keys=True))

    def decode(value: Any, path: str) -> Any:
        if not isinstance(value, list):
            raise NodeCodecError(f"{path} must be a list of [key, value] pairs")
        result = {}
        for i, pair in enumerate(value):
            if not isinstance(pair, list) or len(pair) != 2:
                raise NodeCodecError(f"{path}[{i}] must be a [key, value] pair")
            k = key_decode(pair[0], f"{path}[{i}][0]")
            if k in result:
                raise NodeCodecError(f"{path} repeats the key {k!r}")
            result[k] = item_decode(pair[1], f"{path}[{i}][1]")
        return result

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


def _encode_bool(value: Any, path: str) -> Any:
    return _decode_bool(value, path)


def _decode_bool(value: Any, path: str) -> Any:
    if type(value) is not bool:
        raise NodeCodecError(f"{path} must be true or false, not {type(value).__name__}")
    return value


def _encode_bytes(value: Any, path: str) -> Any:
    if type(value) is not bytes:
        raise NodeCodecError(f"{path} must be bytes, not {type(value).__name__}")
    return base64.b64encode(value).decode("ascii")


def _decode_bytes(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise NodeCodecError(f"{path} must be a base64 string, not {type(value).__name__}")
    try:
        return base64.b64decode(value.encode("ascii"), validate=True)
    except (UnicodeEncodeError, binascii.Error):
        raise NodeCodecError(f"{path} is not base64") from None


def _encode_str(value: Any, path: str) -> Any:
    return _decode_str(value, path)


def _decode_str(value: Any, path: str) -> Any:
    if type(value) is not str:
        raise NodeCodecError(f"{path} must be a string, not {type(value).__name__}")
    return value


def _encode_none(value: Any, path: str) -> Any:
    return _decode_none(value, path)


def _decode_none(value: Any, path: str) -> Any:
    if value is not None:
        raise NodeCodecError(f"{path} must be null")
    return None


# -- the host's own frames --------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Hello:
    """The first frame of every node-to-node connection; the envelope's `src` names the sender."""

    version: int = 1


@dataclass(frozen=True, slots=True)
class ZkCallRequest:
    """A broker's synchronous call to the coordination node; `call_id` matches the reply."""

    call_id: int
    request: zk.ZkRequest | group_store.GroupCall


@dataclass(frozen=True, slots=True)
class ZkCallReply:
    call_id: int
    reply: zk.ZkReply | group_store.GroupSnapshot


HOST_FRAMES: tuple[type, ...] = (Hello, ZkCallRequest, ZkCallReply)


def _call_classes() -> tuple[type, ...]:
    """The coordination service's requests and replies, the group store's calls and snapshot."""
    unions = (zk.ZkRequest, zk.ZkReply, group_store.GroupCall)
    found = [cls for union in unions for cls in typing.get_args(union)]
    return (*found, group_store.GroupSnapshot)


# -- the codec ------------------------------------------------------------------------

MESSAGE_TYPES: Mapping[str, type] = MappingProxyType(
    {cls.__name__: cls for cls in _message_classes()}
)
CALL_TYPES: Mapping[str, type] = MappingProxyType({cls.__name__: cls for cls in _call_classes()})
# Everything a node frame may carry: messages, calls and replies, the host's frames.
FRAME_TYPES: Mapping[str, type] = MappingProxyType(
    {**MESSAGE_TYPES, **CALL_TYPES, **{cls.__name__: cls for cls in HOST_FRAMES}}
)
_CODECS: Mapping[type, tuple[Encoder, Decoder]] = MappingProxyType(
    {cls: _dataclass_codec(cls) for cls in FRAME_TYPES.values()}
)
assert len(MESSAGE_TYPES) == len(_message_classes()), "two message classes share a name"
assert len(FRAME_TYPES) == len(MESSAGE_TYPES) + len(CALL_TYPES) + len(HOST_FRAMES), (
    "two frame classes share a name"
)


def dataclass_codec(cls: type) -> tuple[Encoder, Decoder]:
    """The (encode, decode) pair of any dataclass whose fields the codec knows (for state files)."""
    return _dataclass_codec(cls)


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
    return _from_tagged(data)


def _from_tagged(data: dict[str, Any]) -> object:
    name = data["type"]
    cls = FRAME_TYPES.get(name) if isinstance(name, str) else None
    if cls is None:
        raise NodeCodecError(f"message type {name!r} is not a node message")
    return _CODECS[cls][1](data["value"], name)


def _dumps(data: object) -> bytes:
    return json.dumps(data, separators=(",", ":"), ensure_ascii=False).encode("utf-8")


def _loads(payload: bytes) -> object:
    try:
        return json.loads(payload.decode("utf-8"))
    except UnicodeDecodeError:
        raise NodeCodecError("the node message is not UTF-8") from None
    except RecursionError:
        raise NodeCodecError("the node message nests too deeply to be one") from None
    except ValueError as error:
        raise NodeCodecError(f"the node message is not JSON: {error}") from None


def encode_message(message: object) -> bytes:
    """The message as UTF-8 JSON (canonical: the same message gives the same bytes)."""
    return _dumps(to_data(message))


def decode_message(payload: bytes) -> object:
    """The message in a UTF-8 JSON payload; NodeCodecError if it is not one."""
    data = _loads(payload)
    try:
        return from_data(data)
    except RecursionError:
        raise NodeCodecError("the node message nests too deeply to be one") from None


def encode_envelope(src: str, message: object) -> bytes:
    """The payload of a node frame: the sender's name with the message's type and fields."""
    return _dumps({"src": src, **to_data(message)})


def decode_envelope(payload: bytes) -> tuple[str, object]:
    """(sender, message) of a node frame's payload; NodeCodecError if it is not one."""
    data = _loads(payload)
    if not isinstance(data, dict) or set(data) != {"src", "type", "value"}:
        raise NodeCodecError('a node frame must be an object of exactly "src", "type" and "value"')
    src = data.pop("src")
    if not isinstance(src, str) or not src:
        raise NodeCodecError("a node frame's src must be a node name")
    try:
        return src, _from_tagged(data)
    except RecursionError:
        raise NodeCodecError("the node message nests too deeply to be one") from None


def encode_frame(message: object) -> bytes:
    """One frame of a bare message: the payload's size, then the payload."""
    payload = encode_message(message)
    return _SIZE.pack(len(payload)) + payload


def encode_node_frame(src: str, message: object) -> bytes:
    """One node-to-node frame: the envelope's size, then the envelope."""
    payload = encode_envelope(src, message)
    return _SIZE.pack(len(payload)) + payload


class NodeFrameDecoder:
    """Incremental decoder of node frames: feed bytes, then pull `messages()` or `envelopes()`."""

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
        """The complete bare messages buffered so far; NodeCodecError at the first bad one."""
        return self._decoded(decode_message)

    def envelopes(self) -> Iterator[tuple[str, object]]:
        """The complete (sender, message) envelopes so far; NodeCodecError at the first bad one."""
        return self._decoded(decode_envelope)

    def _decoded(self, decode: Callable[[bytes], _T]) -> Iterator[_T]:
        if self._failure is not None:
            raise self._failure
        try:
            for payload in self._splitter.payloads():
                try:
                    yield decode(payload)
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
