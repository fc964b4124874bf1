"""Bounded model checking and k-induction of the model's state properties with Z3.

Rules of this module:
- `prove` answers one of four things per property, never a silent pass:
  - violated: a counterexample exists; it is decoded into model actions,
    replayed on `model.step` from the initial state, and confirmed by the
    property's Python predicate before it is reported;
  - proved: the property is part of an inductive invariant: the largest subset
    of the lemmas of `properties.symbolic` and the properties that holds
    initially and is preserved by every transition (found by Houdini: drop
    whatever a counterexample-to-induction breaks, until nothing is broken), or
    failing that, k-induction of the property with that invariant closed;
  - bounded: no violation up to the depth, but induction did not close;
  - unknown: the solver gave up (timeout) before either.
- BMC asks whether any state within a bound breaks the property, deepening in
  strides; once a path is found it asks again below its first bad state, so a
  counterexample is a shortest one. Every state of the unrolling is required to
  satisfy the proved invariant (sound: it holds on every reachable state), and
  adjacent commuting transitions are taken in one order only (a partial-order
  reduction that keeps every state reachable at the same depth).
- The inductive invariant of a config is computed once per process and shared
  by the properties (the portfolio hands it on to the processes it starts).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

import z3
from kafka_verify.model.actions import Action
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import NotAllowed, enabled, step
from kafka_verify.model.symbolic import (
    Expr,
    SymState,
    Transition,
    commuting_pairs,
    decode,
    fresh_state,
    initial,
    transition_relation,
    transitions,
)
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.symbolic import BREAKS, LEMMAS, Formula

PROVED, BOUNDED, VIOLATED, UNKNOWN = "proved", "bounded", "violated", "unknown"
DEFAULT_DEPTH = 14
DEFAULT_TIMEOUT_S = 600.0
_STRIDE = 4  # BMC deepens this many steps at a time


def default_config(
    bugs: frozenset[str] = frozenset(), brokers: int = 3, max_log: int = 2, max_epoch: int = 3
) -> Config:
    """The default bounds: 3 brokers, 1 partition, RF 3, 2 log slots, epochs up to 3, durable.

    Larger bounds keep one partition replicated on every broker.
    """
    return Config(
        brokers=brokers,
        partitions=1,
        replication=brokers,
        min_insync=min(2, brokers),
        bugs=bugs,
        max_log=max_log,
        max_epoch=max_epoch,
        durable=True,
    )


@dataclass(frozen=True, slots=True)
class ProofResult:
    """What the prover found out about one property."""

    property: str
    status: str
    depth: int  # violated: counterexample length; proved: k; bounded/unknown: depth reached
    seconds: float
    actions: tuple[Action, ...] = ()  # the counterexample, for `violated`
    message: str = ""  # the Python predicate's sentence, or why the result is unknown
    notes: tuple[str, ...] = field(default=())
    # Which engine answered: "bmc" (Z3), "layered" or "bfs" (explicit search).
    engine: str = "bmc"


class EncodingMismatch(RuntimeError):
    """A Z3 counterexample that the executable model does not reproduce: a defect of the encoding."""


def _bit_blasting_solver(deadline: float) -> z3.Solver:
    """A fresh solver that bit-blasts to SAT, with the time left until `deadline`.

    Measured on the default bounds, this answers a deep BMC query 5-9x faster
    than the incremental SMT solver, so each query gets its own solver. One
    incremental QF_BV solver deepened a step at a time, with an assumption per
    depth, also lost: 25 s of CPU to epoch-end-offset-hole's counterexample at
    depth 10, against 16 s for these strided fresh queries.
    """
    tactic = z3.Then(
        "simplify", "propagate-values", "solve-eqs", "elim-uncnstr", "simplify", "bit-blast", "sat"
    )
    solver = tactic.solver()
    solver.set("timeout", max(1, int((deadline - time.perf_counter()) * 1000)))
    return solver


@dataclass(frozen=True, slots=True)
class Invariant:
    """The largest subset of lemmas and properties that is inductive for one config."""

    names: tuple[str, ...]  # the lemmas and properties it is made of
    closed: bool  # False when the solver gave up: then it is empty and proves nothing
    seconds: float
    dropped: tuple[str, ...] = ()  # candidates a counterexample-to-induction broke

    def formula(self, s: SymState) -> Expr:
        return z3.And([_CANDIDATES[name](s) for name in self.names])


def _holds(name: str) -> Formula:
    return lambda s: z3.Not(BREAKS[name](s))


# Candidate invariants: every lemma, and every property (as "does not break it").
_CANDIDATES: dict[str, Formula] = {
    **{f"lemma {name}": lemma for name, lemma in LEMMAS.items()},
    **{name: _holds(name) for name in BREAKS},
}
_INVARIANTS: dict[Config, Invariant] = {}


def known_invariant(config: Config) -> Invariant | None:
    """The inductive invariant this process has computed (or been given) for `config`, if any."""
    return _INVARIANTS.get(config)


def remember_invariant(config: Config, names: Sequence[str], dropped: Sequence[str]) -> None:
    """Take an invariant that another process computed for `config` (the portfolio's engines
    run in processes of their own); only candidate names are accepted."""
    unknown = sorted(set(names) - set(_CANDIDATES))
    if unknown:
        raise ValueError(f"not candidate invariants: {unknown}")
    _INVARIANTS[config] = Invariant(tuple(names), True, 0.0, tuple(dropped))


def inductive_invariant(config: Config, deadline: float) -> Invariant:
    """Houdini: start from every candidate that holds initially, drop what a step can break, repeat.

    What remains holds initially and is preserved by every transition, so it
    holds on every reachable state: each of its properties is proved. Each
    transition instance is checked on its own (several times faster than one
    query over the whole relation).
    """
    if config in _INVARIANTS:
        return _INVARIANTS[config]
    started = time.perf_counter()
    before, after = fresh_state(config, "h0"), fresh_state(config, "h1")
    holds_before = {name: candidate(before) for name, candidate in _CANDIDATES.items()}
    holds_after = {name: candidate(after) for name, candidate in _CANDIDATES.items()}
    start = initial(before, initial_state(config))
    alive = [n for n in _CANDIDATES if _valid(z3.And(start, z3.Not(holds_before[n])))]
    instances = transitions(before)
    index = 0
    while index < len(instances):
        solver = _bit_blasting_solver(deadline)
        solver.add(_taking(instances[index], before, after), *[holds_before[n] for n in alive])
        solver.add(z3.Not(z3.And([holds_after[n] for n in alive])))
        answer = solver.check()
        if answer == z3.unsat:
            index += 1
            continue
        if answer != z3.sat:
            return Invariant((), False, time.perf_counter() - started)
        model = solver.model()
        alive = [n for n in alive if z3.is_true(model.eval(holds_after[n], True))]
        index = 0  # a smaller invariant assumes less: every instance is checked again
    dropped = tuple(n for n in _CANDIDATES if n not in alive)
    found = Invariant(tuple(alive), True, time.perf_counter() - started, dropped)
    _INVARIANTS[config] = found
    return found


def _taking(instance: Transition, before: SymState, after: SymState) -> Expr:
    """The formula 'from `before`, this one instance leads to `after`'."""
    frame = [after.vars[n] == instance.updates.get(n, before.vars[n]) for n in after.vars]
    return z3.And(instance.guard, *frame)


def _valid(formula: Expr) -> bool:
    """Whether `formula` is unsatisfiable (it is the negation of what must hold)."""
    solver = z3.Solver()
    solver.add(formula)
    return bool(solver.check() == z3.unsat)


class _Unrolling:
    """A path s0..sk from the initial state: the states and the formulas that link them."""

    def __init__(self, config: Config, invariant: Formula | None = None) -> None:
        self.config = config
        # A proved invariant of the model, stated on every state to prune the search.
        self.invariant = invariant
        self.states: list[SymState] = [fresh_state(config, "s0")]
        self.choices: list[Expr] = []
        # formulas[k]: what ties state k to the path (the initial state, or a transition).
        self.formulas: list[Expr] = [initial(self.states[0], initial_state(config))]
        self.commuting: list[tuple[int, int]] | None = None

    def extend_to(self, depth: int) -> None:
        while len(self.states) <= depth:
            current = self.states[-1]
            following = fresh_state(self.config, f"s{len(self.states)}")
            relation, instances, choice = transition_relation(
                current, following, f"choice{len(self.states) - 1}"
            )
            if self.invariant is not None:
                relation = z3.And(relation, self.invariant(following))
            relation = z3.And(relation, *self._one_order(instances, choice))
            self.formulas.append(relation)
            self.choices.append(choice)
            self.states.append(following)

    def _one_order(self, instances: list[Transition], choice: Expr) -> list[Expr]:
        """Forbid a commuting pair taken out of index order in two consecutive steps.

        Only with crashes explored: a crash or restart (the instances after every
        partition's) can always follow, so forbidding an order never cuts a path short.
        """
        if not self.config.explore_crashes or not self.choices:
            return []
        if self.commuting is None:
            self.commuting = commuting_pairs(self.states[-1], instances)
        previous = self.choices[-1]
        return [z3.Not(z3.And(previous == j, choice == i)) for i, j in self.commuting]

    def first_bad(
        self, breaks: Formula, depth: int, deadline: float
    ) -> tuple[z3.CheckSatResult, z3.ModelRef | None, int]:
        """Whether some state within `depth` steps breaks the property; the model and first bad index if so."""
        self.extend_to(depth)
        solver = _bit_blasting_solver(deadline)
        solver.add(*self.formulas[: depth + 1])
        solver.add(z3.Or([breaks(s) for s in self.states[: depth + 1]]))
        answer = solver.check()
        if answer != z3.sat:
            return answer, None, -1
        model = solver.model()
        first = next(
            i
            for i, s in enumerate(self.states[: depth + 1])
            if z3.is_true(model.eval(breaks(s), True))
        )
        return answer, model, first


def prove(
    name: str,
    config: Config,
    depth: int = DEFAULT_DEPTH,
    timeout_s: float = DEFAULT_TIMEOUT_S,
    induction_k: int = 2,
    before_bmc: Callable[[], None] | None = None,
) -> ProofResult:
    """Proved if the property is in the config's inductive invariant, or k-inductive with it
    (k <= `induction_k`); else the shortest counterexample within `depth` steps, or bounded.

    `before_bmc` is called once the proof attempts have failed, before bounded model
    checking starts (the portfolio lowers this process's priority there)."""
    if name not in BREAKS:
        raise KeyError(f"no formula for property {name!r}")
    started = time.perf_counter()
    deadline = started + timeout_s
    invariant = inductive_invariant(config, deadline)
    if not invariant.closed:
        return _unknown(name, 0, started, "the solver gave up on the inductive invariant")
    if name in invariant.names:
        lemmas = len([n for n in invariant.names if n.startswith("lemma ")])
        note = f"1-inductive together with {lemmas} lemmas and {len(invariant.names) - lemmas} properties"
        return ProofResult(name, PROVED, 1, time.perf_counter() - started, notes=(note,))
    for k in range(2, induction_k + 1):
        if _inductive(name, config, invariant, k, deadline):
            unrolling = _Unrolling(config, invariant.formula)
            if _base_holds(name, unrolling, k - 1, deadline):
                return ProofResult(name, PROVED, k, time.perf_counter() - started)
    if before_bmc is not None:
        before_bmc()
    return _bounded_search(name, config, invariant, depth, started, deadline, induction_k)


def _bounded_search(
    name: str,
    config: Config,
    invariant: Invariant,
    depth: int,
    started: float,
    deadline: float,
    induction_k: int,
) -> ProofResult:
    """BMC: deepen in strides (shallow bugs are found cheaply); once a path is found, ask
    again just below its first bad state until nothing shorter exists."""
    unrolling = _Unrolling(config, invariant.formula)
    clean = -1  # no state within this many steps breaks the property
    bound = min(_STRIDE, depth)
    found: tuple[tuple[Action, ...], str] | None = None
    while True:
        answer, model, first = unrolling.first_bad(BREAKS[name], bound, deadline)
        if answer == z3.unsat:
            clean = bound
        elif answer != z3.sat or model is None:
            return _unknown(name, bound, started, _timeout_message(bound))
        else:
            found = _counterexample(name, config, unrolling.states[: first + 1], model)
            bound = first - 1
        if found is not None and bound <= clean:
            actions, message = found
            seconds = time.perf_counter() - started
            note = f"minimal: no path of fewer than {len(actions)} steps breaks it"
            return ProofResult(name, VIOLATED, len(actions), seconds, actions, message, (note,))
        if found is None and clean >= depth:
            note = f"not in the inductive invariant, and k-induction did not close up to k={induction_k}"
            seconds = time.perf_counter() - started
            return ProofResult(name, BOUNDED, depth, seconds, notes=(note,))
        if found is None:
            bound = min(bound + _STRIDE, depth)


def _timeout_message(bound: int) -> str:
    return f"the solver gave up on paths of up to {bound} steps (timeout)"


def _unknown(name: str, bound: int, started: float, message: str) -> ProofResult:
    return ProofResult(name, UNKNOWN, bound, time.perf_counter() - started, message=message)


def _inductive(name: str, config: Config, invariant: Invariant, k: int, deadline: float) -> bool:
    """Whether k consecutive states keeping the property (and the invariant) force the next one to
    keep it (simple paths only)."""
    states = [fresh_state(config, f"i{i}") for i in range(k + 1)]
    solver = _bit_blasting_solver(deadline)
    for i in range(k):
        solver.add(z3.Not(BREAKS[name](states[i])))
        relation, _, _ = transition_relation(states[i], states[i + 1], f"ichoice{i}")
        solver.add(relation)
    for i, a in enumerate(states):
        # The invariant holds on every reachable state, so it may be assumed on each.
        solver.add(invariant.formula(a))
        for b in states[i + 1 :]:
            solver.add(z3.Or([a.vars[v] != b.vars[v] for v in a.vars]))
    solver.add(BREAKS[name](states[k]))
    return bool(solver.check() == z3.unsat)


def _base_holds(name: str, unrolling: _Unrolling, depth: int, deadline: float) -> bool:
    """No state within `depth` steps breaks the property."""
    answer, _, _ = unrolling.first_bad(BREAKS[name], depth, deadline)
    return bool(answer == z3.unsat)


def _counterexample(
    name: str, config: Config, states: Sequence[SymState], model: z3.ModelRef
) -> tuple[tuple[Action, ...], str]:
    """Decode the solver's path, replay it on `model.step`, and confirm with the Python predicate."""
    concrete = [decode(s, model) for s in states]
    actions = replay_path(concrete, config)
    violations = STATE_PROPERTIES[name](concrete[-1], config)
    if not violations:
        raise EncodingMismatch(
            f"the Z3 counterexample for {name} does not violate its Python predicate"
        )
    return actions, violations[0].message


def replay_path(states: Sequence[State], config: Config) -> tuple[Action, ...]:
    """The model actions that lead through `states`, checked with `step` from the initial state."""
    if states[0] != initial_state(config):
        raise EncodingMismatch("the Z3 path does not start at the initial state")
    actions: list[Action] = []
    for before, after in itertools.pairwise(states):
        matching = [a for a in enabled(before, config) if _safe_step(before, a, config) == after]
        if not matching:
            raise EncodingMismatch(f"no enabled model action leads from {before!r} to {after!r}")
        actions.append(matching[0])
    return tuple(actions)


def _safe_step(state: State, action: Action, config: Config) -> State | None:
    try:
        return step(state, action, config)
    except NotAllowed:
        return None


def prove_all(
    config: Config,
    names: Sequence[str] | None = None,
    depth: int = DEFAULT_DEPTH,
    timeout_s: float = DEFAULT_TIMEOUT_S,
) -> list[ProofResult]:
    """`prove` for each named property (all with a formula by default), in catalogue order."""
    return [prove(name, config, depth, timeout_s) for name in (names or list(BREAKS))]


def prove_timings(
    depth: int = DEFAULT_DEPTH, timeout_s: float = DEFAULT_TIMEOUT_S, config: Config | None = None
) -> dict[str, float]:
    """Seconds per property to prove (or bound) the correct model, at the default bounds unless
    given, and how many properties were proved, for the benchmark."""
    config = config or default_config()
    _INVARIANTS.pop(config, None)  # measure the whole proof, not a cached invariant
    results = prove_all(config, depth=depth, timeout_s=timeout_s)
    timings = {f"prove_{r.property}_s": round(r.seconds, 3) for r in results}
    timings["prove_total_s"] = round(sum(r.seconds for r in results), 3)
    timings["prove_proved"] = float(sum(r.status == PROVED for r in results))
    return timings
