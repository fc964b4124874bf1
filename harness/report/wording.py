"""Events and model actions in words: one line per step of a counterexample.

Rules of this module:
- Every impl event type and every model action type has a describer; a test
  walks both alphabets.
- A line is a pure function of the step (and the state before it): no clock,
  no paths, nothing from the trace's `meta`.
- It knows nothing of reports: the content, listing and renderers import it,
  never the other way round.

Node names follow impl/events.py: brokers "b0", "b1", ...; the coordination
service "zk"; producers "p0", ...; consumers "c0", ....
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from kafka_verify.impl import events as ev
from kafka_verify.impl.effects import ClientOp
from kafka_verify.model import actions as act
from kafka_verify.model import groups as grp
from kafka_verify.model.state import Record, Replica, State

if TYPE_CHECKING:
    from kafka_verify.harness.runner import StepRecord
    from kafka_verify.impl.world import Envelope

# Jepsen style: a long list of cases is a count and the first few.
MAX_CASES = 5
MAX_ACTIONS_PER_LINE = 3


def broker_name(broker: int | None) -> str:
    return "none" if broker is None else f"b{broker}"


def broker_set(brokers: Iterable[int]) -> str:
    return "{" + ", ".join(broker_name(b) for b in sorted(brokers)) + "}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _node_kind(node: str) -> str:
    if node == "zk":
        return "coordination service"
    return {"b": "broker", "p": "producer", "c": "consumer"}.get(node[:1], "node")


def short_value(value: object) -> str:
    """A compact, deterministic rendering of a field value."""
    if isinstance(value, Record):
        return f"{value.id}@{value.epoch}"
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(short_value(v) for v in sorted(value, key=repr)) + "}"
    if isinstance(value, tuple | list):
        if len(value) > MAX_CASES:
            return f"[{len(value)} items]"
        return "[" + ", ".join(short_value(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "id") and hasattr(value, "epoch"):
            return f"{value.id}@{value.epoch}"
        return type(value).__name__
    return str(getattr(value, "value", value))


# -- describing steps in words -----------------------------------------------------------


def describe(step: StepRecord, before: State | None = None) -> str:
    """One line, in words, for one step: its event (or model action) and what it caused."""
    item = step.event
    event_describer = EVENT_DESCRIBERS.get(type(item))
    if event_describer is not None:
        text = event_describer(item, step)
        extra = [action_effect(a, step.state) for a in step.actions]
        extra += [_op_outcome(op) for op in step.ops if op.type != "invoke"]
        return _with_effects(text, [e for e in extra if e])
    action_describer = _ACTION_DESCRIBERS.get(type(item))
    if action_describer is not None:
        return action_describer(item, step, before)
    return _generic(item)


def event_words(step: StepRecord) -> str:
    """The words for an impl step's event alone, without what it caused."""
    return EVENT_DESCRIBERS[type(step.event)](step.event, step)


def _with_effects(text: str, effects: Sequence[str]) -> str:
    if not effects:
        return text
    shown = list(effects[:MAX_ACTIONS_PER_LINE])
    if len(effects) > MAX_ACTIONS_PER_LINE:
        shown.append(f"and {len(effects) - MAX_ACTIONS_PER_LINE} more")
    return f"{text} — {'; '.join(shown)}"


def _generic(item: object) -> str:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        fields = ", ".join(
            f"{f.name}={short_value(getattr(item, f.name))}" for f in dataclasses.fields(item)
        )
        return f"{type(item).__name__}({fields})"
    return repr(item)


# Message fields a reader of a counterexample needs, under shorter names; the
# rest (request ids, versions, broker epochs) only add noise to the line.
_MESSAGE_FIELD_NAMES = {
    "partition": "partition",
    "leader": "leader",
    "leader_epoch": "epoch",
    "current_leader_epoch": "epoch",
    "isr": "ISR",
    "record_id": "record",
    "seq": "seq",
    "acks": "acks",
    "error": "error",
    "offset": "offset",
    "fetch_offset": "offset",
    "records": "records",
    "high_watermark": "hw",
    "log_start": "log start",
    "log_end": "leo",
    "requested_epoch": "requested epoch",
    "epoch": "epoch",
    "end_offset": "end offset",
    "leaders": "leaders",
}


