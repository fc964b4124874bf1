"""Quiet timers: a periodic timer that would only set itself again is set again without its handler.

The world skips a handler only on the broker's word (`Broker.quiet_until`), and a run
must not be able to tell: these tests replay the same schedules with every handler run
and require the same results, step by step.
"""

from __future__ import annotations

import random

import pytest
from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.impl import events as ev
from kafka_verify.impl.abstraction import abstract
from kafka_verify.impl.broker import Broker
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import World
from kafka_verify.impl.zk import ZkCluster, ZkHeartbeat, ZkRead, ZkRegister

TICKS_MS = (1, 10, 50, 250, 250, 1_000, 7_000, 31_000)


def _schedule(config: ClusterConfig, length: int, seed: int) -> list[object]:
    """A fault-rich schedule with long ticks, chosen by reading a world as it runs."""
    chooser = random.Random(seed)
    world = World(config)
    events: list[object] = []
    while len(events) < length:
        inflight = world.inflight()
        down = [n for n in world.nodes() if not world.is_up(n)]
        roll = chooser.random()
        event: object
        if roll < 0.55 and inflight:
            event = ev.Deliver(inflight[min(len(inflight) - 1, int(chooser.expovariate(1.0)))].id)
        elif roll < 0.65 and world.is_up("p0"):
            event = ev.Produce("p0")
        elif roll < 0.70 and world.is_up("c0"):
            event = ev.Poll("c0")
        elif roll < 0.72 and config.groups and world.is_up("c0") and not world.subscribed("c0"):
            event = ev.Subscribe("c0", "g0", ("t",))
        elif roll < 0.74 and down:
            event = ev.Restart(chooser.choice(down))
        elif roll < 0.76:
            up = [n for n in world.nodes() if n.startswith(("b", "zk")) and world.is_up(n)]
            event = ev.Crash(chooser.choice(up), chooser.random() < 0.5)
        elif roll < 0.78 and not world.partitioned():
            event = ev.Partition((("b0",), tuple(n for n in world.nodes() if n != "b0")))
        elif roll < 0.80 and world.partitioned():
            event = ev.Heal()
        else:
            event = ev.Tick(chooser.choice(TICKS_MS))
        world.apply(event)  # type: ignore[arg-type]
        events.append(event)
    return events


def _replay(config: ClusterConfig, events: list[object]) -> tuple[list[str], list[frozenset[str]]]:
    """Per event: what it did and the world after it (everything but the touched set), and
    the touched sets."""
    world = World(config)
    seen: list[str] = []
    touched: list[frozenset[str]] = []
    for event in events:
        result = world.apply(event)  # type: ignore[arg-type]
        after = (result.actions, result.ops, result.delivered, result.sent, result.refused)
        seen.append(
            repr((after, result.lost_records, world.now_ms, world.inflight(), abstract(world)))
            + world.describe()
        )
        touched.append(result.touched)
    return seen, touched


@pytest.mark.parametrize(
    ("config", "seed"),
    [(ClusterConfig(), 1), (reference_cluster(), 2), (reference_cluster(), 3)],
)
def test_quiet_timers_change_nothing_a_run_shows(
    config: ClusterConfig, seed: int, monkeypatch: pytest.MonkeyPatch
) -> None:
    events = _schedule(config, 1_500, seed)
    assert sum(isinstance(e, ev.Tick) and e.ms >= 7_000 for e in events) >= 20
    quiet_seen, quiet_touched = _replay(config, events)
    # The same schedule with every timer's handler run, as before quiet timers existed.
    monkeypatch.setattr(Broker, "quiet_until", lambda self, name, now_ms: None)
    full_seen, full_touched = _replay(config, events)
    for index, (quiet, full) in enumerate(zip(quiet_seen, full_seen, strict=True)):
        assert quiet == full, f"event {index} ({events[index]!r}) differs"
    # A quiet timer leaves its broker untouched; nothing else is left out.
    assert all(q <= f for q, f in zip(quiet_touched, full_touched, strict=True))
    assert any(q < f for q, f in zip(quiet_touched, full_touched, strict=True))


def test_a_long_quiet_tick_runs_few_handlers(monkeypatch: pytest.MonkeyPatch) -> None:
    world = World(reference_cluster())
    for _ in range(200):  # the cluster settles: fetches parked, everything acknowledged
        world.apply(ev.Deliver(world.inflight()[0].id) if world.inflight() else ev.Tick(10))
    handlers: list[str] = []
    real_on_timer = Broker.on_timer

    def counted(self: Broker, name: str, now_ms: int) -> object:
        handlers.append(name)
        return real_on_timer(self, name, now_ms)

    monkeypatch.setattr(Broker, "on_timer", counted)
    world.apply(ev.Tick(31_000))
    # 31 s of three brokers' timers are some 1,400 firings; the fetch timer runs only for the
    # fetches that time out, the controller and ISR timers hardly at all.
    assert len(handlers) < 400
    assert handlers.count("controller") < 30 and handlers.count("isr") < 5


def test_cluster_read_answers_its_last_snapshot_until_something_changes() -> None:
    world = World(ClusterConfig())
    zk = world.zk
    first = zk.call(ZkRead(), 100)
    assert isinstance(first, ZkCluster) and zk.call(ZkRead(), 200) is first
    # A heartbeat that keeps a session alive changes no read...
    session = zk.registrations[1][0]
    zk.call(ZkHeartbeat(session), 300)
    assert zk.call(ZkRead(), 400) is first
    # ... but a session that expires does: broker 0 stops heartbeating, the others go on.
    timeout = world.config.session_timeout_ms
    for broker in (1, 2):
        zk.call(ZkHeartbeat(zk.registrations[broker][0]), timeout)
    expired = zk.call(ZkRead(), timeout + 1)
    assert isinstance(expired, ZkCluster) and expired is not first
    assert 0 not in expired.registrations and set(expired.registrations) == {1, 2}
    assert not expired.lease_alive  # broker 0 held the lease
    # A write makes a new snapshot at once.
    zk.call(ZkRegister(0), timeout + 2)
    registered = zk.call(ZkRead(), timeout + 3)
    assert isinstance(registered, ZkCluster) and 0 in registered.registrations
