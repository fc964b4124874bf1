"""A model state as listed lines, and the difference between the states around one step.

Rules of this module:
- A listing is a pure function of the state; every line has a key, so the
  lines of two states pair up for the diff by what they describe.
- A diff keeps the order of the state after the step: an unchanged line is
  " ", a changed line is "+" after its "-" line, and what vanished is "-" at
  the end.
- It imports only the wording module and the model, never the report's
  content or renderers.
"""

from __future__ import annotations

from dataclasses import dataclass

from kafka_verify.harness.report.wording import assignment_text, broker_name, broker_set
from kafka_verify.model import groups as grp
from kafka_verify.model.state import Replica, State

MAX_LOG_RECORDS = 12


@dataclass(frozen=True, slots=True)
class StateLine:
    """One line of the state listing; `marker` is "+" (now), "-" (before) or " " (unchanged)."""

    marker: str
    text: str


def state_listing(state: State) -> list[tuple[str, str]]:
    """(key, text) lines describing a state; keys pair lines of two states for the diff."""
    running = ", ".join(broker_name(b) for b in sorted(state.running)) or "none"
    lines = [
        ("running", f"running brokers: {running}"),
        (
            "controller",
            f"controller: {broker_name(state.controller)} (epoch {state.controller_epoch})",
        ),
    ]
    for index, part in enumerate(state.partitions):
        lines.append(
            (
                f"p{index}",
                f"partition {index}: leader {broker_name(part.leader)}, epoch {part.epoch}, "
                f"ISR {broker_set(part.isr)}",
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
        (f"group {g.group}/assignment", f"  assignment {assignment_text(g.assignment)}"),
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
    view = f"epoch {r.epoch}" + (
        f", leader {broker_name(r.leader)}" if r.leader is not None else ""
    )
    isr = f", ISR {broker_set(r.isr)}" if r.isr else ""
    return (
        f"b{r.broker} {r.role.value:<10} log {log} hw {r.hw} leo {r.leo} "
        f"flushed {r.flushed} ({view}{isr})"
    )


def state_diff(before: State, after: State) -> tuple[StateLine, ...]:
    """The listing of `after`, each changed line preceded by its `-` form in `before`."""
    earlier = dict(state_listing(before))
    lines: list[StateLine] = []
    for key, text in state_listing(after):
        old = earlier.pop(key, None)
        if old is not None and old != text:
            lines.append(StateLine("-", old))
        lines.append(StateLine(" " if old == text else "+", text))
    lines.extend(StateLine("-", text) for text in earlier.values())
    return tuple(lines)