def message_summary(message: object) -> str:
    """'Fetch (partition 0, offset 3, epoch 1)': the message type and the fields that matter."""
    name = type(message).__name__
    fields = _message_fields(message)
    return f"{name} ({', '.join(fields)})" if fields else name


def _message_fields(message: object) -> list[str]:
    if not (dataclasses.is_dataclass(message) and not isinstance(message, type)):
        return []
    parts = []
    for f in dataclasses.fields(message):
        label = _MESSAGE_FIELD_NAMES.get(f.name)
        value: object = getattr(message, f.name)
        if label is None or value is None or (f.name == "error" and value == "NONE"):
            continue
        parts.append(f"{label} {_message_value(f.name, value)}")
    return parts


def _message_value(name: str, value: object) -> str:
    if name == "records" and isinstance(value, tuple | list):
        shown = " ".join(
            f"{getattr(r, 'record_id', '?')}@{getattr(r, 'epoch', '?')}" for r in value
        )
        return f"[{shown}]" if len(value) <= MAX_CASES else f"[{len(value)} records]"
    if name == "isr" and isinstance(value, frozenset | set | tuple | list):
        return broker_set(value)
    if name == "leader" and isinstance(value, int):
        return broker_name(value)
    if name == "leaders" and isinstance(value, tuple | list):
        return " ".join(f"p{p}→{broker_name(b)}@e{e}" for p, b, e in value)
    if name == "acks" and value == -1:
        return "all"
    return short_value(value)


def _envelope_text(envelope: Envelope) -> str:
    message = envelope.message
    fields = _message_fields(message)
    where = f"{type(message).__name__} {envelope.src} → {envelope.dst}"
    return f"{where} ({', '.join(fields)})" if fields else where


def _produce(e: ev.Produce, step: StepRecord) -> str:
    where = e.topic if e.partition is None else f"{e.topic}/{e.partition}"
    for op in step.ops:
        if op.f == "send" and op.type == "invoke" and isinstance(op.value, list | tuple):
            topic, partition = op.value[0], op.value[1]
            where = topic if partition is None else f"{topic}/{partition}"
            return f"producer {e.client} sends record {op.value[3]} to {where}"
    return f"producer {e.client} sends a record to {where}"


def _poll(e: ev.Poll, step: StepRecord) -> str:
    return f"consumer {e.client} polls"


def _commit(e: ev.CommitOffsets, step: StepRecord) -> str:
    return f"consumer {e.client} commits the offsets it has consumed"


def _subscribe(e: ev.Subscribe, step: StepRecord) -> str:
    return f"consumer {e.client} joins group {e.group}, subscribing to {', '.join(e.topics)}"


def _close(e: ev.Close, step: StepRecord) -> str:
    return f"{_node_kind(e.client)} {e.client} closes"


def _deliver(e: ev.Deliver, step: StepRecord) -> str:
    if step.delivered is None:
        return f"network delivers message #{e.message_id}"
    return f"network delivers {_envelope_text(step.delivered)}"


def _drop(e: ev.Drop, step: StepRecord) -> str:
    if step.delivered is None:
        return f"network drops message #{e.message_id}"
    return f"network drops {_envelope_text(step.delivered)}"


def _duplicate(e: ev.Duplicate, step: StepRecord) -> str:
    if step.delivered is None:
        return f"network delivers a copy of message #{e.message_id}"
    return f"network delivers a copy of {_envelope_text(step.delivered)}"


def _crash_event(e: ev.Crash, step: StepRecord) -> str:
    text = f"{_node_kind(e.node)} {e.node} crashes"
    if not e.node.startswith("b"):
        return text
    if not e.lose_unflushed:
        return f"{text}, its disk keeping everything"
    lost = step.lost_records
    return (
        f"{text}, losing {_plural(lost, 'unflushed record')}" if lost else f"{text}, losing nothing"
    )


def _restart_event(e: ev.Restart, step: StepRecord) -> str:
    return f"{_node_kind(e.node)} {e.node} restarts from its disk"


