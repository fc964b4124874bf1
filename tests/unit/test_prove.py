"""BMC and k-induction: statuses, shortest counterexamples that replay, and the prove command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from harness.prove_cli import add_prove_arguments, run_prove
from harness.trace import load_trace
from model.explore import explore
from model.state import Config, initial_state
from model.step import step
from properties.invariants import STATE_PROPERTIES
from properties.prove import BOUNDED, PROVED, UNKNOWN, VIOLATED, default_config, prove


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


@pytest.mark.parametrize("name", ["single-leader-per-epoch", "leader-in-isr"])
def test_correct_model_properties_are_proved_by_induction(name: str) -> None:
    result = prove(name, default_config())
    assert (result.status, result.depth) == (PROVED, 1)


def test_induction_failing_leaves_a_bounded_result() -> None:
    result = prove("hw-within-isr", default_config(), depth=4)
    assert (result.status, result.depth) == (BOUNDED, 4)
    assert result.notes


def test_a_timeout_is_unknown_never_a_pass() -> None:
    result = prove("log-agreement", default_config(), depth=12, timeout_s=0.5)
    assert result.status == UNKNOWN
    assert "timeout" in result.message


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
    ],
)
def test_cli_bad_input_exits_2_with_one_sentence(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], flags: tuple[str, ...], says: str
) -> None:
    assert run_prove(_args(tmp_path, *flags)) == 2  # type: ignore[arg-type]
    err = capsys.readouterr().err
    assert says in err and err.count("\n") == 1 and "Traceback" not in err
