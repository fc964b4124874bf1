"""A second shrinking pass over a failing schedule: delete events while the failure stays.

Hypothesis shrinks the machine's rule choices, but a nemesis rule emits many
events at once (a leader churn is dozens), and Hypothesis cannot remove single
events from inside one. This pass works on the event list itself. Its passes:
- deletes every event of one kind of traffic at once: all events of one client,
  one partition's messages, one node's crashes and restarts, one message type,
  the network splits (a counterexample about one partition rarely needs the
  other partitions' traffic or an uninvolved consumer);
- deletes whole units of the protocol at once (`units`): one consumer's
  lifecycle (a Subscribe up to its next one, with its polls, commits, crash
  and all its messages: FindCoordinator, JoinGroup, SyncGroup, Heartbeat,
  OffsetCommit and the answers), one rebalance round (a generation's join and
  sync exchange), one generation's whole group traffic, one node's crash with
  its restart, the broker-to-broker traffic between two client operations or
  faults (idle replication that only fills time), and the halves, quarters and
  eighths of one stream (a follower's fetches of one partition, a consumer's
  polls), cut between exchanges (a request with its answer), largest first;
- starts a consumer's lifecycle or a producer's write later
  (`_postpone_starts`), just before or just after a later tick, where the
  events it no longer needs then drop out: the one step here that moves events
  rather than deleting them;
- deletes chunks of events in the manner of delta debugging, halving the chunk
  size down to single events, then windows of every size up to `SMALL_WINDOW`
  at every position (the halving skips most sizes);
- joins adjacent clock ticks (every run at once first, then a whole run, else
  pairs), and moves a tick's time into another tick a few ticks away
  (`_move_tick_time`): time that passes before a restart or a delivery can often
  pass after it, and no deletion can find that.
A route (`ROUTES`) runs the passes in one order, round after round, until a
round deletes nothing. The first route runs from the failing schedule; while
the budget lasts, the others run from it again in other orders, and the
shortest result is kept: which deletions come first decides which failure the
schedule keeps. Every deletion after which the same property still fails is
kept. The budget is work, counted in events applied (`WORK_PER_SECOND` of them
to a second of budget), not time: the same schedule shrinks to the same result on
a quiet machine and a busy one. A cap on wall time (`WALL_BUDGET_FACTOR`) ends a
search only on a machine that leaves it almost no time at all.

Deliveries name messages by id, and ids are handed out in send order, so
deleting an earlier event renumbers every later message. A message event is
therefore replayed by what it acts on (sender, receiver, message type, the
partition it is about, its rank among such messages in flight and how many of
them were sent after it), and the ids of the run that reproduces the failure are
written back. Where the count of such messages in flight has changed, the one
with as many sent after it is named: a deleted delivery leaves its message in
flight, older than the rest, and its sender goes on with newer ones. Where none
is in flight, a message of the same type about the same partition from the same
sender (or to the same receiver) stands in, the other end being a node of the
same role (deleting a crash moves a leader, and the fetches and writes then go
to another broker). Events that no longer apply (a restart of a running node, a
delivery of a message never sent) are left out.

Replays dominate the cost, so a chunk sweep runs forwards and replays only what
follows the chunk, from a copy of the checker as it stood before the chunk (the
events before it are unchanged, and the world is deterministic). A deletion that
copy accepts is confirmed by a replay from the start before it is kept, so the
result never rests on the copy. The pass is deterministic (given the budget to
reach its fixed point; a budget cut short stops it at the same place every time,
the wall cap aside), and its result is an ordinary event list that replays exactly.

A replay names every message event it applies by its message as it goes (the
symbolic items the next deletion works on) and keeps the message itself, which
is what the units are cut by: the group of a group request (or of the request
an answer answers) and the generation it carries.
"""

from __future__ import annotations

import copy
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from kafka_verify.harness.runner import Checker
from kafka_verify.impl import events as ev
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import Envelope, InvalidEvent, World

