"""Two seeded bugs that need a truncation to show: epoch-end-offset-hole and duplicate-offset.

Each scenario is a function that builds an event list for a cluster config:
it runs an unchecked world and decides, message by message, what the network
delivers and what it loses. The tests then replay that list through the
harness's `Checker` (refinement, state, step and history properties after every
event), as a trace file would be replayed. The list depends on the config, since
a broker with a bug sends other messages than a correct one; the story does not.

Both stories use the same two-bounce skeleton. The controller elects a new
leader only when the leader's registration goes or changes, so a broker that
crashes and restarts at once (a bounce) hands leadership to the next ISR member
while staying in the ISR itself:
1. b0 (leader, epoch 0) appends record 1; the fetch answers that carry it to
   b1 and b2 are lost, so it is b0's alone and never committed.
2. b0 bounces: b1 leads epoch 1.
3. b1 bounces: b0 leads epoch 2.
"""

from __future__ import annotations

from collections.abc import Callable

import pytest
from kafka_verify.harness.runner import Checker
from kafka_verify.impl import events as ev
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import Envelope, World
from kafka_verify.model.actions import Action, BecomeLeader, ElectLeader, LeaderWrite, Truncate
from kafka_verify.properties.catalogue import Violation

Lost = Callable[[Envelope], bool]


def nothing(envelope: Envelope) -> bool:
    return False


def records_to(*brokers: str) -> Lost:
    """Fetch answers that would hand records to `brokers`."""
    return lambda e: (
        isinstance(e.message, m.FetchResponse) and bool(e.message.records) and e.dst in brokers
    )


def leader_and_isr_to(broker: str) -> Lost:
    return lambda e: isinstance(e.message, m.LeaderAndIsr) and e.dst == broker


class Schedule:
    """Writes an event list by running it on an unchecked world."""

    def __init__(self, config: ClusterConfig) -> None:
        self.world = World(config)
        self.events: list[ev.Event] = []

    def do(self, *events: ev.Event) -> None:
        for event in events:
            self.world.apply(event)
            self.events.append(event)

    def bounce(self, broker: str) -> None:
        """Crash `broker` keeping its disk whole (no unflushed record is lost) and start it again."""
        self.do(ev.Crash(broker, lose_unflushed=False), ev.Restart(broker))

    def run(self, ms: int, lost: Lost = nothing) -> None:
        """Deliver every message, oldest first, except the `lost` ones; fire timers for `ms`."""
        world = self.world
        until = world.now_ms + ms
        while True:
            inflight = world.inflight()
            if inflight:
                oldest = inflight[0]
                self.do(ev.Drop(oldest.id) if lost(oldest) else ev.Deliver(oldest.id))
                continue
            if world.now_ms >= until:
                return
            due = world.next_timer_ms()
            self.do(ev.Tick(max(1, min(until - world.now_ms, due if due is not None else ms))))


class Replay:
    """An event list replayed with every check: the violations found and the model actions named."""

    def __init__(self, config: ClusterConfig, events: list[ev.Event]) -> None:
        checker = Checker(config)
        self.violations: list[Violation] = checker.initial_violations()
        self.actions: list[Action] = []
        for event in events:
            record, found = checker.apply(event)
            self.actions.extend(record.actions)
            self.violations.extend(found)
        self.checker = checker
        # Every scenario ends with the network whole and nothing in flight, so the
        # EVENTUALLY properties apply to its last state.
        self.eventually: list[Violation] = checker.finish()

    def properties(self) -> set[str]:
        return {v.property for v in self.violations}

    def story(self) -> list[Action]:
        """The actions that tell who wrote, who was elected, who led and who truncated."""
        return [a for a in self.actions if isinstance(a, LeaderWrite | ElectLeader | Truncate)]


def with_bugs(*bugs: str) -> ClusterConfig:
    return ClusterConfig(bugs=frozenset(bugs))


# -- epoch-end-offset-hole (KIP-101, fixed by KIP-279) ------------------------------------------


