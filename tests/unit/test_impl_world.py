"""The simulated world: network scheduling, partitions, crashes, ticks, the coordination service, clients."""

from __future__ import annotations

import pytest
from kafka_verify.impl import events as ev
from kafka_verify.impl.clients import fnv1a
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import InvalidEvent, World
from kafka_verify.impl.zk import (
    ZkElect,
    ZkError,
    ZkRead,
    ZkRegister,
    ZkRegistered,
    ZkUpdateIsr,
    ZkWritten,
)


def produced(world: World) -> int:
    result = world.apply(ev.Produce("p0", partition=0))
    (envelope,) = result.sent
    assert envelope.kind == "Produce" and envelope.dst == "b0"
    return envelope.id


def test_deliver_hands_the_message_over_once_and_duplicate_keeps_it() -> None:
    world = World(ClusterConfig())
    message_id = produced(world)
    first = world.apply(ev.Duplicate(message_id))
    assert first.delivered is not None and [type(a).__name__ for a in first.actions] == [
        "LeaderWrite"
    ]
    assert message_id in [e.id for e in world.inflight()]
    second = world.apply(ev.Deliver(message_id))
    assert second.actions == ()  # the idempotent leader does not append the copy again
    assert message_id not in [e.id for e in world.inflight()]
    with pytest.raises(InvalidEvent):
        world.apply(ev.Deliver(message_id))


def test_drop_loses_the_message() -> None:
    world = World(ClusterConfig())
    message_id = produced(world)
    assert world.apply(ev.Drop(message_id)).delivered is not None
    assert not world.inflight()


def test_partition_drops_crossing_messages_and_blocks_new_ones_until_heal() -> None:
    world = World(ClusterConfig())
    produced(world)
    world.apply(ev.Partition((("p0",),)))
    assert world.partitioned() and not world.inflight()
    assert world.apply(ev.Produce("p0", partition=0)).sent == ()
    world.apply(ev.Heal())
    assert not world.partitioned()


def test_crash_and_restart_of_a_broker_name_model_actions_and_count_lost_records() -> None:
    world = World(ClusterConfig())
    world.apply(ev.Deliver(produced(world)))
    crash = world.apply(ev.Crash("b0", lose_unflushed=True))
    assert [type(a).__name__ for a in crash.actions] == ["Crash"] and crash.lost_records == 1
    assert not world.is_up("b0")
    with pytest.raises(InvalidEvent):
        world.apply(ev.Crash("b0"))
    restart = world.apply(ev.Restart("b0"))
    assert [type(a).__name__ for a in restart.actions] == ["Restart"] and world.is_up("b0")


def test_a_clean_crash_flushes_first() -> None:
    world = World(ClusterConfig())
    world.apply(ev.Deliver(produced(world)))
    crash = world.apply(ev.Crash("b0", lose_unflushed=False))
    assert [type(a).__name__ for a in crash.actions] == [
        "Flush",
        "Crash",
    ] and crash.lost_records == 0


def test_unknown_nodes_and_running_restarts_are_invalid() -> None:
    world = World(ClusterConfig())
    for event in (
        ev.Crash("b9"),
        ev.Restart("b1"),
        ev.Produce("p7"),
        ev.Poll("c3"),
        ev.Subscribe("c0"),
    ):
        with pytest.raises(InvalidEvent):
            world.apply(event)


def test_tick_fires_timers_in_order_and_moves_the_clock() -> None:
    world = World(ClusterConfig())
    assert world.next_timer_ms() == ClusterConfig().replica_fetch_interval_ms
    world.apply(ev.Tick(250))
    assert world.now_ms == 250
    assert {e.kind for e in world.inflight()} == {"Fetch"}


def test_zk_down_or_unreachable_means_connection_loss_for_callers() -> None:
    world = World(ClusterConfig())
    world.apply(ev.Crash("zk"))
    assert not world.is_up("zk")
    world.apply(ev.Tick(20_000))  # no heartbeats, no controller work, no elections
    assert world.zk.partitions[0].leader_epoch == 0
    world.apply(ev.Restart("zk"))
    assert world.zk.alive(0, world.now_ms)


def test_zk_writes_are_compare_and_set_and_fenced() -> None:
    zk = World(ClusterConfig()).zk
    assert isinstance(
        zk.call(
            ZkElect(
                0,
                controller_epoch=0,
                expected_version=0,
                leader=1,
                isr=frozenset({1}),
                leader_broker_epoch=2,
            ),
            0,
        ),
        ZkError,
    )
    assert isinstance(
        zk.call(
            ZkElect(0, 1, expected_version=5, leader=1, isr=frozenset({1}), leader_broker_epoch=2),
            0,
        ),
        ZkError,
    )
    written = zk.call(ZkElect(0, 1, 0, 1, frozenset({1, 2}), 2), 0)
    assert isinstance(written, ZkWritten) and written.record.leader_epoch == 1
    stale = ZkUpdateIsr(0, leader=0, leader_epoch=0, expected_version=1, isr=frozenset({0}))
    assert isinstance(zk.call(stale, 0), ZkError)
    assert isinstance(zk.call(ZkUpdateIsr(0, 1, 1, 1, frozenset({1})), 0), ZkWritten)


def test_zk_sessions_expire_by_the_virtual_clock_and_registration_bumps_the_broker_epoch() -> None:
    config = ClusterConfig()
    zk = World(config).zk
    assert zk.alive(1, config.session_timeout_ms) and not zk.alive(1, config.session_timeout_ms + 1)
    again = zk.call(ZkRegister(1), 10_000)
    assert isinstance(again, ZkRegistered) and again.broker_epoch == config.brokers + 1
    cluster = zk.call(ZkRead(), 10_000)
    assert cluster.registrations == {1: again.broker_epoch}


def test_the_partitioner_is_explicit_then_key_hash_then_round_robin() -> None:
    world = World(ClusterConfig(partitions=3))
    producer = world.nodes_up["p0"]
    assert producer.choose_partition(2, "k") == 2
    assert producer.choose_partition(None, "k") == fnv1a("k") % 3
    assert [producer.choose_partition(None, None) for _ in range(4)] == [0, 1, 2, 0]
    assert fnv1a("") == 0x811C9DC5 and fnv1a("a") == 0xE40C292C


def test_impossible_configs_are_refused_with_one_sentence() -> None:
    for bad in (
        {"replication": 4},
        {"min_insync": 4},
        {"partitions": 0},
        {"bugs": frozenset({"no-such-bug"})},
        {"acks": 1},
    ):
        with pytest.raises(ValueError):
            ClusterConfig(**bad)  # type: ignore[arg-type]


def test_describe_summarises_quorum_replicas_network_and_clock() -> None:
    text = World(ClusterConfig()).describe()
    assert "t/0: leader b0 epoch 0 isr {b0,b1,b2}" in text and "clock 0 ms" in text
