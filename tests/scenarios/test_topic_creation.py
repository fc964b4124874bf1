"""Topics created at runtime, in the simulated world: the same code the real host runs for CreateTopics.

A broker asks the coordination service to create the topic; the controller elects the
new partitions' first live replicas in epoch 0 and announces them; each replica opens its
log when LeaderAndIsr first names it, and finds it again after a crash. Refinement of the
configured partitions is checked after every event (the scenario driver does it), so a
created topic must leave the model's part of the cluster exactly as it was.
"""

from __future__ import annotations

import pytest
from kafka_verify.impl import events as ev
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.replica import Role
from kafka_verify.impl.zk import OFFSETS_TOPIC, TopicRecord
from replication_driver import Run

CONFIG = ClusterConfig(partitions=2, producers=1, consumers=1, groups=1, offsets_partitions=2)


def _answers(run: Run, kind: type[m.CreateTopicResponse]) -> list[m.CreateTopicResponse]:
    found = [e.message for e in run.world.inflight() if isinstance(e.message, kind)]
    return [a for a in found if isinstance(a, kind)]


def _create(run: Run, broker: int, name: str, partitions: int, rf: int) -> m.CreateTopicResponse:
    before = len(_answers(run, m.CreateTopicResponse))
    run.world.request(f"b{broker}", "p0", m.CreateTopic(900 + before, name, partitions, rf))
    answers = _answers(run, m.CreateTopicResponse)
    assert len(answers) == before + 1
    return answers[-1]


def test_a_created_topic_is_numbered_after_the_offsets_topic_and_assigned_round_robin() -> None:
    run = Run(CONFIG)
    answer = _create(run, 1, "orders", 3, 2)
    # The configured topic has partitions 0-1, the offsets topic 2-3: "orders" starts at 4.
    assert answer.error == m.NONE
    assert answer.topic == TopicRecord("orders", 4, ((1, 2), (2, 0), (0, 1)))
    names = [t.name for t in run.world.zk.topics]
    assert names == ["t", OFFSETS_TOPIC, "orders"]
    assert len(run.world.zk.partitions) == 7


def test_the_controller_elects_and_announces_a_created_topic_and_replicas_open_their_logs() -> None:
    run = Run(CONFIG)
    _create(run, 2, "orders", 3, 3)
    run.drain(3_000)
    for p in range(4, 7):
        record = run.world.zk.partitions[p]
        assert record.leader == run.world.zk.replicas[p][0] and record.leader_epoch == 0
        for b in range(3):
            broker = run.world.broker(b)
            assert broker is not None
            replica = broker.replicas[p]
            assert replica.role is (Role.LEADER if b == record.leader else Role.FOLLOWING)
            assert (b, p) in run.world.disks
            assert broker.metadata[p] == (record.leader, 0)
            assert [t.name for t in broker.topics][-1] == "orders"


def test_a_created_partition_replicates_and_its_log_survives_a_crash() -> None:
    run = Run(CONFIG)
    _create(run, 0, "orders", 1, 3)
    run.drain(3_000)
    p = 4
    leader_index = run.world.zk.partitions[p].leader
    assert leader_index is not None
    leader = run.world.broker(leader_index)
    assert leader is not None
    # A batch straight to the leader, as the real host's front end sends one.
    produce = m.Produce(1, p, 77, -1, -1, -1, 3, b"abc")
    run.world.request(f"b{leader_index}", "p0", produce)
    run.drain(3_000)
    follower = next(b for b in run.world.zk.replicas[p] if b != leader_index)
    assert run.world.disks[(follower, p)].leo == 3
    assert leader.replicas[p].hw == 3
    run.do(ev.Crash(f"b{follower}", lose_unflushed=False))
    run.do(ev.Restart(f"b{follower}"))
    run.drain(5_000)
    restarted = run.world.broker(follower)
    assert restarted is not None and restarted.replicas[p].log.leo == 3


@pytest.mark.parametrize(
    ("name", "partitions", "rf", "error"),
    [
        ("t", 1, 1, "TOPIC_ALREADY_EXISTS"),
        (OFFSETS_TOPIC, 1, 1, m.INVALID_TOPIC),
        ("bad name", 1, 1, m.INVALID_TOPIC),
        ("x" * 250, 1, 1, m.INVALID_TOPIC),
        ("ok", 0, 1, "INVALID_PARTITIONS"),
        ("ok", 1, 4, "INVALID_REPLICATION_FACTOR"),
    ],
)
def test_a_topic_that_cannot_be_created_gets_kafkas_error_and_changes_nothing(
    name: str, partitions: int, rf: int, error: str
) -> None:
    run = Run(CONFIG)
    answer = _create(run, 0, name, partitions, rf)
    assert (answer.error, answer.topic) == (error, None)
    assert [t.name for t in run.world.zk.topics] == ["t", OFFSETS_TOPIC]


def test_creating_a_topic_while_the_coordination_service_is_down_says_so() -> None:
    run = Run(CONFIG)
    run.do(ev.Crash("zk"))
    answer = _create(run, 0, "orders", 1, 1)
    assert answer.error == m.COORDINATION_UNAVAILABLE
