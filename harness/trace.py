"""Trace files (`trace.json`): the replayable record of one run.

A trace is data, never code. `load_trace` reads it with `json` alone and checks
every field; anything malformed raises `TraceError` with one sentence that says
what is wrong and where, which the CLI turns into exit code 2. `dump_trace`
writes the same structure back deterministically (fixed key order, indent 2,
trailing newline), so the same trace always gives the same bytes.

Layout (schema version 1):

    {"schema": 1, "engine": "impl" | "model", "config": {...},
     "events": [...]  (impl engine) | "actions": [...]  (model engine),
     "violation": null | {"property", "message", "step", "details"},
     "meta": {...}}

`meta` (seed, profile, command) is informative only; nothing that must be
byte-identical on replay is derived from it.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from kafka_verify.harness import codec
from kafka_verify.harness.codec import TraceError
from kafka_verify.model import variants
from kafka_verify.model.state import Config
from kafka_verify.properties.catalogue import Violation

SCHEMA_VERSION = 1
ENGINES = ("impl", "model")
ITEMS_KEY = {"impl": "events", "model": "actions"}
TOP_LEVEL_KEYS = ("schema", "engine", "config", "events", "actions", "violation", "meta")
VIOLATION_KEYS = ("property", "message", "step", "details")
# Fields every config must state explicitly: a trace that leaves them to
# defaults would silently change meaning when a default changes.
REQUIRED_CONFIG_FIELDS = {
    "impl": ("brokers", "partitions", "replication", "min_insync", "acks", "bugs"),
    "model": ("brokers", "partitions", "replication", "min_insync", "bugs"),
}

__all__ = [
    "SCHEMA_VERSION",
    "Trace",
    "TraceError",
    "config_from_json",
    "config_to_json",
    "dump_trace",
    "jsonable",
    "known_bugs",
    "load_trace",
    "parse_trace",
    "trace_to_json",
    "violation_record",
]


@dataclass(frozen=True, slots=True)
class Trace:
    """One replayable run: engine, config, the ordered events (or model actions), and what broke."""

    schema: int
    engine: str
    config: Any  # impl.config.ClusterConfig for "impl", model.Config for "model"
    items: tuple[Any, ...]
    violation: dict[str, Any] | None = None
    meta: dict[str, Any] = field(default_factory=dict)


# -- config <-> JSON -------------------------------------------------------------------


def _config_class(engine: str) -> type:
    if engine == "model":
        return Config
    from kafka_verify.impl.config import (
        ClusterConfig,  # the impl room is optional for model-only use
    )

    return ClusterConfig


def known_bugs(engine: str) -> frozenset[str]:
    """The bug names a config of this engine may switch on."""
    if engine == "model":
        return frozenset(variants.PROTOCOL_VARIANTS)
    from kafka_verify.impl import bugs

    return frozenset(bugs.BUGS)


def config_to_json(config: Any) -> dict[str, Any]:
    """A config as a JSON object, fields in declaration order, bug names sorted."""
    return {f.name: codec.encode_value(getattr(config, f.name)) for f in dataclasses.fields(config)}


def config_from_json(raw: Any, engine: str) -> Any:
    """A config from its JSON object, checked field by field, then for consistency."""
    if not isinstance(raw, dict):
        raise TraceError(f"the config must be a JSON object, got {_json_kind(raw)}")
    for name in REQUIRED_CONFIG_FIELDS[engine]:
        if name not in raw:
            raise TraceError(f"the config has no {name!r} field")
    _check_shape(raw)
    if "type" in raw:
        raise TraceError("the config has unknown field(s) ['type']")
    cls = _config_class(engine)
    config = codec.decode({"type": cls.__name__, **raw}, {cls.__name__: cls}, "config", "config")
    unknown = sorted(set(config.bugs) - known_bugs(engine))
    if unknown:
        known = ", ".join(sorted(known_bugs(engine)))
        raise TraceError(f"the config names unknown bug(s) {unknown} (known: {known})")
    return config


def _check_shape(raw: dict[str, Any]) -> None:
    """Reject impossible cluster shapes with a sentence a user can act on."""
    numbers = {
        k: raw.get(k) for k in ("brokers", "partitions", "replication", "min_insync", "acks")
    }
    if not all(v is None or _is_int(v) for v in numbers.values()):
        return  # the field-by-field decode names the badly typed field
    brokers, partitions = numbers["brokers"], numbers["partitions"]
    replication, min_insync = numbers["replication"], numbers["min_insync"]
    if brokers is not None and brokers < 1:
        raise TraceError(f"the config has {brokers} brokers; a cluster needs at least one")
    if partitions is not None and partitions < 1:
        raise TraceError(f"the config has {partitions} partitions; a topic needs at least one")
    if replication is not None and brokers is not None and not 1 <= replication <= brokers:
        raise TraceError(
            f"the config's replication factor {replication} must be between 1 and "
            f"the number of brokers ({brokers})"
        )
    if min_insync is not None and replication is not None and not 1 <= min_insync <= replication:
        raise TraceError(
            f"the config's min_insync {min_insync} must be between 1 and "
            f"the replication factor ({replication})"
        )
    if numbers["acks"] is not None and numbers["acks"] not in (0, 1, -1):
        raise TraceError(f"the config's acks must be 0, 1 or -1, not {numbers['acks']}")


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _json_kind(value: Any) -> str:
    kinds = {dict: "an object", list: "a list", str: "a string", bool: "a boolean"}
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return "a number"
    return kinds.get(type(value), type(value).__name__)


# -- violation records ---------------------------------------------------------------


def violation_record(violation: Violation, step: int) -> dict[str, Any]:
    """The JSON record of a violation found at 1-based `step`.

    This is the one JSON form of a violation: traces, reports, run summaries and
    the mutants table all use it, so every field and detail survives.
    """
    details = {str(k): jsonable(v) for k, v in violation.details}
    if violation.partition is not None:
        details = {"partition": violation.partition, **details}
    return {
        "property": violation.property,
        "message": violation.message,
        "step": step,
        "details": details,
    }


def jsonable(value: Any) -> Any:
    """A detail value as plain JSON data (dataclasses as objects, sets as sorted lists)."""
    if isinstance(value, Mapping):
        return {str(k): jsonable(v) for k, v in value.items()}
    encoded = codec.encode_value(value)
    if isinstance(encoded, list):
        return [jsonable(v) for v in encoded]
    if encoded is None or isinstance(encoded, str | int | float | bool):
        return encoded
    if isinstance(encoded, dict):
        return {str(k): jsonable(v) for k, v in encoded.items()}
    # A detail must be data; a value with no JSON form is a bug of the property that made it.
    raise TypeError(f"a violation detail of type {type(value).__name__} has no JSON form")


def _check_violation(raw: Any, item_count: int) -> dict[str, Any] | None:
    if raw is None:
        return None
    if not isinstance(raw, dict):
        raise TraceError(f"the violation must be a JSON object or null, got {_json_kind(raw)}")
    missing = [k for k in VIOLATION_KEYS if k not in raw]
    if missing:
        raise TraceError(f"the violation has no {missing[0]!r} field")
    extra = sorted(set(raw) - set(VIOLATION_KEYS))
    if extra:
        raise TraceError(f"the violation has unknown field(s) {extra}")
    for key in ("property", "message"):
        if not isinstance(raw[key], str) or not raw[key]:
            raise TraceError(f"the violation's {key!r} must be a non-empty string")
    step = raw["step"]
    if not _is_int(step) or not 1 <= step <= max(item_count, 1):
        raise TraceError(
            f"the violation's step must be an integer between 1 and {max(item_count, 1)} "
            f"(the number of steps), got {step!r}"
        )
    if not isinstance(raw["details"], dict):
        raise TraceError(
            f"the violation's details must be a JSON object, got {_json_kind(raw['details'])}"
        )
    return {k: raw[k] for k in VIOLATION_KEYS}


# -- whole traces ----------------------------------------------------------------------


def trace_to_json(trace: Trace) -> dict[str, Any]:
    """The trace as a JSON object in the fixed key order of the format."""
    encoded: dict[str, Any] = {
        "schema": trace.schema,
        "engine": trace.engine,
        "config": config_to_json(trace.config),
        ITEMS_KEY[trace.engine]: [codec.encode(item) for item in trace.items],
        "violation": trace.violation,
    }
    if trace.meta:
        encoded["meta"] = trace.meta
    return encoded


def dump_trace(trace: Trace, path: Path) -> None:
    """Write `trace` to `path` as deterministic JSON (same trace, same bytes)."""
    text = json.dumps(trace_to_json(trace), indent=2, ensure_ascii=False, allow_nan=False)
    Path(path).write_text(text + "\n", encoding="utf-8")


def load_trace(path: Path | str) -> Trace:
    """Read and validate a trace file, or raise TraceError with one clear sentence."""
    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TraceError(f"trace file {str(path)!r} does not exist") from None
    except IsADirectoryError:
        raise TraceError(f"{str(path)!r} is a directory, not a trace file") from None
    except OSError as error:
        raise TraceError(f"trace file {str(path)!r} cannot be read: {error.strerror}") from None
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        raise TraceError(f"trace file {str(path)!r} is not UTF-8 text") from None
    return parse_trace(text, str(path))


def parse_trace(text: str, source: str = "the trace") -> Trace:
    """Validate the text of a trace file; `source` names it in error sentences."""
    raw = _parse_json(text, source)
    if not isinstance(raw, dict):
        raise TraceError(f"{source} must hold a JSON object, not {_json_kind(raw)}")
    unknown = sorted(set(raw) - set(TOP_LEVEL_KEYS))
    if unknown:
        raise TraceError(f"{source} has unknown top-level field(s) {unknown}")
    schema = _check_schema(raw, source)
    engine = _check_engine(raw, source)
    config = config_from_json(raw.get("config"), engine) if "config" in raw else _missing("config")
    items = _check_items(raw, engine)
    violation = _check_violation(raw.get("violation"), len(items))
    meta = raw.get("meta", {})
    if not isinstance(meta, dict):
        raise TraceError(f"the trace's meta must be a JSON object, got {_json_kind(meta)}")
    return Trace(schema, engine, config, items, violation, meta)


def _missing(name: str) -> Any:
    raise TraceError(f"the trace has no {name!r} field")


def _parse_json(text: str, source: str) -> Any:
    if not text.strip():
        raise TraceError(f"{source} is empty")
    try:
        return json.loads(text, object_pairs_hook=_no_duplicate_keys, parse_constant=_no_constant)
    except json.JSONDecodeError as error:
        if error.pos >= len(text.rstrip()) or _unclosed(text):
            raise TraceError(
                f"{source} is truncated: the JSON ends before every object and list is closed"
            ) from None
        raise TraceError(
            f"{source} is not valid JSON ({error.msg}: line {error.lineno}, column {error.colno})"
        ) from None
    except RecursionError:
        raise TraceError(f"{source} nests JSON too deeply to be a trace") from None


def _unclosed(text: str) -> bool:
    """True when the text ends inside a string or with an object or list still open."""
    depth, in_string, escaped = 0, False, False
    for char in text:
        if in_string:
            if escaped:
                escaped = False
            elif char == "\\":
                escaped = True
            elif char == '"':
                in_string = False
        elif char == '"':
            in_string = True
        elif char in "[{":
            depth += 1
        elif char in "]}":
            depth -= 1
    return in_string or depth > 0


def _no_duplicate_keys(pairs: Sequence[tuple[str, Any]]) -> dict[str, Any]:
    result: dict[str, Any] = {}
    for key, value in pairs:
        if key in result:
            raise TraceError(f"the trace repeats the key {key!r} in one object")
        result[key] = value
    return result


def _no_constant(name: str) -> Any:
    raise TraceError(f"the trace contains {name}, which is not a JSON number")


def _check_schema(raw: dict[str, Any], source: str) -> int:
    if "schema" not in raw:
        raise TraceError(f"{source} has no 'schema' version (expected {SCHEMA_VERSION})")
    schema = raw["schema"]
    if not _is_int(schema):
        raise TraceError(f"the trace's schema version must be an integer, got {schema!r}")
    if schema != SCHEMA_VERSION:
        raise TraceError(
            f"trace schema version {schema} is not supported; this version reads {SCHEMA_VERSION}"
        )
    return int(schema)


def _check_engine(raw: dict[str, Any], source: str) -> str:
    engine = raw.get("engine")
    if engine is None:
        raise TraceError(f"{source} has no 'engine' field (expected 'impl' or 'model')")
    if engine not in ENGINES:
        raise TraceError(f"the trace's engine must be 'impl' or 'model', not {engine!r}")
    return str(engine)


def _check_items(raw: dict[str, Any], engine: str) -> tuple[Any, ...]:
    key = ITEMS_KEY[engine]
    other = ITEMS_KEY["model" if engine == "impl" else "impl"]
    if other in raw:
        raise TraceError(f"a trace of the {engine} engine holds {key!r}, not {other!r}")
    if key not in raw:
        raise TraceError(f"the trace has no {key!r} list")
    items = raw[key]
    if not isinstance(items, list):
        raise TraceError(f"the trace's {key!r} must be a list, got {_json_kind(items)}")
    decode = codec.decode_event if engine == "impl" else codec.decode_action
    noun = "event" if engine == "impl" else "action"
    return tuple(decode(item, f"{noun} {i}") for i, item in enumerate(items, start=1))
