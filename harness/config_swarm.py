"""The configuration swarm: each stateful example draws its cluster's settings from a small space.

Rules of this module:
- `CONFIG_SPACE` is the whole space, one row per axis, with why those values.
  An axis sets one field of `ClusterConfig`, or a few that only make sense
  together (RF with min ISR, acks with idempotence, the two retention limits).
- A draw overrides only these fields of the campaign's base config (brokers,
  partitions, groups, seeded bugs stay), and only with values the base allows
  (a replication factor above the broker count is never drawn).
- Each axis offers the base config's own value first, so Hypothesis shrinks a
  failing example's settings towards the configuration the campaign was given:
  a counterexample keeps only the departures it needs.
- Half the draws are the base settings unchanged (`config_draws`): the nemeses
  were tuned on the base timing, and some situations they aim at (a follower
  readmitted then crashed, a crash losing acknowledged unflushed records) come
  up mostly there. Hypothesis builds later examples from earlier ones, so in a
  derandomized run the examples cluster on a few draws rather than half and half.
- `ConfigDraw` is plain data with a valid-Python repr, as every rule argument
  of the machine, so a printed counterexample still pastes and runs.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

from hypothesis import strategies as st
from kafka_verify.impl.config import ClusterConfig

Setting = tuple[tuple[str, Any], ...]  # (ClusterConfig field, value) pairs one axis sets together


@dataclass(frozen=True, slots=True)
class Axis:
    """One axis of the space: the settings it may take, and why those."""

    name: str
    why: str
    choices: tuple[Setting, ...]

    def fields(self) -> tuple[str, ...]:
        return tuple(name for name, _ in self.choices[0])


def _one(field_name: str, *values: Any) -> tuple[Setting, ...]:
    return tuple(((field_name, value),) for value in values)


CONFIG_SPACE: tuple[Axis, ...] = (
    Axis(
        "flush",
        "How long a record not yet committed stays volatile (a follower flushes before it "
        "fetches again and a leader before it counts itself towards the high watermark, so "
        "the timer decides the rest). 10 ms is about every write: the broker flushes only "
        "on its timer, and a shorter one costs events per virtual millisecond for no new "
        "states. 500 ms is the broker's default; 5 s the reference cluster's; 60 s is "
        "Kafka's way (flush.ms unset): an acks=1 leader or a lone leader crashing then "
        "loses all it has not committed.",
        _one("flush_interval_ms", 10, 500, 5_000, 60_000),
    ),
    Axis(
        "replica lag",
        "When a silent follower leaves the ISR, against the coordination service's "
        "session timeout (3 to 10 s below): 1 s drops followers before their broker's "
        "session could expire (the ISR shrinks while the broker is still registered); 5 s "
        "is the reference; 20 s keeps a dead follower in the ISR long after its session "
        "expired, so the leader waits on it (acks=all stalls) until the controller acts.",
        _one("replica_lag_time_max_ms", 1_000, 5_000, 20_000),
    ),
    Axis(
        "session",
        "The coordination and group session timeouts, heartbeats at a third of them, as "
        "Kafka advises: 3 s expires a partitioned broker or consumer within one clock "
        "step; 6 s is the reference; 10 s is Kafka's classic default, longer than the "
        "7 s clock jump, so a jump no longer expires everything at once.",
        tuple(
            (("session_timeout_ms", ms), ("heartbeat_interval_ms", ms // 3))
            for ms in (3_000, 6_000, 10_000)
        ),
    ),
    Axis(
        "request timeout",
        "When clients, followers and the controller give a request up and retry: 500 ms "
        "retries while the first attempt may still be answered (duplicates and races of "
        "retries); 3 s is the reference; 12 s (just under the producer's 15 s delivery "
        "timeout) makes a lost request cost a long silence.",
        _one("request_timeout_ms", 500, 3_000, 12_000),
    ),
    Axis(
        "replication",
        "RF and min.insync.replicas: (3, 2) is the safe, common choice; (3, 1) lets "
        "acks=all be answered by a leader alone in its ISR; (2, 1) has one follower, so "
        "one lagging follower leaves the leader alone and an election has one candidate.",
        (
            (("replication", 3), ("min_insync", 2)),
            (("replication", 3), ("min_insync", 1)),
            (("replication", 2), ("min_insync", 1)),
        ),
    ),
    Axis(
        "producer",
        "acks and idempotence (an idempotent producer needs acks=all): all with "
        "idempotence is the promise under test; all without it may write a retried "
        "record twice; acks=1 is answered before any follower has the record, so a "
        "leader crash may lose an acknowledged write (allowed, and reported as allowed).",
        (
            (("acks", -1), ("idempotent", True)),
            (("acks", -1), ("idempotent", False)),
            (("acks", 1), ("idempotent", False)),
        ),
    ),
    Axis(
        "retention",
        "(retention_ms, retention_records): (30 s, 8) is the reference cluster's, small "
        "enough to run within a schedule; off keeps every record (no log start moves); "
        "4 records by size alone moves the log start under readers every few writes; "
        "10 s by time alone deletes records a slow reader has not reached.",
        (
            (("retention_ms", 30_000), ("retention_records", 8)),
            (("retention_ms", None), ("retention_records", None)),
            (("retention_ms", None), ("retention_records", 4)),
            (("retention_ms", 10_000), ("retention_records", None)),
        ),
    ),
)

AXIS_NAMES = tuple(axis.name for axis in CONFIG_SPACE)
SWARM_FIELDS = tuple(name for axis in CONFIG_SPACE for name in axis.fields())


@dataclass(frozen=True, slots=True)
class ConfigDraw:
    """One example's drawn settings, as (field, value) pairs in `SWARM_FIELDS` order."""

    settings: Setting

    def apply(self, base: ClusterConfig) -> ClusterConfig:
        """`base` with these settings (ValueError, one sentence, if they do not fit it)."""
        return dataclasses.replace(base, **dict(self.settings))

    def label(self) -> str:
        """One short line for statistics and notes: field=value, ..."""
        return ", ".join(f"{name}={value}" for name, value in self.settings)


