"""The configuration swarm: each example draws its cluster settings, and everything downstream
(checker, trace, report, replay, allowances) uses the drawn config, never the base."""

from __future__ import annotations

import dataclasses
import subprocess
import sys
from dataclasses import replace
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from kafka_verify.harness.campaign import run_campaign
from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.harness.config_swarm import (
    CONFIG_SPACE,
    SWARM_FIELDS,
    ConfigDraw,
    axis_choices,
    config_draws,
    drawn_values,
)
from kafka_verify.harness.failures import write_failure
from kafka_verify.harness.machine import Recorder, make_machine
from kafka_verify.harness.profiles import PROFILES
from kafka_verify.harness.runner import Checker, execute
from kafka_verify.harness.trace import load_trace
from kafka_verify.impl import events as ev
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.model.state import Config, GroupState, Record, State, initial_state
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.groups import group_missed_records
from kafka_verify.properties.history import CheckConfig, HistoryChecker, Op, check
from kafka_verify.properties.history.allowed import ACKS_ONE_LOSS
from kafka_verify.properties.history.simulation import simulation_check_config
from kafka_verify.properties.invariants import check_state

BASES = {
    "reference cluster": reference_cluster(),
    "defaults": ClusterConfig(),
    "2 brokers, RF 2, min ISR 1": reference_cluster(brokers=2, replication=2, min_insync=1),
}


def _allowed_values(base: ClusterConfig) -> dict[str, set[object]]:
    values: dict[str, set[object]] = {name: {getattr(base, name)} for name in SWARM_FIELDS}
    for axis in CONFIG_SPACE:
        for setting in axis.choices:
            for name, value in setting:
                values[name].add(value)
    return values


@pytest.mark.parametrize("name", sorted(BASES))
@settings(max_examples=60, deadline=None)
@given(data=st.data())
def test_drawn_configs_are_within_the_space_and_valid(name: str, data: st.DataObject) -> None:
    base = BASES[name]
    drawn = data.draw(config_draws(base)).apply(base)  # ClusterConfig checks itself on build
    allowed = _allowed_values(base)
    for field, value in drawn_values(drawn).items():
        assert value in allowed[field], (field, value)
    for f in dataclasses.fields(ClusterConfig):
        if f.name not in SWARM_FIELDS:
            assert getattr(drawn, f.name) == getattr(base, f.name), f.name
    assert drawn.replication <= drawn.brokers
    assert 1 <= drawn.min_insync <= drawn.replication
    assert drawn.heartbeat_interval_ms < drawn.session_timeout_ms
    assert drawn.acks == -1 or not drawn.idempotent


@settings(max_examples=30, deadline=None)
@given(data=st.data())
def test_a_restricted_swarm_varies_only_its_axes(data: st.DataObject) -> None:
    base = reference_cluster()
    drawn = data.draw(config_draws(base, frozenset({"flush", "retention"}))).apply(base)
    varied = {"flush_interval_ms", "retention_ms", "retention_records"}
    for name in SWARM_FIELDS:
        if name not in varied:
            assert getattr(drawn, name) == getattr(base, name), name


def test_an_unknown_axis_is_one_sentence() -> None:
    with pytest.raises(ValueError, match="no axis named 'acks'"):
        config_draws(reference_cluster(), frozenset({"acks"}))


def test_each_axis_offers_the_base_setting_first_and_only_what_fits() -> None:
    small = BASES["2 brokers, RF 2, min ISR 1"]
    for axis in CONFIG_SPACE:
        first = axis_choices(axis, small)[0]
        assert first == tuple((name, getattr(small, name)) for name in axis.fields())
    replication = next(a for a in CONFIG_SPACE if a.name == "replication")
    assert all(dict(c)["replication"] <= 2 for c in axis_choices(replication, small))
    assert all(axis.why for axis in CONFIG_SPACE)


ACKS_ONE = ConfigDraw(
    (
        ("flush_interval_ms", 60_000),
        ("acks", 1),
        ("idempotent", False),
        ("replication", 3),
        ("min_insync", 2),
    )
)


def test_the_example_s_checker_is_built_with_the_drawn_config() -> None:
    base = reference_cluster()
    machine = make_machine(base, Recorder(), config_swarm=True)()
    machine.choose_fault_mix("calm", 25, ACKS_ONE)
    assert machine.checker.config == ACKS_ONE.apply(base)
    assert machine.checker.history.check_config.acks == 1
    assert machine.checker.history.check_config.idempotent is False
    assert machine.cluster_config == base  # the base stays what the campaign was given
    assert machine.recorder.config_draws["acks"] == {"1": 1}


