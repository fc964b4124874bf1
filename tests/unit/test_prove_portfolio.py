"""The prover's portfolio: explicit search and Z3 side by side, the first definitive answer wins."""

from __future__ import annotations

import argparse
import json
import multiprocessing
from pathlib import Path

import pytest
from kafka_verify.harness.prove_cli import add_prove_arguments, run_prove
from kafka_verify.model.state import Config, initial_state
from kafka_verify.model.step import enabled, step
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.prove import (
    BOUNDED,
    PROVED,
    UNKNOWN,
    VIOLATED,
    EncodingMismatch,
    default_config,
    known_invariant,
    remember_invariant,
)
from kafka_verify.properties.prove_explicit import search
from kafka_verify.properties.prove_portfolio import (
    ENGINES,
    action_indices,
    portfolio,
    replay_indices,
)

TRUNCATE_TO_HW = default_config(frozenset({"truncate-to-hw"}))
# Small enough for the explicit search to visit every reachable state (about 2 s).
THREE = Config(brokers=3, replication=3, min_insync=2, max_log=1, max_epoch=1, durable=True)


def _violates(config: Config, name: str, actions: tuple[object, ...]) -> bool:
    state = initial_state(config)
    for action in actions:
        state = step(state, action, config)  # type: ignore[arg-type]
    return bool(STATE_PROPERTIES[name](state, config))


@pytest.mark.parametrize("engines", [ENGINES, ("layered",), ("bfs",), ("bmc",)])
def test_every_engine_finds_the_same_minimal_counterexample_depth(engines: tuple[str, ...]) -> None:
    result = portfolio("log-agreement", TRUNCATE_TO_HW, depth=8, timeout_s=120, engines=engines)
    assert (result.status, result.depth, len(result.actions)) == (VIOLATED, 7, 7)
    assert result.engine in engines and result.notes[0].startswith("minimal:")
    assert _violates(TRUNCATE_TO_HW, "log-agreement", result.actions)
    assert multiprocessing.active_children() == []


def test_the_explicit_engine_proves_by_visiting_every_state_and_bounds_by_depth() -> None:
    proved = search("log-agreement", THREE)
    assert (proved.status, proved.engine, proved.depth) == (PROVED, "bfs", 24)
    assert "28319 states" in proved.notes[0]
    bounded = search("log-agreement", THREE, depth=5)
    assert (bounded.status, bounded.depth) == (BOUNDED, 5)
    capped = search("log-agreement", THREE, max_states=50)
    assert capped.status == UNKNOWN and "cap" in capped.message


def test_the_portfolio_takes_a_proof_from_induction_and_keeps_the_invariant() -> None:
    config = default_config(max_epoch=2)  # bounds no other test proves in this process
    assert known_invariant(config) is None
    result = portfolio("leader-in-isr", config, depth=14, timeout_s=120)
    assert (result.status, result.engine) == (PROVED, "bmc")
    assert multiprocessing.active_children() == []
    # The engines started for the next property begin with it.
    invariant = known_invariant(config)
    assert invariant is not None and invariant.closed and "leader-in-isr" in invariant.names


def test_an_invariant_from_another_process_names_only_candidates() -> None:
    with pytest.raises(ValueError, match="not candidate invariants"):
        remember_invariant(default_config(max_epoch=1), ["leader-in-isr", "nope"], [])


def test_out_of_time_is_unknown_and_stops_every_engine() -> None:
    # hw-within-isr holds to depth 14 under this variant, and no engine gets there in 2.5 s.
    config = default_config(frozenset({"no-fetch-epoch-fencing"}))
    result = portfolio("hw-within-isr", config, depth=30, timeout_s=0.5)
    assert result.status == UNKNOWN
    assert multiprocessing.active_children() == []


def test_a_path_travels_as_indices_and_a_bad_index_is_refused() -> None:
    found = search("log-agreement", TRUNCATE_TO_HW)
    indices = action_indices(found.actions, TRUNCATE_TO_HW)
    assert replay_indices(indices, TRUNCATE_TO_HW) == found.actions
    offered = len(list(enabled(initial_state(TRUNCATE_TO_HW), TRUNCATE_TO_HW)))
    with pytest.raises(EncodingMismatch, match=f"names action {offered} of {offered}"):
        replay_indices([offered], TRUNCATE_TO_HW)


def _args(tmp_path: Path, *flags: str) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_prove_arguments(parser)
    return parser.parse_args([*flags, "--reports", str(tmp_path / "reports")])


@pytest.mark.parametrize("engine", ["portfolio", "layered", "bfs", "bmc"])
def test_cli_names_the_engine_that_answered(tmp_path: Path, engine: str) -> None:
    out = tmp_path / "out.json"
    flags = ("--bug", "truncate-to-hw", "--property", "log-agreement", "--depth", "8")
    assert run_prove(_args(tmp_path, *flags, "--engine", engine, "--json", str(out))) == 1
    (entry,) = json.loads(out.read_text())["results"]
    assert (entry["status"], entry["depth"]) == ("violated", 7)
    assert entry["engine"] in (ENGINES if engine == "portfolio" else (engine,))
    assert set(entry) == {"property", "status", "depth", "seconds", "trace", "engine"}


@pytest.mark.slow
@pytest.mark.parametrize(
    ("bug", "depth"), [("epoch-end-offset-hole", 10), ("no-fetch-epoch-fencing", 13)]
)
def test_the_portfolio_finds_the_deep_variants_at_their_minimal_depth(bug: str, depth: int) -> None:
    config = default_config(frozenset({bug}))
    result = portfolio("log-agreement", config, depth=14, timeout_s=600)
    assert (result.status, result.depth) == (VIOLATED, depth)
    assert _violates(config, "log-agreement", result.actions)
