"""The seeded-bug catalogue of the reference broker: named switches, all off by default.

Each bug is one deliberate deviation from the correct protocol, switched on by
name in `ClusterConfig.bugs` and consulted at exactly one point of deviation
with `enabled(config, name)`. Each entry is told in full (the switch, its
history, the minimal scenario, the properties that catch it) in docs/bugs.md,
which `kafka-verify bugs --long` prints.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from kafka_verify.model import variants

TRUNCATE_TO_HW = variants.TRUNCATE_TO_HW
EPOCH_END_OFFSET_HOLE = variants.EPOCH_END_OFFSET_HOLE
NO_FETCH_EPOCH_FENCING = variants.NO_FETCH_EPOCH_FENCING
UNCLEAN_ELECTION = variants.UNCLEAN_ELECTION
HW_AHEAD_OF_ISR = variants.HW_AHEAD_OF_ISR
ACK_BEFORE_COMMIT = "ack-before-commit"
STALE_LEADER_ACCEPTS_WRITES = variants.STALE_LEADER_ACCEPTS_WRITES
READ_UNCOMMITTED = "read-uncommitted"
DUPLICATE_OFFSET = "duplicate-offset"
CONTROLLER_SPLIT_BRAIN = "controller-split-brain"
NON_IDEMPOTENT_RETRY = "non-idempotent-retry"
RETENTION_DELETES_UNREPLICATED = variants.RETENTION_DELETES_UNREPLICATED
ZOMBIE_COMMIT = "zombie-commit"
DOUBLE_ASSIGNMENT = "double-assignment"
OFFSETS_IN_MEMORY = "offsets-in-memory"
NO_GENERATION_FENCING_ON_FETCH = "no-generation-fencing-on-fetch"
LEADER_COUNTS_UNFLUSHED = "leader-counts-unflushed"
FETCH_BEFORE_FLUSH = "fetch-before-flush"
ISR_EXPAND_AT_HW = "isr-expand-at-hw"
NO_EPOCH_KEEPS_LOG = "no-epoch-keeps-log"
OFFSETS_LOADED_TO_HW = "offsets-loaded-to-hw"
FETCH_BEFORE_RECOVERY = "fetch-before-recovery"
# Broad variants of the four group bugs above: the more general mistake behind each.
UNFENCED_OFFSET_COMMIT = "unfenced-offset-commit"
OWNERSHIP_NEVER_REVOKED = "ownership-never-revoked"
COMMIT_BEFORE_REPLICATION = "commit-before-replication"
SESSION_FROM_UNANSWERED_HEARTBEAT = "session-from-unanswered-heartbeat"


@dataclass(frozen=True, slots=True)
class Bug:
    """One catalogue entry: what the switch does and where its scenario is told."""

    name: str
    description: str
    reference: str


def _bug(name: str, description: str, reference: str) -> Bug:
    return Bug(name, description, f"docs/bugs.md `{name}`; {reference}")


BUGS: dict[str, Bug] = {
    bug.name: bug
    for bug in (
        _bug(
            TRUNCATE_TO_HW,
            "a follower truncates to its own high watermark when it starts following or restarts",
            "pre-KIP-101",
        ),
        _bug(
            EPOCH_END_OFFSET_HOLE,
            "a follower truncates to the leader's epoch end offset without checking it holds that epoch",
            "KIP-101, fixed by KIP-279",
        ),
        _bug(
            NO_FETCH_EPOCH_FENCING,
            "the leader answers Fetch and OffsetsForLeaderEpoch without checking the requester's leader epoch",
            "pre-KIP-320, KAFKA-6880",
        ),
        _bug(
            UNCLEAN_ELECTION,
            "the controller elects a live replica outside the ISR when no ISR member is alive",
            "unclean.leader.election.enable",
        ),
        _bug(
            HW_AHEAD_OF_ISR,
            "the leader's high watermark counts only followers that fetched recently, not the whole ISR",
            "high-watermark rule",
        ),
        _bug(
            ACK_BEFORE_COMMIT,
            "acks=all is answered as soon as the leader appends, even with a too-small ISR",
            "acks=all contract",
        ),
        _bug(
            STALE_LEADER_ACCEPTS_WRITES,
            "ISR writes to the coordination service are not fenced by leader epoch, so a deposed leader shrinks the ISR and acks",
            "KIP-320 fencing",
        ),
        _bug(
            READ_UNCOMMITTED,
            "consumer fetches are served up to the log end offset instead of the high watermark",
            "isolation",
        ),
        _bug(
            DUPLICATE_OFFSET,
            "a replica does not reset its next offset after a truncation, so produce answers give wrong offsets",
            "offset assignment",
        ),
        _bug(
            CONTROLLER_SPLIT_BRAIN,
            "a deposed controller keeps electing and sending LeaderAndIsr, unfenced by controller epoch",
            "controller epoch, KIP-380",
        ),
        _bug(
            LEADER_COUNTS_UNFLUSHED,
            "the leader counts its own log end toward the high watermark, flushed or not",
            "durability of acks=all with a one-replica ISR",
        ),
        _bug(
            FETCH_BEFORE_FLUSH,
            "a follower's fetch advertises its log end before the records it appended are flushed",
            "follower durability",
        ),
        _bug(
            ISR_EXPAND_AT_HW,
            "the leader readmits a follower to the ISR once it reaches the high watermark, not where the leader's epoch began",
            "KAFKA-7128",
        ),
        _bug(
            NO_EPOCH_KEEPS_LOG,
            "a follower whose leader knows no epoch as old as its last keeps its whole log instead of cutting to its high watermark",
            "KAFKA-6361, KIP-279",
        ),
        _bug(
            FETCH_BEFORE_RECOVERY,
            "a restarted follower's first fetch advertises the log end it had before the crash, not the end of the log it recovered",
            "log recovery on restart",
        ),
        _bug(
            NON_IDEMPOTENT_RETRY,
            "the leader appends a retried record again instead of deduplicating by producer sequence",
            "KIP-98 idempotence",
        ),
        _bug(
            RETENTION_DELETES_UNREPLICATED,
            "retention deletes up to the log end offset, active segment included, not only below the high watermark",
            "log retention",
        ),
        _bug(
            ZOMBIE_COMMIT,
            "the group coordinator accepts an offset commit from an older generation",
            "group protocol",
        ),
        _bug(
            DOUBLE_ASSIGNMENT,
            "a rebalance leaves one partition owned by two current members",
            "group protocol",
        ),
        _bug(
            OFFSETS_IN_MEMORY,
            "committed offsets live only in the coordinator's memory, not the offsets topic",
            "offsets topic",
        ),
        _bug(
            NO_GENERATION_FENCING_ON_FETCH,
            "a consumer whose session may have lapsed keeps fetching until the coordinator tells it",
            "group protocol",
        ),
        _bug(
            OFFSETS_LOADED_TO_HW,
            "a new group coordinator loads only the commits below its own high watermark, which may lag the commits already applied",
            "offsets-topic loading",
        ),
        # -- broad variants of the group bugs --
        _bug(
            UNFENCED_OFFSET_COMMIT,
            "the group coordinator takes an offset commit from any member of any generation, owner or not",
            "group protocol",
        ),
        _bug(
            OWNERSHIP_NEVER_REVOKED,
            "the group coordinator never revokes what a member owned, neither when it rejoins nor when it leaves",
            "group protocol",
        ),
        _bug(
            COMMIT_BEFORE_REPLICATION,
            "an offset commit takes effect once the coordinator appends it, before it is replicated, whatever the ISR",
            "offsets topic",
        ),
        _bug(
            SESSION_FROM_UNANSWERED_HEARTBEAT,
            "a consumer counts its session from the last heartbeat it sent, answered or not",
            "group protocol",
        ),
    )
}


class HasBugs(Protocol):
    @property
    def bugs(self) -> frozenset[str]: ...


def enabled(config: HasBugs, name: str) -> bool:
    """Whether bug `name` is switched on; a misspelt name is a programming error, not a silent False."""
    if name not in BUGS:
        raise KeyError(f"no bug named {name!r} in the catalogue")
    return name in config.bugs
