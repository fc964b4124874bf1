"""Counterexample reports: `report.md`, `report.html` and `trace.json` for one violation.

A report must let an engineer understand a failure in two minutes and replay
it with one command. Its content is a pure function of (outcome, trace, replay
command): no clock, no paths, no trace `meta`, so replaying the same trace
writes the same bytes. Everything the report says is gathered once into a
`Content` value; the Markdown and HTML renderers only lay it out.

Node names follow impl/events.py: brokers "b0", "b1", ...; the coordination
service "zk"; producers "p0", ...; consumers "c0", .... Model traces have no
messages, so their diagrams show the controller as "ctl" and a follower's
fetch as an arrow from the leader it read.
"""

from __future__ import annotations

import dataclasses
import html
import json
import re
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka_verify.harness.trace import Trace, config_to_json, dump_trace, jsonable
from kafka_verify.impl import events as ev
from kafka_verify.model import actions as act
from kafka_verify.model import groups as grp
from kafka_verify.model.state import Record, Replica, State
from kafka_verify.properties.catalogue import PROPERTIES

if TYPE_CHECKING:
    from kafka_verify.harness.runner import RunOutcome, StepRecord

# Jepsen style: a long list of cases is a count and the first few.
MAX_CASES = 5
MAX_LOG_RECORDS = 12
MAX_DIAGRAM_STEPS = 40
MAX_TIMELINE_STEPS = 60
# Longer event lists show their head and tail; trace.json keeps every event.
MAX_LISTED_STEPS = 150
LISTED_HEAD = 20
LISTED_TAIL = 100
MAX_ACTIONS_PER_LINE = 3

# -- where reports go ------------------------------------------------------------------


def report_directory(root: Path, property: str, now: datetime) -> Path:
    """`root/<UTC time>-<property>/`, with a numeric suffix if that directory already exists."""
    stamp = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    slug = re.sub(r"[^A-Za-z0-9_-]+", "-", property).strip("-") or "violation"
    candidate = Path(root) / f"{stamp}-{slug}"
    suffix = 2
    while candidate.exists():
        candidate = Path(root) / f"{stamp}-{slug}-{suffix}"
        suffix += 1
    return candidate


def write_report(outcome: RunOutcome, trace: Trace, directory: Path, replay_command: str) -> Path:
    """Write report.md, report.html and trace.json into `directory`; return report.md's path."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    content = build_content(outcome, trace, replay_command)
    markdown_path = directory / "report.md"
    markdown_path.write_text(render_markdown(content), encoding="utf-8")
    (directory / "report.html").write_text(render_html(content), encoding="utf-8")
    dump_trace(trace, directory / "trace.json")
    if outcome.engine == "impl":
        (directory / "history.jsonl").write_text(history_jsonl(outcome), encoding="utf-8")
    return markdown_path


def history_jsonl(outcome: RunOutcome) -> str:
    """The client history of the run, one completed or invoked operation per line (DESIGN.md)."""
    lines = []
    ops = (op for step in outcome.steps for op in step.ops)
    for index, op in enumerate(ops):
        record = {
            "index": index,
            "time_ms": op.time_ms,
            "process": op.process,
            "type": op.type,
            "f": op.f,
            "value": jsonable(op.value),
        }
        lines.append(json.dumps(record, ensure_ascii=False) + "\n")
    return "".join(lines)


# -- the content of a report -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Mark:
    """One thing a diagram shows for a step: a message arrow, or a mark on one or more lanes."""

    step: int
    kind: str  # message, duplicate, drop, crash, restart, split, heal, client, tick, note
    nodes: tuple[str, ...]  # (src, dst) for message/duplicate/drop, else the lanes marked
    label: str
    tag: str = ""  # a few characters written next to the mark on the timeline


@dataclass(frozen=True, slots=True)
class StateLine:
    """One line of the state listing; `marker` is "+" (now), "-" (before) or " " (unchanged)."""

    marker: str
    text: str


@dataclass(frozen=True, slots=True)
class Content:
    property: str
    kind: str
    forbids: str
    message: str
    engine: str
    config: tuple[tuple[str, str], ...]
    bugs: tuple[tuple[str, str], ...]
    steps: tuple[tuple[int, str], ...]
    violating_step: int | None
    state: tuple[StateLine, ...]
    details: tuple[tuple[str, str], ...]
    participants: tuple[str, ...]
    marks: tuple[Mark, ...]
    replay_command: str


def build_content(outcome: RunOutcome, trace: Trace, replay_command: str) -> Content:
    """Everything the report says, from the outcome and its trace alone."""
    violation = trace.violation or _violation_json(outcome)
    name = str(violation["property"]) if violation else "none"
    kind, forbids = _property_info(name)
    violating = int(violation["step"]) if violation else None
    steps = outcome.steps
    marks = tuple(
        m if m.tag else dataclasses.replace(m, tag=_tag(s))
        for s in steps
        for m in _marks(s, _before(outcome, s.index))
    )
    return Content(
        property=name,
        kind=kind,
        forbids=forbids,
        message=str(violation["message"]) if violation else "no property was violated",
        engine=outcome.engine,
        config=_config_rows(trace.config),
        bugs=tuple((b, _bug_description(b, trace.engine)) for b in sorted(trace.config.bugs)),
        steps=tuple((s.index, describe(s, _before(outcome, s.index))) for s in steps),
        violating_step=violating,
        state=_state_lines(outcome, violating),
        details=_detail_rows(violation["details"] if violation else {}),
        participants=_participants(outcome, marks),
        marks=marks,
        replay_command=replay_command,
    )


def _violation_json(outcome: RunOutcome) -> dict[str, Any] | None:
    from kafka_verify.harness.trace import violation_record

    if outcome.violation is None:
        return None
    return violation_record(outcome.violation, max(len(outcome.steps), 1))


def _before(outcome: RunOutcome, index: int) -> State:
    """The state before step `index` (1-based)."""
    for step in outcome.steps:
        if step.index == index - 1:
            return step.state
    return outcome.initial


def _property_info(name: str) -> tuple[str, str]:
    """(KIND, what it forbids) from the property catalogue."""
    info = PROPERTIES.get(name)
    if info is None:
        return ("PROPERTY", "(this property is not in the catalogue)")
    kind = getattr(info.kind, "value", info.kind)
    return str(kind).upper(), _sentence(str(info.forbids))


def _sentence(text: str) -> str:
    text = text.strip()
    text = text.removeprefix("Forbids:").strip()
    return text


def _bug_description(name: str, engine: str) -> str:
    """The catalogue's sentence for a seeded bug: impl/bugs.py for the broker, variants for the model."""
    if engine == "impl":
        from kafka_verify.impl import bugs

        entry = bugs.BUGS.get(name)
        return entry.description if entry is not None else ""
    from kafka_verify.model import variants

    return variants.PROTOCOL_VARIANTS.get(name, "")