def epoch_end_offset_hole_events(config: ClusterConfig) -> list[ev.Event]:
    """Two fast leader changes leave b1 with a last epoch (1) that the new leader b0 never saw.

    The model's shortest counterexample (10 actions, `kafka-verify prove --bug
    epoch-end-offset-hole`) is this story: b0 writes, b1 is elected and writes,
    b0 is elected again, b1 follows and truncates to b0's answer, b0 raises its
    high watermark. The model shrinks the ISR to {b0, b1} instead of letting b2
    fetch; here b2 stays in the ISR and fetches record 1 from b0.
    """
    s = Schedule(config)
    # 1. b0 appends record 1 at offset 0 in epoch 0; b1 and b2 never receive it.
    s.do(ev.Produce("p0", partition=0))
    s.run(100, lost=records_to("b1", "b2"))
    # 2. b0 bounces: the controller elects b1 for epoch 1 (ISR still {b0, b1, b2}). b0 is back
    #    at once, but the LeaderAndIsr that would make it follow b1 is lost: b0 never hears of
    #    epoch 1, and its log keeps record 1 in epoch 0.
    s.bounce("b0")
    hide_epoch_1 = leader_and_isr_to("b0")
    s.run(1_000, lost=hide_epoch_1)
    # 3. b1 appends record 2 at offset 0 in epoch 1, before any follower fetches it.
    s.do(ev.Produce("p1", partition=0))
    s.run(500, lost=lambda e: hide_epoch_1(e) or records_to("b2")(e))
    # 4. b1 bounces: the controller elects b0 for epoch 2. b1 restarts with [record 2 @ epoch 1],
    #    follows b0 and asks for the end offset of epoch 1. b0 never had epoch 1 and answers
    #    with the end of the largest epoch it has below it: epoch 0, end offset 1.
    #    Correct (KIP-279): b1 has no epoch 0, so it cuts its whole log and fetches record 1.
    #    With the bug: b1 trusts the end offset 1, keeps record 2 at offset 0, fetches from
    #    offset 1, and b0 counts it as caught up: the high watermark passes offset 0, where b0
    #    and b2 hold record 1 and b1 holds record 2.
    s.bounce("b1")
    s.run(1_000)
    return s.events


def test_epoch_end_offset_hole_scenario_is_clean_on_the_correct_broker() -> None:
    config = with_bugs()
    replay = Replay(config, epoch_end_offset_hole_events(config))
    assert replay.violations == [] and replay.eventually == []
    # The story took place: two elections, and b1 cut its epoch-1 record away.
    assert replay.story() == [
        LeaderWrite(0, 0, record_id=1, acks=-1),
        ElectLeader(0, 1, frozenset({0, 1, 2}), controller_epoch=2),
        Truncate(0, 2, offset=0, complete=True),  # b2's log is empty: nothing to cut
        LeaderWrite(0, 1, record_id=2, acks=-1),
        ElectLeader(0, 0, frozenset({0, 1, 2}), controller_epoch=3),
        Truncate(0, 2, offset=0, complete=True),
        Truncate(0, 1, offset=0, complete=True),  # b1 cuts record 2
    ]
    assert BecomeLeader(0, 0, 2, frozenset({0, 1, 2})) in replay.actions
    part = replay.checker.state.partitions[0]
    assert {r.broker: [rec.id for rec in r.log] for r in part.replicas} == {0: [1], 1: [1], 2: [1]}
    assert all(r.hw == 1 for r in part.replicas)


def test_epoch_end_offset_hole_is_refused_on_the_truncation_that_keeps_too_much() -> None:
    config = with_bugs("epoch-end-offset-hole")
    replay = Replay(config, epoch_end_offset_hole_events(config))
    # The protocol dictates the cut (KIP-279: b1 has no epoch 0, so its whole log goes), so
    # the very step where b1 keeps record 2 is refused; the damage it leads to is seen after.
    first = replay.violations[0]
    assert first.property == "refinement", replay.violations
    assert dict(first.details)["action"] == repr(Truncate(0, 1, offset=1, complete=True))
    assert "the protocol cuts broker 1's log at 0, not at 1" in first.message
    assert "log-agreement" in replay.properties()


