"""The Z3 group encoding against the executable group model: same transitions, same verdicts."""

from __future__ import annotations

from dataclasses import replace

import pytest
import z3
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_verify.model import variants
from kafka_verify.model.actions import Crash
from kafka_verify.model.groups import (
    CommitOffset,
    CompleteRebalance,
    CoordinatorFailover,
    DeleteGroup,
    ExpireMember,
    GroupState,
    JoinGroup,
    LeaveGroup,
    MemberView,
    Phase,
    SyncAssignment,
    member_ids,
)
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import enabled, step
from kafka_verify.model.symbolic_groups import (
    SymGroups,
    concrete_action,
    decode,
    equals,
    fresh_groups,
    transition_relation,
    values_of,
)
from kafka_verify.properties.prove_groups import PYTHON_STATE, PYTHON_STEP, group_config
from kafka_verify.properties.symbolic_groups import STATE_BREAKS, STEP_BREAKS

CONFIG = group_config()
# Larger than the default bounds, and with three consumers so leaders and owners vary more.
WIDE = group_config(members=3, partitions=2, generations=3, max_offset=2)
BUGGY = (
    frozenset(),
    frozenset({variants.ZOMBIE_COMMIT}),
    frozenset({variants.DOUBLE_ASSIGNMENT}),
)


# -- random concrete group states, anywhere in the encoding's domain ----------------------------


@st.composite
def group_states(draw: st.DrawFn, config: Config) -> State:
    ids = member_ids(config)
    partitions = range(config.group_partitions)
    subset = st.frozensets(st.sampled_from(ids))
    viewed = draw(st.lists(st.sampled_from(ids), unique=True))
    views = tuple(
        MemberView(
            member,
            draw(st.integers(-1, config.group_generations)),
            draw(st.frozensets(st.sampled_from(list(partitions)))),
        )
        for member in sorted(viewed)
    )
    owners = draw(
        st.lists(
            st.sampled_from(ids), min_size=config.group_partitions, max_size=config.group_partitions
        )
    )
    assigned = draw(st.frozensets(st.sampled_from(list(partitions))))
    offsets = draw(
        st.dictionaries(st.sampled_from(list(partitions)), st.integers(0, config.group_max_offset))
    )
    group = GroupState(
        group="g0",
        phase=draw(st.sampled_from(list(Phase))),
        generation=draw(st.integers(0, config.group_generations)),
        members=draw(subset),
        joined=draw(subset),
        leader=draw(st.none() | st.sampled_from(ids)),
        assignment=tuple((p, owners[p]) for p in sorted(assigned)),
        committed=tuple(sorted(offsets.items())),
        views=views,
    )
    return replace(initial_state(config), groups=(group,))


@st.composite
def any_actions(draw: st.DrawFn, config: Config) -> object:
    ids = (*member_ids(config), "zz")
    group = draw(st.sampled_from(["g0", "g9"]))
    member = draw(st.sampled_from(ids))
    generation = draw(st.integers(-1, config.group_generations + 2))
    partition = draw(st.integers(0, config.group_partitions + 1))
    offset = draw(st.integers(0, config.group_max_offset + 2))
    return draw(
        st.sampled_from(
            [
                JoinGroup(group, member),
                CompleteRebalance(group, member),
                SyncAssignment(group, member, generation, ((0, member),)),
                ExpireMember(group, member),
                LeaveGroup(group, member),
                CommitOffset(group, member, generation, partition, offset),
                CoordinatorFailover(group),
                DeleteGroup(group),
                Crash(0),
            ]
        )
    )


def _holds(formula: z3.ExprRef, *facts: z3.ExprRef) -> bool:
    solver = z3.Solver()
    solver.add(*facts)
    return bool(solver.check(formula) == z3.sat)


# -- concrete <-> symbolic ------------------------------------------------------------------------


@settings(max_examples=200, deadline=None)
@given(group_states(WIDE))
def test_decode_inverts_values_of(state: State) -> None:
    sym = fresh_groups(WIDE, "x")
    solver = z3.Solver()
    solver.add(equals(sym, state))
    assert solver.check() == z3.sat
    assert decode(sym, solver.model(), initial_state(WIDE)) == state


def test_values_of_refuses_what_the_encoding_cannot_hold() -> None:
    start = initial_state(CONFIG)
    outside = [
        GroupState("g0", members=frozenset({"someone"})),
        GroupState("g0", generation=CONFIG.group_generations + 1),
        GroupState("g0", committed=((5, 1),)),
        GroupState("g0", committed=((0, CONFIG.group_max_offset + 1),)),
        GroupState("g0", views=(MemberView("c0", 1, frozenset({7})),)),
        GroupState("g1"),
    ]
    for group in outside:
        with pytest.raises(ValueError):
            values_of(replace(start, groups=(group,)), CONFIG)


# -- the transition relation --------------------------------------------------------------------


def _z3_successors(state: State, config: Config) -> set[State]:
    before, after = fresh_groups(config, "a"), fresh_groups(config, "b")
    relation, _, _, _ = transition_relation(before, after, "choice")
    solver = z3.Solver()
    solver.add(equals(before, state), relation)
    found: set[State] = set()
    while solver.check() == z3.sat:
        successor = decode(after, solver.model(), state)
        found.add(successor)
        solver.add(z3.Not(equals(after, successor)))
    return found