def _config_rows(config: Any) -> tuple[tuple[str, str], ...]:
    rows = []
    for key, value in config_to_json(config).items():
        if key == "bugs":
            continue
        rows.append((key, json.dumps(value)))
    return tuple(rows)


# The settings that shape a counterexample get a table row each; timers and
# limits follow on one line so the table stays short.
_MAIN_SETTINGS = frozenset(
    {
        "brokers",
        "partitions",
        "replication",
        "min_insync",
        "acks",
        "idempotent",
        "producers",
        "consumers",
        "retention_ms",
        "retention_records",
        "groups",
        "members",
        "durable",
    }
)


# -- naming ----------------------------------------------------------------------------


def _broker(broker: int | None) -> str:
    return "none" if broker is None else f"b{broker}"


def _brokers(brokers: Iterable[int]) -> str:
    return "{" + ", ".join(_broker(b) for b in sorted(brokers)) + "}"


def _plural(count: int, noun: str) -> str:
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"


def _node_kind(node: str) -> str:
    if node == "zk":
        return "coordination service"
    return {"b": "broker", "p": "producer", "c": "consumer"}.get(node[:1], "node")


def _short(value: Any) -> str:
    """A compact, deterministic rendering of a field value."""
    if isinstance(value, Record):
        return f"{value.id}@{value.epoch}"
    if isinstance(value, frozenset | set):
        return "{" + ", ".join(_short(v) for v in sorted(value, key=repr)) + "}"
    if isinstance(value, tuple | list):
        if len(value) > MAX_CASES:
            return f"[{len(value)} items]"
        return "[" + ", ".join(_short(v) for v in value) + "]"
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        if hasattr(value, "id") and hasattr(value, "epoch"):
            return f"{value.id}@{value.epoch}"
        return type(value).__name__
    return str(getattr(value, "value", value))


# -- describing steps in words -----------------------------------------------------------


def describe(step: StepRecord, before: State | None = None) -> str:
    """One line, in words, for one step: its event (or model action) and what it caused."""
    item = step.event
    event_describer = _EVENT_DESCRIBERS.get(type(item))
    if event_describer is not None:
        text = event_describer(item, step)
        extra = [_action_effect(a, step.state) for a in step.actions]
        extra += [_op_outcome(op) for op in step.ops if op.type != "invoke"]
        return _with_effects(text, [e for e in extra if e])
    action_describer = _ACTION_DESCRIBERS.get(type(item))
    if action_describer is not None:
        return action_describer(item, step, before)
    return _generic(item)


def _with_effects(text: str, effects: Sequence[str]) -> str:
    if not effects:
        return text
    shown = list(effects[:MAX_ACTIONS_PER_LINE])
    if len(effects) > MAX_ACTIONS_PER_LINE:
        shown.append(f"and {len(effects) - MAX_ACTIONS_PER_LINE} more")
    return f"{text} — {'; '.join(shown)}"


