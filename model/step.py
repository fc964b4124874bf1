"""The transition relation: `step(state, action, config)` and `enabled(state, config)`.

`step` is the specification the reference broker is checked against. It
checks each action against what the acting node could know (its own replica,
and for fenced writes the quorum state), and raises `NotAllowed` with a reason
that names the action and the rule it broke.

`enabled` yields the actions of the atomic-interleaving model used by the
exhaustive engines: parameters are read from the global state, as in the
public TLA+ specifications (a follower "fetches" by reading its leader's log).
Every action `enabled` yields is accepted by `step`. Protocol variants
(seeded design bugs) only change what `enabled` yields.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import replace

from kafka_verify.model import variants
from kafka_verify.model.actions import (
    GROUP_ACTION_TYPES,
    Action,
    BecomeFollower,
    BecomeLeader,
    ControllerFailover,
    Crash,
    ElectLeader,
    ExpandIsr,
    Flush,
    FollowerReplicate,
    IncHighWatermark,
    LeaderWrite,
    NotAllowed,
    ResetLog,
    Restart,
    RetentionDelete,
    ShrinkIsr,
    Truncate,
)
from kafka_verify.model.groups import enabled_group_actions, step_group_in_state
from kafka_verify.model.state import Config, Partition, Record, Replica, Role, State

__all__ = ["NotAllowed", "enabled", "step"]


def _replica(
    state: State, action: object, partition: int, broker: int
) -> tuple[Partition, Replica]:
    if not (0 <= partition < len(state.partitions)):
        raise NotAllowed(action, f"there is no partition {partition}")
    part = state.partitions[partition]
    for replica in part.replicas:
        if replica.broker == broker:
            if broker not in state.running:
                raise NotAllowed(action, f"broker {broker} is not running")
            return part, replica
    raise NotAllowed(action, f"broker {broker} hosts no replica of partition {partition}")


def _durable(replica: Replica, config: Config) -> Replica:
    if config.durable and (replica.flushed != replica.leo or replica.checkpoint_hw != replica.hw):
        return replica.flushed_now()
    return replica


def _put(state: State, index: int, part: Partition, replica: Replica, config: Config) -> State:
    return state.with_partition(index, part.with_replica(_durable(replica, config)))


# -- one function per action ---------------------------------------------------------
# The exhaustive engines take millions of steps, so the commonest changes build their values
# directly: dataclasses.replace costs several times as much.


def _leader_write(state: State, a: LeaderWrite, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    if r.role is not Role.LEADER:
        raise NotAllowed(a, f"broker {a.broker} is not a leader of partition {a.partition}")
    if a.acks not in (0, 1, -1):
        raise NotAllowed(a, f"acks must be 0, 1 or -1, not {a.acks}")
    if a.acks == -1 and len(r.isr) < config.min_insync:
        raise NotAllowed(
            a,
            f"acks=all needs an ISR of at least {config.min_insync}, the leader has {sorted(r.isr)}",
        )
    return _put(state, a.partition, part, r.appended(Record(a.record_id, r.epoch)), config)


def _follower_replicate(state: State, a: FollowerReplicate, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    if r.role is not Role.FOLLOWING:
        raise NotAllowed(a, f"broker {a.broker} is {r.role.value}, not a fetching follower")
    if not (a.record.epoch <= r.epoch):
        raise NotAllowed(
            a, f"the record's epoch {a.record.epoch} is newer than the follower's epoch {r.epoch}"
        )
    if not (not r.log or a.record.epoch >= r.log[-1].epoch):
        raise NotAllowed(
            a,
            f"epochs in a log never go down: {a.record.epoch} after {r.log[-1].epoch if r.log else -1}",
        )
    return _put(state, a.partition, part, r.appended(a.record), config)


def _inc_high_watermark(state: State, a: IncHighWatermark, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    if r.role not in (Role.LEADER, Role.FOLLOWING):
        raise NotAllowed(a, f"broker {a.broker} is {r.role.value}")
    if not (a.hw > r.hw):
        raise NotAllowed(a, f"the high watermark only goes up, it is {r.hw}")
    if not (a.hw <= r.leo):
        raise NotAllowed(a, f"the high watermark cannot pass the log end offset {r.leo}")
    return _put(state, a.partition, part, r.with_hw(a.hw), config)


def _become_leader(state: State, a: BecomeLeader, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    if not (a.epoch > r.epoch):
        raise NotAllowed(a, f"epoch {a.epoch} is not newer than the replica's {r.epoch}")
    if not (a.epoch <= part.epoch):
        raise NotAllowed(a, f"epoch {a.epoch} was never issued (quorum is at {part.epoch})")
    if a.broker not in a.isr:
        raise NotAllowed(a, "a leader must be in its own ISR")
    updated = Replica(
        r.broker, r.log, r.log_start, r.hw, r.flushed, r.checkpoint_hw,
        a.epoch, Role.LEADER, a.broker, a.isr,
    )  # fmt: skip
    return _put(state, a.partition, part, updated, config)


def _become_follower(state: State, a: BecomeFollower, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    rejoin = a.epoch == r.epoch and r.role is Role.UNKNOWN  # restarted, following again
    if not (a.epoch > r.epoch or rejoin):
        raise NotAllowed(a, f"epoch {a.epoch} is not newer than the replica's {r.epoch}")
    if not (a.epoch <= part.epoch):
        raise NotAllowed(a, f"epoch {a.epoch} was never issued (quorum is at {part.epoch})")
    if not (a.leader != a.broker):
        raise NotAllowed(a, "a replica cannot follow itself")
    updated = Replica(
        r.broker, r.log, r.log_start, r.hw, r.flushed, r.checkpoint_hw,
        a.epoch, Role.TRUNCATING, a.leader, frozenset(),
    )  # fmt: skip
    return _put(state, a.partition, part, updated, config)


def _truncate(state: State, a: Truncate, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    before_role = variants.TRUNCATE_TO_HW in config.bugs  # it cuts at restart, role unknown
    allowed = (Role.TRUNCATING, Role.UNKNOWN) if before_role else (Role.TRUNCATING,)
    if r.role not in allowed:
        raise NotAllowed(a, f"broker {a.broker} is {r.role.value}")
    if not (r.log_start <= a.offset <= r.leo):
        raise NotAllowed(a, f"offset {a.offset} is outside [{r.log_start}, {r.leo}]")
    dictated = _truncation_point(state, part, r, config.bugs)
    if dictated is not None:
        offset, complete = dictated
        if not ((a.offset, a.complete) == dictated):
            raise NotAllowed(
                a,
                f"the protocol cuts broker {a.broker}'s log at {offset}"
                f"{'' if complete else ' and asks again'}, not at {a.offset}"
                f"{'' if a.complete else ' asking again'} (its log ends at {r.leo})",
            )
    kept = r.log[: a.offset - r.log_start]
    updated = Replica(
        r.broker,
        kept,
        r.log_start,
        min(r.hw, a.offset),
        min(r.flushed, a.offset),
        min(r.checkpoint_hw, a.offset),
        r.epoch,
        Role.FOLLOWING if r.role is Role.TRUNCATING and a.complete else r.role,
        r.leader,
        r.isr,
    )
    return _put(state, a.partition, part, updated, config)


def _truncation_point(
    state: State, part: Partition, r: Replica, bugs: frozenset[str]
) -> tuple[int, bool] | None:
    """Where the protocol cuts a truncating follower's log: (offset, complete).

    The leader's answer for the follower's last epoch (KIP-279), clipped to the
    follower's log end, or the variant's historical rule. None when the follower
    asked a leader that has since crashed or been deposed: what that leader
    answered is not in the state, so any offset within the log is accepted.
    """
    if variants.TRUNCATE_TO_HW in bugs:
        return variants.truncation_offset(r, r, bugs)
    leader = _fetch_source(state, part, r, bugs)
    if leader is None:
        return None
    offset, complete = variants.truncation_offset(r, leader, bugs)
    return max(r.log_start, offset), complete


def _reset_log(state: State, a: ResetLog, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    if r.role not in (Role.TRUNCATING, Role.FOLLOWING):
        raise NotAllowed(a, f"broker {a.broker} is {r.role.value}")
    if not (a.log_start > r.leo):
        raise NotAllowed(
            a, f"the log end {r.leo} is not below the leader's log start {a.log_start}"
        )
    updated = replace(
        r,
        log=(),
        log_start=a.log_start,
        hw=a.log_start,
        flushed=a.log_start,
        checkpoint_hw=a.log_start,
        role=Role.FOLLOWING,
    )
    return _put(state, a.partition, part, updated, config)


def _fenced_isr_write(
    state: State, a: ShrinkIsr | ExpandIsr, config: Config
) -> tuple[Partition, Replica]:
    part, r = _replica(state, a, a.partition, a.broker)
    if r.role is not Role.LEADER:
        raise NotAllowed(a, f"broker {a.broker} is not a leader")
    unfenced = variants.STALE_LEADER_ACCEPTS_WRITES in config.bugs
    if not (unfenced or (part.leader == a.broker and part.epoch == r.epoch)):
        raise NotAllowed(
            a,
            f"the ISR write is fenced: the quorum has leader {part.leader} in epoch {part.epoch}, "
            f"the writer is in epoch {r.epoch}",
        )
    if a.broker not in a.isr:
        raise NotAllowed(a, "the leader must stay in the ISR")
    return part, r


def _shrink_isr(state: State, a: ShrinkIsr, config: Config) -> State:
    part, r = _fenced_isr_write(state, a, config)
    if not (a.isr < part.isr):
        raise NotAllowed(a, f"{sorted(a.isr)} is not a strict subset of {sorted(part.isr)}")
    state = state.with_partition(a.partition, replace(part, isr=a.isr))
    return _put(state, a.partition, state.partitions[a.partition], replace(r, isr=a.isr), config)


def _expand_isr(state: State, a: ExpandIsr, config: Config) -> State:
    part, r = _fenced_isr_write(state, a, config)
    if not (a.isr > part.isr):
        raise NotAllowed(a, f"{sorted(a.isr)} is not a strict superset of {sorted(part.isr)}")
    hosts = {x.broker for x in part.replicas}
    if not (a.isr <= hosts):
        raise NotAllowed(a, f"{sorted(a.isr - hosts)} host no replica")
    state = state.with_partition(a.partition, replace(part, isr=a.isr))
    return _put(state, a.partition, state.partitions[a.partition], replace(r, isr=a.isr), config)


def _elect_leader(state: State, a: ElectLeader, config: Config) -> State:
    if not (0 <= a.partition < len(state.partitions)):
        raise NotAllowed(a, f"there is no partition {a.partition}")
    if not (a.controller_epoch == state.controller_epoch):
        raise NotAllowed(
            a,
            f"the controller is fenced: epoch {a.controller_epoch}, the lease is at {state.controller_epoch}",
        )
    part = state.partitions[a.partition]
    unclean_allowed = variants.UNCLEAN_ELECTION in config.bugs
    if a.leader is not None:
        if not (a.leader in part.isr or unclean_allowed):
            raise NotAllowed(
                a, f"unclean election: {a.leader} is not in the ISR {sorted(part.isr)}"
            )
        if a.leader not in a.isr:
            raise NotAllowed(a, f"the new leader {a.leader} must be in the new ISR")
    if not (bool(a.isr) and (a.isr <= part.isr or unclean_allowed)):
        raise NotAllowed(
            a, f"{sorted(a.isr)} must be a non-empty subset of the ISR {sorted(part.isr)}"
        )
    return state.with_partition(
        a.partition, Partition(a.leader, part.epoch + 1, a.isr, part.replicas)
    )


def _retention_delete(state: State, a: RetentionDelete, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    if not (a.log_start > r.log_start):
        raise NotAllowed(a, f"the log start only moves up, it is {r.log_start}")
    limit = r.leo if variants.RETENTION_DELETES_UNREPLICATED in config.bugs else r.hw
    if not (a.log_start <= limit):
        raise NotAllowed(a, f"retention may not delete at or above the high watermark {r.hw}")
    updated = replace(
        r,
        log=r.log[a.log_start - r.log_start :],
        log_start=a.log_start,
        flushed=max(r.flushed, a.log_start),
        checkpoint_hw=max(r.checkpoint_hw, a.log_start),
    )
    return _put(state, a.partition, part, updated, config)


def _flush(state: State, a: Flush, config: Config) -> State:
    part, r = _replica(state, a, a.partition, a.broker)
    return _put(state, a.partition, part, r.flushed_now(), config)


def _crash(state: State, a: Crash, config: Config) -> State:
    if a.broker not in state.running:
        raise NotAllowed(a, f"broker {a.broker} is not running")
    parts = []
    for part in state.partitions:
        replicas = []
        for r in part.replicas:
            if r.broker == a.broker:
                kept = r.log[: max(0, r.flushed - r.log_start)]
                # The epoch a replica last learned is partition metadata on disk: it
                # survives, so a restarted broker never leads an epoch it may have led.
                r = Replica(
                    broker=r.broker,
                    log=kept,
                    log_start=r.log_start,
                    hw=min(r.checkpoint_hw, r.log_start + len(kept)),
                    flushed=r.log_start + len(kept),
                    checkpoint_hw=min(r.checkpoint_hw, r.log_start + len(kept)),
                    epoch=r.epoch,
                )
            replicas.append(r)
        parts.append(Partition(part.leader, part.epoch, part.isr, tuple(replicas)))
    running = state.running - {a.broker}
    return State(tuple(parts), running, state.controller, state.controller_epoch, state.groups)


def _restart(state: State, a: Restart, config: Config) -> State:
    if not (0 <= a.broker < config.brokers):
        raise NotAllowed(a, f"there is no broker {a.broker}")
    if not (a.broker not in state.running):
        raise NotAllowed(a, f"broker {a.broker} is already running")
    running = state.running | {a.broker}
    return State(state.partitions, running, state.controller, state.controller_epoch, state.groups)


def _controller_failover(state: State, a: ControllerFailover, config: Config) -> State:
    if a.controller is not None and a.controller not in state.running:
        raise NotAllowed(a, f"broker {a.controller} is not running")
    return replace(state, controller=a.controller, controller_epoch=state.controller_epoch + 1)


_HANDLERS = {
    LeaderWrite: _leader_write,
    FollowerReplicate: _follower_replicate,
    IncHighWatermark: _inc_high_watermark,
    BecomeLeader: _become_leader,
    BecomeFollower: _become_follower,
    Truncate: _truncate,
    ResetLog: _reset_log,
    ShrinkIsr: _shrink_isr,
    ExpandIsr: _expand_isr,
    ElectLeader: _elect_leader,
    RetentionDelete: _retention_delete,
    Flush: _flush,
    Crash: _crash,
    Restart: _restart,
    ControllerFailover: _controller_failover,
    # Every group action goes to the group rules, which look the group up first.
    **dict.fromkeys(GROUP_ACTION_TYPES, step_group_in_state),
}


def step(state: State, action: Action, config: Config) -> State:
    """The next state, or NotAllowed with the rule the action broke."""
    handler = _HANDLERS.get(type(action))
    if handler is None:
        raise NotAllowed(action, f"unknown action type {type(action).__name__}")
    return handler(state, action, config)  # type: ignore[operator, no-any-return]


# -- the atomic-interleaving model for the exhaustive engines ------------------------


def _fetch_source(
    state: State, part: Partition, r: Replica, bugs: frozenset[str]
) -> Replica | None:
    """The leader a follower may fetch from right now, or None (fenced or down)."""
    if r.leader is None or r.leader not in state.running:
        return None
    try:
        leader = part.replica(r.leader)
    except KeyError:
        return None
    if leader.role is not Role.LEADER:
        return None
    if leader.epoch != r.epoch and variants.NO_FETCH_EPOCH_FENCING not in bugs:
        return None
    return leader


def _leader_hw_target(state: State, part: Partition, leader: Replica, bugs: frozenset[str]) -> int:
    # The leader counts itself only up to what it has made durable.
    target = min(leader.leo, leader.flushed)
    for broker in leader.isr:
        if broker == leader.broker:
            continue
        if variants.HW_AHEAD_OF_ISR in bugs and broker not in state.running:
            continue
        follower = part.replica(broker)
        in_step = (
            follower.role is Role.FOLLOWING
            and follower.epoch == leader.epoch
            and follower.leader == leader.broker
            and broker in state.running
        )
        # A follower advertises only what it has made durable.
        target = min(target, follower.flushed if in_step else leader.hw)
    return target


def _partition_actions(state: State, index: int, config: Config) -> Iterator[Action]:
    part = state.partitions[index]
    bugs = config.bugs
    for r in part.replicas:
        if r.broker not in state.running:
            continue
        b = r.broker
        rejoin = r.epoch == part.epoch and r.role is Role.UNKNOWN
        if part.leader is not None and (r.epoch < part.epoch or rejoin):
            if part.leader == b:
                if b in part.isr and r.epoch < part.epoch:
                    yield BecomeLeader(index, b, part.epoch, part.isr)
            else:
                yield BecomeFollower(index, b, part.epoch, part.leader)
        if r.role is Role.LEADER:
            if r.leo < config.max_log:
                acks = -1 if len(r.isr) >= config.min_insync else 1
                yield LeaderWrite(index, b, r.epoch * 100 + r.leo, acks)
            target = _leader_hw_target(state, part, r, bugs)
            if target > r.hw:
                yield IncHighWatermark(index, b, target)
            yield from _isr_changes(state, part, index, r, bugs)
        elif r.role is Role.TRUNCATING or (
            r.role is Role.UNKNOWN and variants.TRUNCATE_TO_HW in bugs
        ):
            leader = _fetch_source(state, part, r, bugs) if r.role is Role.TRUNCATING else None
            if variants.TRUNCATE_TO_HW in bugs:
                offset, _ = variants.truncation_offset(r, r, bugs)
                if r.role is Role.TRUNCATING or offset < r.leo:
                    yield Truncate(index, b, offset)
            elif leader is not None:
                offset, complete = variants.truncation_offset(r, leader, bugs)
                yield Truncate(index, b, max(r.log_start, offset), complete)
        elif r.role is Role.FOLLOWING:
            leader = _fetch_source(state, part, r, bugs)
            if leader is not None:
                record = leader.record_at(r.leo)
                if (
                    record is not None
                    and record.epoch <= r.epoch
                    and (not r.log or record.epoch >= r.log[-1].epoch)
                ):
                    yield FollowerReplicate(index, b, record)
                new_hw = min(leader.hw, r.leo)
                if new_hw > r.hw:
                    yield IncHighWatermark(index, b, new_hw)
        if not config.durable and (r.flushed < r.leo or r.checkpoint_hw != r.hw):
            yield Flush(index, b)
        if config.explore_retention:
            limit = r.leo if variants.RETENTION_DELETES_UNREPLICATED in bugs else r.hw
            if r.log_start < limit:
                yield RetentionDelete(index, b, r.log_start + 1)
    yield from _elections(state, part, index, config)


def _isr_changes(
    state: State, part: Partition, index: int, r: Replica, bugs: frozenset[str]
) -> Iterator[Action]:
    if r.broker not in part.isr:
        return
    fenced_ok = part.leader == r.broker and part.epoch == r.epoch
    if not fenced_ok:
        if variants.STALE_LEADER_ACCEPTS_WRITES in bugs:
            # A deposed leader that has not seen the new epoch drops the others.
            for broker in sorted(part.isr - {r.broker}):
                yield ShrinkIsr(index, r.broker, part.isr - {broker})
        return
    for broker in sorted(part.isr - {r.broker}):
        yield ShrinkIsr(index, r.broker, part.isr - {broker})
    for follower in part.replicas:
        if follower.broker in part.isr or follower.broker not in state.running:
            continue
        # In sync means: caught up to the high watermark *and* to where the
        # leader's epoch began, since a new leader's high watermark can lag
        # behind what the previous leader had committed (KAFKA-7128).
        needed = max(r.hw, epoch_start_offset(r))
        caught_up = (
            follower.role is Role.FOLLOWING
            and follower.epoch == r.epoch
            and follower.leader == r.broker
            and min(follower.leo, follower.flushed) >= needed
        )
        if caught_up:
            yield ExpandIsr(index, r.broker, part.isr | {follower.broker})


def epoch_start_offset(leader: Replica) -> int:
    """The offset where the leader's current epoch begins: its first record of that epoch, else its log end."""
    for i, record in enumerate(leader.log):
        if record.epoch >= leader.epoch:
            return leader.log_start + i
    return leader.leo


