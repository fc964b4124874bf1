"""Trace files: deterministic dump, faithful load, and one clear sentence for every kind of damage."""

from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.harness.trace import (
    SCHEMA_VERSION,
    Trace,
    TraceError,
    dump_trace,
    load_trace,
    parse_trace,
    trace_to_json,
    violation_record,
)
from kafka_verify.model import Config
from kafka_verify.model.actions import Crash, ElectLeader, FollowerReplicate, LeaderWrite, Truncate
from kafka_verify.model.state import Record
from kafka_verify.properties.catalogue import Violation


def model_trace() -> Trace:
    return Trace(
        schema=SCHEMA_VERSION,
        engine="model",
        config=Config(brokers=2, replication=2, min_insync=1, bugs=frozenset({"truncate-to-hw"})),
        items=(
            LeaderWrite(0, 0, 7, -1),
            FollowerReplicate(0, 1, Record(7, 0)),
            Truncate(0, 1, 0, complete=False),
            Crash(0),
            ElectLeader(0, 1, frozenset({1}), 1),
        ),
        violation={
            "property": "refinement",
            "message": "record 7 is gone",
            "step": 5,
            "details": {"offsets": [0], "records": [7]},
        },
        meta={"seed": 42, "profile": "ci"},
    )


def good_json() -> dict[str, Any]:
    return trace_to_json(model_trace())


def write(tmp_path: Path, text: str | bytes) -> Path:
    path = tmp_path / "trace.json"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


# -- round trip ------------------------------------------------------------------------


def test_dump_then_load_gives_the_same_trace(tmp_path: Path) -> None:
    trace = model_trace()
    path = tmp_path / "t.json"
    dump_trace(trace, path)
    assert load_trace(path) == trace


def test_dump_is_byte_identical_and_ends_with_a_newline(tmp_path: Path) -> None:
    first, second = tmp_path / "a.json", tmp_path / "b.json"
    dump_trace(model_trace(), first)
    dump_trace(load_trace(first), second)
    assert first.read_bytes() == second.read_bytes()
    text = first.read_text(encoding="utf-8")
    assert text.endswith("}\n")
    assert text.startswith('{\n  "schema": 1,\n  "engine": "model",\n  "config": {')


def test_items_are_stored_under_the_engine_s_key() -> None:
    encoded = good_json()
    assert "actions" in encoded and "events" not in encoded
    assert encoded["actions"][2] == {
        "type": "Truncate",
        "partition": 0,
        "broker": 1,
        "offset": 0,
        "complete": False,
    }
    assert encoded["config"]["bugs"] == ["truncate-to-hw"]


def test_meta_is_optional_and_not_written_when_empty(tmp_path: Path) -> None:
    trace = Trace(SCHEMA_VERSION, "model", Config(), (Crash(1),), None, {})
    path = tmp_path / "t.json"
    dump_trace(trace, path)
    assert "meta" not in json.loads(path.read_text())
    assert load_trace(path) == trace


def test_impl_trace_round_trips(tmp_path: Path) -> None:
    config_module = pytest.importorskip("kafka_verify.impl.config")
    from kafka_verify.impl.events import Crash as CrashEvent
    from kafka_verify.impl.events import Deliver, Partition, Produce, Tick

    config = config_module.ClusterConfig(brokers=3, partitions=1, replication=3, min_insync=2)
    events = (
        Produce("p0", "t", 0),
        Deliver(3),
        Partition((("b0", "p0"), ("b1", "b2", "zk"))),
        CrashEvent("b2"),
        Tick(100),
    )
    trace = Trace(SCHEMA_VERSION, "impl", config, events, None, {"seed": 1})
    path = tmp_path / "t.json"
    dump_trace(trace, path)
    assert "events" in json.loads(path.read_text())
    assert load_trace(path) == trace


def test_violation_record_carries_partition_and_details() -> None:
    violation = Violation(
        "refinement", "b1 and b0 disagree", partition=0, details=(("offsets", (2, 3)),)
    )
    record = violation_record(violation, 4)
    assert record == {
        "property": "refinement",
        "message": "b1 and b0 disagree",
        "step": 4,
        "details": {"partition": 0, "offsets": [2, 3]},
    }


# -- damage ----------------------------------------------------------------------------


def edited(change: Callable[[dict[str, Any]], None]) -> str:
    raw = good_json()
    change(raw)
    return json.dumps(raw)


def _set(path: tuple[str | int, ...], value: Any) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        target[path[-1]] = value

    return change


def _delete(path: tuple[str | int, ...]) -> Callable[[dict[str, Any]], None]:
    def change(raw: dict[str, Any]) -> None:
        target: Any = raw
        for key in path[:-1]:
            target = target[key]
        del target[path[-1]]

    return change


GOOD_TEXT = json.dumps(good_json(), indent=2)

