"""Bounded model checking and k-induction of the consumer-group properties with Z3.

Rules of this module:
- It answers like `properties.prove`, with the same `ProofResult` rows:
  - violated: the shortest counterexample, decoded into group actions, replayed
    on `model.step` from the initial state (every decoded state must be the
    state `step` reaches) and confirmed by the property's Python predicate;
  - proved: k-induction closed, with the lemmas of `properties.symbolic_groups`
    that are themselves proved inductive for the configuration;
  - bounded: no violation up to the depth, but induction did not close;
  - unknown: the solver gave up (timeout) before either.
- A step property is checked on every transition of a path: "depth d" is the
  d-th action, so depths mean the same for state and step properties (the
  number of actions from the initial state to the violation).
- BMC is incremental and asks one depth at a time, each under push/pop, so the
  first counterexample is a shortest one. `shortest_violation` is the
  explicit-state check of that claim (breadth-first over `enabled`/`step`).
- The group model does not touch the replication state, so the configurations
  here keep replication inert (one broker, no writes, no crashes) and explore
  groups only.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass

import z3
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import enabled, step
from kafka_verify.model.symbolic_groups import (
    Expr,
    GroupTransition,
    SymAction,
    SymGroups,
    action_of,
    decode,
    fresh_groups,
    initial,
    transition_relation,
)
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.groups import (
    committed_offset_lost,
    generation_regressed,
    incomplete_stable_assignment,
    partition_owned_twice,
    stale_generation_commit,
)
from kafka_verify.properties.prove import (
    BOUNDED,
    PROVED,
    UNKNOWN,
    VIOLATED,
    EncodingMismatch,
    ProofResult,
)
from kafka_verify.properties.symbolic_groups import (
    LEMMAS,
    PROPERTY_NAMES,
    STATE_BREAKS,
    STEP_BREAKS,
)

DEFAULT_DEPTH = 12
DEFAULT_TIMEOUT_S = 120.0

PYTHON_STATE: dict[str, Callable[[State, Config], list[Violation]]] = {
    "single-member-per-partition": partition_owned_twice,
    "complete-assignment-when-stable": incomplete_stable_assignment,
}
PYTHON_STEP: dict[str, Callable[[State, object, State], list[Violation]]] = {
    "committed-offsets-durable": committed_offset_lost,
    "no-stale-generation-commit": stale_generation_commit,
    "generation-monotonic": generation_regressed,
}


def group_config(
    bugs: frozenset[str] = frozenset(),
    members: int = 2,
    partitions: int = 2,
    generations: int = 3,
    max_offset: int = 1,
) -> Config:
    """The default group bounds: one group, 2 consumers, 2 partitions, generations <= 3, offsets <= 1."""
    return Config(
        brokers=1,
        replication=1,
        min_insync=1,
        max_log=0,
        explore_crashes=False,
        groups=1,
        members=members,
        group_partitions=partitions,
        group_generations=generations,
        group_max_offset=max_offset,
        explore_groups=True,
        bugs=bugs,
    )


def python_violations(
    name: str, before: State, action: object, after: State, config: Config
) -> list[Violation]:
    """The Python predicate of `name` on one step (a state property reads `after` only)."""
    if name in PYTHON_STATE:
        return PYTHON_STATE[name](after, config)
    return PYTHON_STEP[name](before, action, after)


# -- paths ------------------------------------------------------------------------------


@dataclass
class _Path:
    """States s0..sk linked by transitions, the instances and selectors, and the actions taken."""

    config: Config
    prefix: str
    states: list[SymGroups]
    links: list[Expr]  # links[j]: the transition from state j to state j+1
    instances: list[list[GroupTransition]]
    choices: list[Expr]
    actions: list[SymAction]

    @classmethod
    def start(cls, config: Config, prefix: str) -> _Path:
        return cls(config, prefix, [fresh_groups(config, f"{prefix}0")], [], [], [], [])

    def extend_to(self, length: int) -> None:
        while len(self.states) <= length:
            j = len(self.states)
            nxt = fresh_groups(self.config, f"{self.prefix}{j}")
            link, instances, choice, action = transition_relation(
                self.states[-1], nxt, f"{self.prefix}choice{j - 1}"
            )
            self.states.append(nxt)
            self.links.append(link)
            self.instances.append(instances)
            self.choices.append(choice)
            self.actions.append(action)

    def bad(self, name: str, d: int) -> Expr:
        """The property breaks at depth d: in state d, or on the transition into it."""
        if name in STATE_BREAKS:
            return STATE_BREAKS[name](self.states[d])
        if d == 0:
            return z3.BoolVal(False)
        return STEP_BREAKS[name](self.states[d - 1], self.actions[d - 1], self.states[d])


def _solver(deadline: float) -> z3.Solver:
    solver = z3.Solver()
    solver.set("timeout", max(1, int((deadline - time.perf_counter()) * 1000)))
    return solver


# -- lemmas -----------------------------------------------------------------------------


Lemma = Callable[[SymGroups], Expr]


def proved_lemmas(config: Config, deadline: float) -> list[Lemma]:
    """The longest prefix of `LEMMAS` that holds initially and is 1-inductive for this config."""
    lemmas = list(LEMMAS.values())
    path = _Path.start(config, "lemma")
    path.extend_to(1)
    before, after = path.states
    start = initial(before, initial_state(config))
    for size in range(len(lemmas), 0, -1):
        chosen = lemmas[:size]
        step_solver = _solver(deadline)
        step_solver.add(*[lemma(before) for lemma in chosen], path.links[0])
        step_solver.add(z3.Not(z3.And([lemma(after) for lemma in chosen])))
        init_solver = _solver(deadline)
        init_solver.add(start, z3.Not(z3.And([lemma(before) for lemma in chosen])))
        if step_solver.check() == z3.unsat and init_solver.check() == z3.unsat:
            return chosen
    return []


def _holds(lemmas: Sequence[Lemma], s: SymGroups) -> Expr:
    return z3.And([lemma(s) for lemma in lemmas]) if lemmas else z3.BoolVal(True)


# -- the prover -------------------------------------------------------------------------


def prove_group(
    name: str,
    config: Config,
    depth: int = DEFAULT_DEPTH,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    induction_k: int = 2,
) -> ProofResult:
    """k-induction (k <= `induction_k`) of group property `name`, else BMC to `depth`."""
    if name not in PROPERTY_NAMES:
        raise KeyError(f"no group formula for property {name!r}")
    started = time.perf_counter()
    deadline = started + timeout_s
    lemmas = proved_lemmas(config, deadline)
    for k in range(1, induction_k + 1):
        if _inductive(name, config, lemmas, k, deadline):
            found = _bmc(name, config, lemmas, k - 1, deadline)
            if found is None:
                return ProofResult(name, PROVED, k, time.perf_counter() - started)
            break
    found = _bmc(name, config, lemmas, depth, deadline)
    seconds = time.perf_counter() - started
    if isinstance(found, _Counterexample):
        return ProofResult(
            name,
            VIOLATED,
            len(found.actions),
            seconds,
            found.actions,  # type: ignore[arg-type]  # group actions; step() dispatches them
            found.message,
        )
    if isinstance(found, int):
        message = f"the solver gave up on paths of {found} steps (timeout)"
        return ProofResult(name, UNKNOWN, found, seconds, message=message)
    note = f"k-induction did not close up to k={induction_k}"
    return ProofResult(name, BOUNDED, depth, seconds, notes=(note,))


def _inductive(name: str, config: Config, lemmas: Sequence[Lemma], k: int, deadline: float) -> bool:
    """Whether k good positions in a row, on states satisfying the lemmas, force the next one."""
    path = _Path.start(config, f"ind{k}_")
    path.extend_to(k)
    solver = _solver(deadline)
    solver.add(*path.links, *[_holds(lemmas, s) for s in path.states])
    solver.add(*[z3.Not(path.bad(name, d)) for d in range(k)], path.bad(name, k))
    return bool(solver.check() == z3.unsat)


@dataclass(frozen=True, slots=True)
class _Counterexample:
    actions: tuple[object, ...]
    message: str


def _bmc(
    name: str, config: Config, lemmas: Sequence[Lemma], depth: int, deadline: float
) -> _Counterexample | int | None:
    """The shortest counterexample within `depth`, the depth the solver gave up at, or None."""
    path = _Path.start(config, "s")
    start = initial_state(config)
    solver = _solver(deadline)
    solver.add(initial(path.states[0], start))
    for d in range(depth + 1):
        path.extend_to(d)
        if d > 0:
            # Proved lemmas hold on every reachable state; stating them prunes the search.
            solver.add(path.links[d - 1], _holds(lemmas, path.states[d]))
        solver.push()
        solver.add(path.bad(name, d))
        answer = solver.check()
        if answer == z3.sat:
            return _decode_counterexample(name, config, path, solver.model(), d)
        solver.pop()
        if answer != z3.unsat:
            return d
    return None


def _decode_counterexample(
    name: str, config: Config, path: _Path, model: z3.ModelRef, d: int
) -> _Counterexample:
    """Decode the solver's path, replay it on `model.step`, and confirm with the Python predicate."""
    base = initial_state(config)
    decoded = [decode(s, model, base) for s in path.states[: d + 1]]
    if decoded[0] != base:
        raise EncodingMismatch("the Z3 path does not start at the initial state")
    before, state, actions = base, base, []
    for j in range(d):
        index = model.eval(path.choices[j], model_completion=True).as_long()
        action = action_of(path.instances[j][index], state, config)
        after = step(state, action, config)  # type: ignore[arg-type]  # a group action
        if after != decoded[j + 1]:
            raise EncodingMismatch(f"{action!r} leads elsewhere than the Z3 path's state {j + 1}")
        actions.append(action)
        before, state = state, after
    last = actions[-1] if actions else None
    violations = python_violations(name, before, last, state, config)
    if not violations:
        raise EncodingMismatch(f"the Z3 counterexample for {name} does not violate its predicate")
    return _Counterexample(tuple(actions), violations[0].message)


