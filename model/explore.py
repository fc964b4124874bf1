"""Explicit-state search: every state the atomic-interleaving model reaches, for small bounds.

This is the ground truth for the symbolic engine: exact reachable state counts
and shortest paths. The search is a plain breadth-first walk over
`enabled`/`step` that keeps one parent pointer per state (a dict and a deque
are several times faster than growing a networkx graph edge by edge); the
networkx graph is built on request, for graph questions about the reachable set.

Symmetry reduction (TLC's SYMMETRY): brokers that host the same partitions are
interchangeable, since `enabled` and `step` treat broker ids only as names.
With `symmetry=True` the search keeps one canonical key per class of states
that differ only by a renaming of brokers, and expands one concrete state of
each class (the first found). The concrete states along a path are real model
states (each is `step` of the one before), so a counterexample replays as it
stands; the predicate must be symmetric too (every catalogued property is: it
quantifies over all brokers). The controller is part of the state, so with a
fixed controller only the renamings of the other brokers merge reachable
states: about a factor 2 for three brokers, 6 for four.

Rules of this module: no clock and no randomness. The same config gives the
same counts, the same layers and the same path, in the same order.
"""

from __future__ import annotations

import gc
import itertools
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import networkx as nx
from kafka_verify.model.actions import Action
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import enabled, step

# A predicate that says whether a state breaks the property being searched for.
Violates = Callable[[State], bool]

# A renaming of brokers: position b holds the new id of broker b.
Permutation = tuple[int, ...]

# What the visited set holds: the state itself, or its canonical key under symmetry.
StateKey = object


def broker_symmetries(config: Config) -> tuple[Permutation, ...]:
    """The renamings of brokers that map every partition's replica set onto itself, identity first."""
    replica_sets = [frozenset(config.replicas_of(p)) for p in range(config.partitions)]
    return tuple(
        perm
        for perm in itertools.permutations(range(config.brokers))
        if all(frozenset(perm[b] for b in hosts) == hosts for hosts in replica_sets)
    )


class Canonicalizer:
    """The canonical key of a state's symmetry class: the least encoding over every renaming.

    An encoding is a plain nested tuple with brokers renamed (sets of brokers
    become bit masks), so keys hash and compare in C. The controller comes
    first, so only the renamings that send it to broker 0 can give the least
    encoding, and only those are tried.
    """

    def __init__(self, config: Config) -> None:
        self.perms = broker_symmetries(config)
        self._by_controller: dict[int | None, tuple[int, ...]] = {
            c: tuple(
                i
                for i, perm in enumerate(self.perms)
                if perm[c] == min(perm[c] for perm in self.perms)
            )
            for c in range(config.brokers)
        }
        self._by_controller[None] = tuple(range(len(self.perms)))
        # For each renaming and partition: the old replica index that lands at each position.
        self._sources: list[tuple[tuple[int, ...], ...]] = []
        for perm in self.perms:
            inverse = {new: old for old, new in enumerate(perm)}
            per_partition = []
            for p in range(config.partitions):
                order = config.replicas_of(p)
                per_partition.append(tuple(order.index(inverse[b]) for b in order))
            self._sources.append(tuple(per_partition))
        # Sets of brokers as bit masks, and each renaming as a table from mask to renamed mask.
        self._mask_of: dict[frozenset[int], int] = {}
        self._renamed_masks = [
            [
                sum(1 << perm[b] for b in range(config.brokers) if m >> b & 1)
                for m in range(1 << config.brokers)
            ]
            for perm in self.perms
        ]
        # Broker ids as the encoding writes them (-1 for none), and each renaming as a table
        # from those to the renamed ones.
        self._ids: dict[int | None, int] = {None: -1, **{b: b for b in range(config.brokers)}}
        self._renamed_ids: list[dict[int, int]] = [
            {-1: -1, **{b: perm[b] for b in range(config.brokers)}} for perm in self.perms
        ]

    def _mask(self, brokers: frozenset[int]) -> int:
        mask = self._mask_of.get(brokers)
        if mask is None:
            mask = sum(1 << b for b in brokers)
            self._mask_of[brokers] = mask
        return mask

    def key(self, state: State) -> tuple[object, ...]:
        """The least encoding of `state` over the renamings that could give it.

        What a renaming does not touch (each replica's log, offsets, epoch and
        role) is built once; each renaming then only renames broker ids and masks.
        """
        mask = self._mask
        ids = self._ids
        parts = []
        for part in state.partitions:
            # The role's value, not the enum: an enum hashes in Python, a str in C.
            replicas = tuple(
                [
                    (
                        (
                            r.log,
                            r.log_start,
                            r.hw,
                            r.flushed,
                            r.checkpoint_hw,
                            r.epoch,
                            r.role._value_,
                        ),
                        ids[r.leader],
                        mask(r.isr),
                    )
                    for r in part.replicas
                ]
            )
            parts.append((ids[part.leader], part.epoch, mask(part.isr), replicas))
        running = mask(state.running)
        controller = ids[state.controller]
        # The identity's encoding is what was just built: only the other renamings rebuild.
        candidates = self._by_controller[state.controller]
        best: tuple[object, ...] | None = None
        if candidates[0] == 0:
            best = (controller, state.controller_epoch, running, tuple(parts), state.groups)
            candidates = candidates[1:]
        for index in candidates:
            renames, masks = self._renamed_ids[index], self._renamed_masks[index]
            renamed_parts = []
            for (leader, epoch, isr, replicas), sources in zip(parts, self._sources[index]):
                renamed = [replicas[i] for i in sources]
                renamed_parts.append(
                    (
                        renames[leader],
                        epoch,
                        masks[isr],
                        tuple([(local, renames[to], masks[m]) for local, to, m in renamed]),
                    )
                )
            encoded = (
                renames[controller],
                state.controller_epoch,
                masks[running],
                tuple(renamed_parts),
                state.groups,
            )
            if best is None or encoded < best:
                best = encoded
        assert best is not None
        return best


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

    states: int  # distinct states discovered (symmetry classes, with symmetry)
    depth: int  # index of the deepest BFS layer reached (0 = only the initial state)
    complete: bool  # True when the whole reachable set was visited within the caps
    counterexample: Counterexample | None


