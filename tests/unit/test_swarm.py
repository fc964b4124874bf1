"""The swarm engine: every machine rule known, seeded and deterministic, and it finds bugs.

The quality bar is the Hypothesis engine's: the same rules, the same checker and
coverage, and a failure that becomes a trace `kafka-verify replay` reproduces.
"""

from __future__ import annotations

import ast
import inspect
import json
import random
import textwrap
from pathlib import Path

import pytest
from hypothesis import strategies as st
from hypothesis.stateful import initialize
from kafka_verify.harness import machine as machine_module
from kafka_verify.harness.bench import _engine_figures, engine_throughput
from kafka_verify.harness.cli import main
from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.harness.failures import write_failure
from kafka_verify.harness.machine import ClusterMachine, Recorder, make_machine
from kafka_verify.harness.profiles import PROFILES
from kafka_verify.harness.replay import run_trace
from kafka_verify.harness.swarm import (
    Step,
    UnknownStrategy,
    draw_for,
    example_seed,
    replay_script,
    run_example,
    run_swarm,
    simpler_for,
    swarm_rules,
)
from kafka_verify.harness.trace import load_trace
from kafka_verify.properties.catalogue import PROPERTIES, Kind
from kafka_verify.properties.coverage import coverage_thresholds

CI = PROFILES["ci"]


def _declared_rules() -> dict[str, tuple[str, ...]]:
    """ClusterMachine's @rule and @initialize methods and their arguments, read from its source
    (not from Hypothesis's registry, which the swarm engine itself reads)."""
    source = textwrap.dedent(inspect.getsource(machine_module.ClusterMachine))
    declared: dict[str, tuple[str, ...]] = {}
    for node in ast.walk(ast.parse(source)):
        if not isinstance(node, ast.FunctionDef):
            continue
        for decorator in node.decorator_list:
            if isinstance(decorator, ast.Call) and getattr(decorator.func, "id", None) in (
                "rule",
                "initialize",
            ):
                declared[node.name] = tuple(sorted(k.arg for k in decorator.keywords if k.arg))
    return declared


def test_every_rule_and_initialize_rule_of_the_machine_is_known_to_the_swarm() -> None:
    declared = _declared_rules()
    assert "choose_fault_mix" in declared and "leader_churn" in declared
    assert swarm_rules(ClusterMachine).names() == declared


class _WithAShape(ClusterMachine):
    """A machine whose initialize rule draws from a strategy the swarm cannot translate."""

    @initialize(shape=st.text())
    def choose_shape(self, shape: str) -> None:
        self.shape = shape


def test_an_argument_without_a_draw_is_an_error_naming_it_and_an_override_supplies_one() -> None:
    with pytest.raises(UnknownStrategy, match="choose_shape's argument shape"):
        swarm_rules(_WithAShape)
    rules = swarm_rules(_WithAShape, {("choose_shape", "shape"): lambda rng: "wide"})
    assert rules.names()["choose_shape"] == ("shape",)
    assert {r.name for r in rules.initializers} == {"choose_fault_mix", "choose_shape"}


def test_draws_cover_exactly_the_strategies_values() -> None:
    rng = random.Random(1)

    def values(strategy: st.SearchStrategy[object]) -> set[object]:
        draw = draw_for(strategy)
        assert draw is not None
        return {draw(rng) for _ in range(2_000)}

    assert values(st.integers(0, 7)) == set(range(8))
    assert values(st.booleans()) == {False, True}
    assert values(st.sampled_from((25, 60, 200))) == {25, 60, 200}
    assert values(st.none() | st.integers(1, 3)) == {None, 1, 2, 3}
    assert values(st.just("x")) == {"x"}
    assert values(st.tuples(st.booleans(), st.just(1))) == {(False, 1), (True, 1)}
    assert values(st.tuples(st.integers(0, 2)).map(lambda t: t[0] * 10)) == {0, 10, 20}
    for unknown in (st.text(), st.integers(min_value=0), st.sampled_from([1, 2]).map(str)):
        assert draw_for(unknown) is None


def test_the_config_swarm_draws_each_examples_cluster_the_same_way_for_a_seed() -> None:
    """With the config swarm, examples run on drawn settings, counted per setting, and a seed
    draws the same ones again."""
    result = run_swarm(reference_cluster(), CI, seed=3, examples=8, config_swarm=True)
    assert result.violation is None and result.error is None
    drawn = result.config_draws
    assert drawn and all(sum(counts.values()) <= 8 for counts in drawn.values())
    assert any(len(counts) > 1 for counts in drawn.values())  # some setting varied
    again = run_swarm(reference_cluster(), CI, seed=3, examples=8, config_swarm=True)
    assert (again.steps, again.config_draws) == (result.steps, drawn)


def test_shrinking_tries_simpler_values_of_the_same_strategy() -> None:
    assert simpler_for(st.integers(1, 12))(9) == [1, 5]
    assert simpler_for(st.integers(1, 12))(1) == []
    assert simpler_for(st.booleans())(True) == [False]
    assert simpler_for(st.booleans())(False) == []
    assert simpler_for(st.sampled_from((7_000, 31_000)))(31_000) == [7_000]
    assert simpler_for(st.text())("abc") == []


