"""The table of shortest model counterexamples is what breadth-first search finds.

`kafka-verify mutants` reads `KNOWN_MINIMAL` instead of searching (the deepest
search takes minutes); these tests recompute each entry at the bounds the table
records. The deep ones run only when KAFKA_VERIFY_SLOW is set.
"""

from __future__ import annotations

import os

import pytest
from kafka_verify.impl.bugs import BUGS
from kafka_verify.model import variants
from kafka_verify.model.actions import Action
from kafka_verify.model.minimal import (
    KNOWN_MINIMAL,
    minimal_counterexample_length,
    shortest_violation_depth,
)
from kafka_verify.model.state import Config, State
from kafka_verify.properties.groups import check_group_step
from kafka_verify.properties.incremental import check_step

# Minutes and tens of seconds; epoch-end-offset-hole's depth is also pinned in test_prove.py.
SLOW = {variants.NO_FETCH_EPOCH_FENCING, variants.EPOCH_END_OFFSET_HOLE}


def breaks_a_property(config: Config) -> object:
    def violates(before: State, action: Action, after: State) -> bool:
        return bool(
            check_step(before, action, after, config)
            or check_group_step(before, action, after, config)
        )

    return violates


def recompute(bug: str) -> int | None:
    config = KNOWN_MINIMAL[bug].config(bug)
    return shortest_violation_depth(config, breaks_a_property(config))  # type: ignore[arg-type]


@pytest.mark.parametrize("bug", sorted(set(KNOWN_MINIMAL) - SLOW))
def test_known_minimal_length_is_the_breadth_first_depth(bug: str) -> None:
    assert recompute(bug) == minimal_counterexample_length(bug)


@pytest.mark.slow
@pytest.mark.skipif(
    not os.environ.get("KAFKA_VERIFY_SLOW"), reason="20 s to minutes; set KAFKA_VERIFY_SLOW=1"
)
@pytest.mark.parametrize("bug", sorted(SLOW))
def test_deep_minimal_length_is_the_breadth_first_depth(bug: str) -> None:
    assert recompute(bug) == minimal_counterexample_length(bug)


@pytest.mark.parametrize("bug", sorted(set(KNOWN_MINIMAL) - SLOW))
def test_the_search_reduced_by_symmetry_finds_the_same_length(bug: str) -> None:
    config = KNOWN_MINIMAL[bug].config(bug)
    found = shortest_violation_depth(config, breaks_a_property(config), symmetry=True)  # type: ignore[arg-type]
    assert found == minimal_counterexample_length(bug)


@pytest.mark.slow
@pytest.mark.parametrize("bug", sorted(SLOW))
def test_deep_lengths_with_symmetry_reduction(bug: str) -> None:
    config = KNOWN_MINIMAL[bug].config(bug)
    found = shortest_violation_depth(config, breaks_a_property(config), symmetry=True)  # type: ignore[arg-type]
    assert found == minimal_counterexample_length(bug)


def test_the_correct_model_has_no_violation_as_short_as_any_entry() -> None:
    config = KNOWN_MINIMAL[variants.TRUNCATE_TO_HW].bounds
    assert shortest_violation_depth(config, breaks_a_property(config), max_depth=5) is None  # type: ignore[arg-type]


def test_every_entry_is_a_catalogued_bug_and_broker_only_bugs_have_none() -> None:
    assert set(KNOWN_MINIMAL) <= set(variants.PROTOCOL_VARIANTS) <= set(BUGS)
    assert minimal_counterexample_length("duplicate-offset") is None
