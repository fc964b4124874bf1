"""Checks that a body has the shape of a kio schema before kio's reader sees it.

Rules of this module:
- It builds no objects. It walks the bytes as the schema lays them out and
  checks that every length and count fits in the bytes that are left, raising
  `FrameError` with the first thing that does not.
- Why it exists: kio's native reader reserves memory for a compact array's
  declared count before it reads any element, so a count near 2**32 written in
  five bytes of garbage makes it ask for tens of gigabytes and abort the whole
  process. Every element of a flexible array takes at least one byte, so a
  count larger than the bytes left is malformed, and is refused here.
- It mirrors kio's writer (`kio.serial._serialize`): the same field classes,
  the same nullability (tagged fields are never nullable), the request
  header's legacy `client_id`, and KIP-893's marker byte for nullable structs.
- Tagged fields the schema does not know are skipped, as Kafka's own readers
  skip them (a client may send tags newer than the schema), but kio's reader
  refuses them; so `walk` returns the bytes without them, for kio to read.
  An unknown tag inside a known tagged field's value is refused: dropping it
  would change the size written before it.
- Whether strings are valid UTF-8 or enums known is left to kio's reader.
"""

from __future__ import annotations

import struct
from dataclasses import Field, dataclass, fields
from functools import cache

from kafka_verify.wire.errors import FrameError
from kio.serial._introspect import (
    EntityField,
    EntityTupleField,
    PrimitiveField,
    PrimitiveTupleField,
    classify_field,
    is_optional,
)
from kio.static.protocol import Entity

# Bytes taken by each fixed-width kafka_type of kio's schemas.
_FIXED_WIDTH = {
    "bool": 1,
    "int8": 1,
    "uint8": 1,
    "int16": 2,
    "uint16": 2,
    "error_code": 2,
    "int32": 4,
    "uint32": 4,
    "timedelta_i32": 4,
    "int64": 8,
    "uint64": 8,
    "float64": 8,
    "timedelta_i64": 8,
    "datetime_i64": 8,
    "uuid": 16,
}
_VARIABLE_WIDTH = frozenset({"string", "bytes", "records"})
_MAX_UVARINT_BYTES = 5  # Kafka's unsigned varints are 32-bit: at most five 7-bit groups


@dataclass(frozen=True, slots=True)
class Shape:
    """What a walk found: the bytes the entity takes, and those bytes without unknown tags."""

    size: int
    known: bytes


class _Cursor:
    """A read position in `data[pos:end]`, and the edits that drop unknown tagged fields."""

    __slots__ = ("data", "edits", "end", "in_tagged_value", "pos")

    def __init__(
        self,
        data: bytes,
        pos: int,
        end: int,
        edits: list[tuple[int, int, bytes]],
        in_tagged_value: bool = False,
    ) -> None:
        self.data = data
        self.pos = pos
        self.end = end
        # (start, end, replacement) byte ranges of `data`, in increasing order.
        self.edits = edits
        self.in_tagged_value = in_tagged_value

    @property
    def left(self) -> int:
        return self.end - self.pos

    def skip(self, count: int, what: str) -> None:
        if count > self.left:
            raise FrameError(f"{what} needs {count} bytes but only {self.left} are left")
        self.pos += count

    def int8(self, what: str) -> int:
        start = self.pos
        self.skip(1, what)
        return struct.unpack_from(">b", self.data, start)[0]  # type: ignore[no-any-return]

    def int16(self, what: str) -> int:
        start = self.pos
        self.skip(2, what)
        return struct.unpack_from(">h", self.data, start)[0]  # type: ignore[no-any-return]

    def int32(self, what: str) -> int:
        start = self.pos
        self.skip(4, what)
        return struct.unpack_from(">i", self.data, start)[0]  # type: ignore[no-any-return]

    def uvarint(self, what: str) -> int:
        value = 0
        for index in range(_MAX_UVARINT_BYTES):
            if self.pos >= self.end:
                raise FrameError(f"{what} is cut off inside its varint")
            byte = self.data[self.pos]
            self.pos += 1
            value |= (byte & 0x7F) << (7 * index)
            if not byte & 0x80:
                return value
        raise FrameError(f"{what} is a varint longer than {_MAX_UVARINT_BYTES} bytes")


def walk(entity_type: type[Entity], data: bytes, offset: int = 0) -> Shape:
    """Walk one `entity_type` at `data[offset:]`; FrameError at the first length that does not fit."""
    edits: list[tuple[int, int, bytes]] = []
    cursor = _Cursor(data, offset, len(data), edits)
    _walk_entity(cursor, entity_type)
    known = bytearray()
    position = offset
    for start, end, replacement in sorted(edits):
        known += data[position:start]
        known += replacement
        position = end
    known += data[position : cursor.pos]
    return Shape(size=cursor.pos - offset, known=bytes(known))


def check_shape(entity_type: type[Entity], data: bytes, offset: int = 0) -> int:
    """The bytes one `entity_type` takes at `data[offset:]`, or FrameError."""
    return walk(entity_type, data, offset).size