def explore(
    config: Config,
    violates: Violates | None = None,
    max_states: int = 2_000_000,
    max_depth: int | None = None,
    symmetry: bool = False,
) -> Exploration:
    """Breadth-first search from the initial state; stops at the first violating state.

    States are checked when they are discovered, layer by layer, so the first
    violation found is at the minimal depth. With `symmetry`, `states` counts
    symmetry classes (see the module docstring) and `violates` must be symmetric.
    """
    with no_cycle_collection():
        return _breadth_first(config, violates, max_states, max_depth, symmetry)


@contextmanager
def no_cycle_collection() -> Iterator[None]:
    """Pause the cycle collector for a search, which builds only acyclic values.

    Millions of new tuples would otherwise set it off again and again, each
    time walking the whole visited set: it doubles the time of a deep search.
    """
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()


def _breadth_first(
    config: Config,
    violates: Violates | None,
    max_states: int,
    max_depth: int | None,
    symmetry: bool,
) -> Exploration:
    key_of = Canonicalizer(config).key if symmetry else _itself
    start = initial_state(config)
    start_key = key_of(start)
    parents: dict[StateKey, tuple[StateKey, Action] | None] = {start_key: None}
    if violates is not None and violates(start):
        return Exploration(1, 0, False, _path(config, parents, start_key))
    layer = [(start, start_key)]
    depth = 0
    while layer:
        if max_depth is not None and depth >= max_depth:
            return Exploration(len(parents), depth, False, None)
        next_layer: list[tuple[State, StateKey]] = []
        for state, state_key in layer:
            for action in enabled(state, config):
                successor = step(state, action, config)
                successor_key = key_of(successor)
                if successor_key in parents:
                    continue
                parents[successor_key] = (state_key, action)
                if violates is not None and violates(successor):
                    path = _path(config, parents, successor_key)
                    return Exploration(len(parents), depth + 1, False, path)
                if len(parents) >= max_states:
                    return Exploration(len(parents), depth + 1, False, None)
                next_layer.append((successor, successor_key))
        if next_layer:
            depth += 1
        layer = next_layer
    return Exploration(len(parents), depth, True, None)


def _itself(state: State) -> StateKey:
    return state


def _path(
    config: Config, parents: dict[StateKey, tuple[StateKey, Action] | None], last: StateKey
) -> Counterexample:
    """The actions from the initial state to `last`, replayed on `step` for the concrete states."""
    actions: list[Action] = []
    link = parents[last]
    while link is not None:
        previous, action = link
        actions.append(action)
        link = parents[previous]
    actions.reverse()
    states = [initial_state(config)]
    for action in actions:
        states.append(step(states[-1], action, config))
    return Counterexample(tuple(actions), tuple(states))


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
