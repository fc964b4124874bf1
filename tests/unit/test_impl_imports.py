"""The impl's modules import one another without a cycle, and import no room above them.

Every import counts, those under `if TYPE_CHECKING:` too: a module that needs its
caller's types only to check them still depends on its caller.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

IMPL = Path(__file__).resolve().parents[2] / "impl"
PACKAGE = "kafka_verify.impl"
# DESIGN.md "Layout": impl imports model, and no other room.
FORBIDDEN_ROOMS = ("harness", "properties", "wire", "workload")


def imported_modules(source: str) -> set[str]:
    """Every module named by an import statement anywhere in `source`, conditional ones included."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module is not None and node.level == 0:
            names.add(node.module)
            names.update(f"{node.module}.{alias.name}" for alias in node.names)
    return names


def impl_graph(folder: Path) -> nx.DiGraph:
    """Module -> the impl modules it imports (`from kafka_verify.impl import x` counts as x)."""
    modules = {path.stem for path in folder.glob("*.py")}
    graph = nx.DiGraph()
    graph.add_nodes_from(modules)
    for path in folder.glob("*.py"):
        for name in imported_modules(path.read_text(encoding="utf-8")):
            parts = name.split(".")
            if parts[:2] == PACKAGE.split(".") and len(parts) >= 3 and parts[2] in modules:
                graph.add_edge(path.stem, parts[2])
    return graph


def test_impl_has_no_import_cycle() -> None:
    graph = impl_graph(IMPL)
    assert graph.number_of_nodes() >= 15
    assert graph.has_edge("broker", "coordinator")  # the graph is read, not empty
    assert list(nx.simple_cycles(graph)) == []


def test_the_coordinator_reaches_its_broker_only_through_a_protocol() -> None:
    graph = impl_graph(IMPL)
    assert not nx.has_path(graph, "coordinator", "broker")
    assert graph.has_edge("coordinator", "replica") and graph.has_edge("broker", "replica")


def test_impl_imports_no_room_above_it() -> None:
    offenders = sorted(
        f"{path.name} imports {name}"
        for path in IMPL.glob("*.py")
        for name in imported_modules(path.read_text(encoding="utf-8"))
        if any(name.startswith(f"kafka_verify.{room}") for room in FORBIDDEN_ROOMS)
    )
    assert offenders == []


def test_a_cycle_through_type_checking_imports_is_found(tmp_path: Path) -> None:
    (tmp_path / "a.py").write_text("from kafka_verify.impl.b import B\n", encoding="utf-8")
    (tmp_path / "b.py").write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n"
        "    from kafka_verify.impl import a\n",
        encoding="utf-8",
    )
    (tmp_path / "c.py").write_text("import kafka_verify.impl.a\n", encoding="utf-8")
    graph = impl_graph(tmp_path)
    assert sorted(graph.edges) == [("a", "b"), ("b", "a"), ("c", "a")]
    assert [sorted(cycle) for cycle in nx.simple_cycles(graph)] == [["a", "b"]]