def _walk_entity(cursor: _Cursor, entity_type: type[Entity]) -> None:
    flexible = entity_type.__flexible__
    legacy_client_id = entity_type.__name__ == "RequestHeader"
    plain, tagged = _field_layout(entity_type)
    for field in plain:
        if legacy_client_id and field.name == "client_id":
            _walk_variable(cursor, "string", False, is_optional(field), field.name)
        else:
            _walk_field(cursor, field, flexible, is_optional(field))
    if flexible:
        _walk_tagged_fields(cursor, entity_type, tagged)


def _walk_tagged_fields(
    cursor: _Cursor, entity_type: type[Entity], tagged: dict[int, Field[object]]
) -> None:
    count_start = cursor.pos
    count = cursor.uvarint("the tagged field count")
    count_end = cursor.pos
    if count > cursor.left:
        raise FrameError(f"{count} tagged fields cannot fit in {cursor.left} bytes")
    dropped: list[tuple[int, int, bytes]] = []
    for _ in range(count):
        field_start = cursor.pos
        tag = cursor.uvarint("a tagged field's tag")
        size = cursor.uvarint(f"tagged field {tag}'s size")
        if size > cursor.left:
            raise FrameError(f"tagged field {tag} claims {size} bytes but {cursor.left} are left")
        field = tagged.get(tag)
        if field is None:
            if cursor.in_tagged_value:
                raise FrameError(
                    f"tag {tag} of {entity_type.__name__} is unknown inside a tagged field's value"
                )
            cursor.pos += size
            dropped.append((field_start, cursor.pos, b""))
            continue
        inner = _Cursor(cursor.data, cursor.pos, cursor.pos + size, cursor.edits, True)
        _walk_field(inner, field, True, False)
        if inner.left:
            raise FrameError(f"tagged field {tag} has {inner.left} bytes more than its value")
        cursor.pos += size
    if dropped:
        cursor.edits.append((count_start, count_end, _uvarint(count - len(dropped))))
        cursor.edits.extend(dropped)


def _uvarint(value: int) -> bytes:
    out = bytearray()
    while True:
        byte = value & 0x7F
        value >>= 7
        if not value:
            out.append(byte)
            return bytes(out)
        out.append(byte | 0x80)


def _walk_field(cursor: _Cursor, field: Field[object], flexible: bool, optional: bool) -> None:
    kind = classify_field(field)
    match kind:
        case PrimitiveField():
            _walk_primitive(cursor, _kafka_type(field), flexible, optional, field.name)
        case EntityField(entity_type):
            if optional:
                marker = cursor.int8(f"{field.name}'s null marker")
                if marker == -1:
                    return
                if marker != 1:
                    raise FrameError(f"{field.name}'s null marker is {marker}, not -1 or 1")
            _walk_entity(cursor, entity_type)
        case PrimitiveTupleField():
            kafka_type = _kafka_type(field)
            count = _array_count(cursor, flexible, optional, field.name)
            width = _FIXED_WIDTH.get(kafka_type, 1)
            if count * width > cursor.left:
                raise FrameError(f"{field.name} claims {count} elements in {cursor.left} bytes")
            for _ in range(count):
                _walk_primitive(cursor, kafka_type, flexible, False, field.name)
        case EntityTupleField(entity_type):
            count = _array_count(cursor, flexible, optional, field.name)
            if count > cursor.left:
                raise FrameError(f"{field.name} claims {count} elements in {cursor.left} bytes")
            for _ in range(count):
                _walk_entity(cursor, entity_type)


def _array_count(cursor: _Cursor, flexible: bool, optional: bool, name: str) -> int:
    if flexible:
        count = cursor.uvarint(f"{name}'s length") - 1
    else:
        count = cursor.int32(f"{name}'s length")
    if count == -1 and optional:
        return 0
    if count < 0:
        raise FrameError(f"{name} has length {count}")
    return count


def _walk_primitive(
    cursor: _Cursor, kafka_type: str, flexible: bool, optional: bool, name: str
) -> None:
    width = _FIXED_WIDTH.get(kafka_type)
    if width is not None:
        cursor.skip(width, name)
    elif kafka_type in _VARIABLE_WIDTH:
        _walk_variable(cursor, kafka_type, flexible, optional, name)
    else:
        raise FrameError(f"{name} has kafka type {kafka_type!r}, which this host cannot read")


def _walk_variable(
    cursor: _Cursor, kafka_type: str, flexible: bool, optional: bool, name: str
) -> None:
    if flexible:
        length = cursor.uvarint(f"{name}'s length") - 1
    elif kafka_type == "string":
        length = cursor.int16(f"{name}'s length")
    else:
        length = cursor.int32(f"{name}'s length")
    if length == -1 and optional:
        return
    if length < 0:
        raise FrameError(f"{name} has length {length}")
    cursor.skip(length, name)


def _kafka_type(field: Field[object]) -> str:
    kafka_type = field.metadata.get("kafka_type")
    if not isinstance(kafka_type, str):
        raise FrameError(f"{field.name} has no kafka type in its schema")
    return kafka_type


@cache
def _field_layout(
    entity_type: type[Entity],
) -> tuple[tuple[Field[object], ...], dict[int, Field[object]]]:
    """The entity's fields in wire order, and its tagged fields by tag (computed once per schema)."""
    plain: list[Field[object]] = []
    tagged: dict[int, Field[object]] = {}
    for field in fields(entity_type):
        tag = field.metadata.get("tag")
        if tag is None:
            plain.append(field)
        else:
            tagged[int(tag)] = field
    return tuple(plain), tagged