def test_without_the_swarm_every_example_runs_the_base_config() -> None:
    base = reference_cluster()
    result = run_campaign(base, PROFILES["ci"], seed=3, examples=4, config_swarm=False)
    assert result.violation is None and result.config == base
    assert result.config_draws == {}


def test_the_same_seed_draws_the_same_configs_and_runs_the_same_steps() -> None:
    base = reference_cluster()
    first = run_campaign(base, PROFILES["ci"], seed=5, examples=6)
    second = run_campaign(base, PROFILES["ci"], seed=5, examples=6)
    assert first.violation is None and second.violation is None
    assert first.config_draws == second.config_draws
    assert sum(first.config_draws["acks"].values()) >= 6
    assert len(first.config_draws["flush_interval_ms"]) > 1  # the examples did differ
    assert (first.steps, first.coverage) == (second.steps, second.coverage)


def test_a_failure_records_its_drawn_config_in_the_trace_and_replays(tmp_path: Path) -> None:
    # The base producers are not idempotent, so this bug (which breaks only idempotence) shows
    # only in an example that drew idempotent producers: the failing config is not the base.
    base = replace(reference_cluster(frozenset({"non-idempotent-retry"})), acks=1, idempotent=False)
    result = run_campaign(
        base, PROFILES["ci"], seed=3, examples=150, shrink_budget_s=5, event_shrink_budget_s=3
    )
    assert result.violation is not None, "the seeded bug was not found"
    assert result.config != base and result.config.idempotent is True
    report, trace_path = write_failure(result, tmp_path, {"test": "config swarm"})
    trace = load_trace(trace_path)
    assert trace.config == result.config
    assert "| idempotent | `true` |" in report.read_text(encoding="utf-8")
    outcome = execute(trace.config, trace.items)
    assert outcome.violation is not None
    assert outcome.violation.property == result.violation.property
    replayed = subprocess.run(
        [sys.executable, "-m", "kafka_verify.harness.cli", "replay", str(trace_path)],
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert replayed.returncode == 1, replayed.stdout + replayed.stderr


# -- acks=1: an acknowledged write lost with its leader is allowed, and said to be ---------------

MODEL = Config(brokers=3, replication=3, min_insync=2)


def _log_of(*ids: int) -> State:
    """A state whose three replicas hold `ids`, all committed."""
    state = initial_state(MODEL)
    records = tuple(Record(i, 0) for i in ids)
    part = state.partitions[0]
    top = len(records)
    for r in part.replicas:
        part = part.with_replica(replace(r, log=records, hw=top, flushed=top, checkpoint_hw=top))
    return state.with_partition(0, part)


def _feed(
    checker: HistoryChecker, ops: list[tuple[str, str, str, object]], state: State
) -> list[Violation]:
    found: list[Violation] = []
    for index, (process, type_, f, value) in enumerate(ops):
        found += checker.observe(Op(index, index * 10, process, type_, f, value), state)
    return found


# Record 1 acknowledged at offset 0; the new leader's log holds record 2 there instead,
# and the same producer's next send lands at offset 0 again.
REPLACED = [
    ("p0", "invoke", "send", ["t", 0, None, 1]),
    ("p0", "ok", "send", ["t", 0, 0, 1]),
    ("p0", "invoke", "send", ["t", 0, None, 2]),
    ("p0", "ok", "send", ["t", 0, 0, 2]),
    ("c0", "invoke", "poll", None),
    ("c0", "ok", "poll", {"t/0": [[0, 2]]}),
]
# Record 1 acknowledged at offset 0 and gone: the final log is empty.
VANISHED = [("p0", "invoke", "send", ["t", 0, None, 1]), ("p0", "ok", "send", ["t", 0, 0, 1])]


def _judged(
    acks: int, ops: list[tuple[str, str, str, object]], final: State
) -> tuple[list[Violation], list[tuple[Violation, str]]]:
    """(the violations reported, the allowed cases with their reasons)."""
    checker = HistoryChecker(MODEL, simulation_check_config(acks=acks, idempotent=acks == -1))
    found = _feed(checker, ops, final)
    return found + checker.finish(final), checker.allowed


@pytest.mark.parametrize(
    ("ops", "final", "anomalies"),
    [
        (VANISHED, initial_state(MODEL), {"lost-write"}),
        (REPLACED, _log_of(2), {"lost-write", "inconsistent-offsets", "nonmonotonic-send"}),
    ],
    ids=["lost with its leader", "replaced by the new leader"],
)
def test_acks_one_loss_is_allowed_with_its_reason_and_acks_all_reports_it(
    ops: list[tuple[str, str, str, object]], final: State, anomalies: set[str]
) -> None:
    reported, allowed = _judged(1, ops, final)
    assert reported == []
    assert {v.property for v, _ in allowed} == anomalies
    assert all(reason.startswith(ACKS_ONE_LOSS) for _, reason in allowed)
    reported, allowed = _judged(-1, ops, final)
    assert {v.property for v in reported} == anomalies
    assert allowed == []


def test_the_black_box_checker_allows_acks_one_loss_only_when_told() -> None:
    ops = [Op(i, i * 10, p, t, f, v) for i, (p, t, f, v) in enumerate(REPLACED)]
    relaxed = check(ops, CheckConfig(acks=1, idempotent=False))
    assert relaxed.valid is True
    assert set(relaxed.allowed_types) == {"inconsistent-offsets", "nonmonotonic-send", "lost-write"}
    assert ACKS_ONE_LOSS in str(relaxed.as_dict()["allowed"])
    strict = check(ops, CheckConfig())
    assert strict.valid is False and "inconsistent-offsets" in strict.anomaly_types


def _group_history(*extra: tuple[str, str, str, object]) -> list[Op]:
    rows = [
        ("c0", "invoke", "subscribe", {"group": "g0", "topics": ["t"]}),
        ("c0", "ok", "subscribe", {"group": "g0", "topics": ["t"]}),
        *VANISHED,
        *extra,
    ]
    return [Op(i, i * 10, p, t, f, v) for i, (p, t, f, v) in enumerate(rows)]


def _with_live_group(state: State) -> State:
    return replace(state, groups=(GroupState("g0", members=frozenset({"c0"})),))


def test_a_group_need_not_read_an_acks_one_write_the_final_log_lost() -> None:
    final = _with_live_group(initial_state(MODEL))
    history = _group_history()
    assert group_missed_records(history, final, acks=1) == []
    assert [v.property for v in group_missed_records(history, final)] == ["groups-independent"]
    kept = _with_live_group(_log_of(1))  # the record survived: the group must read it
    assert [v.property for v in group_missed_records(history, kept, acks=1)] == [
        "groups-independent"
    ]


def test_duplicates_in_a_log_are_promised_away_only_by_idempotence() -> None:
    twice = _log_of(1, 1)
    assert {v.property for v in check_state(twice, MODEL)} == {"no-duplicate-record"}
    assert check_state(twice, replace(MODEL, idempotent=False)) == []


def test_an_acks_one_write_lost_in_a_leader_crash_is_allowed_in_the_simulation() -> None:
    """The real case on the simulated cluster: the leader acknowledges at once, crashes
    before any follower fetched, and the new leader never had the record."""
    config = ACKS_ONE.apply(reference_cluster())
    checker = Checker(config)
    assert checker.initial_violations() == []
    leader = f"b{checker.state.partitions[0].leader}"
    checker.apply(ev.Produce("p0", "t", 0))

    def deliver(src: str | None = None, dst: str | None = None) -> None:
        for envelope in checker.world.inflight():
            if (src is None or envelope.src == src) and (dst is None or envelope.dst == dst):
                _, found = checker.apply(ev.Deliver(envelope.id))
                assert found == []
                return
        raise AssertionError(f"nothing in flight from {src} to {dst}")

    deliver(src="p0", dst=leader)  # the produce request
    deliver(src=leader, dst="p0")  # its acknowledgement, before any fetch
    assert any(op.f == "send" and op.type == "ok" for op in checker.ops)
    _, found = checker.apply(ev.Crash(leader, lose_unflushed=True))
    assert found == []
    events: list[object] = [ev.Tick(7_000), ev.Restart(leader)]
    for event in events:
        _, found = checker.apply(event)
        assert found == []
    from kafka_verify.harness.machine import settle

    for event in settle(checker):
        _, found = checker.apply(event)
        assert found == []
    assert checker.full_comparison() == []
    assert checker.finish() == []
    allowed = {v.property: reason for v, reason in checker.history.allowed}
    assert "lost-write" in allowed and allowed["lost-write"] == ACKS_ONE_LOSS
