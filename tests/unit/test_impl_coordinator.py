"""The group coordinator and the group consumer: the assignor, and random schedules with groups on.

The random schedules add the group events (Subscribe, CommitOffsets, Close) and
consumer crashes to the replication schedules of test_impl_refinement; after
every event the named model actions are applied with `model.step` and the
abstraction of the world must equal the model state, groups included.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from kafka_verify import model
from kafka_verify.impl import events as ev
from kafka_verify.impl.abstraction import abstract
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.coordinator import group_names, offsets_partition
from kafka_verify.impl.group_member import range_assignment
from kafka_verify.impl.world import World
from test_impl_refinement import random_event


def test_range_assignor_gives_every_partition_once_in_consecutive_runs() -> None:
    assert range_assignment(["c1", "c0"], 5) == (
        (0, "c0"),
        (1, "c0"),
        (2, "c0"),
        (3, "c1"),
        (4, "c1"),
    )
    assert range_assignment(["c0", "c1", "c2"], 1) == ((0, "c0"),)
    assert range_assignment([], 3) == ()


def test_offsets_partitions_follow_the_user_topic_in_the_model() -> None:
    config = ClusterConfig(partitions=2, groups=3, offsets_partitions=2)
    assert config.model_config().partitions == 4
    assert config.model_config().group_partitions == 2
    assert {offsets_partition(g, config) for g in group_names(config)} <= {2, 3}


def group_event(world: World, rng: random.Random) -> ev.Event | None:
    config = world.config
    consumer = f"c{rng.randrange(config.consumers)}"
    if not world.is_up(consumer):
        return None
    member = world.nodes_up[consumer]
    roll = rng.random()
    if member.group is None:
        return ev.Subscribe(consumer, f"g{rng.randrange(config.groups)}")
    if roll < 0.5:
        return ev.CommitOffsets(consumer)
    if roll < 0.6:
        return ev.Close(consumer)
    return ev.Poll(consumer)


def run_group_schedule(config: ClusterConfig, seed: int, steps: int) -> Counter[str]:
    rng = random.Random(seed)
    world = World(config)
    cfg = config.model_config()
    state = model.initial_state(cfg)
    assert abstract(world) == state
    seen: Counter[str] = Counter()
    for index in range(steps):
        event = None
        roll = rng.random()
        if roll < 0.15:
            event = group_event(world, rng)
        elif roll < 0.45:
            # Consumers' connections are mostly healthy: their messages go through in order.
            mine = [e for e in world.inflight() if "c" in (e.src[0], e.dst[0])]
            event = ev.Deliver(mine[0].id) if mine else None
        if event is None:
            event = random_event(world, rng, fault_rate=0.02)
        result = world.apply(event)
        for action in result.actions:
            state = model.step(state, action, cfg)  # raises NotAllowed on a forbidden step
            seen[type(action).__name__] += 1
        assert abstract(world) == state, (
            f"seed {seed}, event {index}: {event!r} left the world off the model"
        )
    return seen


GROUP_CONFIGS = {
    "one group, two consumers": ClusterConfig(groups=1, consumers=2),
    "two groups, three consumers, two partitions": ClusterConfig(
        groups=2, consumers=3, partitions=2
    ),
}


@pytest.mark.parametrize("name", sorted(GROUP_CONFIGS))
def test_random_schedules_with_groups_refine_the_model(name: str) -> None:
    seen: Counter[str] = Counter()
    for seed in range(4):
        seen += run_group_schedule(GROUP_CONFIGS[name], seed, steps=1_500)
    for action in ("JoinGroup", "CompleteRebalance", "SyncAssignment", "CoordinatorFailover"):
        assert seen[action] > 0, f"{action} never happened: {seen}"
    assert seen["CommitOffset"] + seen["ExpireMember"] > 0
