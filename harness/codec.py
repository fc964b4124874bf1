"""JSON codec for events (impl/events.py) and model actions (model/actions.py).

Traces are data: each event or action is a JSON object `{"type": Name, field: value, ...}`.
Decoding validates every field against the dataclass's annotations and raises
`TraceError` with one sentence that says what is wrong and where. Nothing is
ever evaluated.
"""

from __future__ import annotations

import dataclasses
import types
import typing
from typing import Any, Union, get_args, get_origin

from kafka_verify.impl import events
from kafka_verify.model import actions
from kafka_verify.model.state import Record


class TraceError(ValueError):
    """A trace or an item in it is malformed; the message is one clear sentence."""


# Fixed tables, read by name: a trace can name only the types listed here.
EVENT_TYPES: dict[str, type] = dict(events.EVENT_TYPES)
ACTION_TYPES: dict[str, type] = {cls.__name__: cls for cls in actions.ACTION_TYPES}


def encode_value(value: Any) -> Any:
    if isinstance(value, Record):
        return {"id": value.id, "epoch": value.epoch}
    if isinstance(value, frozenset | set):
        return sorted(encode_value(v) for v in value)
    if isinstance(value, tuple | list):
        return [encode_value(v) for v in value]
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {f.name: encode_value(getattr(value, f.name)) for f in dataclasses.fields(value)}
    if hasattr(value, "value") and isinstance(value.value, str):  # enums
        return value.value
    return value


def encode(item: Any) -> dict[str, Any]:
    """An event or action as a JSON object with its type name first."""
    body = {f.name: encode_value(getattr(item, f.name)) for f in dataclasses.fields(item)}
    return {"type": type(item).__name__, **body}


def _type_name(tp: Any) -> str:
    return getattr(tp, "__name__", None) or str(tp).replace("typing.", "")


def _decode_field(tp: Any, raw: Any, where: str) -> Any:
    origin = get_origin(tp)
    if tp is Any:
        return raw
    if origin in (Union, types.UnionType):
        options = get_args(tp)
        if raw is None and type(None) in options:
            return None
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _decode_field(option, raw, where)
            except TraceError as error:
                errors.append(str(error))
        raise TraceError(f"{where} has the wrong type: expected {_type_name(tp)}, got {raw!r}")
    if origin in (tuple,):
        args = get_args(tp)
        if not isinstance(raw, list):
            raise TraceError(f"{where} must be a list, got {raw!r}")
        if len(args) == 2 and args[1] is Ellipsis:
            return tuple(_decode_field(args[0], v, f"{where}[{i}]") for i, v in enumerate(raw))
        if len(args) != len(raw):
            raise TraceError(f"{where} must have {len(args)} items, got {len(raw)}")
        return tuple(
            _decode_field(a, v, f"{where}[{i}]") for i, (a, v) in enumerate(zip(args, raw))
        )
    if origin in (frozenset,):
        (arg,) = get_args(tp)
        if not isinstance(raw, list):
            raise TraceError(f"{where} must be a list, got {raw!r}")
        return frozenset(_decode_field(arg, v, f"{where}[{i}]") for i, v in enumerate(raw))
    if tp is Record:
        if not isinstance(raw, dict) or set(raw) != {"id", "epoch"}:
            raise TraceError(f"{where} must be a record {{'id': int, 'epoch': int}}, got {raw!r}")
        return Record(
            _decode_field(int, raw["id"], f"{where}.id"),
            _decode_field(int, raw["epoch"], f"{where}.epoch"),
        )
    if tp is bool:
        if not isinstance(raw, bool):
            raise TraceError(f"{where} must be true or false, got {raw!r}")
        return raw
    if tp is int:
        if isinstance(raw, bool) or not isinstance(raw, int):
            raise TraceError(f"{where} must be an integer, got {raw!r}")
        return raw
    if tp is str:
        if not isinstance(raw, str):
            raise TraceError(f"{where} must be a string, got {raw!r}")
        return raw
    if tp is type(None):
        if raw is not None:
            raise TraceError(f"{where} must be null, got {raw!r}")
        return None
    raise TraceError(f"{where} has a type the trace format does not support ({_type_name(tp)})")


def decode(raw: Any, registry: dict[str, type], what: str, where: str) -> Any:
    """One event or action from its JSON object, validated field by field."""
    if not isinstance(raw, dict):
        raise TraceError(f"{where} must be a JSON object, got {type(raw).__name__}")
    name = raw.get("type")
    if not isinstance(name, str):
        raise TraceError(f"{where} has no 'type' naming the {what}")
    cls = registry.get(name)
    if cls is None:
        known = ", ".join(sorted(registry))
        raise TraceError(f"{where} has unknown {what} type {name!r} (known: {known})")
    hints = typing.get_type_hints(cls)
    fields = {f.name: f for f in dataclasses.fields(cls)}
    unknown = set(raw) - set(fields) - {"type"}
    if unknown:
        raise TraceError(f"{where} ({name}) has unknown field(s) {sorted(unknown)}")
    kwargs = {}
    for fname, field in fields.items():
        if fname in raw:
            kwargs[fname] = _decode_field(hints[fname], raw[fname], f"{where}.{fname}")
        elif field.default is dataclasses.MISSING and field.default_factory is dataclasses.MISSING:
            raise TraceError(f"{where} ({name}) is missing field {fname!r}")
    try:
        return cls(**kwargs)
    except (TypeError, ValueError) as error:
        raise TraceError(f"{where} ({name}) is invalid: {error}") from None


def decode_event(raw: Any, where: str = "event") -> Any:
    return decode(raw, EVENT_TYPES, "event", where)


def decode_action(raw: Any, where: str = "action") -> Any:
    return decode(raw, ACTION_TYPES, "action", where)