_MESSAGE_EVENTS = (ev.Deliver, ev.Drop, ev.Duplicate)
_CLIENT_EVENTS = (ev.Produce, ev.Poll, ev.CommitOffsets, ev.Subscribe, ev.Close)
# Chunks this small are tried at every position, larger ones only at multiples of their size.
SMALL_CHUNK = 4
# `_delete_windows` tries every window size up to this one at every position.
SMALL_WINDOW = 8
# A stream of items is also cut into halves, quarters and eighths (see `stream_parts`).
STREAM_SPLITS = (2, 4, 8)
# A search's budget is work, in events applied (`_Search.within`): a second of it is this many
# events, about what this machine replays in a CPU second on the campaign's raw failures (16 to
# 33 microseconds an event, and more on short schedules, whose first events cost the most).
WORK_PER_SECOND = 27_000
# What starting a replay costs, in events: a new checker and the cluster's first steps (a replay
# of 42 events takes about as long as 150 of them in a schedule of thousands).
REPLAY_COST = 150
# What copying a checker for a screening replay costs (`_sweep`), in events.
COPY_COST = 60
# A search ends once it has taken this many times its budget in wall time, whatever work it
# has done: only a machine that leaves it almost no time at all reaches that.
WALL_BUDGET_FACTOR = 10.0
# A schedule longer than this runs `_TRAFFIC_THEN_CHUNKS` first, a shorter one
# `_UNITS_BEFORE_CHUNKS` (`shrink_events`): measured on raw failures of the campaign, chunks
# first took a schedule of 2,000 to 6,500 events to 11 to 42 within the budget where units
# first was still at 80 to 300, while units first ended shorter on some schedules of 300 to
# 900 (one of 799 events: 18 against 58, chunks first spending the budget on its sweeps).
LONG_SCHEDULE = 1500
# How many ticks either side a tick's time is tried in (`_move_tick_time`).
TICK_REACH = 4
# How many later ticks a start is tried at (`_postpone_starts`): a long schedule has hundreds.
POSTPONE_TARGETS = 8


def _partition_of(envelope: Envelope) -> int | None:
    partition = getattr(envelope.message, "partition", None)
    return partition if isinstance(partition, int) else None


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message event named by what it acts on rather than by id."""

    kind: type
    src: str
    dst: str
    message_type: str
    partition: int | None  # the partition the message is about (None: not about one)
    rank: int  # among in-flight messages with the same sender, receiver, type and partition
    behind: int = 0  # how many of those were sent after it

    def resolve(self, world: World) -> object | None:
        """The event on the in-flight message this names, or a stand-in (None: there is none).

        A stand-in is a message of the same type about the same partition from the same
        sender to a node of the same role, else to the same receiver from a node of the same
        role: once a deleted crash has moved a leader, the fetches and writes go to (and
        come from) another broker. Where as many such messages are in flight as when the
        reference was taken, it names the one at its rank; otherwise the one with as many
        sent after it: a deleted delivery leaves its message in flight, older than the rest,
        and a follower or client goes on with the newest one it sent.
        """
        inflight = world.inflight()
        like = [e for e in inflight if self._like(e)]
        same = (
            [e for e in like if (e.src, e.dst) == (self.src, self.dst)]
            or [e for e in like if e.src == self.src and e.dst[:1] == self.dst[:1]]
            or [e for e in like if e.dst == self.dst and e.src[:1] == self.src[:1]]
        )
        if not same:
            return None
        if len(same) == self.rank + self.behind + 1:
            chosen = same[self.rank]
        else:
            chosen = same[max(0, len(same) - 1 - self.behind)]
        event: object = self.kind(chosen.id)
        return event

    def _like(self, envelope: Envelope) -> bool:
        """A message of the same type about the same partition, between any nodes."""
        return (envelope.kind, _partition_of(envelope)) == (self.message_type, self.partition)

    def _names(self, envelope: Envelope) -> bool:
        return (envelope.src, envelope.dst, envelope.kind, _partition_of(envelope)) == (
            self.src,
            self.dst,
            self.message_type,
            self.partition,
        )


def _ref(kind: type, target: Envelope, inflight: Sequence[Envelope]) -> MessageRef:
    ref = MessageRef(kind, target.src, target.dst, target.kind, _partition_of(target), 0)
    named = [e for e in inflight if ref._names(e)]
    rank = named.index(target)
    return MessageRef(
        ref.kind, ref.src, ref.dst, ref.message_type, ref.partition, rank, len(named) - 1 - rank
    )


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay of (possibly fewer) events: the events that applied, and the property that failed.

    `items` are the same events with every message event named by its message
    (as `symbolic` gives them), and `messages` the message each one acted on
    (None for other events).
    """

    events: tuple[object, ...]
    failed: str | None
    items: tuple[object, ...] = ()
    messages: tuple[object | None, ...] = ()


