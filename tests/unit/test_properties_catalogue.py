"""The catalogue: complete, taken from the docstrings, and consistent."""

from __future__ import annotations

import json
import subprocess
import sys

import pytest
from kafka_verify.properties import coverage, history, invariants
from kafka_verify.properties.catalogue import (
    Kind,
    PropertyInfo,
    Violation,
    describe,
    docstring_sentence,
    names,
    register,
)
from kafka_verify.properties.registry import PROPERTIES

REQUIRED = {
    "log-agreement": (Kind.ALWAYS, "state"),
    "single-leader-per-epoch": (Kind.ALWAYS, "state"),
    "leader-in-isr": (Kind.ALWAYS, "state"),
    "hw-within-isr": (Kind.ALWAYS, "state"),
    "well-formed-log": (Kind.ALWAYS, "state"),
    "no-duplicate-record": (Kind.ALWAYS, "state"),
    "monotonic-high-watermark": (Kind.ALWAYS, "step"),
    "monotonic-epochs": (Kind.ALWAYS, "step"),
    "retention-prefix-only": (Kind.ALWAYS, "step"),
    "refinement": (Kind.ALWAYS, "step"),
    "inconsistent-offsets": (Kind.ALWAYS, "history"),
    "duplicate": (Kind.ALWAYS, "history"),
    "nonmonotonic-poll": (Kind.ALWAYS, "history"),
    "poll-skip": (Kind.ALWAYS, "history"),
    "nonmonotonic-send": (Kind.ALWAYS, "history"),
    "committed-read": (Kind.ALWAYS, "history"),
    "phantom-write": (Kind.ALWAYS, "history"),
    "lost-write": (Kind.EVENTUALLY, "final"),
    "converged": (Kind.EVENTUALLY, "final"),
    "leader-reelected": (Kind.SOMETIMES, "coverage"),
    "isr-shrank-and-grew-back": (Kind.SOMETIMES, "coverage"),
    "follower-truncated": (Kind.SOMETIMES, "coverage"),
    "retention-deleted": (Kind.SOMETIMES, "coverage"),
    "crash-lost-unflushed": (Kind.SOMETIMES, "coverage"),
    "acked-write-read": (Kind.SOMETIMES, "coverage"),
    "controller-failover": (Kind.SOMETIMES, "coverage"),
}


@pytest.mark.parametrize("name", sorted(REQUIRED))
def test_every_required_property_is_registered(name: str) -> None:
    info = PROPERTIES[name]
    assert (info.kind, info.checks) == REQUIRED[name]
    if info.kind is Kind.SOMETIMES:
        assert info.forbids.startswith("never: ")


def test_forbids_comes_from_the_docstring() -> None:
    doc = invariants.log_agreement.__doc__
    assert doc is not None and doc.startswith("Forbids: ")
    assert PROPERTIES["log-agreement"].forbids == docstring_sentence(doc, "Forbids")
    assert PROPERTIES["duplicate"].forbids == "one record observed at two different offsets."
    reaches = docstring_sentence(coverage.controller_failover.__doc__, "Reaches")
    assert PROPERTIES["controller-failover"].forbids == f"never: {reaches}"
    assert history.lost_write.__doc__ and history.lost_write.__doc__.startswith("Forbids: ")


def test_property_functions_are_named_after_their_property() -> None:
    for name, function in {**invariants.STATE_PROPERTIES, **invariants.STEP_PROPERTIES}.items():
        assert function.__name__ == name.replace("-", "_")


def test_registering_a_different_entry_under_a_known_name_fails() -> None:
    same = PROPERTIES["leader-in-isr"]
    assert register(same) is same
    with pytest.raises(ValueError):
        register(PropertyInfo("leader-in-isr", Kind.SOMETIMES, "something else", "state"))


def test_entries_are_validated() -> None:
    with pytest.raises(ValueError):
        PropertyInfo("Not_Kebab", Kind.ALWAYS, "x", "state")
    with pytest.raises(ValueError):
        PropertyInfo("ok-name", Kind.ALWAYS, "x", "somewhere")

    def undocumented() -> None:
        pass

    with pytest.raises(ValueError):
        describe(undocumented, "undocumented", Kind.ALWAYS, "state")


def test_names_filters_by_kind_and_place() -> None:
    assert "log-agreement" in names(Kind.ALWAYS, "state")
    assert "lost-write" not in names(Kind.ALWAYS)
    assert names() == sorted(PROPERTIES)


def test_violations_are_hashable_and_json_able() -> None:
    v = Violation("duplicate", "record 3 twice", 0, (("offsets", (1, 2)), ("record", 3)))
    assert hash(v) == hash(
        Violation("duplicate", "record 3 twice", 0, (("offsets", (1, 2)), ("record", 3)))
    )
    from kafka_verify.harness.trace import violation_record

    assert json.loads(json.dumps(violation_record(v, 4))) == {
        "property": "duplicate",
        "message": "record 3 twice",
        "step": 4,
        "details": {"partition": 0, "offsets": [1, 2], "record": 3},
    }


@pytest.mark.parametrize(
    "module",
    [
        "kafka_verify.properties.catalogue",
        "kafka_verify.properties.invariants",
        "kafka_verify.properties.history",
        "kafka_verify.properties.coverage",
        "kafka_verify.properties.groups",
    ],
)
def test_any_property_module_can_be_imported_first(module: str) -> None:
    """No import order breaks, and the registry always holds the whole catalogue."""
    code = (
        f"import {module}; from kafka_verify.properties.registry import PROPERTIES; "
        "print(len(PROPERTIES))"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert int(done.stdout) == len(PROPERTIES)


def test_the_registry_imports_every_module_that_states_properties() -> None:
    """A module of properties/ that registers a property must be in the registry's list."""
    import ast
    from pathlib import Path

    from kafka_verify.properties import registry

    listed = {module.__name__ for module in registry.PROPERTY_MODULES}
    room = Path(registry.__file__).parent
    for path in sorted(room.rglob("*.py")):
        tree = ast.parse(path.read_text())
        states = any(
            isinstance(node, ast.Call) and getattr(node.func, "id", None) in {"prop", "register"}
            for node in ast.walk(tree)
        )
        if not states or path.name == "catalogue.py":
            continue
        parts = path.relative_to(room.parent).with_suffix("").parts
        module = ".".join(("kafka_verify", *parts)).removesuffix(".__init__")
        assert any(module == name or module.startswith(name + ".") for name in listed), module
