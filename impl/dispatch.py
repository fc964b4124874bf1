"""Dispatch tables: the exact type of a message, call or event picks the method that takes it.

Rules of this module:
- A leaf: it imports nothing of the impl, so every node can build its table here.
- `route(kind, method)` makes one entry of a table. The type checker requires
  `method` to take a `kind`, so a table cannot hand a method the wrong type.
- The entry is `method` itself, typed as taking any object, as the values of a
  table keyed by type must be. That is sound because a table is only read with
  `table.get(type(item))`: an entry only ever receives items of its own kind.
  No wrapper runs on the way, since a handler runs for every delivery.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TypeVar, cast

Node = TypeVar("Node")
Item = TypeVar("Item")
Arg = TypeVar("Arg")
Out = TypeVar("Out")


def route(
    kind: type[Item], method: Callable[[Node, Item, Arg], Out]
) -> tuple[type[Item], Callable[[Node, object, Arg], Out]]:
    """One entry for `method(node, item, arg)`, taking items of type `kind`."""
    return kind, cast(Callable[[Node, object, Arg], Out], method)


def route_from(
    kind: type[Item], method: Callable[[Node, str, Item, Arg], Out]
) -> tuple[type[Item], Callable[[Node, str, object, Arg], Out]]:
    """One entry for `method(node, src, message, arg)`, taking messages of type `kind`."""
    return kind, cast(Callable[[Node, str, object, Arg], Out], method)
