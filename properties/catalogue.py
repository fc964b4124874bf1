"""The property catalogue: every property's name, kind, what it forbids and where it is checked.

Rules of this module:
- A property is registered once, next to the function that checks it, with the
  `prop` decorator. The catalogue text is taken from that function's docstring
  ("Forbids: ..." or, for SOMETIMES properties, "Reaches: ..."), so it is never
  written twice.
- Names are kebab-case and are what reports, traces and the CLI print.
- This module imports no other module of `properties/`: it is the leaf they
  all build on. `PROPERTIES` holds the properties of the modules imported so
  far; `registry.py` imports every module that states properties, so whoever
  needs the whole catalogue reads it from there.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from enum import StrEnum
from typing import TypeVar


class Kind(StrEnum):
    """Stateright's three kinds of property."""

    ALWAYS = "always"  # safety: must hold in every state / step / history prefix
    EVENTUALLY = "eventually"  # liveness: must hold after heal and drain
    SOMETIMES = "sometimes"  # vacuity: must be reached by some run


# Where a property is checked: on one state, on one step (before, action,
# after), on a client history, on the final state after heal and drain, or as a
# coverage counter.
CHECKS = frozenset({"state", "step", "history", "final", "coverage"})

_KEBAB = re.compile(r"^[a-z0-9]+(-[a-z0-9]+)*$")


@dataclass(frozen=True, slots=True)
class Violation:
    """One concrete breach of one property."""

    property: str  # catalogue name, e.g. "log-agreement"
    message: str  # one readable sentence with the concrete facts
    partition: int | None = None
    # Key/value facts; `harness.trace.violation_record` is the one JSON form of a violation.
    details: tuple[tuple[str, object], ...] = ()


@dataclass(frozen=True, slots=True)
class PropertyInfo:
    """One catalogue entry."""

    name: str
    kind: Kind
    forbids: str
    checks: str

    def __post_init__(self) -> None:
        if not _KEBAB.match(self.name):
            raise ValueError(f"property names are kebab-case, not {self.name!r}")
        if self.checks not in CHECKS:
            raise ValueError(f"property {self.name}: checks must be one of {sorted(CHECKS)}")
        if not self.forbids:
            raise ValueError(f"property {self.name} says nothing about what it forbids")


PROPERTIES: dict[str, PropertyInfo] = {}


def register(info: PropertyInfo) -> PropertyInfo:
    """Add a property; registering the same entry twice is harmless, a different one is an error."""
    known = PROPERTIES.get(info.name)
    if known is not None and known != info:
        raise ValueError(f"property {info.name!r} is already registered as {known}")
    PROPERTIES[info.name] = info
    return info


def facts(**values: object) -> tuple[tuple[str, object], ...]:
    """Violation details from keyword arguments, in the order given."""
    return tuple(values.items())


def docstring_sentence(doc: str | None, label: str) -> str:
    """The text after `label:` in a docstring, up to the end of its paragraph, on one line."""
    if not doc:
        return ""
    marker = f"{label}:"
    start = doc.find(marker)
    if start == -1:
        return ""
    paragraph = doc[start + len(marker) :].split("\n\n", 1)[0]
    return " ".join(paragraph.split())


def describe(function: Callable[..., object], name: str, kind: Kind, checks: str) -> PropertyInfo:
    """The catalogue entry of a property function, taken from its docstring."""
    if kind is Kind.SOMETIMES:
        reaches = docstring_sentence(function.__doc__, "Reaches")
        if not reaches:
            raise ValueError(f"{function.__qualname__}: a SOMETIMES docstring starts 'Reaches:'")
        forbids = f"never: {reaches}"
    else:
        forbids = docstring_sentence(function.__doc__, "Forbids")
        if not forbids:
            raise ValueError(f"{function.__qualname__}: a property docstring starts 'Forbids:'")
    return PropertyInfo(name=name, kind=kind, forbids=forbids, checks=checks)


F = TypeVar("F", bound=Callable[..., object])


def prop(name: str, kind: Kind, checks: str) -> Callable[[F], F]:
    """Register the decorated function as property `name`; the function is returned unchanged."""

    def decorate(function: F) -> F:
        register(describe(function, name, kind, checks))
        return function

    return decorate


def names(kind: Kind | None = None, checks: str | None = None) -> list[str]:
    """Property names, sorted, optionally only those of one kind and/or checked in one place."""
    return sorted(
        info.name
        for info in PROPERTIES.values()
        if (kind is None or info.kind is kind) and (checks is None or info.checks == checks)
    )


# Checked by the harness itself (it compares every impl step with the model),
# so it has no function in this package.
register(
    PropertyInfo(
        name="refinement",
        kind=Kind.ALWAYS,
        forbids=(
            "an implementation step that no allowed model step matches, or an implementation "
            "state that differs from the model state after the steps it named."
        ),
        checks="step",
    )
)

# Also checked by the harness: an exception escaping the broker while it handles an
# event is a finding, reported and shrunk like any other violation.
register(
    PropertyInfo(
        name="internal-error",
        kind=Kind.ALWAYS,
        forbids="the broker raising an exception while it handles an event.",
        checks="step",
    )
)
