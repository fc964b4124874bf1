"""What a report says: everything about one violation, gathered once into a `Content` value.

Rules of this module:
- `build_content` is a pure function of (outcome, trace, the name of the
  report's folder): no clock, no absolute path, nothing from the trace's
  `meta`. Replaying the same trace in the same folder gives the same content.
- The renderers (markdown, html_page) only lay a `Content` out; every fact
  they show is decided here, in the wording module or in the state listing.
- The replay commands are relative to the report's folder, so a folder that
  is copied or moved still replays as written.
- Imports run downwards only: content -> wording, state_listing; never the
  renderers, the writer or the package's `__init__`.

Model traces have no messages, so their marks show the controller as "ctl"
and a follower's fetch as an arrow from the leader it read.
"""

from __future__ import annotations

import dataclasses
import json
import re
import shlex
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING

from kafka_verify.harness.report.state_listing import StateLine, state_diff
from kafka_verify.harness.report.wording import (
    EVENT_DESCRIBERS,
    MAX_CASES,
    action_effect,
    describe,
    event_words,
    message_summary,
    replica_after,
    short_value,
)
from kafka_verify.harness.trace import Trace, config_to_json, violation_record
from kafka_verify.impl import events as ev
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.model import actions as act
from kafka_verify.model import groups as grp
from kafka_verify.model.state import Config, State
from kafka_verify.properties.registry import PROPERTIES

if TYPE_CHECKING:
    from kafka_verify.harness.runner import RunOutcome, StepRecord

# Longer event lists show their head and tail; trace.json keeps every event.
MAX_LISTED_STEPS = 150
LISTED_HEAD = 20
LISTED_TAIL = 100


@dataclass(frozen=True, slots=True)
class Mark:
    """One thing a diagram shows for a step: a message arrow, or a mark on one or more lanes."""

    step: int
    kind: str  # message, duplicate, drop, crash, restart, split, heal, client, tick, note
    nodes: tuple[str, ...]  # (src, dst) for message/duplicate/drop, else the lanes marked
    label: str
    tag: str = ""  # a few characters written next to the mark on the timeline


@dataclass(frozen=True, slots=True)
class ReplayCommand:
    """A command that replays the report's trace, and the folder to run it from."""

    where: str
    command: str


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
    replay: tuple[ReplayCommand, ...]


@dataclass(frozen=True, slots=True)
class _Recorded:
    """The violation a trace records (or the outcome found), read out of its JSON form."""

    property: str
    message: str
    step: int | None
    details: Mapping[str, object]


def build_content(outcome: RunOutcome, trace: Trace, folder: str) -> Content:
    """Everything the report in the folder named `folder` says, from the outcome and its trace alone."""
    recorded = _recorded(outcome, trace)
    kind, forbids = _property_info(recorded.property)
    steps = outcome.steps
    marks = tuple(
        m if m.tag else dataclasses.replace(m, tag=_tag(s))
        for s in steps
        for m in _marks(s, _before(outcome, s.index))
    )
    return Content(
        property=recorded.property,
        kind=kind,
        forbids=forbids,
        message=recorded.message,
        engine=outcome.engine,
        config=_config_rows(trace.config),
        bugs=tuple((b, _bug_description(b, trace.engine)) for b in sorted(trace.config.bugs)),
        steps=tuple((s.index, describe(s, _before(outcome, s.index))) for s in steps),
        violating_step=recorded.step,
        state=_state_lines(outcome, recorded.step),
        details=_detail_rows(recorded.details),
        participants=_participants(outcome, marks),
        marks=marks,
        replay=replay_commands(folder),
    )


def replay_commands(folder: str) -> tuple[ReplayCommand, ...]:
    """How to replay the trace.json beside the report: from its folder, or from the one above.

    Both are relative, so a report folder copied out of a CI artifact, or moved,
    keeps commands that work; only renaming the folder stales the second one.
    """
    return (
        ReplayCommand("From this report's folder:", "kafka-verify replay trace.json"),
        ReplayCommand(
            "From the folder that holds it:",
            f"kafka-verify replay {shlex.quote(f'{folder}/trace.json')}",
        ),
    )


