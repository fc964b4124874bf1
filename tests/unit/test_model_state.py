"""State helpers that rebuild a value field by field must carry every other field over."""

from __future__ import annotations

import dataclasses

from kafka_verify.model.groups import GroupState
from kafka_verify.model.state import Config, Record, initial_state


def test_with_replica_and_with_partition_keep_every_other_field() -> None:
    state = initial_state(Config(groups=1, members=1, group_partitions=1))
    # Every field away from its default, so a field the helpers dropped would show.
    part = dataclasses.replace(state.partitions[0], leader=2, epoch=5, isr=frozenset({2}))
    state = dataclasses.replace(
        state,
        partitions=(part, *state.partitions[1:]),
        running=frozenset({1, 2}),
        controller=2,
        controller_epoch=7,
        groups=(GroupState("g9", generation=3),),
    )
    replica = dataclasses.replace(part.replicas[1], log=(Record(1, 5),), hw=1)
    rebuilt = state.with_partition(0, state.partitions[0].with_replica(replica))
    for f in dataclasses.fields(state):
        if f.name != "partitions":
            assert getattr(rebuilt, f.name) == getattr(state, f.name), f.name
    for f in dataclasses.fields(part):
        if f.name != "replicas":
            assert getattr(rebuilt.partitions[0], f.name) == getattr(part, f.name), f.name
    assert rebuilt.partitions[0].replicas == (part.replicas[0], replica, *part.replicas[2:])
    assert rebuilt.partitions[1:] == state.partitions[1:]


def test_replica_shortcuts_equal_dataclasses_replace() -> None:
    from kafka_verify.model.state import Replica, Role

    # Every field away from its default, so a field a shortcut dropped would show.
    r = Replica(
        broker=2,
        log=(Record(1, 3), Record(2, 4)),
        log_start=5,
        hw=6,
        flushed=6,
        checkpoint_hw=5,
        epoch=4,
        role=Role.LEADER,
        leader=2,
        isr=frozenset({1, 2}),
    )
    assert r.appended(Record(9, 4)) == dataclasses.replace(r, log=(*r.log, Record(9, 4)))
    assert r.with_hw(7) == dataclasses.replace(r, hw=7)
    assert r.flushed_now() == dataclasses.replace(r, flushed=r.leo, checkpoint_hw=r.hw)
