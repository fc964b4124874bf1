"""The event-deletion pass: shorter schedules that still fail the same way, and replay exactly."""

from __future__ import annotations

from harness.runner import execute
from harness.shrink import MessageRef, replay, shrink_events, symbolic
from impl import events as ev
from impl.config import ClusterConfig
from impl.world import Envelope, World

UNCLEAN = ClusterConfig(bugs=frozenset({"unclean-election"}))


def padded_unclean_election() -> list[object]:
    """b2 is cut off and left behind, then both ISR members die: padded with needless events."""
    return [
        ev.Tick(10),
        ev.Partition((("b2",), ("zk", "b0", "b1", "p0", "p1", "c0"))),
        ev.Produce("p0", partition=0),
        ev.Tick(50),
        ev.Tick(8_000),
        ev.Tick(1),
        ev.Heal(),
        ev.Tick(10),
        ev.Crash("b0", lose_unflushed=False),
        ev.Tick(10),
        ev.Crash("b1", lose_unflushed=False),
        ev.Tick(12_000),
    ]


def test_the_padded_schedule_fails_and_the_pass_makes_it_shorter_and_still_failing() -> None:
    events = padded_unclean_election()
    assert execute(UNCLEAN, events).violation is not None
    shorter = shrink_events(UNCLEAN, events, "refinement", eventually=False, budget_s=30)
    assert len(shorter) < len(events)
    outcome = execute(UNCLEAN, shorter)  # the result replays exactly, ids and all
    assert outcome.violation is not None and outcome.violation.property == "refinement"
    assert len(outcome.steps) == len(shorter)


def test_the_pass_never_returns_a_schedule_that_passes_on_the_correct_broker() -> None:
    events = padded_unclean_election()
    shorter = shrink_events(UNCLEAN, events, "refinement", eventually=False, budget_s=30)
    assert execute(ClusterConfig(), shorter).violation is None


def test_deliveries_are_named_by_message_so_deleting_earlier_events_keeps_them_meaningful() -> None:
    config = ClusterConfig()
    events: list[object] = [ev.Produce("p1", partition=0), ev.Produce("p0", partition=0)]
    p0_message = max(e.id for e in _inflight_after(config, events) if e.src == "p0")
    items = symbolic(config, [*events, ev.Deliver(p0_message)])
    ref = items[-1]
    assert isinstance(ref, MessageRef) and (ref.src, ref.kind) == ("p0", ev.Deliver)
    # Without p1's produce, p0's request has another id; the reference still finds it.
    run = replay(config, [items[1], ref], eventually=False)
    delivered = run.events[-1]
    assert isinstance(delivered, ev.Deliver) and delivered.message_id != p0_message
    assert execute(config, list(run.events)).steps[-1].delivered.src == "p0"  # type: ignore[union-attr]


def _inflight_after(config: ClusterConfig, events: list[object]) -> list[Envelope]:
    world = World(config)
    for event in events:
        world.apply(event)  # type: ignore[arg-type]
    return list(world.inflight())


def test_a_schedule_that_does_not_fail_is_returned_unchanged() -> None:
    events = [ev.Produce("p0", partition=0), ev.Tick(10)]
    assert shrink_events(ClusterConfig(), events, "refinement", False, 5) == events
