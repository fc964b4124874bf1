"""Which anomalies a configuration allows, and why: one table, as Jepsen's allowed-error-types.

Rules of this module:
- `ALLOWANCES` is the only place that allows anything. Each row names an
  anomaly, the condition (on the configuration and on the case) under which it
  is allowed, and the reason, which reports print beside every allowed case.
- An allowed case is never dropped: the verdict counts only what no row
  allows, and the result still lists the allowed cases with their reason.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from kafka_verify.properties.history.memory import Case, CheckConfig


@dataclass(frozen=True, slots=True)
class Allowance:
    """One row of the table: `anomaly` is allowed where `applies` holds, because `reason`."""

    anomaly: str
    reason: str
    applies: Callable[[CheckConfig, Case], bool]


def _always(config: CheckConfig, case: Case) -> bool:
    return True


def _subscribed_consumer(config: CheckConfig, case: Case) -> bool:
    return "subscribe" in config.sub_via and case.fact("subscribed") is True


def _rebalance_logged(config: CheckConfig, case: Case) -> bool:
    return case.fact("rebalanced") is True and all(op.rebalanced for op in case.ops[-1:])


def _with_ww_deps(config: CheckConfig, case: Case) -> bool:
    return config.ww_deps


def _without_idempotence(config: CheckConfig, case: Case) -> bool:
    return not config.idempotent


def _leader_only_acks(config: CheckConfig, case: Case) -> bool:
    return config.acks != -1


# acks=1 is answered once the leader alone has appended a record. If the leader then
# crashes (losing what it had not flushed) or is replaced before a follower copied the
# record, the new leader's log lacks it: Kafka documents this loss as the price of acks=1.
ACKS_ONE_LOSS = (
    "with acks=1 a send is acknowledged once the leader alone has appended it; a leader "
    "that crashes or is replaced before a follower copies the record loses it"
)


ALLOWANCES: tuple[Allowance, ...] = (
    Allowance(
        "int-send-skip",
        "other producers' sends interleave with a transaction's own in a partition's log",
        _always,
    ),
    Allowance(
        "G0",
        "Kafka does not isolate writes: concurrent producers' sends interleave, so write "
        "cycles are expected",
        _always,
    ),
    Allowance(
        "G1c",
        "with ww dependencies inferred from offsets (--ww-deps), the lack of write isolation "
        "makes cycles such as T1 -ww-> T2 -wr-> T1 expected",
        _with_ww_deps,
    ),
    Allowance(
        "poll-skip",
        "a subscribed consumer (--sub-via subscribe) may be rebalanced between polls and "
        "resume from its group's committed offset, past records another member read",
        _subscribed_consumer,
    ),
    Allowance(
        "nonmonotonic-poll",
        "a subscribed consumer (--sub-via subscribe) may be rebalanced between polls and "
        "resume from its group's committed offset, before records it already read",
        _subscribed_consumer,
    ),
    Allowance(
        "poll-skip",
        "the operation's rebalance log says the partition was reassigned while it ran",
        _rebalance_logged,
    ),
    Allowance(
        "nonmonotonic-poll",
        "the operation's rebalance log says the partition was reassigned while it ran",
        _rebalance_logged,
    ),
    Allowance(
        "int-poll-skip",
        "the operation's rebalance log says the partition was reassigned while it ran",
        _rebalance_logged,
    ),
    Allowance(
        "int-nonmonotonic-poll",
        "the operation's rebalance log says the partition was reassigned while it ran",
        _rebalance_logged,
    ),
    Allowance(
        "duplicate",
        "a producer without idempotence (--no-idempotent) may write a retried record twice",
        _without_idempotence,
    ),
    Allowance("lost-write", ACKS_ONE_LOSS, _leader_only_acks),
    Allowance(
        "inconsistent-offsets",
        ACKS_ONE_LOSS + ", and the new leader writes another record at that offset",
        _leader_only_acks,
    ),
    Allowance(
        "nonmonotonic-send",
        ACKS_ONE_LOSS + ", so the producer's next send may land at or below that offset",
        _leader_only_acks,
    ),
)


def allowed_because(case: Case, config: CheckConfig) -> str | None:
    """The reason `config` allows `case`, or None when it counts against the history."""
    for row in ALLOWANCES:
        if row.anomaly == case.anomaly and row.applies(config, case):
            return row.reason
    return None
