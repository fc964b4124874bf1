"""Random schedules against the correct reference broker: refinement must hold after every event.

After each event, the model actions the event named are applied with
`model.step`, and the abstraction of the world must equal the model state.
Schedules mix deliveries, drops, duplicates, crashes (lossy and clean),
restarts of every kind of node, network partitions, heals, ticks, produces and
polls. `random.Random(seed)` drives them, so every failure replays from its seed.
"""

from __future__ import annotations

import random
from collections import Counter

import pytest
from kafka_verify import model
from kafka_verify.impl import events as ev
from kafka_verify.impl.abstraction import abstract
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import World

TICKS_MS = (1, 10, 50, 200, 1_000, 5_000, 15_000)


def random_event(world: World, rng: random.Random, fault_rate: float) -> ev.Event:
    config = world.config
    inflight = world.inflight()
    roll = rng.random()
    if inflight and roll < 0.45:
        return ev.Deliver(rng.choice(inflight).id)
    if inflight and roll < 0.50:
        return ev.Drop(rng.choice(inflight).id)
    if inflight and roll < 0.53:
        return ev.Duplicate(rng.choice(inflight).id)
    producer = f"p{rng.randrange(config.producers)}"
    if roll < 0.65 and world.is_up(producer):
        return ev.Produce(producer, partition=rng.choice([None, rng.randrange(config.partitions)]))
    consumer = f"c{rng.randrange(config.consumers)}"
    if roll < 0.72 and world.is_up(consumer):
        return ev.Poll(consumer)
    if roll < 0.72 + fault_rate:
        node = rng.choice(world.nodes())
        return ev.Crash(node, rng.random() < 0.5) if world.is_up(node) else ev.Restart(node)
    if roll < 0.72 + 2 * fault_rate:
        if world.partitioned():
            return ev.Heal()
        side = tuple(n for n in world.nodes() if n[0] in "bz" and rng.random() < 0.5)
        return ev.Partition((side,))
    return ev.Tick(rng.choice(TICKS_MS))


def run_schedule(config: ClusterConfig, seed: int, steps: int, fault_rate: float) -> Counter[str]:
    """Run one random schedule with the refinement check after every event; count the actions seen."""
    rng = random.Random(seed)
    world = World(config)
    cfg = config.model_config()
    state = model.initial_state(cfg)
    assert abstract(world) == state
    seen: Counter[str] = Counter()
    for index in range(steps):
        event = random_event(world, rng, fault_rate)
        result = world.apply(event)
        for action in result.actions:
            state = model.step(state, action, cfg)  # raises NotAllowed on a forbidden step
            seen[type(action).__name__] += 1
        assert abstract(world) == state, (
            f"seed {seed}, event {index}: {event!r} left the world off the model"
        )
    return seen


CONFIGS = {
    "default": ClusterConfig(),
    "rf2-min1": ClusterConfig(brokers=2, replication=2, min_insync=1),
    "4 brokers, 3 partitions, small retention": ClusterConfig(
        brokers=4, partitions=3, retention_records=5, retention_ms=20_000
    ),
    "acks=1, not idempotent": ClusterConfig(acks=1, idempotent=False, consumers=2),
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_refinement_holds_under_random_faults(name: str) -> None:
    seen: Counter[str] = Counter()
    for seed in range(6):
        seen += run_schedule(CONFIGS[name], seed, steps=1_500, fault_rate=0.02)
    # The schedules are only worth something if they reach the interesting steps.
    for action in (
        "LeaderWrite",
        "FollowerReplicate",
        "ElectLeader",
        "BecomeFollower",
        "Truncate",
        "Crash",
    ):
        assert seen[action] > 0, f"{action} never happened in {dict(seen)}"


def test_refinement_holds_on_calm_schedules_with_many_writes() -> None:
    seen: Counter[str] = Counter()
    for seed in range(4):
        seen += run_schedule(ClusterConfig(retention_records=6), seed, steps=2_000, fault_rate=0.0)
    assert seen["IncHighWatermark"] > 20
    assert seen["RetentionDelete"] > 0
