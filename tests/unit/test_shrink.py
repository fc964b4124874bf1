"""The event-deletion pass: shorter schedules that still fail the same way, and replay exactly."""

from __future__ import annotations

import functools
from collections.abc import Callable
from pathlib import Path

import pytest
from kafka_verify.harness.mutants import EVENT_SHRINK_BUDGET_S
from kafka_verify.harness.runner import execute
from kafka_verify.harness.shrink import (
    MessageRef,
    _move_tick_time,
    _Search,
    replay,
    shrink_events,
    stream_parts,
    symbolic,
    traffic_keys,
    units,
)
from kafka_verify.harness.trace import load_trace
from kafka_verify.impl import events as ev
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl import messages as m
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import Envelope, World

UNCLEAN = ClusterConfig(bugs=frozenset({"unclean-election"}))
# Two partitions, so the schedule can carry traffic the counterexample does not need.
UNCLEAN_TWO_PARTITIONS = ClusterConfig(partitions=2, bugs=frozenset({"unclean-election"}))
# What is left of the planted schedule below: the followers fall out of the ISR of
# partition 0 (nobody fetches for 8 s), its leader b0 dies, and the controller elects b1.
KNOWN_SHORT = [ev.Tick(8_000), ev.Crash("b0", lose_unflushed=False), ev.Tick(12_000)]


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


def planted_unclean_election() -> list[object]:
    """KNOWN_SHORT with its ticks split, buried in traffic it does not need.

    The padding is another partition's writes and their replication, a
    consumer's polls, a producer's crash and restart, and a network split that
    heals at once: all of it must go, and the ticks must join again.
    """
    world = World(UNCLEAN_TWO_PARTITIONS)
    events: list[object] = []

    def do(event: object) -> None:
        world.apply(event)  # type: ignore[arg-type]
        events.append(event)

    def deliver_partition_1_traffic(count: int) -> None:
        for _ in range(count):
            wanted = [e for e in world.inflight() if _about_partition_1(e)]
            if wanted:
                do(ev.Deliver(wanted[0].id))

    do(ev.Produce("p1", partition=1))
    deliver_partition_1_traffic(6)
    do(ev.Poll("c0"))
    do(ev.Tick(3_000))
    do(ev.Crash("p0"))
    do(ev.Restart("p0"))
    do(ev.Produce("p1", partition=1))
    deliver_partition_1_traffic(6)
    do(ev.Tick(5_000))
    do(ev.Partition((("b2",), ("zk", "b0", "b1", "p0", "p1", "c0"))))
    do(ev.Heal())
    do(ev.Crash("b0", lose_unflushed=False))
    do(ev.Poll("c0"))
    do(ev.Tick(6_000))
    do(ev.Tick(6_000))
    return events


def _about_partition_1(envelope: Envelope) -> bool:
    return getattr(envelope.message, "partition", None) == 1 or envelope.src.startswith("p")


def test_a_planted_long_schedule_shrinks_to_the_known_short_one() -> None:
    events = planted_unclean_election()
    failing = execute(UNCLEAN_TWO_PARTITIONS, events).violation
    assert failing is not None and failing.property == "refinement"
    assert len(events) == 20
    shorter = shrink_events(UNCLEAN_TWO_PARTITIONS, events, "refinement", False, budget_s=60)
    assert shorter == KNOWN_SHORT
    outcome = execute(UNCLEAN_TWO_PARTITIONS, shorter)
    assert outcome.violation is not None and outcome.violation.property == "refinement"
    assert "unclean election" in outcome.violation.message


def test_the_pass_is_deterministic() -> None:
    events = planted_unclean_election()
    runs = [
        shrink_events(UNCLEAN_TWO_PARTITIONS, events, "refinement", False, budget_s=60)
        for _ in range(2)
    ]
    assert runs[0] == runs[1]


