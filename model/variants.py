"""Protocol variants: historical design mistakes that the exhaustive engines can switch on.

Each variant changes how `enabled()` (and the symbolic encoding) computes one
choice, at a single point of deviation. Where `step()` checks a value the
protocol dictates (the truncation offset), it applies the same rule, so an
exhaustive engine exploring a variant can take the variant's steps. The
reference broker is checked against a model config with no variants: the
correct model is its specification, whatever bugs it has switched on.
"""

from __future__ import annotations

from kafka_verify.model.state import Replica

TRUNCATE_TO_HW = "truncate-to-hw"
EPOCH_END_OFFSET_HOLE = "epoch-end-offset-hole"
NO_FETCH_EPOCH_FENCING = "no-fetch-epoch-fencing"
UNCLEAN_ELECTION = "unclean-election"
HW_AHEAD_OF_ISR = "hw-ahead-of-isr"
STALE_LEADER_ACCEPTS_WRITES = "stale-leader-accepts-writes"
RETENTION_DELETES_UNREPLICATED = "retention-deletes-unreplicated"
ZOMBIE_COMMIT = "zombie-commit"
DOUBLE_ASSIGNMENT = "double-assignment"

PROTOCOL_VARIANTS: dict[str, str] = {
    TRUNCATE_TO_HW: "a follower truncates to its own high watermark instead of asking the leader",
    EPOCH_END_OFFSET_HOLE: "truncation trusts the leader's end offset without the epoch it belongs to (KIP-101 before KIP-279)",
    NO_FETCH_EPOCH_FENCING: "fetch and truncation carry no leader epoch, so a replica acts on another epoch's leader (before KIP-320)",
    UNCLEAN_ELECTION: "the controller may elect a running replica that is not in the ISR",
    HW_AHEAD_OF_ISR: "the leader's high watermark ignores ISR members that are not running",
    STALE_LEADER_ACCEPTS_WRITES: "ISR changes are not fenced by leader epoch, so a deposed leader can still change the ISR",
    RETENTION_DELETES_UNREPLICATED: "retention may delete up to the log end offset instead of below the high watermark",
    ZOMBIE_COMMIT: "the group coordinator accepts an offset commit from a member of an older generation",
    DOUBLE_ASSIGNMENT: "a member that rejoins keeps its old partitions instead of revoking them first",
}


def truncation_offset(follower: Replica, leader: Replica, bugs: frozenset[str]) -> tuple[int, bool]:
    """Where a follower cuts its log when it starts following `leader`.

    Correct (KIP-279/KIP-320): ask the leader for the end offset of the
    follower's last epoch; the leader answers with the largest epoch it knows at
    or below it and that epoch's end; the follower truncates to the smaller of
    that end and its own end for the same epoch. If the follower does not have
    the answered epoch at all, it cuts to its own end for the largest earlier
    epoch and asks again: the second element is False ("not complete").
    """
    if TRUNCATE_TO_HW in bugs:
        return max(follower.log_start, min(follower.hw, follower.leo)), True
    requested = follower.last_epoch()
    if requested == -1:
        return follower.leo, True
    answer_epoch, answer_end = leader_epoch_end(leader, requested)
    if answer_epoch == -1:
        # The leader knows no epoch this old: fall back to the follower's own
        # high watermark, which only ever covers committed records.
        return max(follower.log_start, min(follower.hw, follower.leo)), True
    if EPOCH_END_OFFSET_HOLE in bugs:
        return min(answer_end, follower.leo), True
    own_epoch, own_end = follower.end_offset_for_epoch(answer_epoch)
    if own_epoch == -1:
        # Nothing at or before the answered epoch: the whole retained log goes.
        return follower.log_start, True
    if own_epoch != answer_epoch:
        # The follower never saw the leader's epoch: cut back to the end of its
        # own largest earlier epoch and ask again with that epoch.
        return min(own_end, follower.leo), False
    return min(answer_end, own_end, follower.leo), True


def leader_epoch_end(leader: Replica, requested: int) -> tuple[int, int]:
    """The leader's OffsetsForLeaderEpoch answer: (largest epoch <= requested, its end offset)."""
    if requested >= leader.epoch:
        return (leader.epoch, leader.leo)
    return leader.end_offset_for_epoch(requested)
