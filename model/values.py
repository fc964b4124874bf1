"""Faster construction of the frozen, slotted dataclasses that a checked run builds on every step.

A frozen dataclass's generated `__init__` stores each field through
`object.__setattr__`, the path that frozen classes must take around their own
`__setattr__`; for a ten-field model replica that is most of the cost of a
model step. `fast_init` gives the class an `__init__` that stores each field
through its slot's descriptor instead, several times faster.

Rules of this module:
- It changes how an instance is built, never what it is: the same fields,
  defaults, parameter names and order; still frozen (assignment raises), and
  equality, hashing, ordering and repr are the dataclass's own.
- It takes only frozen, slotted dataclasses whose `__init__` does nothing but
  store its arguments: no `__post_init__`, default factories, init-only or
  keyword-only fields, and every field in `__init__`. Any other class is refused
  with an error naming it, so a class that validates itself keeps its check.
- It imports nothing of the project, so every room may use it.
"""

from __future__ import annotations

import dataclasses
import inspect
import sys
from typing import Any, TypeVar

T = TypeVar("T")


def fast_init(cls: type[T]) -> type[T]:
    """Give frozen, slotted dataclass `cls` an `__init__` that stores fields through their slots."""
    problem = None
    if not dataclasses.is_dataclass(cls) or "__slots__" not in vars(cls):
        problem = "it is not a slotted dataclass"
    elif not cls.__dataclass_params__.frozen:  # type: ignore[attr-defined]
        problem = "it is not frozen"
    elif hasattr(cls, "__post_init__"):
        problem = "it has a __post_init__, which the new __init__ would skip"
    else:
        fields = dataclasses.fields(cls)
        # The generated __init__ takes exactly the fields, in order (no init-only variables).
        taken = list(inspect.signature(cls.__init__).parameters)[1:]
        if taken != [f.name for f in fields]:
            problem = f"its __init__ takes {taken}, not its fields"
        for f in fields:
            if f.default_factory is not dataclasses.MISSING or f.kw_only:
                problem = problem or f"field {f.name!r} has a default factory or is keyword-only"
    if problem is not None:
        raise TypeError(f"fast_init cannot take {cls.__qualname__}: {problem}")
    setters = [vars(cls)[f.name].__set__ for f in fields]  # each slot's member descriptor
    defaults = [f.default for f in fields if f.default is not dataclasses.MISSING]
    parameters, stores, default_names = [], [], []
    for index, f in enumerate(fields):
        if f.default is dataclasses.MISSING:
            parameters.append(f.name)
        else:
            default_names.append(f"_default_{index}")
            parameters.append(f"{f.name}=_default_{index}")
        stores.append(f"        _set_{index}(self, {f.name})\n")
    # Source built from the class's own field names (identifiers), as dataclasses does. The
    # setters and defaults are closure cells; the globals are the class's module's, so the
    # string annotations resolve there (typing.get_type_hints) as the dataclass's own do.
    closure = [f"_set_{index}" for index in range(len(fields))] + default_names
    source = (
        f"def _make({', '.join(closure)}):\n"
        f"    def __init__(self, {', '.join(parameters)}):\n"
        + "".join(stores or ["        pass\n"])
        + "    return __init__\n"
    )
    made: dict[str, Any] = {}
    exec(source, sys.modules[cls.__module__].__dict__, made)
    init = made["_make"](*setters, *defaults)
    init.__qualname__ = f"{cls.__qualname__}.__init__"
    init.__annotations__ = {**{f.name: f.type for f in fields}, "return": None}
    init.__doc__ = cls.__init__.__doc__
    cls.__init__ = init  # type: ignore[method-assign]
    return cls