def _partition_event(e: ev.Partition, step: StepRecord) -> str:
    groups = " | ".join("{" + ", ".join(g) + "}" for g in e.groups)
    return f"network splits into {groups}"


def _heal(e: ev.Heal, step: StepRecord) -> str:
    return "network heals"


def _tick(e: ev.Tick, step: StepRecord) -> str:
    return f"clock advances {e.ms} ms (to {step.time_ms} ms)"


# Each describer takes the event type it is filed under; no one annotation can say
# that of a table, so the first parameter is Any here and precise in each function.
EVENT_DESCRIBERS: dict[type, Callable[[Any, StepRecord], str]] = {
    ev.Produce: _produce,
    ev.Poll: _poll,
    ev.CommitOffsets: _commit,
    ev.Subscribe: _subscribe,
    ev.Close: _close,
    ev.Deliver: _deliver,
    ev.Drop: _drop,
    ev.Duplicate: _duplicate,
    ev.Crash: _crash_event,
    ev.Restart: _restart_event,
    ev.Partition: _partition_event,
    ev.Heal: _heal,
    ev.Tick: _tick,
}


def _op_outcome(op: ClientOp) -> str:
    """What a client learned when an operation completed."""
    verdict = {"ok": "ok", "fail": "failed", "info": "outcome unknown"}.get(op.type, op.type)
    if op.f == "send" and isinstance(op.value, list | tuple) and len(op.value) == 4:
        topic, partition, offset, record = op.value
        at = f" at {topic}/{partition} offset {offset}" if offset is not None else ""
        return f"{op.process} send of record {record} {verdict}{at}"
    if op.f == "poll" and op.type == "ok" and isinstance(op.value, dict):
        return f"{op.process} poll returns {_poll_summary(op.value)}"
    return f"{op.process} {op.f} {verdict}"


def _poll_summary(value: Mapping[str, Sequence[Sequence[object]]]) -> str:
    parts = []
    for where in sorted(value):
        pairs = value[where]
        if not pairs:
            continue
        shown = ", ".join(f"{o}:{r}" for o, r in pairs[:MAX_CASES])
        more = f" and {len(pairs) - MAX_CASES} more" if len(pairs) > MAX_CASES else ""
        parts.append(f"{where} [{shown}{more}]")
    return "; ".join(parts) if parts else "nothing"


def action_effect(action: object, after: State) -> str:
    """The short form of a model action inside an impl step's line (only the telling ones)."""
    if isinstance(action, act.Truncate):
        return f"b{action.broker} truncates partition {action.partition} to offset {action.offset}"
    if isinstance(action, act.ResetLog):
        return f"b{action.broker} resets partition {action.partition} to offset {action.log_start}"
    if isinstance(action, act.ElectLeader):
        return f"controller elects {broker_name(action.leader)} for partition {action.partition}"
    if isinstance(action, act.BecomeLeader):
        return f"b{action.broker} leads partition {action.partition} in epoch {action.epoch}"
    if isinstance(action, act.BecomeFollower):
        return f"b{action.broker} follows b{action.leader} in epoch {action.epoch}"
    if isinstance(action, act.IncHighWatermark):
        return f"b{action.broker} hw of partition {action.partition} → {action.hw}"
    if isinstance(action, act.ShrinkIsr | act.ExpandIsr):
        return f"ISR of partition {action.partition} → {broker_set(action.isr)}"
    if isinstance(action, act.LeaderWrite):
        return f"b{action.broker} appends record {action.record_id} to partition {action.partition}"
    if isinstance(action, act.FollowerReplicate):
        return f"b{action.broker} copies record {short_value(action.record)} to partition {action.partition}"
    if isinstance(action, act.RetentionDelete):
        return f"b{action.broker} deletes partition {action.partition} below {action.log_start}"
    if isinstance(action, act.ControllerFailover):
        return f"{broker_name(action.controller)} becomes controller"
    return ""  # Flush, Crash, Restart: the event's own words already say it


# -- model actions (model-engine traces) ---------------------------------------------------


