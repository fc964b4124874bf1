"""The rooms' imports run one way (DESIGN.md, "Layout"), and no module imports itself back.

The imports are read with `ast`, not by importing, so every import counts: the
ones at the top, the ones inside functions, and the ones under TYPE_CHECKING.
"""

from __future__ import annotations

import ast
from pathlib import Path

import networkx as nx

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("model", "impl", "properties", "harness", "wire", "workload")

# Which rooms each room may import. `model` imports none of the others, and no
# room imports `harness`; the black box knows a cluster only through `properties`.
ALLOWED: dict[str, frozenset[str]] = {
    "model": frozenset(),
    "impl": frozenset({"model"}),
    "properties": frozenset({"model"}),
    "wire": frozenset({"impl", "model"}),
    "workload": frozenset({"properties"}),
    "harness": frozenset({"model", "impl", "properties", "wire", "workload"}),
}


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(ROOT).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(["kafka_verify", *parts])


def _modules() -> dict[str, Path]:
    found: dict[str, Path] = {}
    for room in ROOMS:
        for path in sorted((ROOT / room).rglob("*.py")) if (ROOT / room).is_dir() else []:
            found[_module_name(path)] = path
    return found


def _imported(tree: ast.AST, module: str, is_package: bool, known: dict[str, Path]) -> set[str]:
    """The project modules that `module` imports, resolved to the module files."""
    package = module if is_package else module.rpartition(".")[0]
    targets: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.Import):
            names = [alias.name for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - (node.level - 1)]
                base = ".".join([*anchor, *([base] if base else [])])
            # `from package import name` imports the submodule `name` if there is one,
            # and otherwise takes `name` from the package itself.
            names = [
                f"{base}.{alias.name}" if f"{base}.{alias.name}" in known else base
                for alias in node.names
            ]
        for name in names:
            # The module itself, or the nearest package that holds it. (A package's
            # __init__ also runs, but what it imports is counted as its own edges.)
            parts = name.split(".")
            for end in range(len(parts), 1, -1):
                candidate = ".".join(parts[:end])
                if candidate in known:
                    if candidate != module:
                        targets.add(candidate)
                    break
    return targets


def _import_graph() -> nx.DiGraph:
    known = _modules()
    graph = nx.DiGraph()
    for module, path in known.items():
        graph.add_node(module)
        tree = ast.parse(path.read_text(), filename=str(path))
        for target in _imported(tree, module, path.name == "__init__.py", known):
            graph.add_edge(module, target)
    return graph


def _room(module: str) -> str:
    return module.split(".")[1]


def test_the_import_graph_was_read() -> None:
    graph = _import_graph()
    assert graph.number_of_nodes() > 50
    assert graph.has_edge("kafka_verify.harness.runner", "kafka_verify.model")


def test_no_import_cycles() -> None:
    graph = _import_graph()
    cycles = [sorted(c) for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert cycles == [], f"import cycles: {cycles}"


def test_imports_follow_the_layering() -> None:
    graph = _import_graph()
    against = sorted(
        f"{a} -> {b}"
        for a, b in graph.edges
        if _room(a) != _room(b) and _room(b) not in ALLOWED[_room(a)]
    )
    assert against == []


def test_the_checks_fire_on_a_planted_cycle_and_a_backward_arrow() -> None:
    known = {name: Path() for name in ("kafka_verify.impl.a", "kafka_verify.harness.b")}
    tree = ast.parse("from kafka_verify.harness import b\n")
    assert _imported(tree, "kafka_verify.impl.a", False, known) == {"kafka_verify.harness.b"}
    graph = nx.DiGraph([("kafka_verify.impl.a", "kafka_verify.harness.b")])
    graph.add_edge("kafka_verify.harness.b", "kafka_verify.impl.a")
    assert [c for c in nx.strongly_connected_components(graph) if len(c) > 1]
    assert "harness" not in ALLOWED[_room("kafka_verify.impl.a")]