def _example_events(seed: int, number: int) -> list[object]:
    machine_class = make_machine(reference_cluster(), Recorder())
    machine = machine_class()
    run_example(machine, swarm_rules(machine_class), random.Random(example_seed(seed, number)), 200)
    return machine.events


def test_a_recorded_script_replays_to_the_same_events() -> None:
    machine_class = make_machine(reference_cluster(), Recorder())
    rules = swarm_rules(machine_class)
    script: list[Step] = []
    machine = machine_class()
    run_example(machine, rules, random.Random(example_seed(2, 0)), 200, script)
    assert script[0].rule.name == "choose_fault_mix" and len(script) > 1
    again = machine_class()
    replay_script(again, rules, script)
    assert again.events == machine.events


def test_the_same_seed_draws_the_same_events_and_another_seed_others() -> None:
    first = [_example_events(5, n) for n in range(3)]
    assert first == [_example_events(5, n) for n in range(3)]
    assert all(first)
    assert first != [_example_events(6, n) for n in range(3)]
    assert example_seed(5, 0) != example_seed(5, 1) != example_seed(6, 0)


def test_a_clean_cluster_passes_a_short_run_with_coverage_counted() -> None:
    result = run_swarm(reference_cluster(), CI, seed=1, examples=6)
    assert result.violation is None and result.error is None
    assert result.examples == 6 and result.steps > 0
    sometimes = {name for name, info in PROPERTIES.items() if info.kind is Kind.SOMETIMES}
    assert set(result.coverage) == sometimes
    assert sum(result.coverage.values()) > 0
    again = run_swarm(reference_cluster(), CI, seed=1, examples=6)
    assert (again.steps, again.coverage) == (result.steps, result.coverage)


@pytest.mark.parametrize("bug", ["truncate-to-hw", "zombie-commit"])
def test_a_seeded_bug_is_caught_and_its_trace_replays_to_the_same_violation(
    bug: str, tmp_path: Path
) -> None:
    config = reference_cluster(frozenset({bug}))
    found = run_swarm(config, CI, seed=0, shrink_budget_s=0, event_shrink_budget_s=0)
    assert found.violation is not None and found.violation.property == "refinement"
    assert found.failing_example is not None and found.events
    again = run_swarm(config, CI, seed=0, shrink_budget_s=0, event_shrink_budget_s=0)
    assert (again.violation, again.events) == (found.violation, found.events)
    # The failing example alone, shrunk (shrinking stops on the clock, so it is run once).
    result = run_swarm(
        config,
        CI,
        seed=0,
        first_example=found.failing_example,
        examples=1,
        shrink_budget_s=4,
        event_shrink_budget_s=4,
    )
    assert result.violation is not None and result.violation.property == "refinement"
    assert 0 < len(result.events) <= len(found.events)
    _, trace_path = write_failure(result, tmp_path, {"seed": 0, "engine": "swarm"})
    trace = load_trace(trace_path)
    outcome = run_trace(trace, config.bugs)
    assert outcome.violation is not None
    assert outcome.violation.property == result.violation.property
    assert outcome.violation.message == result.violation.message
    assert len(outcome.steps) == len(result.events)


def test_run_engine_swarm_writes_the_same_report_fields(tmp_path: Path) -> None:
    out = tmp_path / "run.json"
    argv = ["run", "--engine", "swarm", "--profile", "ci", "--seed", "3", "--examples", "4"]
    assert main([*argv, "--json", str(out), "--reports", str(tmp_path)]) == 0
    payload = json.loads(out.read_text())
    assert payload["engine"] == "swarm" and payload["examples"] == 4
    assert payload["coverage_thresholds"] == coverage_thresholds(4)
    assert payload["status"] in ("pass", "pass, coverage short")
    assert set(payload) >= {"steps", "seconds", "violations", "coverage", "coverage_short"}


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--engine", "vopr"], "invalid choice"),
        (["run", "--budget-s", "5"], "--budget-s is for --engine swarm"),
        (["run", "--first-example", "3"], "--first-example is for --engine swarm"),
        (["run", "--engine", "swarm", "--example-db", "db"], "--example-db"),
        (["mutants", "--wire", "--engine", "swarm"], "not for --wire"),
    ],
)
def test_bad_engine_flags_exit_2_with_one_sentence(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(argv) == 2
    lines = [line for line in capsys.readouterr().err.splitlines() if line.strip()]
    assert len(lines) == 1 and fragment in lines[0]


def test_bench_measures_both_engines_on_the_same_campaign() -> None:
    figures = engine_throughput(examples=3, repeats=1)
    assert set(figures) == {"hypothesis", "swarm", "swarm_over_hypothesis"}
    assert figures["hypothesis"] > 0 and figures["swarm"] > 0
    ratio = figures["swarm"] / figures["hypothesis"]
    assert figures["swarm_over_hypothesis"] == pytest.approx(ratio, abs=0.01)


def test_bench_gives_the_engines_rates_by_cpu_time_too() -> None:
    wall, cpu = _engine_figures(examples=3, repeats=1)
    assert set(cpu) == set(wall)
    # The campaign runs in this process: it cannot use more CPU time than time passes.
    assert cpu["hypothesis"] >= wall["hypothesis"] / 2 and cpu["swarm"] >= wall["swarm"] / 2
    ratio = cpu["swarm"] / cpu["hypothesis"]
    assert cpu["swarm_over_hypothesis"] == pytest.approx(ratio, abs=0.01)