@dataclass(slots=True)
class _Applied:
    """What a replay has applied so far: the events, as given and as symbolic items."""

    events: list[object]
    items: list[object]
    messages: list[object | None]

    @classmethod
    def empty(cls) -> _Applied:
        return cls([], [], [])

    def add(self, event: object, item: object, message: object | None) -> None:
        self.events.append(event)
        self.items.append(item)
        self.messages.append(message)

    def result(self, failed: str | None) -> Replayed:
        return Replayed(tuple(self.events), failed, tuple(self.items), tuple(self.messages))


def replay(config: ClusterConfig, items: Sequence[object], eventually: bool) -> Replayed:
    """Apply `items` (events or MessageRefs), skipping what does not apply; stop at a failure."""
    checker = Checker(config)
    found = checker.initial_violations()
    if found:
        return Replayed((), found[0].property)
    return _continue(checker, items, eventually)


def _continue(checker: Checker, items: Sequence[object], eventually: bool) -> Replayed:
    """Go on applying `items` to `checker`, as `replay` does; the events are those applied here."""
    applied = _Applied.empty()
    for item in items:
        failed = _apply(checker, item, applied)
        if failed is not None:
            return applied.result(failed)
    found = checker.finish() if eventually else []
    return applied.result(found[0].property if found else None)


def _apply(checker: Checker, item: object, applied: _Applied) -> str | None:
    """Apply one item if it applies (recording the event); the property it failed, if any."""
    event = item.resolve(checker.world) if isinstance(item, MessageRef) else item
    if event is None:
        return None
    named, message = event, None
    if isinstance(event, _MESSAGE_EVENTS):
        inflight = checker.world.inflight()
        target = next((e for e in inflight if e.id == event.message_id), None)
        if target is None:
            return None  # a delivery of a message never sent: it does not apply
        named, message = _ref(type(event), target, inflight), target.message
    try:
        _, found = checker.apply(event)
    except InvalidEvent:
        return None
    except Exception:  # the broker broke: the machine reports that as internal-error
        applied.add(event, named, message)
        return "internal-error"
    applied.add(event, named, message)
    return found[0].property if found else None


def symbolic(config: ClusterConfig, events: Sequence[object]) -> list[object]:
    """The events with every message event named by its message instead of its id."""
    world = World(config)
    items: list[object] = []
    for event in events:
        if isinstance(event, _MESSAGE_EVENTS):
            inflight = world.inflight()
            target = next(e for e in inflight if e.id == event.message_id)
            items.append(_ref(type(event), target, inflight))
        else:
            items.append(event)
        try:
            world.apply(event)  # type: ignore[arg-type]
        except InvalidEvent:
            raise
        except Exception:  # the broker broke here (internal-error): nothing after it matters
            break
    return items


def traffic_keys(item: object) -> tuple[str, ...]:
    """The kinds of traffic an item belongs to; the key pass deletes one kind at a time."""
    if isinstance(item, MessageRef):
        keys = [f"node {item.src}", f"node {item.dst}", f"message {item.message_type}"]
        if item.partition is not None:
            keys.append(f"partition {item.partition}")
        return tuple(keys)
    if isinstance(item, ev.Produce) and item.partition is not None:
        return (f"node {item.client}", f"partition {item.partition}")
    if isinstance(item, ev.Subscribe):
        return (f"node {item.client}", f"group {item.group}")
    if isinstance(item, _CLIENT_EVENTS):
        return (f"node {item.client}",)
    if isinstance(item, ev.Crash | ev.Restart):
        return (f"node {item.node}", f"faults of {item.node}", "crashes")
    if isinstance(item, ev.Partition | ev.Heal):
        return ("network splits",)
    return ()


@dataclass(slots=True)
class _Work:
    """The work a search has done so far, in events applied (`charge`)."""

    done: int = 0