def test_deliveries_that_matter_survive_and_the_result_replays_exactly() -> None:
    """A schedule where the failure needs particular deliveries (and losses) in order.

    b0 takes a record the followers never get; a bounce makes b1 leader, which
    takes a record of its own; another bounce makes b0 leader again and b1
    keeps its record where b0 has another (the scenario of
    tests/scenarios/test_epoch_and_offset_bugs.py); refinement refuses that truncation.
    """
    config = ClusterConfig(bugs=frozenset({"epoch-end-offset-hole"}))
    events = _epoch_end_offset_hole_schedule(config)
    shorter = shrink_events(config, events, "refinement", False, budget_s=60)
    assert len(shorter) <= len(events) // 2
    outcome = execute(config, shorter)
    assert outcome.violation is not None and outcome.violation.property == "refinement"
    assert len(outcome.steps) == len(shorter)  # every event applied: ids and all are exact
    assert execute(ClusterConfig(), shorter, skip_diverged=True).violation is None


def _epoch_end_offset_hole_schedule(config: ClusterConfig) -> list[object]:
    """The schedule up to the failure: every message delivered in order except the lost ones."""
    world = World(config)
    events: list[object] = []

    def do(*chosen: object) -> None:
        for event in chosen:
            world.apply(event)  # type: ignore[arg-type]
            events.append(event)

    def run(ms: int, lost: Callable[[Envelope], bool]) -> None:
        until = world.now_ms + ms
        while world.inflight() or world.now_ms < until:
            if world.inflight():
                oldest = world.inflight()[0]
                do(ev.Drop(oldest.id) if lost(oldest) else ev.Deliver(oldest.id))
                continue
            due = world.next_timer_ms()
            do(ev.Tick(max(1, min(until - world.now_ms, due if due is not None else ms))))

    def records_to(*brokers: str) -> Callable[[Envelope], bool]:
        return lambda e: (
            isinstance(e.message, m.FetchResponse) and bool(e.message.records) and e.dst in brokers
        )

    def hide_epoch_1(e: Envelope) -> bool:
        return isinstance(e.message, m.LeaderAndIsr) and e.dst == "b0"

    do(ev.Produce("p0", partition=0))
    run(100, records_to("b1", "b2"))
    do(ev.Crash("b0", lose_unflushed=False), ev.Restart("b0"))
    run(1_000, hide_epoch_1)
    do(ev.Produce("p1", partition=0))
    run(500, lambda e: hide_epoch_1(e) or records_to("b2")(e))
    do(ev.Crash("b1", lose_unflushed=False), ev.Restart("b1"))
    run(1_000, lambda e: False)
    return events[: len(execute(config, events).steps)]  # up to the failure


def test_a_spent_budget_still_returns_a_failing_schedule_no_longer_than_the_input() -> None:
    events = planted_unclean_election()
    shorter = shrink_events(UNCLEAN_TWO_PARTITIONS, events, "refinement", False, budget_s=0)
    assert len(shorter) <= len(events)
    outcome = execute(UNCLEAN_TWO_PARTITIONS, shorter)
    assert outcome.violation is not None and outcome.violation.property == "refinement"


def test_traffic_keys_name_the_client_partition_and_node_of_an_item() -> None:
    ref = MessageRef(ev.Deliver, "b1", "b0", "Fetch", 1, 0)
    assert set(traffic_keys(ref)) == {"node b1", "node b0", "message Fetch", "partition 1"}
    assert set(traffic_keys(ev.Produce("p0", partition=1))) == {"node p0", "partition 1"}
    assert "faults of b2" in traffic_keys(ev.Restart("b2"))
    assert traffic_keys(ev.Tick(5)) == ()


# -- group traffic: lifecycles and rebalance rounds as units ----------------------------------

ZOMBIE = ClusterConfig(bugs=frozenset({"zombie-commit"}), groups=1, consumers=3)


