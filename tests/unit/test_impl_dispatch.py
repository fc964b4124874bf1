"""Every (node, message type) pair is handled or deliberately ignored, with the reason.

The nodes dispatch on a message's exact type through tables of handlers, and each
node's module lists the message types it ignores with a reason (as model/groups.py's
transition table names every (phase, action) pair). These tests walk every pair:
each must be in exactly one of the node's tables; a handled one must reach its
handler through `handle`, and an ignored one must yield no effect and change nothing.
"""

from __future__ import annotations

import dataclasses
import enum
import inspect
import types
from collections import deque
from collections.abc import Callable, Hashable, Mapping
from typing import Protocol, Union, get_args, get_origin, get_type_hints

import pytest
from kafka_verify.impl import broker, clients, coordinator, group_member
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl import messages as m
from kafka_verify.impl.abstraction import abstract
from kafka_verify.impl.clients import Consumer
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.effects import Handler
from kafka_verify.impl.world import World

Table = Mapping[type, Callable[..., Handler]]


class Node(Protocol):
    def handle(self, src: str, message: m.Message, now_ms: int) -> Handler: ...


@dataclasses.dataclass(frozen=True)
class NodeTables:
    """A node class, the handler tables its `handle` consults, and its table of ignored types."""

    name: str
    handlers: tuple[Table, ...]
    ignored: Mapping[type, str]

    def handled(self) -> set[type]:
        return {kind for table in self.handlers for kind in table}


NODES = (
    # A broker passes to its group coordinator what its own table lacks.
    NodeTables("broker", (broker.HANDLERS, coordinator.HANDLERS), broker.IGNORED),
    NodeTables("producer", (clients.PRODUCER_HANDLERS,), clients.PRODUCER_IGNORED),
    NodeTables("consumer", (clients.CONSUMER_HANDLERS,), clients.CONSUMER_IGNORED),
    # A group consumer answers the group protocol, and passes the rest on to Consumer.handle.
    NodeTables(
        "group consumer", (group_member.HANDLERS, clients.CONSUMER_HANDLERS), group_member.IGNORED
    ),
)


def _defined_messages(module: types.ModuleType) -> set[type]:
    return {
        cls
        for _, cls in inspect.getmembers(module, inspect.isclass)
        if cls.__module__ == module.__name__ and dataclasses.is_dataclass(cls)
    }


MESSAGE_TYPES = sorted(
    _defined_messages(m) | _defined_messages(gm), key=lambda cls: (cls.__module__, cls.__name__)
)


def test_the_message_union_names_every_message_class() -> None:
    assert len(MESSAGE_TYPES) == 30
    assert set(get_args(m.Message)) == set(MESSAGE_TYPES)
    assert set(gm.REQUEST_TYPES) | set(gm.RESPONSE_TYPES) == _defined_messages(gm)
    assert not set(gm.REQUEST_TYPES) & set(gm.RESPONSE_TYPES)


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.name)
def test_every_message_type_is_handled_or_ignored_with_a_reason(node: NodeTables) -> None:
    handled, ignored = node.handled(), set(node.ignored)
    neither = [cls.__name__ for cls in MESSAGE_TYPES if cls not in handled | ignored]
    both = [cls.__name__ for cls in MESSAGE_TYPES if cls in handled and cls in ignored]
    assert neither == [], f"the {node.name} neither handles nor ignores {neither}"
    assert both == [], f"the {node.name} both handles and ignores {both}"
    assert handled | ignored == set(MESSAGE_TYPES), "a table names a type that is no message"
    for cls, reason in node.ignored.items():
        assert isinstance(reason, str) and len(reason.split()) >= 3, (node.name, cls, reason)


@pytest.mark.parametrize("node", NODES, ids=lambda n: n.name)
def test_no_two_handler_tables_of_a_node_share_a_type(node: NodeTables) -> None:
    # The first table that holds a type wins, so a type in a later one would be dead code.
    seen: set[type] = set()
    for table in node.handlers:
        assert not seen & set(table), sorted(cls.__name__ for cls in seen & set(table))
        seen |= set(table)