def _recorded(outcome: RunOutcome, trace: Trace) -> _Recorded:
    violation: Mapping[str, object] | None = trace.violation
    if violation is None and outcome.violation is not None:
        violation = violation_record(outcome.violation, max(len(outcome.steps), 1))
    if violation is None:
        return _Recorded("none", "no property was violated", None, {})
    step, details = violation["step"], violation["details"]
    return _Recorded(
        property=str(violation["property"]),
        message=str(violation["message"]),
        step=step if isinstance(step, int) else None,
        details=details if isinstance(details, dict) else {},
    )


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
    return info.kind.value.upper(), _sentence(info.forbids)


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


def _config_rows(config: ClusterConfig | Config) -> tuple[tuple[str, str], ...]:
    rows = []
    for key, value in config_to_json(config).items():
        if key == "bugs":
            continue
        rows.append((key, json.dumps(value)))
    return tuple(rows)


def _state_lines(outcome: RunOutcome, violating: int | None) -> tuple[StateLine, ...]:
    """The state at the violating step (else the last), marked against the step before."""
    if not outcome.steps:
        # No step ran: the initial state, compared with itself, is all unchanged lines.
        return state_diff(outcome.initial, outcome.initial)
    index = violating if violating is not None else outcome.steps[-1].index
    after_step = next((s for s in outcome.steps if s.index == index), outcome.steps[-1])
    return state_diff(_before(outcome, after_step.index), after_step.state)


def listed_steps(steps: Sequence[tuple[int, str]]) -> list[tuple[int, str] | int]:
    """The steps a report lists: all of them, or for a long run its head and tail.

    An int in the result stands for that many steps left out at that place.
    """
    if len(steps) <= MAX_LISTED_STEPS:
        return list(steps)
    left_out = len(steps) - LISTED_HEAD - LISTED_TAIL
    return [*steps[:LISTED_HEAD], left_out, *steps[-LISTED_TAIL:]]


def left_out_words(count: int) -> str:
    return f"… {count} more steps, not listed here; trace.json holds every event"


def state_legend(content: Content, changed: str, before: str) -> str:
    """The sentence above the state listing; `changed` and `before` name the markers."""
    if all(line.marker == " " for line in content.state):
        return (
            "The violating step changed nothing shown here; "
            "the violation lies in what the step did or in what a client saw."
        )
    return f"{changed} lines changed in this step; {before} lines show them before it."


# -- violation details (condensed) ------------------------------------------------------


def _detail_rows(details: Mapping[str, object]) -> tuple[tuple[str, str], ...]:
    return tuple((key, _condense(details[key])) for key in details)


def _condense(value: object) -> str:
    if isinstance(value, list) and len(value) > MAX_CASES:
        shown = ", ".join(_compact(v) for v in value[:MAX_CASES])
        return f"{len(value)} cases; the first {MAX_CASES}: {shown}"
    return _compact(value)


def _compact(value: object) -> str:
    if isinstance(value, str):
        return value
    return json.dumps(value, sort_keys=True, ensure_ascii=False)


# -- diagram marks ----------------------------------------------------------------------


def _marks(step: StepRecord, before: State) -> list[Mark]:
    """The marks of one step: its event, plus, for timers, faults and client calls, what the brokers did."""
    marks = _event_marks(step, before)
    quiet = (ev.Deliver, ev.Duplicate, ev.Drop)
    if type(step.event) in EVENT_DESCRIBERS and not isinstance(step.event, quiet):
        marks += [m for a in step.actions if (m := _action_mark(a, step)) is not None]
    return marks


def _action_mark(action: object, step: StepRecord) -> Mark | None:
    """A small mark on the lane of the broker that performed `action` inside an impl step."""
    text = action_effect(action, step.state)
    if not text:
        return None
    if isinstance(action, act.ElectLeader | act.ControllerFailover):
        broker = step.state.controller
    else:
        broker = _acting_broker(action)
    if broker is None:
        return None
    return Mark(step.index, "note", (f"b{broker}",), text, _action_tag(action) or "lease")


