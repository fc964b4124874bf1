"""Drive the reference cluster through a hand-written schedule, checking refinement after every event.

`Run.do(event)` applies one event, applies the model actions it named with
`model.step` and asserts that the abstraction of the world equals the model
state. `drain` delivers the oldest message in flight, or, when none is in
flight, advances the clock to the next timer, until a bound.
"""

from __future__ import annotations

from collections.abc import Callable

from kafka_verify import model
from kafka_verify.impl import events as ev
from kafka_verify.impl.abstraction import abstract
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import ClientOp, Envelope, StepResult, World
from kafka_verify.model.actions import Action


class Run:
    def __init__(self, config: ClusterConfig) -> None:
        self.world = World(config)
        self.cfg = config.model_config()
        self.state = model.initial_state(self.cfg)
        self.actions: list[Action] = []
        self.ops: list[ClientOp] = []
        assert abstract(self.world) == self.state

    def do(self, event: ev.Event) -> StepResult:
        result = self.world.apply(event)
        for action in result.actions:
            self.state = model.step(self.state, action, self.cfg)
        self.actions.extend(result.actions)
        self.ops.extend(result.ops)
        assert abstract(self.world) == self.state, f"{event!r} left the world off the model"
        return result

    def deliver_where(self, wanted: Callable[[Envelope], bool], limit: int = 500) -> int:
        """Deliver matching messages, oldest first, until none is left; how many were delivered."""
        count = 0
        while count < limit:
            match = next((e for e in self.world.inflight() if wanted(e)), None)
            if match is None:
                return count
            self.do(ev.Deliver(match.id))
            count += 1
        raise AssertionError("the network never went quiet")

    def drain(self, ms: int, drop: Callable[[Envelope], bool] = lambda e: False) -> None:
        """Deliver everything (dropping what `drop` picks) and fire timers, for `ms` of virtual time."""
        until = self.world.now_ms + ms
        for _ in range(20_000):
            inflight = self.world.inflight()
            if inflight:
                oldest = inflight[0]
                self.do(ev.Drop(oldest.id) if drop(oldest) else ev.Deliver(oldest.id))
                continue
            delay = self.world.next_timer_ms()
            if self.world.now_ms >= until:
                return
            step = max(1, min(delay if delay is not None else ms, until - self.world.now_ms))
            self.do(ev.Tick(step))
        raise AssertionError("drain did not finish")

    # -- reading outcomes ------------------------------------------------------------------

    def sends(self, kind: str) -> list[ClientOp]:
        return [op for op in self.ops if op.f == "send" and op.type == kind]

    def polled(self, partition: int = 0) -> list[tuple[int, int]]:
        pairs: list[tuple[int, int]] = []
        for op in self.ops:
            if op.f == "poll" and op.type == "ok" and isinstance(op.value, dict):
                pairs.extend((o, r) for o, r in op.value.get(f"t/{partition}", []))
        return pairs

    def replica(self, broker: int, partition: int = 0) -> model.Replica:
        return self.state.partitions[partition].replica(broker)

    def named(self, kind: type) -> list[Action]:
        return [a for a in self.actions if isinstance(a, kind)]