# -- driving the pairs through `handle` ---------------------------------------------------------


def _sample_value(hint: object) -> object:
    origin = get_origin(hint)
    if origin in (Union, types.UnionType) and type(None) in get_args(hint):
        return None
    kind = origin or hint
    samples: dict[object, object] = {
        int: 0,
        str: "g0",
        bool: False,
        tuple: (),
        frozenset: frozenset(),
    }
    if kind not in samples:
        raise AssertionError(f"no sample value for a field of type {hint}")
    return samples[kind]


def sample(cls: type) -> m.Message:
    """An instance of message class `cls`, each required field a plain value of its type."""
    hints = get_type_hints(cls)
    values = {
        f.name: _sample_value(hints[f.name])
        for f in dataclasses.fields(cls)
        if f.default is dataclasses.MISSING
    }
    message: m.Message = cls(**values)
    return message


def snapshot(value: object, seen: set[int] | None = None) -> Hashable:
    """A comparable copy of everything reachable from `value` (objects by their attributes)."""
    seen = set() if seen is None else seen
    if value is None or isinstance(value, (bool, int, str, enum.Enum, type)):
        return value
    if id(value) in seen:
        return ("<already seen>", type(value).__name__)
    seen.add(id(value))
    if isinstance(value, Mapping):
        return ("map", tuple((snapshot(k, seen), snapshot(v, seen)) for k, v in value.items()))
    if isinstance(value, (list, tuple, deque)):
        return ("seq", tuple(snapshot(item, seen) for item in value))
    if isinstance(value, (set, frozenset)):
        return ("set", frozenset(snapshot(item, seen) for item in value))
    if callable(value):
        return ("callable", getattr(value, "__qualname__", type(value).__name__))
    names = list(getattr(value, "__dict__", {})) + [
        name for cls in type(value).__mro__ for name in getattr(cls, "__slots__", ())
    ]
    attributes = tuple(
        (name, snapshot(getattr(value, name), seen)) for name in names if hasattr(value, name)
    )
    return (type(value).__name__, attributes)


CONFIG = ClusterConfig(groups=1, consumers=1, partitions=2)


def _node(world: World, name: str) -> Node:
    """The node under test: from a running world, or a plain assign-mode consumer."""
    if name == "consumer":
        return Consumer(0, CONFIG, 0)
    return world.nodes_up[{"broker": "b0", "producer": "p0", "group consumer": "c0"}[name]]


PAIRS = [(node, cls) for node in NODES for cls in MESSAGE_TYPES]


@pytest.mark.parametrize(
    ("node", "cls"),
    [(node, cls) for node, cls in PAIRS if cls in node.ignored],
    ids=lambda x: x.name if isinstance(x, NodeTables) else x.__name__,
)
def test_an_ignored_message_yields_nothing_and_changes_nothing(node: NodeTables, cls: type) -> None:
    world = World(CONFIG)
    instance = _node(world, node.name)
    before_state, before_node = abstract(world), snapshot(instance)
    effects = list(instance.handle("b1", sample(cls), world.now_ms))
    assert effects == []
    assert snapshot(instance) == before_node
    assert abstract(world) == before_state


@pytest.mark.parametrize(
    ("node", "cls"),
    [(node, cls) for node, cls in PAIRS if cls in node.handled()],
    ids=lambda x: x.name if isinstance(x, NodeTables) else x.__name__,
)
def test_a_handled_message_reaches_its_handler(
    node: NodeTables, cls: type, monkeypatch: pytest.MonkeyPatch
) -> None:
    world = World(CONFIG)
    instance = _node(world, node.name)
    message = sample(cls)
    reached: list[tuple[object, ...]] = []

    def recorder(*args: object) -> Handler:
        reached.append(args)
        yield from ()

    table = next(t for t in node.handlers if cls in t)
    assert isinstance(table, dict)
    monkeypatch.setitem(table, cls, recorder)
    list(instance.handle("b1", message, world.now_ms))
    assert len(reached) == 1
    assert message in reached[0]
