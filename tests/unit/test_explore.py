"""Explicit-state search: exact reachable state counts and the exact truncate-to-hw counterexample."""

from __future__ import annotations

import networkx as nx
from kafka_verify.model.actions import (
    Crash,
    FollowerReplicate,
    IncHighWatermark,
    LeaderWrite,
    Restart,
    ShrinkIsr,
    Truncate,
)
from kafka_verify.model.explore import explore, graph_path, state_graph
from kafka_verify.model.state import Config, Record, initial_state
from kafka_verify.model.step import step
from kafka_verify.properties.invariants import log_agreement

TINY = Config(brokers=2, replication=2, min_insync=1, max_log=1, max_epoch=1, durable=True)
SMALL = Config(brokers=2, replication=2, min_insync=1, max_log=2, max_epoch=2, durable=True)
DEFAULT_BOUNDS = dict(brokers=3, replication=3, min_insync=1, max_log=2, max_epoch=3, durable=True)


def test_reachable_state_counts_are_pinned() -> None:
    tiny, small = explore(TINY), explore(SMALL)
    assert (tiny.states, tiny.depth, tiny.complete) == (1240, 16, True)
    assert (small.states, small.depth, small.complete) == (27670, 22, True)
    assert tiny.counterexample is None and small.counterexample is None


def test_non_durable_flushes_add_states() -> None:
    flaky = explore(Config(brokers=2, replication=2, min_insync=1, max_log=1, max_epoch=1))
    assert (flaky.states, flaky.depth, flaky.complete) == (2363, 19, True)


def test_state_cap_reports_an_incomplete_search() -> None:
    capped = explore(SMALL, max_states=100)
    assert capped.states == 100 and not capped.complete


def test_truncate_to_hw_shortest_counterexample_is_pinned() -> None:
    config = Config(bugs=frozenset({"truncate-to-hw"}), **DEFAULT_BOUNDS)  # type: ignore[arg-type]
    found = explore(config, lambda s: bool(log_agreement(s, config)))
    assert found.counterexample is not None
    assert (found.states, found.counterexample.depth) == (16282, 7)
    assert found.counterexample.actions == (
        LeaderWrite(partition=0, broker=0, record_id=0, acks=-1),
        ShrinkIsr(partition=0, broker=0, isr=frozenset({0, 2})),
        FollowerReplicate(partition=0, broker=2, record=Record(id=0, epoch=0)),
        IncHighWatermark(partition=0, broker=0, hw=1),
        Crash(broker=2),
        Restart(broker=2),
        Truncate(partition=0, broker=2, offset=0, complete=True),
    )
    state = initial_state(config)
    for action in found.counterexample.actions:
        state = step(state, action, config)
    assert state == found.counterexample.states[-1]
    assert log_agreement(state, config)


def test_correct_model_has_no_shallow_violation() -> None:
    config = Config(**DEFAULT_BOUNDS)  # type: ignore[arg-type]
    found = explore(config, lambda s: bool(log_agreement(s, config)), max_depth=7)
    assert found.counterexample is None and found.depth == 7


def test_state_graph_matches_the_search_and_answers_paths() -> None:
    graph = state_graph(TINY)
    assert graph.number_of_nodes() == 1240
    start = initial_state(TINY)
    layers = nx.single_source_shortest_path_length(graph, start)
    assert len(layers) == 1240 and max(layers.values()) == 16
    far = max(layers, key=lambda s: (layers[s], repr(s)))
    actions = graph_path(graph, start, far)
    state = start
    for action in actions:
        state = step(state, action, TINY)
    assert state == far and len(actions) == 16