@functools.cache
def planted_zombie_commit() -> tuple[object, ...]:
    """A zombie commit (tests/scenarios/test_groups_scenarios.py) with every message delivered in
    order and the clock in 100 ms ticks, after padding the failure needs none of: a member (c2)
    that joins and leaves first, with its rebalance rounds, and a broker's crash and restart."""
    world = World(ZOMBIE)
    events: list[object] = []

    def do(event: object) -> None:
        world.apply(event)  # type: ignore[arg-type]
        events.append(event)

    def run(ms: int, held: int | None = None) -> None:
        until = world.now_ms + ms
        while True:
            ready = [e for e in world.inflight() if e.id != held]
            if ready:
                do(ev.Deliver(ready[0].id))
            elif world.now_ms < until:
                do(ev.Tick(min(100, until - world.now_ms)))
            else:
                return

    do(ev.Subscribe("c2", "g0"))
    run(3_000)
    do(ev.Close("c2"))
    do(ev.Subscribe("c0", "g0"))
    run(3_000)
    do(ev.Crash("b2", lose_unflushed=False))
    run(500)
    do(ev.Restart("b2"))
    run(2_000)
    do(ev.Produce("p0", partition=0))
    do(ev.Produce("p0", partition=0))
    run(1_000)
    for _ in range(2):
        do(ev.Poll("c0"))
        run(500)
    do(ev.CommitOffsets("c0"))
    stale = next(e.id for e in world.inflight() if isinstance(e.message, gm.OffsetCommit))
    do(ev.Subscribe("c1", "g0"))
    run(5_000, held=stale)  # a new generation forms while the commit is in flight
    do(ev.Deliver(stale))
    run(1_000)
    return tuple(events[: len(execute(ZOMBIE, events).steps)])  # up to the failure


@functools.cache
def shrunk_zombie_commit() -> tuple[object, ...]:
    return tuple(shrink_events(ZOMBIE, planted_zombie_commit(), "refinement", False, budget_s=120))


def test_a_long_group_failure_shrinks_below_40_events_deterministically_and_replays() -> None:
    events = list(planted_zombie_commit())
    failing = execute(ZOMBIE, events).violation
    assert failing is not None and failing.property == "refinement"
    assert len(events) > 500
    shorter = list(shrunk_zombie_commit())
    assert shrink_events(ZOMBIE, events, "refinement", False, budget_s=120) == shorter
    assert len(shorter) <= 40
    outcome = execute(ZOMBIE, shorter)
    assert outcome.violation is not None and outcome.violation.property == "refinement"
    assert len(outcome.steps) == len(shorter)  # every event applied: ids and all are exact
    assert not any(isinstance(e, ev.Subscribe) and e.client == "c2" for e in shorter)
    assert (
        execute(ClusterConfig(groups=1, consumers=3), shorter, skip_diverged=True).violation is None
    )


def test_the_units_are_whole_lifecycles_rounds_and_crash_pairs() -> None:
    run = replay(ZOMBIE, symbolic(ZOMBIE, planted_zombie_commit()), eventually=False)
    items, messages = run.items, run.messages
    found = set(units(items, messages))
    # c2's lifecycle: its Subscribe and Close and every message to or from it, nothing else.
    c2 = tuple(
        i
        for i, item in enumerate(items)
        if item in (ev.Subscribe("c2", "g0"), ev.Close("c2"))
        or (isinstance(item, MessageRef) and "c2" in (item.src, item.dst))
    )
    assert c2 in found
    # Each generation's round: exactly its JoinGroup and SyncGroup exchanges.
    generations = {m.generation for m in messages if isinstance(m, gm.SyncGroup)}
    assert len(generations) >= 3  # c2 alone, c0 alone, c0 with c1
    for generation in generations:
        syncs = {i for i, m in enumerate(messages) if isinstance(m, gm.SyncGroup)}
        mine = {i for i in syncs if messages[i].generation == generation}  # type: ignore[union-attr]
        rounds = [u for u in found if mine <= set(u) and not (syncs - mine) & set(u)]
        assert any(all(isinstance(messages[i], _ROUND_TYPES) for i in u) for u in rounds), (
            generation
        )
    crash = items.index(ev.Crash("b2", lose_unflushed=False))
    assert (crash, items.index(ev.Restart("b2"))) in found