def _fits(base: ClusterConfig, setting: Setting) -> bool:
    try:
        dataclasses.replace(base, **dict(setting))
    except ValueError:
        return False
    return True


def axis_choices(axis: Axis, base: ClusterConfig) -> tuple[Setting, ...]:
    """The settings of `axis` that fit `base`, the base's own first (what shrinking aims at)."""
    own = tuple((name, getattr(base, name)) for name in axis.fields())
    fitting = [c for c in axis.choices if c != own and _fits(base, c)]
    return (own, *fitting)


def _joined(settings: tuple[Setting, ...]) -> ConfigDraw:
    return ConfigDraw(tuple(pair for setting in settings for pair in setting))


def config_draws(
    base: ClusterConfig, axes: frozenset[str] | None = None
) -> st.SearchStrategy[ConfigDraw]:
    """Draws of one setting per axis, each fitting `base` on its own and together; the base's
    own settings about half the time (the first branch, which is also what shrinking aims at).

    `axes` names the axes that vary (None: all of them); the others keep the base's setting.
    """
    unknown = set(axes or ()) - set(AXIS_NAMES)
    if unknown:
        raise ValueError(f"the config swarm has no axis named {sorted(unknown)[0]!r}")
    choices = [
        axis_choices(axis, base)[: None if axes is None or axis.name in axes else 1]
        for axis in CONFIG_SPACE
    ]
    own = _joined(tuple(c[0] for c in choices))
    # Axes touch disjoint fields and each fits `base` alone; the one cross-axis rule
    # of ClusterConfig (heartbeat < session) lives inside one axis, so any join fits.
    swarmed = st.tuples(*(st.sampled_from(c) for c in choices)).map(_joined)
    return st.one_of(st.just(own), swarmed)


def drawn_values(config: ClusterConfig) -> dict[str, Any]:
    """The swarm's fields of `config`, for reports and statistics."""
    return {name: getattr(config, name) for name in SWARM_FIELDS}
