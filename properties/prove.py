"""Bounded model checking and k-induction of the model's state properties with Z3.

Rules of this module:
- `prove` answers one of four things per property, never a silent pass:
  - violated: a counterexample exists; it is decoded into model actions,
    replayed on `model.step` from the initial state, and confirmed by the
    property's Python predicate before it is reported;
  - proved: k-induction closed (the property together with the auxiliary
    lemmas of `properties.symbolic` is k-inductive and holds up to depth k-1);
  - bounded: no violation up to the depth, but induction did not close;
  - unknown: the solver gave up (timeout) before either.
- BMC is incremental: one solver keeps the unrolling, and each depth is asked
  under an assumption literal, so learned clauses carry over between depths.
- Checks run at the minimal depth first, so a counterexample is a shortest one.
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field

import z3

from model.actions import Action
from model.state import Config, State, initial_state
from model.step import NotAllowed, enabled, step
from model.symbolic import Expr, SymState, decode, fresh_state, initial, transition_relation
from properties.invariants import STATE_PROPERTIES
from properties.symbolic import BREAKS, LEMMAS, Formula

PROVED, BOUNDED, VIOLATED, UNKNOWN = "proved", "bounded", "violated", "unknown"
DEFAULT_DEPTH = 12
DEFAULT_TIMEOUT_S = 600.0
_STRIDE = 4  # BMC deepens this many steps at a time


def default_config(bugs: frozenset[str] = frozenset()) -> Config:
    """The default bounds: 3 brokers, 1 partition, RF 3, 2 log slots, epochs up to 3, durable."""
    return Config(
        brokers=3,
        partitions=1,
        replication=3,
        min_insync=2,
        bugs=bugs,
        max_log=2,
        max_epoch=3,
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


class EncodingMismatch(RuntimeError):
    """A Z3 counterexample that the executable model does not reproduce: a defect of the encoding."""


def _bit_blasting_solver(deadline: float) -> z3.Solver:
    """A fresh solver that bit-blasts to SAT, with the time left until `deadline`.

    Measured on the default bounds, this answers a deep BMC query 5-9x faster
    than the incremental SMT solver, so each query gets its own solver.
    """
    tactic = z3.Then(
        "simplify", "propagate-values", "solve-eqs", "elim-uncnstr", "simplify", "bit-blast", "sat"
    )
    solver = tactic.solver()
    solver.set("timeout", max(1, int((deadline - time.perf_counter()) * 1000)))
    return solver


class _Unrolling:
    """A path s0..sk from the initial state: the states and the formulas that link them."""

    def __init__(self, config: Config, invariant: Formula | None = None) -> None:
        self.config = config
        # A proved invariant of the model, stated on every state to prune the search.
        self.invariant = invariant
        self.states: list[SymState] = [fresh_state(config, "s0")]
        # formulas[k]: what ties state k to the path (the initial state, or a transition).
        self.formulas: list[Expr] = [initial(self.states[0], initial_state(config))]

    def extend_to(self, depth: int) -> None:
        while len(self.states) <= depth:
            current = self.states[-1]
            following = fresh_state(self.config, f"s{len(self.states)}")
            relation, _, _ = transition_relation(
                current, following, f"choice{len(self.states) - 1}"
            )
            if self.invariant is not None:
                relation = z3.And(relation, self.invariant(following))
            self.formulas.append(relation)
            self.states.append(following)

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
) -> ProofResult:
    """k-induction (k <= `induction_k`) of property `name`, else BMC to `depth`.

    A proof needs the base case too: no violation of the property or of a lemma
    within k-1 steps of the initial state, which BMC checks first.
    """
    if name not in BREAKS:
        raise KeyError(f"no formula for property {name!r}")
    started = time.perf_counter()
    deadline = started + timeout_s
    unrolling = _Unrolling(config, _lemmas if _lemmas_proved(config, deadline) else None)
    for k in range(1, induction_k + 1):
        if _inductive(name, config, k, deadline) and _base_holds(name, unrolling, k - 1, deadline):
            return ProofResult(name, PROVED, k, time.perf_counter() - started)
    # Deepen in strides (shallow bugs are found cheaply); once a path is found,
    # ask again just below its first bad state until nothing shorter exists.
    schedule = [*range(_STRIDE, depth, _STRIDE), depth]
    found: tuple[tuple[Action, ...], str] | None = None
    bound = schedule.pop(0)
    while True:
        answer, model, first = unrolling.first_bad(BREAKS[name], bound, deadline)
        if answer == z3.unsat and found is not None:
            # Nothing within `bound` steps, so the last counterexample is a shortest one.
            actions, message = found
            return ProofResult(
                name, VIOLATED, len(actions), time.perf_counter() - started, actions, message
            )
        if answer == z3.unsat:
            if not schedule:
                note = f"k-induction did not close up to k={induction_k}"
                return ProofResult(
                    name, BOUNDED, depth, time.perf_counter() - started, notes=(note,)
                )
            bound = schedule.pop(0)
            continue
        if answer != z3.sat or model is None:
            return _unknown(name, bound, started)
        found = _counterexample(name, config, unrolling.states[: first + 1], model)
        if first == 0:
            return ProofResult(name, VIOLATED, 0, time.perf_counter() - started, *found)
        bound = first - 1


def _unknown(name: str, bound: int, started: float) -> ProofResult:
    message = f"the solver gave up on paths of up to {bound} steps (timeout)"
    return ProofResult(name, UNKNOWN, bound, time.perf_counter() - started, message=message)


def _lemmas(s: SymState) -> Expr:
    return z3.And([lemma(s) for lemma in LEMMAS.values()])


def _lemmas_proved(config: Config, deadline: float) -> bool:
    """Whether the lemmas hold initially and are 1-inductive for this config (variants included)."""
    before, after = fresh_state(config, "l0"), fresh_state(config, "l1")
    relation, _, _ = transition_relation(before, after, "lchoice")
    solver = _bit_blasting_solver(deadline)
    solver.add(_lemmas(before), relation, z3.Not(_lemmas(after)))
    if solver.check() != z3.unsat:
        return False
    solver = _bit_blasting_solver(deadline)
    solver.add(initial(before, initial_state(config)), z3.Not(_lemmas(before)))
    return bool(solver.check() == z3.unsat)


def _invariant(name: str, s: SymState) -> Expr:
    return z3.And(z3.Not(BREAKS[name](s)), *[lemma(s) for lemma in LEMMAS.values()])


def _inductive(name: str, config: Config, k: int, deadline: float) -> bool:
    """Whether k consecutive states satisfying the invariant force the next one to (simple paths only)."""
    states = [fresh_state(config, f"i{i}") for i in range(k + 1)]
    solver = _bit_blasting_solver(deadline)
    for i in range(k):
        solver.add(_invariant(name, states[i]))
        relation, _, _ = transition_relation(states[i], states[i + 1], f"ichoice{i}")
        solver.add(relation)
    for i, a in enumerate(states):
        for b in states[i + 1 :]:
            solver.add(z3.Or([a.vars[v] != b.vars[v] for v in a.vars]))
    solver.add(z3.Not(_invariant(name, states[k])))
    return bool(solver.check() == z3.unsat)


def _base_holds(name: str, unrolling: _Unrolling, depth: int, deadline: float) -> bool:
    """No state within `depth` steps breaks the property or a lemma."""
    answer, _, _ = unrolling.first_bad(lambda s: z3.Not(_invariant(name, s)), depth, deadline)
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
    depth: int = DEFAULT_DEPTH, timeout_s: float = DEFAULT_TIMEOUT_S
) -> dict[str, float]:
    """Seconds per property to prove (or bound) the correct model at the default bounds, for the benchmark."""
    results = prove_all(default_config(), depth=depth, timeout_s=timeout_s)
    timings = {f"prove_{r.property}_s": round(r.seconds, 3) for r in results}
    timings["prove_total_s"] = round(sum(r.seconds for r in results), 3)
    return timings
