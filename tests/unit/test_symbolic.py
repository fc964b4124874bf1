"""The Z3 encoding against the executable model: same transitions, same property verdicts."""

from __future__ import annotations

import random

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_verify.model.explore import explore
from kafka_verify.model.state import Config, Partition, Record, Replica, Role, State, initial_state
from kafka_verify.model.step import enabled, step
from kafka_verify.model.symbolic import (
    ENCODED_VARIANTS,
    SymState,
    Transition,
    commuting_pairs,
    decode,
    equals,
    fresh_state,
    transition_relation,
    transitions,
    values_of,
)
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.symbolic import BREAKS, LEMMAS

BOUNDS = dict(brokers=3, replication=3, min_insync=1, max_log=2, max_epoch=3)


def _config(bugs: tuple[str, ...] = (), durable: bool = True) -> Config:
    return Config(bugs=frozenset(bugs), durable=durable, **BOUNDS)  # type: ignore[arg-type]


def _z3_successors(state: State, config: Config) -> set[State]:
    before, after = fresh_state(config, "a"), fresh_state(config, "b")
    relation, _, _ = transition_relation(before, after, "choice")
    solver = z3.Solver()
    solver.add(equals(before, state), relation)
    found: set[State] = set()
    while solver.check() == z3.sat:
        successor = decode(after, solver.model())
        found.add(successor)
        solver.add(z3.Not(equals(after, successor)))
    return found


def _model_successors(state: State, config: Config) -> set[State]:
    return {step(state, action, config) for action in enabled(state, config)}


def _random_walk_states(config: Config, seed: int, count: int, length: int) -> list[State]:
    rng = random.Random(seed)
    states: list[State] = []
    for _ in range(count):
        state = initial_state(config)
        for _ in range(rng.randrange(length)):
            actions = list(enabled(state, config))
            if not actions:
                break
            state = step(state, rng.choice(actions), config)
        states.append(state)
    return states


@pytest.mark.parametrize("durable", [True, False])
@pytest.mark.parametrize("bugs", [(), *[(b,) for b in sorted(ENCODED_VARIANTS)]])
def test_z3_and_model_allow_the_same_transitions(bugs: tuple[str, ...], durable: bool) -> None:
    config = _config(bugs, durable)
    for state in _random_walk_states(config, seed=len(bugs[0]) if bugs else 7, count=15, length=30):
        assert _z3_successors(state, config) == _model_successors(state, config), state


def test_retention_and_controller_failover_transitions_agree() -> None:
    config = Config(
        brokers=2,
        replication=2,
        min_insync=1,
        max_log=2,
        max_epoch=2,
        durable=False,
        explore_retention=True,
        explore_controller=True,
    )
    for state in _random_walk_states(config, seed=3, count=8, length=30):
        assert _z3_successors(state, config) == _model_successors(state, config), state


def test_a_state_round_trips_through_its_values() -> None:
    config = _config(("truncate-to-hw",))
    for state in _random_walk_states(config, seed=5, count=10, length=20):
        sym = fresh_state(config, "x")
        solver = z3.Solver()
        solver.add(equals(sym, state))
        assert solver.check() == z3.sat
        assert decode(sym, solver.model()) == state


def test_states_outside_the_encoding_are_refused() -> None:
    config = _config()
    start = initial_state(config)
    part = start.partitions[0]
    odd = part.with_replica(Replica(broker=1, log=(Record(7, 0),), flushed=1))
    with pytest.raises(ValueError, match="epoch\\*100\\+offset"):
        values_of(State((odd,), start.running, 0, 1), config)


# -- property formulas against their Python predicates ---------------------------------------

BROKERS = (0, 1, 2)


@st.composite
def replicas(draw: st.DrawFn, broker: int) -> Replica:
    epochs = sorted(draw(st.lists(st.integers(0, 3), max_size=2)))
    log = tuple(Record(e * 100 + o, e) for o, e in enumerate(epochs))
    hw = draw(st.integers(0, len(log)))
    role = draw(st.sampled_from(list(Role)))
    epoch = -1 if role is Role.UNKNOWN else draw(st.integers(0, 3))
    leader = None if role is Role.UNKNOWN else draw(st.sampled_from(BROKERS))
    isr = frozenset(draw(st.sets(st.sampled_from(BROKERS))))
    return Replica(broker, log, 0, hw, len(log), hw, epoch, role, leader, isr)


