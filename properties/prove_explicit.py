"""The explicit-state engines of `kafka-verify prove`: breadth-first search reduced by broker symmetry.

Rules of this module:
- Two engines search the same states in the same order: "bfs" walks
  `model.step` one state at a time (model/explore.py), and "layered" runs
  whole BFS layers as numpy arrays over the symbolic encoding
  (model/symbolic_search.py), which is tens of times faster.
- Both answer in the prover's vocabulary (`ProofResult`):
  - violated: the search checks each state when it is found, layer by layer,
    so the first violation is at the minimal depth; the path is replayed on
    `model.step` and the Python predicate confirms it (explore does both);
  - proved: the search ran out of states, so every reachable state of these
    bounds keeps the property;
  - bounded: nothing within `depth` steps, and deeper states remain;
  - unknown: the state cap was reached first.
- The search has no clock (model/ never reads one): a time limit is the
  caller's, enforced from outside (properties/prove_portfolio.py runs it in a
  process of its own).
"""

from __future__ import annotations

import time

from kafka_verify.model.explore import explore
from kafka_verify.model.state import Config, State
from kafka_verify.model.symbolic_search import UnsupportedConfig, layered_search
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.prove import BOUNDED, PROVED, UNKNOWN, VIOLATED, ProofResult
from kafka_verify.properties.symbolic import BREAKS

ENGINE = "bfs"
LAYERED = "layered"
# About 1.3 kB of memory a state: the cap keeps a search within about 4 GB.
DEFAULT_MAX_STATES = 3_000_000
# About 60 bytes a state in the layered search (its row, key and parent): about 1.5 GB.
LAYERED_MAX_STATES = 25_000_000


def search(
    name: str, config: Config, depth: int | None = None, max_states: int = DEFAULT_MAX_STATES
) -> ProofResult:
    """Breadth-first search for the shortest path to a state that breaks property `name`."""
    check = STATE_PROPERTIES[name]

    def violates(state: State) -> bool:
        return bool(check(state, config))

    started = time.perf_counter()
    found = explore(config, violates, max_states=max_states, max_depth=depth, symmetry=True)
    seconds = time.perf_counter() - started
    counted = f"{found.states} states up to renaming brokers"
    if found.counterexample is not None:
        actions = found.counterexample.actions
        # explore replayed the path on step; the predicate must see the violation there.
        violations = check(found.counterexample.states[-1], config)
        if not violations:
            raise RuntimeError(f"the search's counterexample for {name} does not violate it")
        message = violations[0].message
        note = f"minimal: every shorter path was searched ({counted})"
        return ProofResult(
            name, VIOLATED, len(actions), seconds, actions, message, (note,), engine=ENGINE
        )
    if found.complete:
        note = f"every reachable state checked ({counted}, deepest at {found.depth} steps)"
        return ProofResult(name, PROVED, found.depth, seconds, notes=(note,), engine=ENGINE)
    if depth is not None and found.depth >= depth and found.states < max_states:
        note = f"no violation within {depth} steps ({counted})"
        return ProofResult(name, BOUNDED, depth, seconds, notes=(note,), engine=ENGINE)
    message = f"the search stopped at {found.states} states (the cap) at depth {found.depth}"
    return ProofResult(name, UNKNOWN, found.depth, seconds, message=message, engine=ENGINE)


def layered(
    name: str, config: Config, depth: int | None = None, max_states: int = LAYERED_MAX_STATES
) -> ProofResult:
    """The same search as `search`, a whole layer at a time over the symbolic encoding."""
    started = time.perf_counter()
    try:
        found = layered_search(config, BREAKS[name], max_depth=depth, max_states=max_states)
    except UnsupportedConfig as why:
        message = f"the layered search does not cover this config: {why}"
        return ProofResult(
            name, UNKNOWN, 0, time.perf_counter() - started, message=message, engine=LAYERED
        )
    seconds = time.perf_counter() - started
    counted = f"{found.states} states up to renaming brokers"
    if found.actions is not None and found.path is not None:
        # The path was replayed on `model.step`; the Python predicate must see the violation.
        violations = STATE_PROPERTIES[name](found.path[-1], config)
        if not violations:
            raise RuntimeError(
                f"the layered search's counterexample for {name} does not violate it"
            )
        note = f"minimal: every shorter path was searched ({counted}, layer by layer)"
        return ProofResult(
            name, VIOLATED, len(found.actions), seconds, found.actions,
            violations[0].message, (note,), engine=LAYERED,
        )  # fmt: skip
    if found.complete:
        note = f"every reachable state checked ({counted}, deepest at {found.depth} steps)"
        return ProofResult(name, PROVED, found.depth, seconds, notes=(note,), engine=LAYERED)
    if depth is not None and found.depth >= depth:
        note = f"no violation within {depth} steps ({counted})"
        return ProofResult(name, BOUNDED, depth, seconds, notes=(note,), engine=LAYERED)
    message = f"the search stopped at {found.states} states (the cap) at depth {found.depth}"
    return ProofResult(name, UNKNOWN, found.depth, seconds, message=message, engine=LAYERED)