_ROUND_TYPES = (gm.JoinGroup, gm.JoinGroupResponse, gm.SyncGroup, gm.SyncGroupResponse)


def test_a_late_joiner_is_postponed_so_the_first_member_has_its_generation_alone() -> None:
    """The failure needs a generation change, not the round the early joiner c1 forced."""
    world = World(ZOMBIE)
    joins = []
    for event in shrunk_zombie_commit():
        if isinstance(event, ev.Deliver):
            envelope = next(e for e in world.inflight() if e.id == event.message_id)
            if isinstance(envelope.message, gm.JoinGroupResponse):
                joins.append(envelope.message.members)
        world.apply(event)  # type: ignore[arg-type]
    assert joins and all(len(members) == 1 for members in joins)


def test_a_reference_with_no_such_message_in_flight_stands_for_a_like_one() -> None:
    """Once a deleted crash has moved a leader, a write to the old leader stands for the write to
    the new one: the same type about the same partition, between other nodes."""
    config = ClusterConfig()
    world = World(config)
    world.apply(ev.Produce("p0", partition=0))
    sent = next(e for e in world.inflight() if e.src == "p0")
    elsewhere = MessageRef(ev.Deliver, "p0", "b2" if sent.dst != "b2" else "b1", sent.kind, 0, 0)
    assert elsewhere.resolve(world) == ev.Deliver(sent.id)
    other_partition = MessageRef(ev.Deliver, "p0", sent.dst, sent.kind, 1, 0)
    assert other_partition.resolve(world) is None


# -- failures as the campaign found them ------------------------------------------------------

REGRESSIONS = Path(__file__).parents[1] / "regressions"
# Raw failing schedules (before the event pass) on which an earlier form of the pass stopped above
# 40 events, at its fixed point: 56 for duplicate-offset (a leader's crash and its retried
# writes), 54 for no-generation-fencing-on-fetch (a member whose session ends while followers
# fetch, idle).
FOUND_UNSHRUNK = (
    "inconsistent-offsets-duplicate-offset-unshrunk.json",
    "poll-by-non-owner-no-generation-fencing-unshrunk.json",
)


@functools.cache
def shrunk_found(name: str) -> tuple[tuple[object, ...], tuple[object, ...]]:
    trace = load_trace(REGRESSIONS / name)
    assert trace.violation is not None
    prop = trace.violation["property"]
    shorter = shrink_events(trace.config, trace.items, prop, False, budget_s=600)
    return trace.items, tuple(shorter)


@pytest.mark.parametrize("name", FOUND_UNSHRUNK)
def test_a_found_failure_shrinks_to_at_most_40_events_that_replay_exactly(name: str) -> None:
    trace = load_trace(REGRESSIONS / name)
    assert trace.violation is not None
    events, shorter = shrunk_found(name)
    assert len(events) > 300
    assert len(shorter) <= 40
    outcome = execute(trace.config, list(shorter))
    assert outcome.violation is not None
    assert outcome.violation.property == trace.violation["property"]
    assert len(outcome.steps) == len(shorter)  # every event applied: ids and all are exact
    assert execute(ClusterConfig(), list(shorter), skip_diverged=True).violation is None


# A raw failing schedule of 6,539 events (duplicate-offset, from the swarm engine) on which the
# pass without `_move_tick_time` stopped at 42 events, at its fixed point: the time that passes
# before a leader's restart could as well pass after it, and no deletion could say so.
TICK_BOUND_RAW = "duplicate-duplicate-offset-unshrunk.json"


@functools.cache
def shrunk_tick_bound(budget_s: float) -> tuple[object, ...]:
    trace = load_trace(REGRESSIONS / TICK_BOUND_RAW)
    assert trace.violation is not None
    prop = trace.violation["property"]
    return tuple(shrink_events(trace.config, trace.items, prop, False, budget_s=budget_s))