def _elections(state: State, part: Partition, index: int, config: Config) -> Iterator[Action]:
    if state.controller is None or state.controller not in state.running:
        return
    if part.epoch >= config.max_epoch:
        return
    live_isr = frozenset(b for b in part.isr if b in state.running)
    if variants.UNCLEAN_ELECTION in config.bugs:
        candidates = sorted(r.broker for r in part.replicas if r.broker in state.running)
    else:
        candidates = sorted(live_isr)
    # A leader that restarted remembers its epoch and may not lead it again: re-elect.
    bounced = (
        part.leader is not None
        and part.leader in state.running
        and part.replica(part.leader).role is Role.UNKNOWN
        and part.replica(part.leader).epoch == part.epoch
    )
    for candidate in candidates:
        if candidate == part.leader and part.leader in state.running and not bounced:
            continue
        isr = (live_isr | {candidate}) if candidate in part.isr else frozenset({candidate})
        yield ElectLeader(index, candidate, isr, state.controller_epoch)
    if not live_isr and part.leader is not None:
        yield ElectLeader(index, None, part.isr, state.controller_epoch)


def enabled(state: State, config: Config) -> Iterator[Action]:
    """The actions of the atomic-interleaving model that may happen next."""
    for index in range(len(state.partitions)):
        yield from _partition_actions(state, index, config)
    if config.explore_crashes:
        for b in range(config.brokers):
            yield Crash(b) if b in state.running else Restart(b)
    if config.explore_controller:
        for b in sorted(state.running):
            if b != state.controller:
                yield ControllerFailover(b)
    if config.explore_groups:
        yield from enabled_group_actions(state, config)
