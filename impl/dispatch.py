"""Dispatch tables: the exact type of a message, call or event picks the method that takes it.

Rules of this module:
- A leaf: it imports nothing of the impl, so every node can build its table here.
- `route(kind, method)` makes one entry of a table. The type checker requires
  `method` to take a `kind`, so a table cannot hand a method the wrong type; the
  entry it returns takes any object, as a table keyed by type must.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar

Node = TypeVar("Node")
Item = TypeVar("Item")
Arg = TypeVar("Arg")
Out = TypeVar("Out")


def route(
    kind: type[Item], method: Callable[[Node, Item, Arg], Out]
) -> tuple[type[Item], Callable[[Node, object, Arg], Out]]:
    """One entry for `method(node, item, arg)`, taking items of type `kind`."""

    def run(node: Node, item: object, arg: Arg) -> Out:
        assert isinstance(item, kind), f"{type(item).__name__} routed as {kind.__name__}"
        return method(node, item, arg)

    return kind, run


def route_from(
    kind: type[Item], method: Callable[[Node, str, Item, Arg], Out]
) -> tuple[type[Item], Callable[[Node, str, object, Arg], Out]]:
    """One entry for `method(node, src, message, arg)`, taking messages of type `kind`."""

    def run(node: Node, src: str, item: object, arg: Arg) -> Out:
        assert isinstance(item, kind), f"{type(item).__name__} routed as {kind.__name__}"
        return method(node, src, item, arg)

    return kind, run
