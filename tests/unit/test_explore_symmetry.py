"""Symmetry reduction in explicit search: the reduced search agrees with the full one.

Agreement means: the same verdict for every state property, the same shortest
counterexample depth, and as many states as there are symmetry classes among
the reachable states (pinned, as the unreduced counts are in test_explore.py).
"""

from __future__ import annotations

import pytest
from kafka_verify.model.actions import Crash
from kafka_verify.model.explore import Canonicalizer, broker_symmetries, explore, state_graph
from kafka_verify.model.state import Config, initial_state
from kafka_verify.model.step import step
from kafka_verify.properties.invariants import STATE_PROPERTIES, log_agreement

# Three interchangeable brokers, one record, one election: the whole space in about 2 s.
THREE = Config(brokers=3, replication=3, min_insync=2, max_log=1, max_epoch=1, durable=True)
DEFAULT_BOUNDS = dict(brokers=3, replication=3, min_insync=1, max_log=2, max_epoch=3, durable=True)


def test_the_symmetries_keep_each_partition_on_its_brokers() -> None:
    assert broker_symmetries(THREE)[0] == (0, 1, 2) and len(broker_symmetries(THREE)) == 6
    # RF 2 of 3: partition 0 lives on brokers 0 and 1, so broker 2 only maps to itself.
    two_of_three = Config(brokers=3, replication=2, min_insync=1)
    assert broker_symmetries(two_of_three) == ((0, 1, 2), (1, 0, 2))
    # Two partitions on {0, 1} and {1, 2}: only the identity keeps both.
    assert broker_symmetries(Config(brokers=3, partitions=2, replication=2, min_insync=1)) == (
        (0, 1, 2),
    )


def test_renamed_states_share_a_key_and_different_ones_do_not() -> None:
    canon = Canonicalizer(THREE)
    start = initial_state(THREE)
    # Broker 1 or broker 2 crashing are the same situation up to renaming them.
    one, two = step(start, Crash(1), THREE), step(start, Crash(2), THREE)
    assert one != two and canon.key(one) == canon.key(two)
    # Crashing the controller (broker 0) is not: nothing renames the controller.
    assert canon.key(step(start, Crash(0), THREE)) != canon.key(one)


def test_reduced_count_is_the_number_of_classes_and_is_pinned() -> None:
    full, reduced = explore(THREE), explore(THREE, symmetry=True)
    assert (full.states, full.depth, full.complete) == (55944, 24, True)
    assert (reduced.states, reduced.depth, reduced.complete) == (28319, 24, True)
    # The controller stays on broker 0, so a class holds at most two reachable states
    # (the renaming of brokers 1 and 2), and a state that renaming fixes is alone.
    canon = Canonicalizer(THREE)
    classes = {canon.key(s) for s in state_graph(THREE, max_states=60_000)}
    assert len(classes) == reduced.states and full.states <= 2 * reduced.states


@pytest.mark.parametrize(
    "bug", ["truncate-to-hw", "unclean-election", "hw-ahead-of-isr", "stale-leader-accepts-writes"]
)
def test_reduced_and_full_search_agree_on_every_property(bug: str) -> None:
    config = Config(
        brokers=3,
        replication=3,
        min_insync=2,
        max_log=1,
        max_epoch=1,
        durable=True,
        bugs=frozenset({bug}),
    )
    for name, prop in STATE_PROPERTIES.items():

        def violates(s: object, prop: object = prop) -> bool:
            return bool(prop(s, config))  # type: ignore[operator]

        full = explore(config, violates, max_depth=8)
        reduced = explore(config, violates, max_depth=8, symmetry=True)
        full_depth = None if full.counterexample is None else full.counterexample.depth
        reduced_depth = None if reduced.counterexample is None else reduced.counterexample.depth
        assert full_depth == reduced_depth, name
        assert reduced.states < full.states, name
        if reduced.counterexample is not None:
            _assert_replays_to_a_violation(config, reduced.counterexample.actions, name)


def _assert_replays_to_a_violation(config: Config, actions: tuple[object, ...], name: str) -> None:
    state = initial_state(config)
    for action in actions:
        state = step(state, action, config)  # type: ignore[arg-type]
    assert STATE_PROPERTIES[name](state, config)


def test_reduced_truncate_to_hw_counterexample_is_minimal_and_pinned() -> None:
    config = Config(bugs=frozenset({"truncate-to-hw"}), **DEFAULT_BOUNDS)  # type: ignore[arg-type]
    found = explore(config, lambda s: bool(log_agreement(s, config)), symmetry=True)
    assert found.counterexample is not None
    assert (found.states, found.counterexample.depth) == (8399, 7)
    state = initial_state(config)
    for action in found.counterexample.actions:
        state = step(state, action, config)
    assert state == found.counterexample.states[-1] and log_agreement(state, config)


@pytest.mark.slow
def test_reduced_epoch_end_offset_hole_is_at_depth_ten() -> None:
    config = Config(bugs=frozenset({"epoch-end-offset-hole"}), **DEFAULT_BOUNDS)  # type: ignore[arg-type]
    violates = lambda s: bool(log_agreement(s, config))  # noqa: E731
    full, reduced = explore(config, violates), explore(config, violates, symmetry=True)
    assert full.counterexample is not None and reduced.counterexample is not None
    assert full.counterexample.depth == reduced.counterexample.depth == 10
    assert reduced.states < full.states