@dataclass(frozen=True, slots=True)
class _Search:
    """What every deletion must keep: the same property failing on the same config."""

    config: ClusterConfig
    prop: str
    eventually: bool
    limit: int  # the work it may do, in events applied (`within`)
    wall_deadline: float = float("inf")  # in wall time (`time.perf_counter`)
    work: _Work = field(default_factory=_Work)

    @classmethod
    def within(cls, config: ClusterConfig, prop: str, eventually: bool, budget_s: float) -> _Search:
        """A search that may do `budget_s` seconds' worth of work (`WORK_PER_SECOND`), and take at
        most `WALL_BUDGET_FACTOR` times as much wall time.

        The work is counted, not timed: the same schedule shrinks to the same result on a
        quiet machine and a busy one (and on a faster or slower one, in more or less time). The
        wall cap only ends a search on a machine that gives it almost no time at all.
        """
        return cls(
            config,
            prop,
            eventually,
            int(budget_s * WORK_PER_SECOND),
            time.perf_counter() + WALL_BUDGET_FACTOR * budget_s,
        )

    def expired(self) -> bool:
        return self.work.done >= self.limit or time.perf_counter() >= self.wall_deadline

    def charge(self, events: int, start: int = REPLAY_COST) -> None:
        """Count the work of applying `events` events after a start that costs `start` of them."""
        self.work.done += start + events

    def replayed(self, candidate: Sequence[object]) -> Replayed | None:
        """The candidate's replay, if the failure stays."""
        self.charge(len(candidate))
        run = replay(self.config, candidate, self.eventually)
        return run if run.failed == self.prop else None

    def confirmed(self, candidate: Sequence[object]) -> list[object] | None:
        """The candidate as symbolic items of the events it replays to, if the failure stays."""
        run = self.replayed(candidate)
        return list(run.items) if run is not None else None


def shrink_events(
    config: ClusterConfig,
    events: Sequence[object],
    prop: str,
    eventually: bool,
    budget_s: float,
) -> list[object]:
    """The shortest failing schedule this pass finds within `budget_s` (never longer than `events`)."""
    search = _Search.within(config, prop, eventually, budget_s)
    search.charge(len(events))
    try:
        items = search.confirmed(symbolic(config, events))
    except (InvalidEvent, StopIteration):
        return list(events)
    if items is None:
        return list(events)
    # A long schedule goes to chunks first: their sweeps replay only what follows a chunk, where
    # deleting a kind of traffic or a unit replays all of it each time.
    first, *others = ROUTES if len(items) > LONG_SCHEDULE else (ROUTES[1], ROUTES[0], ROUTES[2])
    best = _to_fixed_point(search, items, first)
    for route in others:
        if search.expired():
            break
        # Another order of the same passes, from the start: deletions that pay off early
        # decide which failure the schedule keeps, and a different first deletion can end
        # on a shorter schedule than the first route's.
        other = _to_fixed_point(search, items, route)
        if len(other) < len(best):
            best = other
    items = best
    return list(replay(config, items, eventually).events)


Pass = Callable[["_Search", list[object]], list[object]]


def _to_fixed_point(search: _Search, items: list[object], route: Sequence[Pass]) -> list[object]:
    """Run the passes of `route` in turn, again and again, until a round deletes nothing."""
    while not search.expired():
        before = len(items)
        for shrink_pass in route:
            items = shrink_pass(search, items)
        if len(items) == before:
            break
    return items


def _delete_traffic(search: _Search, items: list[object]) -> list[object]:
    """Try deleting every item of one kind of traffic at once, the most common kinds first."""
    counts = Counter(key for item in items for key in traffic_keys(item))
    for key, _ in sorted(counts.items(), key=lambda pair: (-pair[1], pair[0])):
        if search.expired():
            break
        candidate = [item for item in items if key not in traffic_keys(item)]
        if len(candidate) < len(items):
            items = search.confirmed(candidate) or items
    return items


def _delete_units(search: _Search, items: list[object]) -> list[object]:
    """Try deleting each protocol unit (`units`) of the schedule, the largest first.

    After a deletion the units are cut again from the shorter schedule; a unit
    already tried (the same items) is not tried twice.
    """
    run = search.replayed(items)
    if run is None:  # not expected: `items` came from a confirmed replay
        return items
    tried: set[tuple[object, ...]] = set()
    while not search.expired():
        for unit in units(run.items, run.messages):
            key = tuple(run.items[i] for i in unit)
            if key in tried:
                continue
            tried.add(key)
            if search.expired():
                break
            chosen = set(unit)
            shorter = search.replayed([x for i, x in enumerate(run.items) if i not in chosen])
            if shorter is not None and len(shorter.items) < len(run.items):
                run = shorter
                break
        else:
            break
    return list(run.items)


