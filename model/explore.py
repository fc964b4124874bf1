"""Explicit-state search: every state the atomic-interleaving model reaches, for small bounds.

This is the ground truth for the symbolic engine: exact reachable state counts
and shortest paths. The search is a plain breadth-first walk over
`enabled`/`step` that keeps one parent pointer per state (a dict and a deque
are several times faster than growing a networkx graph edge by edge); the
networkx graph is built on request, for graph questions about the reachable set.

Rules of this module: no clock and no randomness. The same config gives the
same counts, the same layers and the same path, in the same order.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable
from dataclasses import dataclass

import networkx as nx
from kafka_verify.model.actions import Action
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import enabled, step

# A predicate that says whether a state breaks the property being searched for.
Violates = Callable[[State], bool]


@dataclass(frozen=True, slots=True)
class Counterexample:
    """The shortest run from the initial state to a violating state."""

    actions: tuple[Action, ...]
    states: tuple[State, ...]  # initial state first, violating state last

    @property
    def depth(self) -> int:
        return len(self.actions)


@dataclass(frozen=True, slots=True)
class Exploration:
    """What a breadth-first search found."""

    states: int  # distinct states discovered
    depth: int  # index of the deepest BFS layer reached (0 = only the initial state)
    complete: bool  # True when the whole reachable set was visited within the caps
    counterexample: Counterexample | None


def explore(
    config: Config,
    violates: Violates | None = None,
    max_states: int = 2_000_000,
    max_depth: int | None = None,
) -> Exploration:
    """Breadth-first search from the initial state; stops at the first violating state.

    States are checked when they are discovered, layer by layer, so the first
    violation found is at the minimal depth.
    """
    start = initial_state(config)
    parents: dict[State, tuple[State, Action] | None] = {start: None}
    if violates is not None and violates(start):
        return Exploration(1, 0, False, _path(parents, start))
    layer = [start]
    depth = 0
    while layer:
        if max_depth is not None and depth >= max_depth:
            return Exploration(len(parents), depth, False, None)
        next_layer: list[State] = []
        for state in layer:
            for action in enabled(state, config):
                successor = step(state, action, config)
                if successor in parents:
                    continue
                parents[successor] = (state, action)
                if violates is not None and violates(successor):
                    return Exploration(len(parents), depth + 1, False, _path(parents, successor))
                if len(parents) >= max_states:
                    return Exploration(len(parents), depth + 1, False, None)
                next_layer.append(successor)
        if next_layer:
            depth += 1
        layer = next_layer
    return Exploration(len(parents), depth, True, None)


def _path(parents: dict[State, tuple[State, Action] | None], last: State) -> Counterexample:
    actions: list[Action] = []
    states = [last]
    link = parents[last]
    while link is not None:
        previous, action = link
        actions.append(action)
        states.append(previous)
        link = parents[previous]
    return Counterexample(tuple(reversed(actions)), tuple(reversed(states)))


def state_graph(config: Config, max_states: int = 200_000) -> nx.DiGraph:
    """The reachable state graph: nodes are states, each edge carries its `action`.

    Raises ValueError when the reachable set is larger than `max_states`, since
    a truncated graph would silently answer graph questions wrongly.
    """
    graph = nx.DiGraph()
    start = initial_state(config)
    graph.add_node(start)
    frontier = [start]
    while frontier:
        state = frontier.pop()
        for action in enabled(state, config):
            successor = step(state, action, config)
            if successor not in graph:
                if graph.number_of_nodes() >= max_states:
                    raise ValueError(f"more than {max_states} reachable states")
                frontier.append(successor)
            graph.add_edge(state, successor, action=action)
    return graph


def graph_path(graph: nx.DiGraph, source: State, target: State) -> tuple[Action, ...]:
    """The actions along a shortest path between two states of a state graph."""
    nodes = nx.shortest_path(graph, source, target)
    return tuple(graph.edges[a, b]["action"] for a, b in itertools.pairwise(nodes))
