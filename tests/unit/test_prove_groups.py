"""The group prover: proofs of the correct model, shortest counterexamples of the group variants."""

from __future__ import annotations

import time

import pytest
import z3
from kafka_verify.model import variants
from kafka_verify.model.groups import Phase
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import NotAllowed, step
from kafka_verify.model.symbolic_groups import STABLE, SymGroups
from kafka_verify.properties import prove_groups
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.prove import BOUNDED, PROVED, VIOLATED
from kafka_verify.properties.prove_groups import (
    group_config,
    prove_all_groups,
    prove_group,
    proved_lemmas,
    python_violations,
    shortest_violation,
)
from kafka_verify.properties.symbolic_groups import LEMMAS, PROPERTY_NAMES, STATE_BREAKS

VARIANTS = [
    (variants.ZOMBIE_COMMIT, "no-stale-generation-commit"),
    (variants.DOUBLE_ASSIGNMENT, "single-member-per-partition"),
]


def test_the_correct_group_model_is_proved_by_induction() -> None:
    started = time.perf_counter()
    results = prove_all_groups(group_config())
    assert [r.property for r in results] == list(PROPERTY_NAMES)
    assert all(r.status == PROVED for r in results), results
    assert time.perf_counter() - started < 20


def test_the_correct_group_model_has_no_violation_within_12_steps() -> None:
    # Induction switched off: plain BMC over every path of up to 12 actions.
    for name in PROPERTY_NAMES:
        result = prove_group(name, group_config(), depth=12, induction_k=0)
        assert (result.status, result.depth) == (BOUNDED, 12), result
    assert all(shortest_violation(n, group_config(), max_depth=12) is None for n in PROPERTY_NAMES)


def test_all_lemmas_hold_in_the_correct_model_and_ownership_fails_under_double_assignment() -> None:
    deadline = time.perf_counter() + 60
    assert len(proved_lemmas(group_config(), deadline)) == len(LEMMAS)
    zombie = group_config(frozenset({variants.ZOMBIE_COMMIT}))
    assert len(proved_lemmas(zombie, deadline)) == len(LEMMAS)
    double = group_config(frozenset({variants.DOUBLE_ASSIGNMENT}))
    assert proved_lemmas(double, deadline) == [LEMMAS["well-formed"]]


def _replay(actions: tuple[object, ...], config: Config) -> tuple[State, object, State]:
    before = after = initial_state(config)
    for action in actions:
        before, after = after, step(after, action, config)  # type: ignore[arg-type]
    return before, actions[-1], after


@pytest.mark.parametrize(("bug", "name"), VARIANTS)
def test_each_group_variant_is_found_at_the_bfs_minimal_depth_and_replays(
    bug: str, name: str
) -> None:
    config = group_config(frozenset({bug}))
    result = prove_group(name, config)
    assert result.status == VIOLATED
    shortest = shortest_violation(name, config)
    assert shortest is not None
    assert result.depth == len(result.actions) == len(shortest) == 7
    before, action, after = _replay(result.actions, config)
    violations = python_violations(name, before, action, after, config)
    assert violations and violations[0].property == name
    assert result.message == violations[0].message
    # The correct model refuses the run, or takes it without breaking the property.
    try:
        before, action, after = _replay(result.actions, group_config())
    except NotAllowed:
        return
    assert python_violations(name, before, action, after, group_config()) == []


@pytest.mark.parametrize(("bug", "name"), VARIANTS)
def test_a_group_variant_breaks_only_its_own_property(bug: str, name: str) -> None:
    results = prove_all_groups(group_config(frozenset({bug})))
    broken = [r.property for r in results if r.status == VIOLATED]
    assert broken == [name]
    assert all(r.status == PROVED for r in results if r.property != name)


def _stable_in_generation_3(s: SymGroups) -> z3.ExprRef:
    return z3.And(s.phase(0) == STABLE, s.generation(0) == 3)


def _python_stable_in_generation_3(state: State, config: Config) -> list[Violation]:
    g = state.groups[0]
    if g.phase is Phase.STABLE and g.generation == 3:
        return [Violation("stable-in-generation-3", "reached")]
    return []


def test_bmc_depth_equals_bfs_depth_for_a_reachable_target(monkeypatch: pytest.MonkeyPatch) -> None:
    # Non-vacuity of the engine: a target that is reachable is found, at its shortest depth.
    name = "stable-in-generation-3"
    monkeypatch.setitem(STATE_BREAKS, name, _stable_in_generation_3)
    monkeypatch.setitem(prove_groups.PYTHON_STATE, name, _python_stable_in_generation_3)
    monkeypatch.setattr(prove_groups, "PROPERTY_NAMES", (*PROPERTY_NAMES, name))
    result = prove_group(name, group_config(), induction_k=0)
    shortest = shortest_violation(name, group_config())
    assert shortest is not None
    assert result.status == VIOLATED
    assert result.depth == len(shortest) == 7
