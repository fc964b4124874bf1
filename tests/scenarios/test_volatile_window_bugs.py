"""Seeded bugs, each aimed at one volatile window or at the exact truncation rule.

- `isr-expand-at-hw` (KAFKA-7128): a follower just readmitted to the ISR.

As in test_epoch_and_offset_bugs.py, each scenario writes its event list on an
unchecked world (deciding message by message what the network loses), then
`Replay` runs it through the harness's `Checker`: refinement and every property
after every event. The same story runs clean on the correct broker, and the bug
is named by the property the catalogue says catches it.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka_verify.harness.bug_catalogue import STORIES
from kafka_verify.impl import events as ev
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import Envelope
from kafka_verify.model.actions import ElectLeader, ExpandIsr
from test_epoch_and_offset_bugs import Replay, Schedule, with_bugs

CAUGHT_BY = {story.name: story.caught_by for story in STORIES}


def leader_and_isr_to(broker: str, epoch: int) -> Callable[[Envelope], bool]:
    return lambda e: (
        isinstance(e.message, m.LeaderAndIsr)
        and e.dst == broker
        and e.message.leader_epoch == epoch
    )


def _fetch_answer(wanted: Callable[[m.FetchResponse, str], bool]) -> Callable[[Envelope], bool]:
    return lambda e: isinstance(e.message, m.FetchResponse) and wanted(e.message, e.dst)


# -- isr-expand-at-hw (KAFKA-7128): a follower just readmitted to the ISR ----------------------


def isr_expand_at_hw_events(config: ClusterConfig) -> list[ev.Event]:
    """b1 leads with a high watermark that lags what b0 committed; b2 fetches at that mark."""
    s = Schedule(config)
    # 1. p0's record 1 reaches b0 at offset 0. b2 gets no fetch answer, so it lags out of the
    #    ISR; b1 fetches the record, b0 commits it with ISR {b0, b1}, but every answer that
    #    would tell b1 the new high watermark is lost: b1 holds the record at high watermark 0.
    starve = _fetch_answer(lambda r, dst: dst == "b2" or (dst == "b1" and r.high_watermark >= 1))
    s.do(ev.Produce("p0", partition=0))
    s.run(8_000, lost=starve)
    # 2. b0 crashes (its disk whole); b1 leads epoch 1, alone in the ISR, at high watermark 0.
    #    b2 follows it and fetches at offset 0. Correct: offset 0 is short of where epoch 1
    #    began (1), so b2 is readmitted only once it holds record 1. With the bug, offset 0
    #    reaches b1's high watermark and b2 is readmitted with an empty log.
    s.do(ev.Crash("b0", lose_unflushed=False))
    s.run(8_000)
    s.do(ev.Restart("b0"))
    s.run(3_000)
    return s.events


@pytest.mark.parametrize("bug", [None, "isr-expand-at-hw"])
def test_isr_expand_at_hw_readmits_a_follower_that_lacks_a_committed_record(
    bug: str | None,
) -> None:
    config = with_bugs(*([bug] if bug else []))
    replay = Replay(config, isr_expand_at_hw_events(config))
    assert ElectLeader(0, 1, frozenset({1}), controller_epoch=2) in replay.actions
    assert ExpandIsr(0, 1, frozenset({1, 2})) in replay.actions  # b2 readmitted by b1
    if bug is None:
        assert replay.violations == [] and replay.eventually == []
        return
    first = replay.violations[0]
    assert first.property in CAUGHT_BY[bug] and first.property == "log-agreement"
    assert "ISR member 2 must hold what broker 0 committed" in first.message