def _model_successors(state: State, config: Config) -> set[State]:
    return {step(state, action, config) for action in enabled(state, config)}


@pytest.mark.parametrize("bugs", BUGGY, ids=lambda b: ",".join(b) or "correct")
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_z3_allows_exactly_the_transitions_step_allows(
    bugs: frozenset[str], data: st.DataObject
) -> None:
    config = replace(WIDE, bugs=bugs)
    state = data.draw(group_states(config))
    assert _z3_successors(state, config) == _model_successors(state, config)


def test_the_relation_matches_on_every_reachable_state_of_a_small_config() -> None:
    small = group_config(partitions=1, generations=2)
    seen, frontier = {initial_state(small)}, [initial_state(small)]
    while frontier:
        state = frontier.pop()
        successors = _model_successors(state, small)
        assert _z3_successors(state, small) == successors
        for successor in successors - seen:
            seen.add(successor)
            frontier.append(successor)
    assert len(seen) > 50


# -- formulas against predicates ----------------------------------------------------------------


@pytest.mark.parametrize("name", list(STATE_BREAKS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_state_formula_agrees_with_its_predicate(name: str, data: st.DataObject) -> None:
    state = data.draw(group_states(WIDE))
    sym = fresh_groups(WIDE, "s")
    breaks = _holds(STATE_BREAKS[name](sym), equals(sym, state))
    assert breaks == bool(PYTHON_STATE[name](state, WIDE))


@pytest.mark.parametrize("name", list(STEP_BREAKS))
@settings(max_examples=300, deadline=None)
@given(data=st.data())
def test_step_formula_agrees_with_its_predicate(name: str, data: st.DataObject) -> None:
    before = data.draw(group_states(WIDE))
    # Half the time the step is one the model takes, else any pair of states.
    successors = sorted(_model_successors(before, WIDE), key=repr)
    pool = st.sampled_from(successors) if successors else group_states(WIDE)
    after = data.draw(pool | group_states(WIDE))
    action = data.draw(any_actions(WIDE))
    s, t = fresh_groups(WIDE, "s"), fresh_groups(WIDE, "t")
    formula = STEP_BREAKS[name](s, concrete_action(action, WIDE), t)
    breaks = _holds(formula, equals(s, before), equals(t, after))
    assert breaks == bool(PYTHON_STEP[name](before, action, after))


def _stable(config: Config) -> State:
    state = initial_state(config)
    for action in (
        JoinGroup("g0", "c0"),
        JoinGroup("g0", "c1"),
        CompleteRebalance("g0", "c0"),
        SyncAssignment("g0", "c0", 1, ((0, "c0"), (1, "c1"))),
    ):
        state = step(state, action, config)
    return state


def _with(state: State, **changes: object) -> State:
    return replace(state, groups=(replace(state.groups[0], **changes),))


def _state_breaks(name: str, state: State) -> bool:
    sym = fresh_groups(CONFIG, "s")
    return _holds(STATE_BREAKS[name](sym), equals(sym, state))


def _step_breaks(name: str, before: State, action: object, after: State) -> bool:
    s, t = fresh_groups(CONFIG, "s"), fresh_groups(CONFIG, "t")
    formula = STEP_BREAKS[name](s, concrete_action(action, CONFIG), t)
    return _holds(formula, equals(s, before), equals(t, after))


def test_each_formula_reports_a_planted_violation_and_passes_the_clean_case() -> None:
    stable = _stable(CONFIG)
    g = stable.groups[0]
    double = _with(stable, views=(MemberView("c0", 1, frozenset({0, 1})), g.views[1]))
    unassigned = _with(stable, assignment=((0, "c0"),))
    commit = CommitOffset("g0", "c0", 1, 0, 1)
    committed = step(stable, commit, CONFIG)
    lost = _with(committed, committed=())
    older = _with(stable, generation=0)
    planted = [
        (
            "single-member-per-partition",
            lambda: _state_breaks("single-member-per-partition", double),
        ),
        (
            "complete-assignment-when-stable",
            lambda: _state_breaks("complete-assignment-when-stable", unassigned),
        ),
        (
            "committed-offsets-durable",
            lambda: _step_breaks(
                "committed-offsets-durable", committed, CoordinatorFailover("g0"), lost
            ),
        ),
        (
            "no-stale-generation-commit",
            lambda: _step_breaks(
                "no-stale-generation-commit", stable, CommitOffset("g0", "c0", 0, 0, 1), committed
            ),
        ),
        (
            "generation-monotonic",
            lambda: _step_breaks("generation-monotonic", stable, CoordinatorFailover("g0"), older),
        ),
    ]
    for name, breaks in planted:
        assert breaks(), name
    for name in STATE_BREAKS:
        assert not _state_breaks(name, stable)
    for name in STEP_BREAKS:
        assert not _step_breaks(name, stable, commit, committed)


def test_sym_groups_has_one_variable_per_name() -> None:
    sym: SymGroups = fresh_groups(WIDE, "v")
    assert len(set(map(str, sym.vars.values()))) == len(sym.vars)