def _generic(item: Any) -> str:
    if dataclasses.is_dataclass(item) and not isinstance(item, type):
        fields = ", ".join(
            f"{f.name}={_short(getattr(item, f.name))}" for f in dataclasses.fields(item)
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


def _message_summary(message: Any) -> str:
    """'Fetch (partition 0, offset 3, epoch 1)': the message type and the fields that matter."""
    name = type(message).__name__
    fields = _message_fields(message)
    return f"{name} ({', '.join(fields)})" if fields else name


def _message_fields(message: Any) -> list[str]:
    if not (dataclasses.is_dataclass(message) and not isinstance(message, type)):
        return []
    parts = []
    for f in dataclasses.fields(message):
        label = _MESSAGE_FIELD_NAMES.get(f.name)
        value = getattr(message, f.name)
        if label is None or value is None or (f.name == "error" and value == "NONE"):
            continue
        parts.append(f"{label} {_message_value(f.name, value)}")
    return parts


def _message_value(name: str, value: Any) -> str:
    if name == "records":
        shown = " ".join(
            f"{getattr(r, 'record_id', '?')}@{getattr(r, 'epoch', '?')}" for r in value
        )
        return f"[{shown}]" if len(value) <= MAX_CASES else f"[{len(value)} records]"
    if name == "isr":
        return _brokers(value)
    if name == "leader":
        return _broker(value)
    if name == "leaders":
        return " ".join(f"p{p}→{_broker(b)}@e{e}" for p, b, e in value)
    if name == "acks" and value == -1:
        return "all"
    return _short(value)


def _envelope_text(envelope: Any) -> str:
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


_EVENT_DESCRIBERS: dict[type, Callable[[Any, Any], str]] = {
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


def _op_outcome(op: Any) -> str:
    """What a client learned when an operation completed."""
    verdict = {"ok": "ok", "fail": "failed", "info": "outcome unknown"}.get(op.type, op.type)
    if op.f == "send" and isinstance(op.value, list | tuple) and len(op.value) == 4:
        topic, partition, offset, record = op.value
        at = f" at {topic}/{partition} offset {offset}" if offset is not None else ""
        return f"{op.process} send of record {record} {verdict}{at}"
    if op.f == "poll" and op.type == "ok" and isinstance(op.value, dict):
        return f"{op.process} poll returns {_poll_summary(op.value)}"
    return f"{op.process} {op.f} {verdict}"


def _poll_summary(value: dict[str, Any]) -> str:
    parts = []
    for where in sorted(value):
        pairs = value[where]
        if not pairs:
            continue
        shown = ", ".join(f"{o}:{r}" for o, r in pairs[:MAX_CASES])
        more = f" and {len(pairs) - MAX_CASES} more" if len(pairs) > MAX_CASES else ""
        parts.append(f"{where} [{shown}{more}]")
    return "; ".join(parts) if parts else "nothing"


def _action_effect(action: Any, after: State) -> str:
    """The short form of a model action inside an impl step's line (only the telling ones)."""
    if isinstance(action, act.Truncate):
        return f"b{action.broker} truncates partition {action.partition} to offset {action.offset}"
    if isinstance(action, act.ResetLog):
        return f"b{action.broker} resets partition {action.partition} to offset {action.log_start}"
    if isinstance(action, act.ElectLeader):
        return f"controller elects {_broker(action.leader)} for partition {action.partition}"
    if isinstance(action, act.BecomeLeader):
        return f"b{action.broker} leads partition {action.partition} in epoch {action.epoch}"
    if isinstance(action, act.BecomeFollower):
        return f"b{action.broker} follows b{action.leader} in epoch {action.epoch}"
    if isinstance(action, act.IncHighWatermark):
        return f"b{action.broker} hw of partition {action.partition} → {action.hw}"
    if isinstance(action, act.ShrinkIsr | act.ExpandIsr):
        return f"ISR of partition {action.partition} → {_brokers(action.isr)}"
    if isinstance(action, act.LeaderWrite):
        return f"b{action.broker} appends record {action.record_id} to partition {action.partition}"
    if isinstance(action, act.FollowerReplicate):
        return f"b{action.broker} copies record {_short(action.record)} to partition {action.partition}"
    if isinstance(action, act.RetentionDelete):
        return f"b{action.broker} deletes partition {action.partition} below {action.log_start}"
    if isinstance(action, act.ControllerFailover):
        return f"{_broker(action.controller)} becomes controller"
    return ""  # Flush, Crash, Restart: the event's own words already say it


# -- model actions (model-engine traces) ---------------------------------------------------


def _replica_after(state: State, partition: int, broker: int) -> Replica | None:
    if 0 <= partition < len(state.partitions):
        for replica in state.partitions[partition].replicas:
            if replica.broker == broker:
                return replica
    return None


def _offset_of_append(state: State, partition: int, broker: int) -> str:
    replica = _replica_after(state, partition, broker)
    return f" at offset {replica.leo - 1}" if replica is not None else ""


def _leader_write(a: act.LeaderWrite, step: StepRecord, before: State | None) -> str:
    acks = {-1: "all", 0: "0", 1: "1"}.get(a.acks, str(a.acks))
    at = _offset_of_append(step.state, a.partition, a.broker)
    return f"leader b{a.broker} writes record {a.record_id}{at} of partition {a.partition} (acks={acks})"


def _follower_replicate(a: act.FollowerReplicate, step: StepRecord, before: State | None) -> str:
    replica = _replica_after(step.state, a.partition, a.broker)
    source = f" from {_broker(replica.leader)}" if replica is not None else ""
    at = _offset_of_append(step.state, a.partition, a.broker)
    return f"follower b{a.broker} replicates record {_short(a.record)}{source}{at} of partition {a.partition}"


def _inc_hw(a: act.IncHighWatermark, step: StepRecord, before: State | None) -> str:
    return f"b{a.broker} raises its high watermark of partition {a.partition} to {a.hw}"


def _become_leader(a: act.BecomeLeader, step: StepRecord, before: State | None) -> str:
    return f"b{a.broker} learns it leads partition {a.partition} in epoch {a.epoch} with ISR {_brokers(a.isr)}"


def _become_follower(a: act.BecomeFollower, step: StepRecord, before: State | None) -> str:
    return (
        f"b{a.broker} learns it follows b{a.leader} for partition {a.partition} in epoch {a.epoch}"
    )


def _truncate(a: act.Truncate, step: StepRecord, before: State | None) -> str:
    again = "" if a.complete else ", then asks the leader again"
    removed = ""
    if before is not None:
        replica = _replica_after(before, a.partition, a.broker)
        if replica is not None and replica.leo > a.offset:
            removed = f", removing {_plural(replica.leo - a.offset, 'record')}"
    return f"b{a.broker} truncates partition {a.partition} to offset {a.offset}{removed}{again}"


def _reset_log(a: act.ResetLog, step: StepRecord, before: State | None) -> str:
    return f"b{a.broker} drops its log of partition {a.partition} and restarts it at offset {a.log_start}"


def _shrink_isr(a: act.ShrinkIsr, step: StepRecord, before: State | None) -> str:
    return f"leader b{a.broker} shrinks the ISR of partition {a.partition} to {_brokers(a.isr)}"


def _expand_isr(a: act.ExpandIsr, step: StepRecord, before: State | None) -> str:
    return f"leader b{a.broker} expands the ISR of partition {a.partition} to {_brokers(a.isr)}"


def _elect_leader(a: act.ElectLeader, step: StepRecord, before: State | None) -> str:
    epoch = (
        step.state.partitions[a.partition].epoch
        if a.partition < len(step.state.partitions)
        else "?"
    )
    if a.leader is None:
        return f"controller marks partition {a.partition} offline (epoch {epoch})"
    return f"controller elects b{a.leader} leader of partition {a.partition} (epoch {epoch}, ISR {_brokers(a.isr)})"


def _retention_delete(a: act.RetentionDelete, step: StepRecord, before: State | None) -> str:
    return f"retention on b{a.broker} deletes partition {a.partition} below offset {a.log_start}"


def _flush(a: act.Flush, step: StepRecord, before: State | None) -> str:
    replica = _replica_after(step.state, a.partition, a.broker)
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


def _assignment(pairs: Iterable[tuple[int, str]]) -> str:
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
        f"{_assignment(a.assignment)}"
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


_ACTION_DESCRIBERS: dict[type, Callable[[Any, Any, State | None], str]] = {
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


# -- the state and its difference from the step before ------------------------------------


def state_listing(state: State) -> list[tuple[str, str]]:
    """(key, text) lines describing a state; keys pair lines of two states for the diff."""
    running = ", ".join(_broker(b) for b in sorted(state.running)) or "none"
    lines = [
        ("running", f"running brokers: {running}"),
        ("controller", f"controller: {_broker(state.controller)} (epoch {state.controller_epoch})"),
    ]
    for index, part in enumerate(state.partitions):
        lines.append(
            (
                f"p{index}",
                f"partition {index}: leader {_broker(part.leader)}, epoch {part.epoch}, "
                f"ISR {_brokers(part.isr)}",
            )
        )
        lines.extend((f"p{index}/b{r.broker}", "  " + _replica_line(r)) for r in part.replicas)
    for group in state.groups:
        lines.extend(_group_lines(group))
    return lines


def _group_lines(g: grp.GroupState) -> list[tuple[str, str]]:
    committed = ", ".join(f"p{p}:{o}" for p, o in g.committed) or "none"
    members = ", ".join(sorted(g.members)) or "none"
    lines = [
        (
            f"group {g.group}",
            f"group {g.group}: {g.phase.value}, generation {g.generation}, members {{{members}}}, "
            f"leader {g.leader or 'none'}",
        ),
        (f"group {g.group}/assignment", f"  assignment {_assignment(g.assignment)}"),
        (f"group {g.group}/committed", f"  committed {committed}"),
    ]
    for view in g.views:
        owned = ", ".join(f"p{p}" for p in sorted(view.owned)) or "nothing"
        lines.append(
            (
                f"group {g.group}/{view.member}",
                f"  {view.member} believes: generation {view.generation}, owns {owned}",
            )
        )
    return lines


def _replica_line(r: Replica) -> str:
    records = [f"{r.log_start + i}:{rec.id}@{rec.epoch}" for i, rec in enumerate(r.log)]
    if len(records) > MAX_LOG_RECORDS:
        records = ["…", *records[-MAX_LOG_RECORDS:]]
    log = "[" + " ".join(records) + "]"
    view = f"epoch {r.epoch}" + (f", leader {_broker(r.leader)}" if r.leader is not None else "")
    isr = f", ISR {_brokers(r.isr)}" if r.isr else ""
    return (
        f"b{r.broker} {r.role.value:<10} log {log} hw {r.hw} leo {r.leo} "
        f"flushed {r.flushed} ({view}{isr})"
    )


def _state_lines(outcome: RunOutcome, violating: int | None) -> tuple[StateLine, ...]:
    if not outcome.steps:
        return tuple(StateLine(" ", text) for _, text in state_listing(outcome.initial))
    index = violating if violating is not None else outcome.steps[-1].index
    after_step = next((s for s in outcome.steps if s.index == index), outcome.steps[-1])
    before = dict(state_listing(_before(outcome, after_step.index)))
    lines: list[StateLine] = []
    for key, text in state_listing(after_step.state):
        old = before.pop(key, None)
        if old is not None and old != text:
            lines.append(StateLine("-", old))
        lines.append(StateLine(" " if old == text else "+", text))
    lines.extend(StateLine("-", text) for text in before.values())
    return tuple(lines)


# -- violation details (condensed) ------------------------------------------------------


def _detail_rows(details: dict[str, Any]) -> tuple[tuple[str, str], ...]:
    return tuple((key, _condense(details[key])) for key in details)


def _condense(value: Any) -> str:
    if isinstance(value, list) and len(value) > MAX_CASES:
        shown = ", ".join(_compact(v) for v in value[:MAX_CASES])
        return f"{len(value)} cases; the first {MAX_CASES}: {shown}"
    return _compact(value)


def _compact(value: Any) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- diagram marks ----------------------------------------------------------------------


def _marks(step: StepRecord, before: State) -> list[Mark]:
    """The marks of one step: its event, plus, for timers, faults and client calls, what the brokers did."""
    marks = _event_marks(step, before)
    quiet = (ev.Deliver, ev.Duplicate, ev.Drop)
    if type(step.event) in _EVENT_DESCRIBERS and not isinstance(step.event, quiet):
        marks += [m for a in step.actions if (m := _action_mark(a, step)) is not None]
    return marks


def _action_mark(action: Any, step: StepRecord) -> Mark | None:
    """A small mark on the lane of the broker that performed `action` inside an impl step."""
    text = _action_effect(action, step.state)
    if not text:
        return None
    if isinstance(action, act.ElectLeader | act.ControllerFailover):
        broker = step.state.controller
    else:
        broker = getattr(action, "broker", None)
    if not isinstance(broker, int):
        return None
    return Mark(step.index, "note", (f"b{broker}",), text, _action_tag(action) or "lease")


def _event_marks(step: StepRecord, before: State) -> list[Mark]:
    item, i = step.event, step.index
    envelope = step.delivered
    if isinstance(item, ev.Deliver | ev.Duplicate) and envelope is not None:
        kind = "message" if isinstance(item, ev.Deliver) else "duplicate"
        return [Mark(i, kind, (envelope.src, envelope.dst), _message_summary(envelope.message))]
    if isinstance(item, ev.Drop) and envelope is not None:
        return [Mark(i, "drop", (envelope.src, envelope.dst), _message_summary(envelope.message))]
    if isinstance(item, ev.Deliver | ev.Duplicate | ev.Drop):
        return [Mark(i, "note", (), f"message #{item.message_id} ({type(item).__name__})")]
    if isinstance(item, ev.Crash):
        return [Mark(i, "crash", (item.node,), _crash_event(item, step))]
    if isinstance(item, ev.Restart):
        return [Mark(i, "restart", (item.node,), "restart")]
    if isinstance(item, ev.Partition):
        return [
            Mark(i, "split", tuple(n for g in item.groups for n in g), _partition_event(item, step))
        ]
    if isinstance(item, ev.Heal):
        return [Mark(i, "heal", (), "heal")]
    if isinstance(item, ev.Tick):
        return [Mark(i, "tick", (), f"+{item.ms} ms")]
    if isinstance(item, ev.Produce | ev.Poll | ev.CommitOffsets | ev.Subscribe | ev.Close):
        return [Mark(i, "client", (item.client,), describe(step, before))]
    return _model_marks(step, before)


def _model_marks(step: StepRecord, before: State) -> list[Mark]:
    a, i = step.event, step.index
    text = describe(step, before)
    if isinstance(a, act.FollowerReplicate):
        replica = _replica_after(step.state, a.partition, a.broker)
        source = replica.leader if replica is not None else None
        if source is not None:
            return [
                Mark(i, "message", (f"b{source}", f"b{a.broker}"), f"record {_short(a.record)}")
            ]
    if isinstance(a, act.ElectLeader) and a.leader is not None:
        return [
            Mark(
                i,
                "message",
                ("ctl", f"b{a.leader}"),
                f"elect (epoch {before.partitions[a.partition].epoch + 1})",
            )
        ]
    if isinstance(a, act.Crash):
        return [Mark(i, "crash", (f"b{a.broker}",), text)]
    if isinstance(a, act.Restart):
        return [Mark(i, "restart", (f"b{a.broker}",), "restart")]
    member = getattr(a, "member", None)
    if isinstance(a, grp.GROUP_ACTION_TYPES):
        lanes = (member,) if isinstance(member, str) else ("gc",)
        return [Mark(i, "note", lanes, text)]
    broker = getattr(a, "broker", None)
    if isinstance(a, act.ControllerFailover):
        broker = a.controller
    lanes = (f"b{broker}",) if isinstance(broker, int) else ("ctl",)
    return [Mark(i, "note", lanes, _action_effect(a, step.state) or _short_action(a))]


def _short_action(action: Any) -> str:
    if isinstance(action, act.Flush):
        return f"b{action.broker} flushes partition {action.partition}"
    return type(action).__name__


def _tag(step: StepRecord) -> str:
    """The few characters the timeline writes beside a step's mark."""
    item = step.event
    if step.delivered is not None:
        return type(step.delivered.message).__name__.replace("Response", "Resp")
    if isinstance(item, ev.Produce):
        sends = [op.value[3] for op in step.ops if op.f == "send" and op.type == "invoke"]
        return f"send {sends[0]}" if sends else "send"
    simple = _TAGS.get(type(item))
    if simple is not None:
        return simple
    return _action_tag(item)


_TAGS: dict[type, str] = {
    ev.Poll: "poll",
    ev.CommitOffsets: "commit",
    ev.Subscribe: "join",
    ev.Close: "close",
    act.Flush: "flush",
    act.ControllerFailover: "lease",
    grp.JoinGroup: "join",
    grp.CompleteRebalance: "gen+1",
    grp.SyncAssignment: "sync",
    grp.ExpireMember: "expire",
    grp.LeaveGroup: "leave",
    grp.CoordinatorFailover: "failover",
    grp.DeleteGroup: "delete",
}


def _action_tag(a: Any) -> str:
    if isinstance(a, act.LeaderWrite):
        return f"w {a.record_id}"
    if isinstance(a, act.FollowerReplicate):
        return _short(a.record)
    if isinstance(a, act.IncHighWatermark):
        return f"hw {a.hw}"
    if isinstance(a, act.Truncate):
        return f"trunc {a.offset}"
    if isinstance(a, act.BecomeLeader):
        return f"lead e{a.epoch}"
    if isinstance(a, act.BecomeFollower):
        return f"follow e{a.epoch}"
    if isinstance(a, act.ShrinkIsr | act.ExpandIsr):
        return "isr " + "".join(str(b) for b in sorted(a.isr))
    if isinstance(a, act.ElectLeader):
        return "elect"
    if isinstance(a, act.RetentionDelete | act.ResetLog):
        return f"start {a.log_start}"
    if isinstance(a, grp.CommitOffset):
        return f"commit {a.offset}"
    return ""


def _participants(outcome: RunOutcome, marks: Sequence[Mark]) -> tuple[str, ...]:
    names: set[str] = {f"b{b}" for b in range(_broker_count(outcome))}
    if outcome.engine == "model":
        names.add("ctl")
    for mark in marks:
        names.update(mark.nodes)
    return tuple(sorted(names, key=_lane_order))


def _broker_count(outcome: RunOutcome) -> int:
    return int(getattr(outcome.config, "brokers", 0))


def _lane_order(name: str) -> tuple[int, int, str]:
    ranks = {"b": 0, "z": 1, "c": 3, "p": 2}
    rank = 1 if name in ("zk", "ctl") else ranks.get(name[:1], 4)
    digits = re.sub(r"\D", "", name)
    return (rank, int(digits) if digits else 0, name)


# -- Markdown ---------------------------------------------------------------------------


def render_markdown(content: Content) -> str:
    parts = [
        f"# Violation: `{content.property}`",
        "",
        f"**{content.kind or 'Property'}** — forbids: {content.forbids}",
        "",
        f"> {_md_inline(content.message)}",
        "",
        *_md_config(content),
        "## Events (shrunk)",
        "",
        *_md_steps(content),
        "",
        *_md_state(content),
        *_md_details(content),
        "## Sequence diagram",
        "",
        "```mermaid",
        mermaid(content),
        "```",
        "",
        "## Replay",
        "",
        "```sh",
        content.replay_command,
        "```",
        "",
    ]
    return "\n".join(parts)


def _md_inline(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _md_code(text: str) -> str:
    # A backquote would end the code span early.
    return _md_inline(text).replace("`", "'")


def _md_config(content: Content) -> list[str]:
    rows = [
        "## Configuration",
        "",
        f"Engine: `{content.engine}`",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    rows += [f"| {key} | `{value}` |" for key, value in content.config if key in _MAIN_SETTINGS]
    others = [f"`{key}={value}`" for key, value in content.config if key not in _MAIN_SETTINGS]
    if others:
        rows += ["", "Other settings: " + " ".join(others)]
    rows += ["", "Seeded bugs:" if content.bugs else "Seeded bugs: none", ""]
    rows += [
        f"- `{name}` — {_md_inline(text)}" if text else f"- `{name}`" for name, text in content.bugs
    ]
    if content.bugs:
        rows.append("")
    return rows


def listed_steps(steps: Sequence[tuple[int, str]]) -> list[tuple[int, str] | int]:
    """The steps a report lists: all of them, or for a long run its head and tail.

    An int in the result stands for that many steps left out at that place.
    """
    if len(steps) <= MAX_LISTED_STEPS:
        return list(steps)
    left_out = len(steps) - LISTED_HEAD - LISTED_TAIL
    return [*steps[:LISTED_HEAD], left_out, *steps[-LISTED_TAIL:]]


def _left_out(count: int) -> str:
    return f"… {count} more steps, not listed here; trace.json holds every event"


def _md_steps(content: Content) -> list[str]:
    lines = []
    for entry in listed_steps(content.steps):
        if isinstance(entry, int):
            lines.append(f"\n{_left_out(entry)}\n")
            continue
        index, text = entry
        flag = " **← violation**" if index == content.violating_step else ""
        lines.append(f"{index}. {_md_inline(text)}{flag}")
    return lines or ["(no events: the initial state already violates the property)"]


def _md_state(content: Content) -> list[str]:
    step = content.violating_step
    title = f"## State after step {step}" if step else "## State"
    legend = _state_legend(content, "Lines marked `+`", "`-`")
    body = [f"{line.marker} {line.text}" for line in content.state]
    return [title, "", legend, "", "```diff", *body, "```", ""]


def _state_legend(content: Content, changed: str, before: str) -> str:
    if all(line.marker == " " for line in content.state):
        return (
            "The violating step changed nothing shown here; "
            "the violation lies in what the step did or in what a client saw."
        )
    return f"{changed} lines changed in this step; {before} lines show them before it."


def _md_details(content: Content) -> list[str]:
    if not content.details:
        return []
    rows = ["## Offending records and offsets", "", "| detail | value |", "|---|---|"]
    rows += [f"| {key} | `{_md_code(value)}` |" for key, value in content.details]
    return [*rows, ""]


def mermaid(content: Content) -> str:
    """A Mermaid sequenceDiagram of the schedule (the last MAX_DIAGRAM_STEPS steps)."""
    lines = ["sequenceDiagram"]
    lines += [f"    participant {name}" for name in content.participants]
    first, last = content.participants[0], content.participants[-1]
    steps = sorted({m.step for m in content.marks})
    shown = steps[-MAX_DIAGRAM_STEPS:]
    if len(steps) > len(shown):
        lines.append(
            f"    Note over {first},{last}: {len(steps) - len(shown)} earlier steps not drawn"
        )
    for index in shown:
        drawn = [
            text
            for mark in content.marks
            if mark.step == index
            for text in _mermaid_mark(mark, first, last)
        ]
        if index == content.violating_step:
            note = _mermaid_text(f"violation of {content.property}")
            drawn = [*drawn, f"Note over {first},{last}: {note}"]
            lines.append("    rect rgb(255, 225, 225)")
            lines += [f"        {text}" for text in drawn]
            lines.append("    end")
        else:
            lines += [f"    {text}" for text in drawn]
    return "\n".join(lines)


def _mermaid_mark(mark: Mark, first: str, last: str) -> list[str]:
    label = _mermaid_text(f"{mark.step}. {mark.label}")
    if mark.kind in ("message", "duplicate"):
        src, dst = mark.nodes
        arrow = "->>" if mark.kind == "message" else "-->>"
        return [f"{src}{arrow}{dst}: {label}"]
    if mark.kind == "drop":
        src, dst = mark.nodes
        return [f"{src}-x{dst}: {_mermaid_text(f'{mark.step}. dropped {mark.label}')}"]
    if mark.kind in ("split", "heal", "tick") or not mark.nodes:
        return [f"Note over {first},{last}: {label}"]
    if len(mark.nodes) == 1:
        return [f"Note over {mark.nodes[0]}: {label}"]
    return [f"Note over {first},{last}: {label}"]


def _mermaid_text(text: str) -> str:
    # Mermaid reads ';' as a statement end and '#' as an entity escape.
    cleaned = text.replace(";", ",").replace("#", "no. ").replace("\n", " ")
    return cleaned if len(cleaned) <= 90 else cleaned[:89] + "…"


# -- HTML -------------------------------------------------------------------------------

_CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #1f2328; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; border-radius: 6px; }
.forbids { font-size: 1.05em; }
.message { border-left: 4px solid #cf222e; background: #fff5f5; padding: .5em 1em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #d0d7de; padding: 3px 10px; text-align: left; vertical-align: top; }
ol li.gap { list-style: none; color: #57606a; font-style: italic; }
ol li.violating { background: #ffe1e1; font-weight: 600; }
.add { background: #e6ffec; display: block; }
.del { background: #ffebe9; display: block; color: #82071e; }
.same { display: block; }
.config code { margin-right: .6em; white-space: nowrap; }
.legend { color: #57606a; font-size: 12px; }
.timeline { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; }
"""


_LEGEND = (
    "One lane per node, one column per step. Arrows: delivered messages (dashed: a duplicate; "
    "ending in ✕: dropped). Red ✕: crash; green ○: restart; dot: a local step or client call. "
    "Dashed vertical lines: partition, heal, clock ticks. A lane is pale and dashed while its "
    "node is down. The red column is the violating step; hover a mark for its sentence."
)


def render_html(content: Content) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>Violation: {e(content.property)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>Violation: <code>{e(content.property)}</code></h1>",
        f'<p class="forbids"><strong>{e(content.kind or "Property")}</strong> — forbids: '
        f"{e(content.forbids)}</p>",
        f'<p class="message">{e(content.message)}</p>',
        *_html_config(content),
        "<h2>Timeline</h2>",
        f'<div class="timeline">{timeline_svg(content)}</div>',
        f'<p class="legend">{_LEGEND}</p>',
        "<h2>Events (shrunk)</h2>",
        *_html_steps(content),
        *_html_state(content),
        *_html_details(content),
        "<h2>Sequence diagram (Mermaid source)</h2>",
        f"<pre>{e(mermaid(content))}</pre>",
        "<h2>Replay</h2>",
        f"<pre>{e(content.replay_command)}</pre>",
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _html_config(content: Content) -> list[str]:
    e = html.escape
    settings = " ".join(f"<code>{e(k)}={e(v)}</code>" for k, v in content.config)
    bugs = [
        f"<li><code>{e(name)}</code>{' — ' + e(text) if text else ''}</li>"
        for name, text in content.bugs
    ]
    return [
        "<h2>Configuration</h2>",
        f'<p class="config">engine <code>{e(content.engine)}</code> · {settings}</p>',
        f"<p>Seeded bugs: {'none' if not bugs else ''}</p>",
        *(["<ul>", *bugs, "</ul>"] if bugs else []),
    ]


def _html_steps(content: Content) -> list[str]:
    if not content.steps:
        return ["<p>(no events: the initial state already violates the property)</p>"]
    items = []
    for entry in listed_steps(content.steps):
        if isinstance(entry, int):
            items.append(f'<li class="gap">{html.escape(_left_out(entry))}</li>')
            continue
        index, text = entry
        css = ' class="violating"' if index == content.violating_step else ""
        flag = " ← violation" if index == content.violating_step else ""
        items.append(f'<li value="{index}"{css}>{html.escape(text + flag)}</li>')
    return ["<ol>", *items, "</ol>"]


def _html_state(content: Content) -> list[str]:
    step = content.violating_step
    css = {"+": "add", "-": "del", " ": "same"}
    body = "".join(
        f'<span class="{css[line.marker]}">{html.escape(line.marker + " " + line.text)}</span>'
        for line in content.state
    )
    return [
        f"<h2>State after step {step}</h2>" if step else "<h2>State</h2>",
        f"<p>{html.escape(_state_legend(content, 'Green', 'red'))}</p>",
        f"<pre>{body}</pre>",
    ]


def _html_details(content: Content) -> list[str]:
    if not content.details:
        return []
    e = html.escape
    rows = [f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in content.details]
    return ["<h2>Offending records and offsets</h2>", "<table>", *rows, "</table>"]


# -- the SVG timeline -------------------------------------------------------------------

_LANE_H = 42
_COL_W = 56
_LEFT = 70
_TOP = 46
_COLOURS = {
    "message": "#0969da",
    "duplicate": "#8250df",
    "drop": "#6e7781",
    "crash": "#cf222e",
    "restart": "#1a7f37",
    "split": "#bc4c00",
    "heal": "#1a7f37",
    "client": "#0969da",
    "tick": "#6e7781",
    "note": "#57606a",
}


def timeline_svg(content: Content) -> str:
    """An inline SVG: one lane per node, one column per step, the violating column highlighted.

    Only the last MAX_TIMELINE_STEPS steps are drawn, so a long run stays a picture.
    """
    lanes = {name: _TOP + (i + 0.5) * _LANE_H for i, name in enumerate(content.participants)}
    last = max([index for index, _ in content.steps] + [content.violating_step or 0, 1])
    first = max(1, last - MAX_TIMELINE_STEPS + 1)
    width = _LEFT + (last - first + 1) * _COL_W + 20
    height = _TOP + len(lanes) * _LANE_H + 32
    parts = [
        f'<svg role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        "<defs>",
        *(
            _arrowhead(kind, colour)
            for kind, colour in _COLOURS.items()
            if kind in ("message", "duplicate", "drop")
        ),
        "</defs>",
    ]
    if first > 1:
        parts.append(
            f'<text x="8" y="12" fill="#57606a" font-size="10">steps 1 to {first - 1} '
            "are not drawn</text>"
        )
    if content.violating_step is not None:
        parts += _violating_column(content, _column_x(content.violating_step, first), height)
    parts += _column_labels(first, last)
    parts += _lane_lines(content, lanes, first, last)
    for mark in content.marks:
        if mark.step >= first:
            parts += _svg_mark(mark, _column_x(mark.step, first), lanes, height)
    parts.append("</svg>")
    return "".join(parts)


def _column_x(step: int, first: int) -> float:
    """The x of the middle of step `step`'s column when the drawing starts at step `first`."""
    return _LEFT + (step - first + 0.5) * _COL_W


def _violating_column(content: Content, x: float, height: int) -> list[str]:
    left = x - _COL_W / 2
    return [
        f'<rect x="{left:.0f}" y="4" width="{_COL_W}" height="{height - 8}" fill="#ffd7d5" '
        f'stroke="#cf222e"><title>violating step {content.violating_step}: '
        f"{html.escape(content.property)}</title></rect>",
        f'<text x="{x:.0f}" y="{height - 7}" text-anchor="middle" '
        f'fill="#cf222e" font-size="9" font-weight="bold">violation</text>',
    ]


def _arrowhead(kind: str, colour: str) -> str:
    return (
        f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{colour}"/></marker>'
    )


def _column_labels(first: int, last: int) -> list[str]:
    return [
        f'<text x="{_column_x(i, first):.0f}" y="18" text-anchor="middle" fill="#57606a">{i}</text>'
        for i in range(first, last + 1)
    ]


def _lane_lines(content: Content, lanes: dict[str, float], first: int, last: int) -> list[str]:
    """Each lane's label and line; dashed grey while its node is crashed."""
    parts = []
    # Segment ends are in column units: u is the right edge of step u's column.
    left, right = _LEFT, _LEFT + (last - first + 1) * _COL_W
    for name, y in lanes.items():
        parts.append(
            f'<text x="8" y="{y + 4:.0f}" font-weight="bold" fill="#1f2328">{html.escape(name)}</text>'
        )
        for start, end, down in _lane_segments(content.marks, name, last):
            x1 = max(left, _LEFT + (start - first + 1) * _COL_W)
            x2 = min(right, _LEFT + (end - first + 1) * _COL_W)
            if x2 <= x1:
                continue
            style = 'stroke="#d0d7de" stroke-dasharray="4 4"' if down else 'stroke="#8c959f"'
            parts.append(f'<line x1="{x1:.0f}" y1="{y:.0f}" x2="{x2:.0f}" y2="{y:.0f}" {style}/>')
    return parts


def _lane_segments(marks: Sequence[Mark], name: str, last: int) -> list[tuple[float, float, bool]]:
    segments: list[tuple[float, float, bool]] = []
    start, down = 0.0, False
    for mark in marks:
        if mark.kind in ("crash", "restart") and mark.nodes == (name,):
            boundary = mark.step - 0.5
            segments.append((start, boundary, down))
            start, down = boundary, mark.kind == "crash"
    segments.append((start, float(max(last, 1)), down))
    return segments


def _svg_mark(mark: Mark, x: float, lanes: dict[str, float], height: int) -> list[str]:
    colour = _COLOURS.get(mark.kind, "#57606a")
    tip = f"<title>{html.escape(f'{mark.step}. {mark.label}')}</title>"
    if mark.kind in ("message", "duplicate", "drop") and all(n in lanes for n in mark.nodes):
        src, dst = (lanes[n] for n in mark.nodes)
        below = max(src, dst) if src != dst else src
        return [
            _svg_arrow(mark, x, lanes, colour, tip),
            _svg_tag(mark.tag, x, below + _tag_drop(mark)),
        ]
    if mark.kind in ("split", "heal", "tick") or not mark.nodes:
        dash = {"split": "6 3", "heal": "2 3"}.get(mark.kind, "1 4")
        return [
            f'<line x1="{x:.0f}" y1="{_TOP - 4}" x2="{x:.0f}" y2="{height - 6}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}">{tip}</line>',
            f'<text x="{x:.0f}" y="{_TOP - 10}" text-anchor="middle" fill="{colour}" '
            f'font-size="9">{html.escape(mark.kind if mark.kind != "tick" else mark.label)}</text>',
        ]
    points = [_svg_point(mark.kind, x, lanes[n], colour, tip) for n in mark.nodes if n in lanes]
    return points + [
        _svg_tag(mark.tag, x, lanes[n] + _tag_drop(mark)) for n in mark.nodes[:1] if n in lanes
    ]


def _tag_drop(mark: Mark) -> int:
    # Neighbouring steps write their tags on alternate rows so long ones do not overlap.
    return 15 if mark.step % 2 else 25


def _svg_tag(tag: str, x: float, y: float) -> str:
    if not tag:
        return ""
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="middle" font-size="9" '
        f'fill="#57606a">{html.escape(tag)}</text>'
    )


def _svg_arrow(mark: Mark, x: float, lanes: dict[str, float], colour: str, tip: str) -> str:
    src, dst = mark.nodes
    y1, y2 = lanes[src], lanes[dst]
    # Short vertical arrows are slanted a little so they read as travel in time.
    x1, x2 = x - 10, x + 10
    if mark.kind == "drop":
        x2, y2 = x, (y1 + y2) / 2
    dash = ' stroke-dasharray="4 2"' if mark.kind != "message" else ""
    end = f' marker-end="url(#head-{mark.kind})"' if mark.kind != "drop" else ""
    cross = (
        f'<path d="M{x2 - 4:.0f},{y2 - 4:.0f} L{x2 + 4:.0f},{y2 + 4:.0f} M{x2 - 4:.0f},{y2 + 4:.0f} '
        f'L{x2 + 4:.0f},{y2 - 4:.0f}" stroke="{colour}" stroke-width="2"/>'
        if mark.kind == "drop"
        else ""
    )
    return (
        f'<g><line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{colour}" '
        f'stroke-width="1.6"{dash}{end}/>{cross}{tip}</g>'
    )


def _svg_point(kind: str, x: float, y: float, colour: str, tip: str) -> str:
    if kind == "crash":
        return (
            f'<g><path d="M{x - 7:.0f},{y - 7:.0f} L{x + 7:.0f},{y + 7:.0f} M{x - 7:.0f},{y + 7:.0f} '
            f'L{x + 7:.0f},{y - 7:.0f}" stroke="{colour}" stroke-width="3"/>{tip}</g>'
        )
    if kind == "restart":
        return (
            f'<g><circle cx="{x:.0f}" cy="{y:.0f}" r="7" fill="white" stroke="{colour}" '
            f'stroke-width="2.5"/>{tip}</g>'
        )
    size = 5 if kind == "client" else 4
    return f'<g><circle cx="{x:.0f}" cy="{y:.0f}" r="{size}" fill="{colour}"/>{tip}</g>'
