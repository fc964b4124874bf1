"""A second shrinking pass over a failing schedule: delete events while the failure stays.

Hypothesis shrinks the machine's rule choices, but a nemesis rule emits many
events at once (a leader churn is dozens), and Hypothesis cannot remove single
events from inside one. This pass works on the event list itself, in the
manner of delta debugging: it tries deleting chunks of events, halving the
chunk size down to single events, and keeps every deletion after which the
same property still fails.

Deliveries name messages by id, and ids are handed out in send order, so
deleting an earlier event renumbers every later message. A delivery is
therefore replayed by what it delivered (sender, receiver, message type, and
its rank among such messages in flight), and the ids of the run that reproduces
the failure are written back. Events that no longer apply (a restart of a
running node, a delivery of a message never sent) are left out. The pass is
deterministic, and its result is an ordinary event list that replays exactly.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass

from harness.runner import Checker
from impl import events as ev
from impl.config import ClusterConfig
from impl.world import InvalidEvent, World

_MESSAGE_EVENTS = (ev.Deliver, ev.Drop, ev.Duplicate)
# Chunks this small are tried at every position, larger ones only at multiples of their size.
SMALL_CHUNK = 4


@dataclass(frozen=True, slots=True)
class MessageRef:
    """A message event named by what it acts on rather than by id."""

    kind: type
    src: str
    dst: str
    message_type: str
    rank: int  # among in-flight messages with the same sender, receiver and type, oldest first

    def resolve(self, world: World) -> object | None:
        same = [
            e
            for e in world.inflight()
            if (e.src, e.dst, e.kind) == (self.src, self.dst, self.message_type)
        ]
        if not same:
            return None
        return self.kind(same[min(self.rank, len(same) - 1)].id)


@dataclass(frozen=True, slots=True)
class Replayed:
    """A replay of (possibly fewer) events: the events that applied, and the property that failed."""

    events: tuple[object, ...]
    failed: str | None


def replay(config: ClusterConfig, items: Sequence[object], eventually: bool) -> Replayed:
    """Apply `items` (events or MessageRefs), skipping what does not apply; stop at a failure."""
    checker = Checker(config)
    found = checker.initial_violations()
    if found:
        return Replayed((), found[0].property)
    applied: list[object] = []
    for item in items:
        event = item.resolve(checker.world) if isinstance(item, MessageRef) else item
        if event is None:
            continue
        try:
            _, found = checker.apply(event)
        except InvalidEvent:
            continue
        except Exception:  # the broker broke: the machine reports that as internal-error
            applied.append(event)
            return Replayed(tuple(applied), "internal-error")
        applied.append(event)
        if found:
            return Replayed(tuple(applied), found[0].property)
    if eventually:
        found = checker.finish()
    return Replayed(tuple(applied), found[0].property if found else None)


def symbolic(config: ClusterConfig, events: Sequence[object]) -> list[object]:
    """The events with every message event named by its message instead of its id."""
    world = World(config)
    items: list[object] = []
    for event in events:
        if isinstance(event, _MESSAGE_EVENTS):
            inflight = world.inflight()
            target = next(e for e in inflight if e.id == event.message_id)
            same = [
                e
                for e in inflight
                if (e.src, e.dst, e.kind) == (target.src, target.dst, target.kind)
            ]
            items.append(
                MessageRef(type(event), target.src, target.dst, target.kind, same.index(target))
            )
        else:
            items.append(event)
        try:
            world.apply(event)  # type: ignore[arg-type]
        except InvalidEvent:
            raise
        except Exception:  # the broker broke here (internal-error): nothing after it matters
            break
    return items


def shrink_events(
    config: ClusterConfig,
    events: Sequence[object],
    prop: str,
    eventually: bool,
    budget_s: float,
) -> list[object]:
    """The shortest failing schedule this pass finds within `budget_s` (never longer than `events`)."""
    deadline = time.perf_counter() + budget_s
    try:
        items = symbolic(config, events)
    except (InvalidEvent, StopIteration):
        return list(events)
    first = replay(config, items, eventually)
    if first.failed != prop:
        return list(events)
    best = list(first.events)
    items = symbolic(config, best)
    chunk = max(1, len(items) // 2)
    while time.perf_counter() < deadline:
        items, removed = _delete_chunks(config, items, chunk, prop, eventually, deadline)
        if chunk == 1:
            items, merged = _merge_ticks(config, items, prop, eventually, deadline)
            removed = removed or merged
        if removed:
            best = list(replay(config, items, eventually).events)
            items = symbolic(config, best)
        elif chunk == 1:
            break
        chunk = max(1, chunk // 2)
    return best


def _delete_chunks(
    config: ClusterConfig,
    items: list[object],
    chunk: int,
    prop: str,
    eventually: bool,
    deadline: float,
) -> tuple[list[object], bool]:
    """One sweep from the end: drop each run of `chunk` items whose absence keeps the failure.

    Large chunks are tried at chunk-aligned positions; small ones (a crash and
    its restart, a request and its answer) at every position.
    """
    removed = False
    stride = 1 if chunk <= SMALL_CHUNK else chunk
    start = len(items) - chunk
    while start >= 0 and time.perf_counter() < deadline:
        candidate = items[:start] + items[start + chunk :]
        if replay(config, candidate, eventually).failed == prop:
            items, removed = candidate, True
            start = min(start, len(items) - chunk)
        else:
            start -= stride
    return items, removed


def _merge_ticks(
    config: ClusterConfig, items: list[object], prop: str, eventually: bool, deadline: float
) -> tuple[list[object], bool]:
    """Join adjacent clock ticks into one, where the failure stays: the same time passes in fewer events."""
    merged = False
    index = len(items) - 2
    while index >= 0 and time.perf_counter() < deadline:
        first, second = items[index], items[index + 1]
        if isinstance(first, ev.Tick) and isinstance(second, ev.Tick):
            candidate = [*items[:index], ev.Tick(first.ms + second.ms), *items[index + 2 :]]
            if replay(config, candidate, eventually).failed == prop:
                items, merged = candidate, True
        index -= 1
    return items, merged