def _event_marks(step: StepRecord, before: State) -> list[Mark]:
    item, i = step.event, step.index
    envelope = step.delivered
    if isinstance(item, ev.Deliver | ev.Duplicate) and envelope is not None:
        kind = "message" if isinstance(item, ev.Deliver) else "duplicate"
        return [Mark(i, kind, (envelope.src, envelope.dst), message_summary(envelope.message))]
    if isinstance(item, ev.Drop) and envelope is not None:
        return [Mark(i, "drop", (envelope.src, envelope.dst), message_summary(envelope.message))]
    if isinstance(item, ev.Deliver | ev.Duplicate | ev.Drop):
        return [Mark(i, "note", (), f"message #{item.message_id} ({type(item).__name__})")]
    if isinstance(item, ev.Crash):
        return [Mark(i, "crash", (item.node,), event_words(step))]
    if isinstance(item, ev.Restart):
        return [Mark(i, "restart", (item.node,), "restart")]
    if isinstance(item, ev.Partition):
        return [Mark(i, "split", tuple(n for g in item.groups for n in g), event_words(step))]
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
        replica = replica_after(step.state, a.partition, a.broker)
        source = replica.leader if replica is not None else None
        if source is not None:
            return [
                Mark(
                    i, "message", (f"b{source}", f"b{a.broker}"), f"record {short_value(a.record)}"
                )
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
    if isinstance(a, grp.GROUP_ACTION_TYPES):
        lanes = (a.member,) if isinstance(a, _MEMBER_ACTIONS) else ("gc",)
        return [Mark(i, "note", lanes, text)]
    broker = a.controller if isinstance(a, act.ControllerFailover) else _acting_broker(a)
    lanes = (f"b{broker}",) if broker is not None else ("ctl",)
    return [Mark(i, "note", lanes, action_effect(a, step.state) or _short_action(a))]


# The model actions one broker performs, and the group actions one member performs.
_BROKER_ACTIONS = (
    act.LeaderWrite,
    act.FollowerReplicate,
    act.IncHighWatermark,
    act.BecomeLeader,
    act.BecomeFollower,
    act.Truncate,
    act.ResetLog,
    act.ShrinkIsr,
    act.ExpandIsr,
    act.RetentionDelete,
    act.Flush,
    act.Crash,
    act.Restart,
)
_MEMBER_ACTIONS = (
    grp.JoinGroup,
    grp.SyncAssignment,
    grp.ExpireMember,
    grp.LeaveGroup,
    grp.CommitOffset,
)


def _acting_broker(action: object) -> int | None:
    return action.broker if isinstance(action, _BROKER_ACTIONS) else None


def _short_action(action: object) -> str:
    if isinstance(action, act.Flush):
        return f"b{action.broker} flushes partition {action.partition}"
    return type(action).__name__


def _tag(step: StepRecord) -> str:
    """The few characters the timeline writes beside a step's mark."""
    item = step.event
    if step.delivered is not None:
        return type(step.delivered.message).__name__.replace("Response", "Resp")
    if isinstance(item, ev.Produce):
        sends = [
            op.value[3]
            for op in step.ops
            if op.f == "send" and op.type == "invoke" and isinstance(op.value, list | tuple)
        ]
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


def _action_tag(a: object) -> str:
    if isinstance(a, act.LeaderWrite):
        return f"w {a.record_id}"
    if isinstance(a, act.FollowerReplicate):
        return short_value(a.record)
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
    return outcome.config.brokers


def _lane_order(name: str) -> tuple[int, int, str]:
    ranks = {"b": 0, "z": 1, "c": 3, "p": 2}
    rank = 1 if name in ("zk", "ctl") else ranks.get(name[:1], 4)
    digits = re.sub(r"\D", "", name)
    return (rank, int(digits) if digits else 0, name)