def replica_after(state: State, partition: int, broker: int) -> Replica | None:
    if 0 <= partition < len(state.partitions):
        for replica in state.partitions[partition].replicas:
            if replica.broker == broker:
                return replica
    return None


def _offset_of_append(state: State, partition: int, broker: int) -> str:
    replica = replica_after(state, partition, broker)
    return f" at offset {replica.leo - 1}" if replica is not None else ""


def _leader_write(a: act.LeaderWrite, step: StepRecord, before: State | None) -> str:
    acks = {-1: "all", 0: "0", 1: "1"}.get(a.acks, str(a.acks))
    at = _offset_of_append(step.state, a.partition, a.broker)
    return f"leader b{a.broker} writes record {a.record_id}{at} of partition {a.partition} (acks={acks})"


def _follower_replicate(a: act.FollowerReplicate, step: StepRecord, before: State | None) -> str:
    replica = replica_after(step.state, a.partition, a.broker)
    source = f" from {broker_name(replica.leader)}" if replica is not None else ""
    at = _offset_of_append(step.state, a.partition, a.broker)
    return f"follower b{a.broker} replicates record {short_value(a.record)}{source}{at} of partition {a.partition}"


def _inc_hw(a: act.IncHighWatermark, step: StepRecord, before: State | None) -> str:
    return f"b{a.broker} raises its high watermark of partition {a.partition} to {a.hw}"


def _become_leader(a: act.BecomeLeader, step: StepRecord, before: State | None) -> str:
    return f"b{a.broker} learns it leads partition {a.partition} in epoch {a.epoch} with ISR {broker_set(a.isr)}"


def _become_follower(a: act.BecomeFollower, step: StepRecord, before: State | None) -> str:
    return (
        f"b{a.broker} learns it follows b{a.leader} for partition {a.partition} in epoch {a.epoch}"
    )


def _truncate(a: act.Truncate, step: StepRecord, before: State | None) -> str:
    again = "" if a.complete else ", then asks the leader again"
    removed = ""
    if before is not None:
        replica = replica_after(before, a.partition, a.broker)
        if replica is not None and replica.leo > a.offset:
            removed = f", removing {_plural(replica.leo - a.offset, 'record')}"
    return f"b{a.broker} truncates partition {a.partition} to offset {a.offset}{removed}{again}"


def _reset_log(a: act.ResetLog, step: StepRecord, before: State | None) -> str:
    return f"b{a.broker} drops its log of partition {a.partition} and restarts it at offset {a.log_start}"


def _shrink_isr(a: act.ShrinkIsr, step: StepRecord, before: State | None) -> str:
    return f"leader b{a.broker} shrinks the ISR of partition {a.partition} to {broker_set(a.isr)}"


def _expand_isr(a: act.ExpandIsr, step: StepRecord, before: State | None) -> str:
    return f"leader b{a.broker} expands the ISR of partition {a.partition} to {broker_set(a.isr)}"


def _elect_leader(a: act.ElectLeader, step: StepRecord, before: State | None) -> str:
    epoch = (
        step.state.partitions[a.partition].epoch
        if a.partition < len(step.state.partitions)
        else "?"
    )
    if a.leader is None:
        return f"controller marks partition {a.partition} offline (epoch {epoch})"
    return f"controller elects b{a.leader} leader of partition {a.partition} (epoch {epoch}, ISR {broker_set(a.isr)})"


def _retention_delete(a: act.RetentionDelete, step: StepRecord, before: State | None) -> str:
    return f"retention on b{a.broker} deletes partition {a.partition} below offset {a.log_start}"


def _flush(a: act.Flush, step: StepRecord, before: State | None) -> str:
    replica = replica_after(step.state, a.partition, a.broker)
    upto = (
        f" (log up to offset {replica.flushed}, hw checkpoint {replica.checkpoint_hw})"
        if replica
        else ""
    )
    return f"b{a.broker} flushes partition {a.partition} to disk{upto}"


def _crash_action(a: act.Crash, step: StepRecord, before: State | None) -> str:
    lost = step.lost_records
    if before is not None and not lost:
        lost = _records_lost(before, step.state, a.broker)
    return (
        f"broker b{a.broker} crashes, losing {_plural(lost, 'unflushed record')}"
        if lost
        else (f"broker b{a.broker} crashes, losing nothing")
    )


