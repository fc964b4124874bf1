"""The Checker's refinement check: the incremental one after each event, the full one every
FULL_REFINEMENT_EVERY events, and the part-by-part comparison the full one uses.

A broker that silently changes what the model holds must be reported: on the
event that touched it when the incremental check looks there, and otherwise by
the next full comparison.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Iterator
from enum import Enum

import pytest
from kafka_verify.harness.bench import generate_schedule
from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.harness.runner import FULL_REFINEMENT_EVERY, Checker
from kafka_verify.impl import events as ev
from kafka_verify.impl.abstraction import abstract, world_matches
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.model.state import Record, State


def _different(value: object) -> object:
    """A value of the same kind that is not equal to `value`."""
    if isinstance(value, Enum):
        members = list(type(value))
        return members[(members.index(value) + 1) % len(members)]
    if isinstance(value, bool):
        return not value
    if isinstance(value, int):
        return value + 1
    if value is None:
        return 0
    if isinstance(value, str):
        return value + "x"
    if isinstance(value, frozenset):
        return value ^ {99}
    if isinstance(value, tuple):
        return value[:-1] if value else ("extra",)
    raise TypeError(f"no different value for {value!r}")


def _changed(obj: object, name: str) -> object:
    return dataclasses.replace(obj, **{name: _different(getattr(obj, name))})  # type: ignore[type-var]


def perturbations(state: State) -> Iterator[tuple[str, State]]:
    """The state with one field changed, for every field of the state, of each partition's quorum
    and first replica, and of each group."""
    for f in dataclasses.fields(state):
        yield f.name, _changed(state, f.name)  # type: ignore[misc]
    for index, part in enumerate(state.partitions):
        for f in dataclasses.fields(part):
            yield f"partition {index} {f.name}", state.with_partition(index, _changed(part, f.name))  # type: ignore[arg-type]
        replica = part.replicas[0]
        for f in dataclasses.fields(replica):
            if f.name == "broker":
                continue  # with_replica places a replica by its broker
            changed = part.with_replica(_changed(replica, f.name))  # type: ignore[arg-type]
            yield f"partition {index} replica {f.name}", state.with_partition(index, changed)
    for index, group in enumerate(state.groups):
        for f in dataclasses.fields(group):
            groups = list(state.groups)
            groups[index] = _changed(group, f.name)  # type: ignore[call-overload]
            yield f"group {group.group} {f.name}", dataclasses.replace(state, groups=tuple(groups))


def test_world_matches_agrees_with_the_whole_abstraction_field_by_field() -> None:
    config = reference_cluster()
    checker = Checker(config)
    compared = 0
    for index, event in enumerate(generate_schedule(config, 1_200), start=1):
        _, violations = checker.apply(event)
        assert violations == []
        if index % 150:
            continue
        world, state = checker.world, checker.state
        assert world_matches(world, state)
        assert world_matches(world, abstract(world))  # equal values, other objects
        for what, wrong in perturbations(state):
            assert abstract(world) != wrong, what
            assert not world_matches(world, wrong), f"a change of {what} went unnoticed"
            compared += 1
        assert world_matches(world, state)  # a failed comparison leaves no stale memo
    assert compared > 8 * 60
    assert any(g.committed for g in checker.state.groups)  # the groups did something


def _crashed_run(steps: int) -> Checker:
    """A replication cluster that ran `steps` events and then lost broker b2."""
    config = ClusterConfig()
    checker = Checker(config)
    for event in generate_schedule(config, steps):
        checker.apply(event)
    if not checker.world.is_up("b2"):
        checker.apply(ev.Restart("b2"))
    _, violations = checker.apply(ev.Crash("b2"))
    assert violations == [] and 2 not in checker.state.running
    return checker


def _plant_record(checker: Checker) -> None:
    """Give the model's replica of partition 0 on the crashed b2 a record its disk does not hold."""
    part = checker.state.partitions[0]
    replica = part.replica(2)
    planted = dataclasses.replace(replica, log=(*replica.log, Record(10**9, 0)))
    checker.state = checker.state.with_partition(0, part.with_replica(planted))


def test_a_change_at_a_touched_broker_is_reported_on_that_event() -> None:
    checker = _crashed_run(300)
    _plant_record(checker)
    if (checker.steps_done + 1) % FULL_REFINEMENT_EVERY == 0:
        checker.apply(ev.Tick(1))  # make the next event one the incremental check handles
    _, violations = checker.apply(ev.Restart("b2"))
    assert checker.steps_done % FULL_REFINEMENT_EVERY != 0
    assert [v.property for v in violations] == ["refinement"]
    assert "partition 0 replica b2 log" in violations[0].message


@pytest.mark.parametrize("steps", [300, 333])
def test_a_change_no_event_touches_is_reported_by_the_next_full_comparison(steps: int) -> None:
    checker = _crashed_run(steps)
    _plant_record(checker)
    planted_at = checker.steps_done
    violations: list = []  # type: ignore[type-arg]
    while not violations:
        _, violations = checker.apply(ev.Tick(10))  # b2 stays down: nothing touches it
        assert checker.steps_done - planted_at <= FULL_REFINEMENT_EVERY
    assert checker.steps_done % FULL_REFINEMENT_EVERY == 0
    assert [v.property for v in violations] == ["refinement"]
    assert "partition 0 replica b2 log" in violations[0].message


def _events_ending_with_b2_down(steps: int) -> list[object]:
    config = ClusterConfig()
    checker = Checker(config)
    events: list[object] = []
    for event in generate_schedule(config, steps):
        checker.apply(event)
        events.append(event)
    if not checker.world.is_up("b2"):
        events.append(ev.Restart("b2"))
    return [*events, ev.Crash("b2"), ev.Tick(10), ev.Tick(10), ev.Tick(10)]


def test_a_silent_change_in_the_last_stretch_is_reported_by_the_final_comparison(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """Every run ends with a full comparison, so the events after the last periodic one count."""
    from kafka_verify.harness import runner

    events = _events_ending_with_b2_down(300)
    assert len(events) % FULL_REFINEMENT_EVERY not in (0, len(events))
    plant_after = len(events) - 2  # after the crash: only ticks follow, which never touch b2
    original_apply = Checker.apply

    def apply_and_plant(self: Checker, event: object) -> tuple[object, list[object]]:
        record, violations = original_apply(self, event)
        if self.steps_done == plant_after:
            _plant_record(self)
        return record, violations  # type: ignore[return-value]

    monkeypatch.setattr(Checker, "apply", apply_and_plant)
    outcome = runner.execute(ClusterConfig(), events)
    assert outcome.violation is not None
    assert outcome.violation.property == "refinement"
    assert "partition 0 replica b2 log" in outcome.violation.message
    assert "full comparison at the end of the run" in outcome.violation.message
    # Every event ran clean: only the final comparison saw the change.
    assert len(outcome.steps) == len(events)


def test_the_final_comparison_is_silent_on_a_clean_run() -> None:
    checker = Checker(ClusterConfig())
    for event in _events_ending_with_b2_down(150):
        _, violations = checker.apply(event)
        assert violations == []
    assert checker.full_comparison() == []