def prove_all_groups(
    config: Config,
    names: Sequence[str] | None = None,
    depth: int = DEFAULT_DEPTH,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[ProofResult]:
    """`prove_group` for each named group property (all by default), in formula order."""
    return [prove_group(name, config, depth, timeout_s) for name in (names or PROPERTY_NAMES)]


# -- the explicit-state check -----------------------------------------------------------


def shortest_violation(name: str, config: Config, max_depth: int = 30) -> tuple[object, ...] | None:
    """Breadth-first over `enabled`/`step`: the actions of a shortest run that breaks `name`."""
    start = initial_state(config)
    if name in PYTHON_STATE and PYTHON_STATE[name](start, config):
        return ()
    parents: dict[State, tuple[State, object] | None] = {start: None}
    layer = [start]
    for _ in range(max_depth):
        following: list[State] = []
        for state in layer:
            for action in enabled(state, config):
                after = step(state, action, config)
                if python_violations(name, state, action, after, config):
                    return (*_path_to(parents, state), action)
                if after not in parents:
                    parents[after] = (state, action)
                    following.append(after)
        layer = following
    return None


def _path_to(parents: dict[State, tuple[State, object] | None], state: State) -> tuple[object, ...]:
    actions: list[object] = []
    link = parents[state]
    while link is not None:
        state, action = link
        actions.append(action)
        link = parents[state]
    return tuple(reversed(actions))
