"""BMC and k-induction: statuses, shortest counterexamples that replay, and the prove command."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest
import z3
from kafka_verify.harness.prove_cli import add_prove_arguments, run_prove
from kafka_verify.harness.trace import load_trace
from kafka_verify.model.explore import explore
from kafka_verify.model.state import Config, initial_state
from kafka_verify.model.step import step
from kafka_verify.model.symbolic import SymState, fresh_state, initial, transition_relation
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.prove import (
    BOUNDED,
    PROVED,
    UNKNOWN,
    VIOLATED,
    default_config,
    inductive_invariant,
    prove,
)
from kafka_verify.properties.symbolic import BREAKS, LEMMAS


def _bfs_depth(config: Config, name: str) -> int:
    found = explore(config, lambda s: bool(STATE_PROPERTIES[name](s, config)))
    assert found.counterexample is not None
    return found.counterexample.depth


def _assert_replays(config: Config, name: str, actions: tuple[object, ...]) -> None:
    state = initial_state(config)
    for action in actions:
        state = step(state, action, config)  # type: ignore[arg-type]
    assert STATE_PROPERTIES[name](state, config)


@pytest.mark.parametrize(
    ("bug", "name", "depth"),
    [
        ("truncate-to-hw", "log-agreement", 7),
        ("unclean-election", "log-agreement", 5),
        ("hw-ahead-of-isr", "log-agreement", 4),
        ("hw-ahead-of-isr", "hw-within-isr", 4),
        ("stale-leader-accepts-writes", "leader-in-isr", 2),
    ],
)
def test_counterexample_is_shortest_and_replays(bug: str, name: str, depth: int) -> None:
    config = default_config(frozenset({bug}))
    result = prove(name, config, depth=8)
    assert result.status == VIOLATED
    assert result.depth == len(result.actions) == depth == _bfs_depth(config, name)
    _assert_replays(config, name, result.actions)
    assert (
        result.message == STATE_PROPERTIES[name](_final(config, result.actions), config)[0].message
    )


def _final(config: Config, actions: tuple[object, ...]) -> object:
    state = initial_state(config)
    for action in actions:
        state = step(state, action, config)  # type: ignore[arg-type]
    return state


@pytest.mark.slow
def test_epoch_end_offset_hole_is_found_at_depth_ten() -> None:
    config = default_config(frozenset({"epoch-end-offset-hole"}))
    result = prove("log-agreement", config, depth=12)
    assert result.status == VIOLATED and result.depth == 10 == _bfs_depth(config, "log-agreement")
    _assert_replays(config, "log-agreement", result.actions)


@pytest.mark.parametrize(
    "name", ["log-agreement", "hw-within-isr", "single-leader-per-epoch", "leader-in-isr"]
)
def test_correct_model_properties_are_proved_by_induction(name: str) -> None:
    result = prove(name, default_config())
    assert (result.status, result.depth) == (PROVED, 1)
    assert "1-inductive" in result.notes[0]


def test_the_strengthened_conjunction_is_inductive_on_the_correct_model() -> None:
    invariant = inductive_invariant(default_config(), time.perf_counter() + 120)
    assert invariant.closed and invariant.dropped == ()
    assert set(invariant.names) == {f"lemma {n}" for n in LEMMAS} | set(BREAKS)
    # Checked independently of the Houdini loop: one query over the whole relation.
    assert _conjunction_is_inductive(default_config(), invariant.names)


def _conjunction_is_inductive(config: Config, names: tuple[str, ...]) -> bool:
    before, after = fresh_state(config, "t0"), fresh_state(config, "t1")

    def conjunction(s: SymState) -> z3.ExprRef:
        parts = [LEMMAS[n.removeprefix("lemma ")](s) for n in names if n.startswith("lemma ")]
        parts += [z3.Not(BREAKS[n](s)) for n in names if n in BREAKS]
        return z3.And(parts)

    relation, _, _ = transition_relation(before, after, "tchoice")
    initially = z3.Solver()
    initially.add(initial(before, initial_state(config)), z3.Not(conjunction(before)))
    step_ = z3.Then("simplify", "bit-blast", "sat").solver()
    step_.add(conjunction(before), relation, z3.Not(conjunction(after)))
    return bool(initially.check() == z3.unsat and step_.check() == z3.unsat)


def test_every_lemma_is_needed_for_log_agreement() -> None:
    config = default_config()
    everything = inductive_invariant(config, time.perf_counter() + 120).names
    for lemma in ("lemma log-matching", "lemma stale-leader-blocked", "lemma in-step-prefix"):
        assert not _conjunction_is_inductive(config, tuple(n for n in everything if n != lemma))


def test_a_variant_drops_the_lemmas_it_breaks_and_keeps_the_rest() -> None:
    invariant = inductive_invariant(
        default_config(frozenset({"truncate-to-hw"})), time.perf_counter() + 120
    )
    assert invariant.closed
    assert "log-agreement" in invariant.dropped and "lemma log-matching" in invariant.dropped
    assert {"single-leader-per-epoch", "leader-in-isr"} <= set(invariant.names)


def test_induction_failing_leaves_a_bounded_result() -> None:
    # truncate-to-hw breaks hw-within-isr at depth 7, so nothing shows within 4.
    result = prove("hw-within-isr", default_config(frozenset({"truncate-to-hw"})), depth=4)
    assert (result.status, result.depth) == (BOUNDED, 4)
    assert result.notes


def test_a_timeout_is_unknown_never_a_pass() -> None:
    config = default_config(frozenset({"epoch-end-offset-hole"}))
    result = prove("log-agreement", config, depth=12, timeout_s=0.5)
    assert result.status == UNKNOWN
    assert "gave up" in result.message


@pytest.mark.slow
def test_no_fetch_epoch_fencing_is_found_at_the_default_depth() -> None:
    config = default_config(frozenset({"no-fetch-epoch-fencing"}))
    result = prove("log-agreement", config)
    assert result.status == VIOLATED and result.depth == 13
    _assert_replays(config, "log-agreement", result.actions)


def _args(tmp_path: Path, *flags: str) -> object:
    import argparse

    parser = argparse.ArgumentParser()
    add_prove_arguments(parser)
    return parser.parse_args([*flags, "--reports", str(tmp_path / "reports")])


def test_cli_writes_a_replayable_trace_and_exits_1(tmp_path: Path) -> None:
    out = tmp_path / "out.json"
    args = _args(
        tmp_path,
        "--bug",
        "truncate-to-hw",
        "--property",
        "log-agreement",
        "--depth",
        "8",
        "--json",
        str(out),
    )
    assert run_prove(args) == 1  # type: ignore[arg-type]
    (entry,) = json.loads(out.read_text())["results"]
    assert (entry["property"], entry["status"], entry["depth"]) == ("log-agreement", "violated", 7)
    trace = load_trace(entry["trace"])
    assert trace.engine == "model" and len(trace.items) == 7
    assert trace.violation is not None and trace.violation["property"] == "log-agreement"
    _assert_replays(trace.config, "log-agreement", trace.items)


def test_cli_exits_0_when_nothing_is_violated(tmp_path: Path) -> None:
    args = _args(tmp_path, "--property", "leader-in-isr", "--json", str(tmp_path / "o.json"))
    assert run_prove(args) == 0  # type: ignore[arg-type]
    (entry,) = json.loads((tmp_path / "o.json").read_text())["results"]
    assert entry["status"] == "proved" and entry["trace"] is None


@pytest.mark.parametrize(
    ("flags", "says"),
    [
        (("--property", "nope"), "unknown property 'nope'"),
        (("--bug", "nope"), "unknown protocol bug"),
        (("--bug", "retention-deletes-unreplicated"), "does not encode"),
        (("--depth", "-1"), "--depth"),
        (("--brokers", "1"), "--brokers must be between 2 and 6"),
        (("--log-size", "0"), "--log-size must be between 1 and 6"),
        (("--epochs", "9"), "--epochs must be between 1 and 7"),
        (("--engine", "bfs", "--property", "generation-monotonic"), "is a group property"),
    ],
)
def test_cli_bad_input_exits_2_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], says: str
) -> None:
    assert run_prove(_args(tmp_path, *flags)) == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