def units(items: Sequence[object], messages: Sequence[object | None]) -> list[tuple[int, ...]]:
    """The protocol units of a schedule, as index tuples, the largest first (then by position).

    `messages[i]` is the message item i acts on (None for other events). Each
    unit is a set of items that one deletion should take together: see
    `lifecycles`, `rebalance_rounds`, `crash_pairs`, `idle_windows` and `stream_parts`.
    """
    found = {
        tuple(sorted(unit))
        for unit in (
            *lifecycles(items),
            *rebalance_rounds(items, messages),
            *crash_pairs(items),
            *idle_windows(items),
            *stream_parts(items, messages),
        )
        if unit
    }
    return sorted(found, key=lambda unit: (-len(unit), unit))


def _client_of(item: object) -> str | None:
    """The client an item belongs to: its own operation, fault or message to or from it."""
    if isinstance(item, MessageRef):
        for end in (item.src, item.dst):
            if end[:1] in ("c", "p"):
                return end
        return None
    if isinstance(item, _CLIENT_EVENTS):
        return item.client
    if isinstance(item, ev.Crash | ev.Restart) and item.node[:1] in ("c", "p"):
        return item.node
    return None


def lifecycles(items: Sequence[object]) -> list[list[int]]:
    """Each consumer's lifecycles: from one Subscribe up to the next (or the end), with everything
    of that consumer in between (its operations, crash and restart, and every message to or from
    it)."""
    spans: dict[str, list[list[int]]] = {}
    for index, item in enumerate(items):
        client = _client_of(item)
        if client is None or not client.startswith("c"):
            continue
        mine = spans.setdefault(client, [[]])
        if isinstance(item, ev.Subscribe) and mine[-1]:
            mine.append([])
        mine[-1].append(index)
    return [span for mine in spans.values() for span in mine]


def _exchange_key(item: object, message: object | None) -> tuple[str, str, int] | None:
    """(requester, answerer, request id) of a group request or answer item, else None."""
    if isinstance(message, (*gm.REQUEST_TYPES, *gm.RESPONSE_TYPES)):
        return _request_key(item, message)
    return None


def _generation_of(request: object, answers: Sequence[object]) -> int | None:
    """The generation an exchange belongs to: the one its answer gives, else its request's."""
    for answer in answers:
        generation = getattr(answer, "generation", -1)
        if isinstance(generation, int) and generation >= 0:
            return generation
    generation = getattr(request, "generation", None)
    return generation if isinstance(generation, int) and generation >= 0 else None


def _group_messages(
    items: Sequence[object], messages: Sequence[object | None]
) -> list[tuple[list[int], str, int, object]]:
    """Every group exchange that belongs to a generation: (its items, group, generation, request).

    An exchange is a request with its answers; it belongs to its request's
    group, and to the generation its answer gives (a JoinGroup's), else the one
    its request carries. An unanswered JoinGroup belongs to none.
    """
    exchanges: dict[tuple[str, str, int], list[int]] = {}
    for index, (item, message) in enumerate(zip(items, messages, strict=True)):
        key = _exchange_key(item, message)
        if key is not None:
            exchanges.setdefault(key, []).append(index)
    found = []
    for indices in exchanges.values():
        request = next(
            (messages[i] for i in indices if isinstance(messages[i], gm.REQUEST_TYPES)), None
        )
        group = getattr(request, "group", None)
        answers = [messages[i] for i in indices if isinstance(messages[i], gm.RESPONSE_TYPES)]
        generation = _generation_of(request, answers)
        if isinstance(group, str) and generation is not None:
            found.append((indices, group, generation, request))
    return found


def rebalance_rounds(items: Sequence[object], messages: Sequence[object | None]) -> list[list[int]]:
    """Per group and generation: the round's join and sync exchanges, and all that generation's
    group traffic (its round, heartbeats, commits and their answers)."""
    rounds: dict[tuple[str, int], list[int]] = {}
    generations: dict[tuple[str, int], list[int]] = {}
    for indices, group, generation, request in _group_messages(items, messages):
        generations.setdefault((group, generation), []).extend(indices)
        if isinstance(request, gm.JoinGroup | gm.SyncGroup):
            rounds.setdefault((group, generation), []).extend(indices)
    return [*rounds.values(), *generations.values()]