def _records_lost(before: State, after: State, broker: int) -> int:
    lost = 0
    for part_before, part_after in zip(before.partitions, after.partitions):
        for r_before, r_after in zip(part_before.replicas, part_after.replicas):
            if r_before.broker == broker:
                lost += max(0, r_before.leo - r_after.leo)
    return lost


def _restart_action(a: act.Restart, step: StepRecord, before: State | None) -> str:
    return f"broker b{a.broker} restarts from its disk"


def _controller_failover(a: act.ControllerFailover, step: StepRecord, before: State | None) -> str:
    if a.controller is None:
        return f"the controller lease lapses (controller epoch {step.state.controller_epoch})"
    return f"b{a.controller} takes the controller lease (controller epoch {step.state.controller_epoch})"


def _group_of(state: State, name: str) -> grp.GroupState | None:
    return next((g for g in state.groups if g.group == name), None)


def assignment_text(pairs: Iterable[tuple[int, str]]) -> str:
    return ", ".join(f"p{p}→{m}" for p, m in pairs) or "nothing"


def _join_group(a: grp.JoinGroup, step: StepRecord, before: State | None) -> str:
    return f"consumer {a.member} joins group {a.group}"


def _complete_rebalance(a: grp.CompleteRebalance, step: StepRecord, before: State | None) -> str:
    group = _group_of(step.state, a.group)
    generation = f" generation {group.generation}" if group is not None else ""
    return f"coordinator of {a.group} closes the join phase:{generation} led by {a.leader}"


def _sync_assignment(a: grp.SyncAssignment, step: StepRecord, before: State | None) -> str:
    return (
        f"leader {a.member}'s assignment for generation {a.generation} of {a.group} takes effect: "
        f"{assignment_text(a.assignment)}"
    )


def _expire_member(a: grp.ExpireMember, step: StepRecord, before: State | None) -> str:
    return f"coordinator of {a.group} expires {a.member} (session timed out; it is not told)"


def _leave_group(a: grp.LeaveGroup, step: StepRecord, before: State | None) -> str:
    return f"consumer {a.member} leaves group {a.group}"


def _commit_offset(a: grp.CommitOffset, step: StepRecord, before: State | None) -> str:
    return (
        f"consumer {a.member} (generation {a.generation}) commits offset {a.offset} "
        f"for partition {a.partition} of {a.group}"
    )


def _coordinator_failover(
    a: grp.CoordinatorFailover, step: StepRecord, before: State | None
) -> str:
    return f"coordinator of {a.group} fails over and reloads it from the offsets topic"


def _delete_group(a: grp.DeleteGroup, step: StepRecord, before: State | None) -> str:
    return f"empty group {a.group} is deleted with its committed offsets"


# As for EVENT_DESCRIBERS: each describer takes the action type it is filed under.
_ACTION_DESCRIBERS: dict[type, Callable[[Any, StepRecord, State | None], str]] = {
    grp.JoinGroup: _join_group,
    grp.CompleteRebalance: _complete_rebalance,
    grp.SyncAssignment: _sync_assignment,
    grp.ExpireMember: _expire_member,
    grp.LeaveGroup: _leave_group,
    grp.CommitOffset: _commit_offset,
    grp.CoordinatorFailover: _coordinator_failover,
    grp.DeleteGroup: _delete_group,
    act.LeaderWrite: _leader_write,
    act.FollowerReplicate: _follower_replicate,
    act.IncHighWatermark: _inc_hw,
    act.BecomeLeader: _become_leader,
    act.BecomeFollower: _become_follower,
    act.Truncate: _truncate,
    act.ResetLog: _reset_log,
    act.ShrinkIsr: _shrink_isr,
    act.ExpandIsr: _expand_isr,
    act.ElectLeader: _elect_leader,
    act.RetentionDelete: _retention_delete,
    act.Flush: _flush,
    act.Crash: _crash_action,
    act.Restart: _restart_action,
    act.ControllerFailover: _controller_failover,
}
