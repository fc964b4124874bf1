"""The one alphabet of events: client operations, message scheduling and faults.

The Hypothesis machine, trace replay and the benchmarks all drive the world
with these frozen dataclasses, and nothing else. Every choice the world makes
is one of these events, so a list of them replays a run exactly.

Node names: brokers are "b0", "b1", ...; the coordination service is "zk";
producers are "p0", "p1", ...; consumers are "c0", "c1", ....
"""

from __future__ import annotations

from dataclasses import dataclass


def _require(condition: bool, message: str) -> None:
    if not condition:
        raise ValueError(message)


@dataclass(frozen=True, slots=True)
class Produce:
    """Producer `client` sends one new record to `topic` (partition None: the partitioner picks)."""

    client: str
    topic: str = "t"
    partition: int | None = None
    key: str | None = None

    def __post_init__(self) -> None:
        _require(self.client.startswith("p"), f"producer names start with 'p', not {self.client!r}")
        _require(self.partition is None or self.partition >= 0, "a partition is never negative")


@dataclass(frozen=True, slots=True)
class Poll:
    """Consumer `client` runs one poll: it fetches from every partition it reads."""

    client: str

    def __post_init__(self) -> None:
        _require(self.client.startswith("c"), f"consumer names start with 'c', not {self.client!r}")


@dataclass(frozen=True, slots=True)
class CommitOffsets:
    """Consumer `client` commits the positions it has consumed."""

    client: str

    def __post_init__(self) -> None:
        _require(self.client.startswith("c"), f"consumer names start with 'c', not {self.client!r}")


@dataclass(frozen=True, slots=True)
class Subscribe:
    """Consumer `client` joins `group` and subscribes to `topics`."""

    client: str
    group: str = "g0"
    topics: tuple[str, ...] = ("t",)

    def __post_init__(self) -> None:
        _require(self.client.startswith("c"), f"consumer names start with 'c', not {self.client!r}")


@dataclass(frozen=True, slots=True)
class Close:
    """Client `client` closes cleanly (a consumer leaves its group)."""

    client: str


@dataclass(frozen=True, slots=True)
class Deliver:
    """The network delivers in-flight message `message_id` to its destination."""

    message_id: int


@dataclass(frozen=True, slots=True)
class Drop:
    """The network loses in-flight message `message_id`."""

    message_id: int


@dataclass(frozen=True, slots=True)
class Duplicate:
    """The network delivers a copy of in-flight message `message_id` and keeps the original in flight."""

    message_id: int


@dataclass(frozen=True, slots=True)
class Crash:
    """Node `node` stops. A broker loses what it had not flushed when `lose_unflushed`."""

    node: str
    lose_unflushed: bool = True


@dataclass(frozen=True, slots=True)
class Restart:
    """Crashed node `node` starts again from its disk."""

    node: str


@dataclass(frozen=True, slots=True)
class Partition:
    """The network splits into `groups`; messages cross no group boundary until Heal."""

    groups: tuple[tuple[str, ...], ...]

    def __post_init__(self) -> None:
        seen: set[str] = set()
        for group in self.groups:
            for node in group:
                _require(node not in seen, f"node {node!r} is in two partition groups")
                seen.add(node)


@dataclass(frozen=True, slots=True)
class Heal:
    """The network is whole again."""


@dataclass(frozen=True, slots=True)
class Tick:
    """The virtual clock advances `ms` milliseconds; due timers fire in order."""

    ms: int

    def __post_init__(self) -> None:
        _require(self.ms > 0, f"a tick moves the clock forward, not by {self.ms} ms")


Event = (
    Produce
    | Poll
    | CommitOffsets
    | Subscribe
    | Close
    | Deliver
    | Drop
    | Duplicate
    | Crash
    | Restart
    | Partition
    | Heal
    | Tick
)

EVENT_TYPES: dict[str, type] = {
    cls.__name__: cls
    for cls in (
        Produce,
        Poll,
        CommitOffsets,
        Subscribe,
        Close,
        Deliver,
        Drop,
        Duplicate,
        Crash,
        Restart,
        Partition,
        Heal,
        Tick,
    )
}