# (name, file text, words the one sentence must contain)
DAMAGE: list[tuple[str, str | bytes, str]] = [
    ("empty file", "", "is empty"),
    ("truncated file", GOOD_TEXT[: len(GOOD_TEXT) // 2], "truncated"),
    ("not JSON", "schema: 1\nengine: model\n", "not valid JSON"),
    ("not UTF-8", b'{"schema": 1, "engine": "\xff"}', "not UTF-8"),
    ("a list, not an object", "[1, 2, 3]", "must hold a JSON object"),
    ("NaN is not JSON", GOOD_TEXT.replace('"seed": 42', '"seed": NaN'), "NaN"),
    ("duplicate key", '{"schema": 1, "schema": 1}', "repeats the key 'schema'"),
    ("unknown top-level field", edited(_set(("extra",), 1)), "unknown top-level field"),
    ("missing schema", edited(_delete(("schema",))), "no 'schema' version"),
    ("wrong schema version", edited(_set(("schema",), 2)), "schema version 2 is not supported"),
    ("schema not an integer", edited(_set(("schema",), "1")), "must be an integer"),
    ("missing engine", edited(_delete(("engine",))), "no 'engine'"),
    ("unknown engine", edited(_set(("engine",), "tla")), "engine must be 'impl' or 'model'"),
    ("missing config", edited(_delete(("config",))), "no 'config'"),
    ("config not an object", edited(_set(("config",), [3])), "config must be a JSON object"),
    ("config field missing", edited(_delete(("config", "brokers"))), "no 'brokers' field"),
    ("config field wrong type", edited(_set(("config", "brokers"), "3")), "config.brokers"),
    ("config field unknown", edited(_set(("config", "speed"), 3)), "unknown field"),
    ("RF above brokers", edited(_set(("config", "replication"), 5)), "replication factor 5"),
    ("min ISR above RF", edited(_set(("config", "min_insync"), 3)), "min_insync 3"),
    ("no brokers", edited(_set(("config", "brokers"), 0)), "at least one"),
    ("unknown bug", edited(_set(("config", "bugs"), ["teleport"])), "unknown bug(s) ['teleport']"),
    ("bugs not a list", edited(_set(("config", "bugs"), "truncate-to-hw")), "must be a list"),
    ("actions missing", edited(_delete(("actions",))), "no 'actions' list"),
    ("actions not a list", edited(_set(("actions",), {"type": "Crash"})), "must be a list"),
    ("events in a model trace", edited(_set(("events",), [])), "holds 'actions', not 'events'"),
    (
        "unknown action type",
        edited(_set(("actions", 0), {"type": "__import__('os')", "broker": 1})),
        "action 1 has unknown action type",
    ),
    ("action without type", edited(_set(("actions", 1), {"broker": 1})), "action 2 has no 'type'"),
    ("action not an object", edited(_set(("actions", 1), "Crash(1)")), "action 2 must be"),
    ("action field wrong type", edited(_set(("actions", 3, "broker"), "b0")), "action 4.broker"),
    ("action field missing", edited(_delete(("actions", 3, "broker"))), "missing field 'broker'"),
    ("action field unknown", edited(_set(("actions", 3, "why"), 1)), "unknown field(s) ['why']"),
    ("record malformed", edited(_set(("actions", 1, "record"), [7, 0])), "must be a record"),
    ("violation not an object", edited(_set(("violation",), "boom")), "violation must be"),
    ("violation lacks property", edited(_delete(("violation", "property"))), "no 'property'"),
    ("violation step too far", edited(_set(("violation", "step"), 99)), "between 1 and 5"),
    ("violation step not int", edited(_set(("violation", "step"), "5")), "step must be an integer"),
    ("violation details a list", edited(_set(("violation", "details"), [])), "details must be"),
    (
        "violation unknown field",
        edited(_set(("violation", "why"), "x")),
        "unknown field(s) ['why']",
    ),
    ("meta not an object", edited(_set(("meta",), [1])), "meta must be a JSON object"),
]


@pytest.mark.parametrize(("text", "words"), [d[1:] for d in DAMAGE], ids=[d[0] for d in DAMAGE])
def test_damaged_trace_gives_one_clear_sentence(
    tmp_path: Path, text: str | bytes, words: str
) -> None:
    with pytest.raises(TraceError) as caught:
        load_trace(write(tmp_path, text))
    message = str(caught.value)
    assert words in message
    assert "\n" not in message and "Traceback" not in message
    assert len(message) < 400


def test_there_are_at_least_ten_kinds_of_damage() -> None:
    assert len({name for name, _, _ in DAMAGE}) >= 10


def test_missing_file_and_directory_are_trace_errors(tmp_path: Path) -> None:
    with pytest.raises(TraceError, match="does not exist"):
        load_trace(tmp_path / "nowhere.json")
    with pytest.raises(TraceError, match="is a directory"):
        load_trace(tmp_path)


def test_damage_inside_the_text_is_not_called_truncation() -> None:
    with pytest.raises(TraceError, match="not valid JSON") as caught:
        parse_trace('{"schema": 1,, "engine": "model"}')
    assert "line 1" in str(caught.value)


def test_a_trace_error_is_a_value_error_so_callers_can_catch_one_kind() -> None:
    assert issubclass(TraceError, ValueError)


@pytest.mark.parametrize("cut", range(1, len(GOOD_TEXT) - 1, 61))
def test_a_trace_cut_anywhere_is_reported_as_truncated(cut: int) -> None:
    with pytest.raises(TraceError, match="is truncated"):
        parse_trace(GOOD_TEXT[:cut])