# -- duplicate-offset --------------------------------------------------------------------------


def duplicate_offset_events(config: ClusterConfig) -> list[ev.Event]:
    """b0 truncates away its uncommitted record, then leads again and numbers the next append."""
    s = Schedule(config)
    # 1. p0 sends record 1: b0 appends it at offset 0 in epoch 0; b1 and b2 never receive it,
    #    so it is not committed and p0 gets no answer.
    s.do(ev.Produce("p0", partition=0))
    s.run(100, lost=records_to("b1", "b2"))
    # 2. b0 bounces: b1 leads epoch 1 with an empty log. b0 follows, asks for the end of
    #    epoch 0, and b1, which has no epoch 0, leaves b0 to fall back to its high watermark:
    #    b0 truncates to offset 0. With the bug its next offset stays 1.
    s.bounce("b0")
    s.run(1_000)
    # 3. b1 bounces: b0 leads epoch 2, its log still empty.
    s.bounce("b1")
    s.run(1_000)
    # 4. p0's request times out (3 s after it sent it) and p0 sends record 1 again: b0 appends
    #    it at offset 0. With acks=all b0 answers once the high watermark passes the offset it
    #    answers with: 0 when correct, 1 with the bug.
    s.run(1_000)
    # 5. p1 sends record 2 (offset 1) and the followers fetch it: the high watermark reaches 2,
    #    which releases p0's answer with the bug (the correct answer, offset 0, went at step 4).
    s.do(ev.Produce("p1", partition=0))
    s.run(500)
    # 6. c0 polls. Its first fetch names leader epoch 0 and is fenced; it learns epoch 2 and
    #    its second poll reads offsets 0 and 1.
    for _ in range(2):
        s.do(ev.Poll("c0"))
        s.run(200)
    return s.events


def acked_sends(replay: Replay) -> list[object]:
    return [op.value for op in replay.checker.ops if op.f == "send" and op.type == "ok"]


def polled(replay: Replay) -> list[object]:
    return [op.value for op in replay.checker.ops if op.f == "poll" and op.type == "ok"]


def test_duplicate_offset_scenario_is_clean_on_the_correct_broker() -> None:
    config = with_bugs()
    replay = Replay(config, duplicate_offset_events(config))
    assert replay.violations == [] and replay.eventually == []
    # The story took place: b0 cut record 1 away as a follower, then led epoch 2.
    assert Truncate(0, 0, offset=0, complete=True) in replay.actions
    assert BecomeLeader(0, 0, 2, frozenset({0, 1, 2})) in replay.actions
    # Each answer names the offset the record was read at.
    assert acked_sends(replay) == [["t", 0, 0, 1], ["t", 0, 1, 2]]
    assert polled(replay) == [{"t/0": [[0, 1], [1, 2]]}]


def test_duplicate_offset_is_reported_as_duplicate_and_inconsistent_offsets() -> None:
    config = with_bugs("duplicate-offset")
    replay = Replay(config, duplicate_offset_events(config))
    # The logs are right (the model accepts every step); only the answer is wrong: record 1
    # acknowledged at offset 1, read at offset 0, where offset 1 holds record 2.
    assert Truncate(0, 0, offset=0, complete=True) in replay.actions
    assert acked_sends(replay) == [["t", 0, 1, 1]]  # record 2's answer (offset 2) waits for hw 3
    assert polled(replay) == [{"t/0": [[0, 1], [1, 2]]}]
    assert [v.property for v in replay.violations] == ["duplicate", "inconsistent-offsets"]
    assert dict(replay.violations[0].details)["offsets"] == (1, 0)


@pytest.mark.parametrize(
    ("events", "other_bug"),
    [
        (epoch_end_offset_hole_events, "duplicate-offset"),
        (duplicate_offset_events, "epoch-end-offset-hole"),
    ],
)
def test_each_scenario_shows_its_own_bug_only(
    events: Callable[[ClusterConfig], list[ev.Event]], other_bug: str
) -> None:
    config = with_bugs(other_bug)
    replay = Replay(config, events(config))
    assert replay.violations == [] and replay.eventually == []