def crash_pairs(items: Sequence[object]) -> list[list[int]]:
    """Each crash with the next restart of the same node (or alone, if it never restarts)."""
    pairs: list[list[int]] = []
    down: dict[str, int] = {}
    for index, item in enumerate(items):
        if isinstance(item, ev.Crash):
            down[item.node] = index
        elif isinstance(item, ev.Restart) and item.node in down:
            pairs.append([down.pop(item.node), index])
    return pairs + [[index] for index in down.values()]


def idle_windows(items: Sequence[object]) -> list[list[int]]:
    """The broker-to-broker message items between two client operations or faults, all of them
    and per partition: replication that may only fill the time between the events that matter."""
    windows: list[list[int]] = []
    current: dict[tuple[str, int | None], list[int]] = {}
    for index, item in enumerate(items):
        if isinstance(item, MessageRef):
            if item.src.startswith("b") and item.dst.startswith("b"):
                current.setdefault(("partition", item.partition), []).append(index)
                current.setdefault(("all", None), []).append(index)
            continue
        if isinstance(item, ev.Tick):
            continue
        windows.extend(current.values())
        current = {}
    windows.extend(current.values())
    return windows


def _stream_of(item: object) -> tuple[object, ...] | None:
    """The stream an item is one of: a client's polls, or the exchange of one kind of request and
    its answers between two nodes about one partition (a follower's fetches of a partition)."""
    if isinstance(item, ev.Poll):
        return ("poll", item.client)
    if isinstance(item, MessageRef):
        family = item.message_type.removesuffix("Response")
        return (family, *sorted((item.src, item.dst)), item.partition)
    return None


def _request_key(item: object, message: object | None) -> tuple[str, str, int] | None:
    """(requester, answerer, request id) of a request or answer item, else None."""
    request_id = getattr(message, "request_id", None)
    if not isinstance(item, MessageRef) or not isinstance(request_id, int):
        return None
    if item.message_type.endswith("Response"):
        return (item.dst, item.src, request_id)
    return (item.src, item.dst, request_id)


