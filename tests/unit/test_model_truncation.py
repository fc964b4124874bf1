"""The model dictates the truncation offset: the leader's end for the follower's last epoch."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kafka_verify.model.actions import BecomeFollower, BecomeLeader, ElectLeader, Truncate
from kafka_verify.model.state import Config, Record, Role, State, initial_state
from kafka_verify.model.step import NotAllowed, step
from kafka_verify.model.variants import TRUNCATE_TO_HW

CONFIG = Config(brokers=3, replication=3, min_insync=1)


def diverged(config: Config = CONFIG, b0_hw: int = 1) -> State:
    """b0 led epoch 0 and wrote records 1, 2; b1 has only record 1 and leads epoch 1 with record 3;
    b0 follows b1 in epoch 1 and must cut record 2 (offset 1) away."""
    state = initial_state(config)
    part = state.partitions[0]
    b0 = replace(part.replica(0), log=(Record(1, 0), Record(2, 0)), hw=b0_hw)
    b1 = replace(part.replica(1), log=(Record(1, 0),), hw=1)
    state = state.with_partition(0, part.with_replica(b0).with_replica(b1))
    state = step(state, ElectLeader(0, 1, frozenset({1, 2}), 1), config)
    state = step(state, BecomeLeader(0, 1, 1, frozenset({1, 2})), config)
    part = state.partitions[0]
    b1 = part.replica(1)
    state = state.with_partition(0, part.with_replica(replace(b1, log=(*b1.log, Record(3, 1)))))
    return step(state, BecomeFollower(0, 0, 1, 1), config)


def test_the_truncation_the_protocol_dictates_is_taken() -> None:
    after = step(diverged(), Truncate(0, 0, 1), CONFIG)
    assert after.partitions[0].replica(0).log == (Record(1, 0),)


@pytest.mark.parametrize("offset", [2, 0])
def test_a_truncation_elsewhere_is_refused_on_that_step(offset: int) -> None:
    # 2: keeps record 2, which the leader never had (too little); 0: cuts record 1 (too much).
    with pytest.raises(NotAllowed, match="the protocol cuts broker 0's log at 1"):
        step(diverged(), Truncate(0, 0, offset), CONFIG)


def test_without_a_leader_to_have_answered_any_offset_in_the_log_is_taken() -> None:
    state = diverged()
    state = replace(state, running=state.running - {1})  # the leader crashed after answering
    assert step(state, Truncate(0, 0, 2), CONFIG).partitions[0].replica(0).leo == 2


def test_a_replica_that_has_not_learned_its_role_does_not_truncate() -> None:
    state = initial_state(CONFIG)
    part = state.partitions[0]
    unknown = replace(part.replica(1), log=(Record(1, 0),), role=Role.UNKNOWN)
    state = state.with_partition(0, part.with_replica(unknown))
    with pytest.raises(NotAllowed, match="broker 1 is unknown"):
        step(state, Truncate(0, 1, 0), CONFIG)


def test_the_pre_kip_101_variant_keeps_its_historical_rule() -> None:
    # b0's high watermark is 0: the protocol cuts at 1 (the leader's end of epoch 0), the
    # variant at 0 (b0's own high watermark, asking no one), and each refuses the other's cut.
    with pytest.raises(NotAllowed, match="at 1, not at 0"):
        step(diverged(b0_hw=0), Truncate(0, 0, 0), CONFIG)
    to_hw = replace(CONFIG, bugs=frozenset({TRUNCATE_TO_HW}))
    after = step(diverged(to_hw, b0_hw=0), Truncate(0, 0, 0), to_hw)
    assert after.partitions[0].replica(0).leo == 0
    with pytest.raises(NotAllowed, match="at 0, not at 1"):
        step(diverged(to_hw, b0_hw=0), Truncate(0, 0, 1), to_hw)
