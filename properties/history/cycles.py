"""Dependency cycles between operations: Jepsen's G0 and G1c, found with networkx.

Rules of this module:
- Nodes are completed operations; edges are Adya's dependencies, as Jepsen's
  Kafka checker draws them:
  ww: T1 sent v1 and T2 sent v2 to one partition, v2 right after v1 in its
      version order (only with `ww_deps`, inferred from offsets);
  wr: T1 sent a record that T2 read.
- Only ops that both send and read can close a wr cycle, so only their reads
  make wr edges; nodes without an edge in and an edge out are dropped before
  the strongly connected components are found. The cost is linear.
- G0 is a cycle of ww edges alone; G1c a cycle with at least one wr edge.
  One cycle is reported per strongly connected component, the shortest one
  through the chosen edge.
"""

from __future__ import annotations

from itertools import pairwise

import networkx as nx
from kafka_verify.properties.catalogue import Kind, prop
from kafka_verify.properties.history.memory import Case, Memory
from kafka_verify.properties.history.ops import Op, RecordId

Edge = tuple[str, str, RecordId]  # (ww | wr, partition key, record that explains it)


def _dependencies(memory: Memory) -> tuple[dict[tuple[int, int], list[Edge]], dict[int, Op]]:
    edges: dict[tuple[int, int], list[Edge]] = {}
    ops: dict[int, Op] = {}

    def link(a: Op, b: Op, edge: Edge) -> None:
        if a.index == b.index:
            return
        ops[a.index], ops[b.index] = a, b
        edges.setdefault((a.index, b.index), []).append(edge)

    if memory.config.ww_deps:
        for key, order in memory.orders.items():
            previous: Op | None = None
            for offset in order.offsets():
                writer = memory.writer_of.get((key, order.at[offset]))
                if writer is None:
                    continue
                if previous is not None:
                    link(previous, writer, ("ww", key, order.at[offset]))
                previous = writer
    for reader, records in memory.txn_reads:
        for record_key in records:
            writer = memory.writer_of.get(record_key)
            if writer is not None:
                link(writer, reader, ("wr", record_key[0], record_key[1]))
    return edges, ops


def _graph(edges: dict[tuple[int, int], list[Edge]], kinds: frozenset[str]) -> nx.DiGraph:
    chosen = [(a, b) for (a, b), why in edges.items() if any(e[0] in kinds for e in why)]
    has_in = {b for _, b in chosen}
    has_out = {a for a, _ in chosen}
    graph = nx.DiGraph()
    graph.add_edges_from((a, b) for a, b in chosen if a in has_in and b in has_out)
    return graph


def _case(
    anomaly: str,
    cycle: list[int],
    edges: dict[tuple[int, int], list[Edge]],
    ops: dict[int, Op],
    kinds: frozenset[str],
) -> Case:
    steps = []
    for a, b in pairwise(cycle):
        kind, key, record = next(e for e in edges[(a, b)] if e[0] in kinds)
        steps.append({"from": a, "to": b, "type": kind, "key": key, "record": record})
    text = "; ".join(
        f"op {s['from']} {'sent' if s['type'] == 'ww' else 'wrote'} "
        f"{'before' if s['type'] == 'ww' else 'what'} op {s['to']} "
        f"{'sent to' if s['type'] == 'ww' else 'read from'} {s['key']} (record {s['record']!r})"
        for s in steps
    )
    return Case(
        anomaly,
        f"a cycle of {len(steps)} dependencies: {text}",
        tuple(ops[i] for i in cycle[:-1]),
        None,
        (("cycle", tuple(cycle)), ("steps", tuple(steps))),
        severity=-float(len(steps)),
    )


def _cycle_through(graph: nx.DiGraph, component: set[int], edge: tuple[int, int]) -> list[int]:
    a, b = edge
    back = nx.shortest_path(graph.subgraph(component), b, a)
    return [a, *back]


@prop("write-cycle", Kind.ALWAYS, "history")
def write_cycle(memory: Memory) -> list[Case]:
    """Forbids: a cycle of write-write dependencies between operations (Jepsen's G0; Kafka allows it, as it does not isolate writes)."""
    edges, ops = _dependencies(memory)
    kinds = frozenset({"ww"})
    graph = _graph(edges, kinds)
    cases = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        a = min(component)
        b = next(n for n in graph.successors(a) if n in component)
        cases.append(_case("G0", _cycle_through(graph, component, (a, b)), edges, ops, kinds))
    return cases


@prop("circular-information-flow", Kind.ALWAYS, "history")
def circular_information_flow(memory: Memory) -> list[Case]:
    """Forbids: a cycle of write-write and write-read dependencies with at least one write-read edge (Jepsen's G1c)."""
    edges, ops = _dependencies(memory)
    kinds = frozenset({"ww", "wr"})
    graph = _graph(edges, kinds)
    cases = []
    for component in nx.strongly_connected_components(graph):
        if len(component) < 2:
            continue
        wr = sorted(
            (a, b)
            for a in component
            for b in graph.successors(a)
            if b in component and any(e[0] == "wr" for e in edges[(a, b)])
        )
        if wr:
            cycle = _cycle_through(graph, component, wr[0])
            cases.append(_case("G1c", cycle, edges, ops, kinds))
    return cases