def stream_parts(
    items: Sequence[object], messages: Sequence[object | None] | None = None
) -> list[list[int]]:
    """The halves, quarters and eighths (in order) of each stream of at least 8 items: where a
    whole stream is needed, most of it often is not (the fetches a follower makes while idle).

    Given the `messages` the items act on, a stream is cut between exchanges (a request with
    its answer), never inside one: a follower sends its next fetch when an answer arrives, so
    the fetches left after a cut go on where the deleted ones stopped.
    """
    streams: dict[tuple[object, ...], dict[object, list[int]]] = {}
    for index, item in enumerate(items):
        stream = _stream_of(item)
        if stream is None:
            continue
        key = _request_key(item, messages[index]) if messages is not None else None
        exchanges = streams.setdefault(stream, {})
        exchanges.setdefault(key if key is not None else index, []).append(index)
    parts: list[list[int]] = []
    for exchanges in streams.values():
        members = list(exchanges.values())  # in the order their first items come
        if sum(len(exchange) for exchange in members) < 8:
            continue
        for split in STREAM_SPLITS:
            size = -(-len(members) // split)
            for start in range(0, len(members), size):
                parts.append([i for exchange in members[start : start + size] for i in exchange])
    return parts


def _postpone_starts(search: _Search, items: list[object]) -> list[object]:
    """Start a consumer's lifecycle (or a producer's write) later, where that leaves a shorter
    failing schedule.

    A member that joins while another is alone makes a rebalance round the
    failure may not need: had it joined later, the other would have had its
    generation to itself. A write sent before a leader change needs a retry
    and a metadata refresh that a later one does not. Deletion cannot find
    either, since every needed event is there, just early. This moves the
    start and everything of that client after it up to a later clock tick to
    just before that tick (a few ticks, `_spread`); what no longer applies
    there drops out.
    """
    for client, start in _starts(items):
        mine = [i for i in range(start, len(items)) if _client_of(items[i]) == client]
        ticks = [i for i in range(start + 1, len(items)) if isinstance(items[i], ev.Tick)]
        for target in _spread(ticks, POSTPONE_TARGETS):
            moved = [i for i in mine if i < target]
            chosen = set(moved)
            kept = [x for i, x in enumerate(items[:target]) if i not in chosen]
            # Just before the tick (the client sees the time pass), then just after it (the
            # client starts once what the tick brings, such as an ISR change, has happened).
            for candidate in (
                [*kept, *(items[i] for i in moved), *items[target:]],
                [*kept, items[target], *(items[i] for i in moved), *items[target + 1 :]],
            ):
                if search.expired():
                    return items
                shorter = search.confirmed(candidate)
                if shorter is not None and len(shorter) < len(items):
                    return shorter
    return items


def _spread(positions: list[int], count: int) -> list[int]:
    """At most `count` of `positions`: half of them evenly spread (the latest first), then the
    earliest (the nearest first), for a start may be needed soon after where it was, or late."""
    near, far = positions[: count // 2], positions[count // 2 :]
    step = max(1, -(-len(far) // (count - len(near))))
    return far[::-1][::step] + near


def _starts(items: Sequence[object]) -> list[tuple[str, int]]:
    """(client, index) of every Subscribe and Produce, in order: what sets a client going."""
    return [(i.client, n) for n, i in enumerate(items) if isinstance(i, ev.Subscribe | ev.Produce)]


def _delete_chunks(search: _Search, items: list[object]) -> list[object]:
    """Sweeps with chunks of half the schedule, then a quarter, ... down to single items."""
    chunk = max(1, len(items) // 2)
    while not search.expired():
        items = _sweep(search, items, chunk)
        if chunk == 1:
            return items
        chunk = max(1, min(chunk // 2, len(items) // 2))
    return items


def _delete_windows(search: _Search, items: list[object]) -> list[object]:
    """Sweeps with every window size from `SMALL_WINDOW` down to 2, each at every position.

    The halving of `_delete_chunks` skips most sizes (a schedule of 55 gets 27, 13, 6, 3
    and 1), and the last deletion a short schedule admits is often a window it skipped: a
    request, its answer and a retry, or a crash, a tick and a restart.
    """
    for size in range(min(SMALL_WINDOW, len(items) // 2), 1, -1):
        if search.expired():
            break
        items = _sweep(search, items, size, stride=1)
    return items


def _sweep(
    search: _Search, items: list[object], chunk: int, stride: int | None = None
) -> list[object]:
    """One forward sweep: drop each run of `chunk` items whose absence keeps the failure.

    Large chunks are tried at chunk-aligned positions; small ones (a crash and
    its restart, a request and its answer) at every position. `before` is the
    checker after the items ahead of the chunk, which no deletion here changes.
    """
    if stride is None:
        stride = 1 if chunk <= SMALL_CHUNK else chunk
    search.charge(0)
    before = Checker(search.config)
    before.initial_violations()
    start = 0
    while start + chunk <= len(items) and not search.expired():
        after = items[start + chunk :]
        search.charge(len(after), COPY_COST)
        screened = _continue(copy.deepcopy(before), after, search.eventually)
        if screened.failed == search.prop:
            kept = search.confirmed(items[:start] + after)
            if kept is not None and len(kept) < len(items):
                if kept[:start] != items[:start]:  # not expected: start the sweep over
                    return _sweep(search, kept, chunk, stride)
                items = kept
                continue
        search.charge(stride, 0)
        for item in items[start : start + stride]:
            _apply(before, item, _Applied.empty())
        start += stride
    return items


def _merge_ticks(search: _Search, items: list[object]) -> list[object]:
    """Join adjacent clock ticks into one, where the failure stays: the same time passes in fewer events.

    Every run merged at once is tried first (one replay, where a long schedule
    has thousands of runs), then each run as one tick, then pairs within it.
    """
    merged = _merged_runs(items)
    if len(merged) < len(items):
        items = search.confirmed(merged) or items
    index = len(items) - 1  # the last item of the run looked at next
    while index > 0 and not search.expired():
        if not isinstance(items[index], ev.Tick):
            index -= 1
            continue
        start = index
        while start > 0 and isinstance(items[start - 1], ev.Tick):
            start -= 1
        if start < index:
            items = _merge_run(search, items, start, index + 1)
        index = min(start - 1, len(items) - 1)
    return items


def _merged_runs(items: Sequence[object]) -> list[object]:
    """The items with every run of adjacent ticks joined into one tick."""
    merged: list[object] = []
    for item in items:
        last = merged[-1] if merged else None
        if isinstance(item, ev.Tick) and isinstance(last, ev.Tick):
            merged[-1] = ev.Tick(last.ms + item.ms)
        else:
            merged.append(item)
    return merged


def _merge_run(search: _Search, items: list[object], start: int, end: int) -> list[object]:
    """Merge the ticks items[start:end]: all of them into one if the failure stays, else pairwise."""
    total = sum(tick.ms for tick in items[start:end] if isinstance(tick, ev.Tick))
    whole = search.confirmed([*items[:start], ev.Tick(total), *items[end:]])
    if whole is not None:
        return whole
    index = end - 2
    while index >= start and not search.expired():
        first, second = items[index], items[index + 1]
        if isinstance(first, ev.Tick) and isinstance(second, ev.Tick):
            merged = [*items[:index], ev.Tick(first.ms + second.ms), *items[index + 2 :]]
            items = search.confirmed(merged) or items
        index -= 1
    return items


def _move_tick_time(search: _Search, items: list[object]) -> list[object]:
    """Join a tick into another one up to `TICK_REACH` ticks away, where the failure stays.

    `_merge_ticks` joins only adjacent ticks, and a delivery or a fault between
    two ticks keeps them apart: the time before a restart can often pass after
    it instead, and two ticks around a delivery can be one tick on either side.
    The same total time passes, in one event fewer; the nearest targets are
    tried first, the later one before the earlier.
    """
    index = len(items) - 1
    while index >= 0 and not search.expired():
        tick = items[index]
        if isinstance(tick, ev.Tick):
            shorter = _joined_elsewhere(search, items, index, tick)
            if shorter is not None:
                items = shorter
                index = min(index, len(items) - 1)
                continue
        index -= 1
    return items


def _joined_elsewhere(
    search: _Search, items: list[object], index: int, tick: ev.Tick
) -> list[object] | None:
    """The first shorter failing schedule with `items[index]` joined into a nearby tick."""
    later = [i for i in range(index + 1, len(items)) if isinstance(items[i], ev.Tick)]
    earlier = [i for i in range(index - 1, -1, -1) if isinstance(items[i], ev.Tick)]
    targets = [side[k] for k in range(TICK_REACH) for side in (later, earlier) if k < len(side)]
    for target in targets:
        if search.expired():
            return None
        other = items[target]
        assert isinstance(other, ev.Tick)
        candidate = list(items)
        candidate[target] = ev.Tick(other.ms + tick.ms)
        del candidate[index]
        shorter = search.confirmed(candidate)
        if shorter is not None and len(shorter) < len(items):
            return shorter
    return None


# The orders the passes run in (`shrink_events`; `LONG_SCHEDULE` picks the first): kinds of
# traffic then chunks, whose forward sweeps replay only what follows a chunk (a schedule of
# thousands of events is down to tens within seconds), then protocol units, postponed starts
# and small windows; or units before chunks. Then, while the budget lasts, the other orders
# from the start again (chunks before anything is the third), keeping the shortest result.
_TRAFFIC_THEN_CHUNKS: tuple[Pass, ...] = (
    _merge_ticks,
    _delete_traffic,
    _delete_chunks,
    _merge_ticks,
    _delete_units,
    _merge_ticks,
    _postpone_starts,
    _merge_ticks,
    _delete_windows,
    _move_tick_time,
)
_UNITS_BEFORE_CHUNKS: tuple[Pass, ...] = (
    _merge_ticks,
    _delete_traffic,
    _delete_units,
    _merge_ticks,  # fewer items make every later sweep cheaper
    _postpone_starts,
    _delete_chunks,
    _merge_ticks,
    _delete_windows,
    _move_tick_time,
)
_CHUNKS_FIRST: tuple[Pass, ...] = (
    _merge_ticks,
    _delete_chunks,
    _delete_traffic,
    _merge_ticks,
    _delete_units,
    _merge_ticks,
    _postpone_starts,
    _merge_ticks,
    _delete_windows,
    _move_tick_time,
)
ROUTES: tuple[tuple[Pass, ...], ...] = (_TRAFFIC_THEN_CHUNKS, _UNITS_BEFORE_CHUNKS, _CHUNKS_FIRST)