def test_a_raw_failure_shrinks_to_at_most_40_events_within_the_campaigns_budget() -> None:
    trace = load_trace(REGRESSIONS / TICK_BOUND_RAW)
    assert trace.violation is not None and len(trace.items) > 6_000
    shorter = list(shrunk_tick_bound(EVENT_SHRINK_BUDGET_S))
    assert len(shorter) <= 40
    outcome = execute(trace.config, shorter)
    assert outcome.violation is not None
    assert outcome.violation.property == trace.violation["property"]
    assert len(outcome.steps) == len(shorter)  # every event applied: ids and all are exact
    assert execute(ClusterConfig(), shorter, skip_diverged=True).violation is None


def test_a_budget_cut_short_ends_at_the_same_schedule_every_time() -> None:
    """The budget is counted work, not time: a search it stops early stops at the same place
    however busy the machine is, and sooner than a search with more budget."""
    cut_short = shrunk_tick_bound(0.5)
    trace = load_trace(REGRESSIONS / TICK_BOUND_RAW)
    assert trace.violation is not None
    prop = trace.violation["property"]
    again = shrink_events(trace.config, trace.items, prop, False, budget_s=0.5)
    assert tuple(again) == cut_short
    assert len(shrunk_tick_bound(EVENT_SHRINK_BUDGET_S)) < len(cut_short) < len(trace.items)


def test_time_passes_in_one_tick_across_another_event_where_the_failure_stays() -> None:
    """The followers' 8 s without fetches pass in two ticks around a producer's crash: moving one
    tick's time into the other keeps the failure, in one event fewer, where no deletion can."""
    events = [
        ev.Tick(4_000),
        ev.Crash("p0"),
        ev.Tick(4_000),
        ev.Crash("b0", lose_unflushed=False),
        ev.Tick(12_000),
    ]
    assert execute(UNCLEAN, events).violation is not None
    search = _Search.within(UNCLEAN, "refinement", False, 60)
    moved = _move_tick_time(search, symbolic(UNCLEAN, events))
    assert moved == [ev.Tick(8_000), ev.Crash("p0"), *KNOWN_SHORT[1:]]
    outcome = execute(UNCLEAN, moved)
    assert outcome.violation is not None and outcome.violation.property == "refinement"


def test_a_deleted_delivery_leaves_its_message_behind_and_the_newest_like_one_is_named() -> None:
    """A follower whose fetch is never delivered sends another; a reference taken when one fetch
    was in flight names the new one, not the stale one left in flight before it."""
    config = ClusterConfig()
    tick = ev.Tick(config.replica_fetch_interval_ms)
    world = World(config)
    world.apply(tick)
    first = next(e for e in world.inflight() if (e.kind, e.src) == ("Fetch", "b1"))
    ref = symbolic(config, [tick, ev.Deliver(first.id)])[-1]
    assert isinstance(ref, MessageRef) and (ref.rank, ref.behind) == (0, 0)
    fetches = [first]
    for _ in range(100):  # time passes with the fetch undelivered, until b1 sends another
        world.apply(tick)
        fetches = [e for e in world.inflight() if (e.kind, e.src) == ("Fetch", "b1")]
        if len(fetches) > 1:
            break
    assert len(fetches) > 1 and fetches[0].id == first.id
    assert ref.resolve(world) == ev.Deliver(fetches[-1].id)


def test_a_stream_is_cut_between_exchanges_never_inside_one() -> None:
    run = replay(ZOMBIE, symbolic(ZOMBIE, planted_zombie_commit()), eventually=False)
    exchange_of: dict[int, tuple[str, str, int]] = {}
    for index, (item, message) in enumerate(zip(run.items, run.messages, strict=True)):
        request_id = getattr(message, "request_id", None)
        if isinstance(item, MessageRef) and isinstance(request_id, int):
            response = item.message_type.endswith("Response")
            ends = (item.dst, item.src) if response else (item.src, item.dst)
            exchange_of[index] = (*ends, request_id)
    parts = stream_parts(run.items, run.messages)
    assert parts
    for part in parts:
        cut = {exchange_of[i] for i in part if i in exchange_of}
        whole = {i for i, key in exchange_of.items() if key in cut}
        assert whole <= set(part)