@st.composite
def states(draw: st.DrawFn) -> State:
    members = tuple(draw(replicas(b)) for b in BROKERS)
    leader = draw(st.sampled_from([None, *BROKERS]))
    isr = frozenset(draw(st.sets(st.sampled_from(BROKERS), min_size=1)))
    part = Partition(leader, draw(st.integers(0, 3)), isr, members)
    running = frozenset(draw(st.sets(st.sampled_from(BROKERS))))
    return State((part,), running, 0, 1)


def _holds(formula: z3.ExprRef, sym: SymState, state: State) -> bool:
    pairs = [
        (sym.vars[name], _constant(sym.vars[name], value))
        for name, value in values_of(state, sym.config).items()
    ]
    return bool(z3.is_true(z3.simplify(z3.substitute(formula, *pairs))))


def _constant(var: z3.ExprRef, value: int | bool) -> z3.ExprRef:
    if isinstance(value, bool):
        return z3.BoolVal(value)
    if z3.is_bv(var):
        return z3.BitVecVal(value, var.size())
    return z3.IntVal(value)


SYM = fresh_state(_config(), "h")
FORMULAS = {name: breaks(SYM) for name, breaks in BREAKS.items()}


@settings(max_examples=300, deadline=None)
@given(states())
def test_each_formula_agrees_with_its_python_predicate(state: State) -> None:
    config = _config()
    for name, formula in FORMULAS.items():
        assert _holds(formula, SYM, state) == bool(STATE_PROPERTIES[name](state, config)), name


def test_lemmas_hold_on_reachable_states() -> None:
    config = Config(brokers=2, replication=2, min_insync=1, max_log=2, max_epoch=2, durable=True)
    sym = fresh_state(config, "l")
    lemmas = z3.And([lemma(sym) for lemma in LEMMAS.values()])
    checked = 0

    def broken(state: State) -> bool:
        nonlocal checked
        checked += 1
        return not _holds(lemmas, sym, state) if checked % 7 == 0 else False

    assert explore(config, broken).counterexample is None
    assert checked > 1000


def test_commuting_instances_commute_on_reachable_states() -> None:
    """The partial-order reduction of BMC relies on this: either order, same state."""
    config = _config(("no-fetch-epoch-fencing",))
    sym = fresh_state(config, "c")
    instances = transitions(sym)
    pairs = commuting_pairs(sym, instances)
    assert pairs and len(pairs) < len(instances) * (len(instances) - 1) // 2
    checked = 0
    for state in _random_walk_states(config, seed=11, count=6, length=25):
        values = _constants(sym, state)
        for i, j in pairs:
            first, second = instances[i], instances[j]
            if not (_eval(sym, first.guard, values) and _eval(sym, second.guard, values)):
                continue
            after_first = _apply(sym, first, values)
            after_second = _apply(sym, second, values)
            assert _eval(sym, second.guard, after_first) and _eval(sym, first.guard, after_second)
            one_way, other_way = _apply(sym, second, after_first), _apply(sym, first, after_second)
            assert {n: v.sexpr() for n, v in one_way.items()} == {
                n: v.sexpr() for n, v in other_way.items()
            }
            checked += 1
    assert checked > 50


def _constants(sym: SymState, state: State) -> dict[str, z3.ExprRef]:
    return {n: _constant(sym.vars[n], v) for n, v in values_of(state, sym.config).items()}


def _substitute(sym: SymState, term: z3.ExprRef, values: dict[str, z3.ExprRef]) -> z3.ExprRef:
    return z3.simplify(z3.substitute(term, *[(sym.vars[n], v) for n, v in values.items()]))


def _eval(sym: SymState, term: z3.ExprRef, values: dict[str, z3.ExprRef]) -> bool:
    return bool(z3.is_true(_substitute(sym, term, values)))


def _apply(
    sym: SymState, instance: Transition, values: dict[str, z3.ExprRef]
) -> dict[str, z3.ExprRef]:
    changed = {n: _substitute(sym, e, values) for n, e in instance.updates.items()}
    return {**values, **changed}
