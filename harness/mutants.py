"""`kafka-verify mutants`: the suite's own quality bar.

Each seeded bug is switched on in turn and the CI-profile campaign runs against
it, in rounds of a few examples with fresh seeds, until a property fails or the
per-bug time budget is spent. The result is a kill matrix (bugs x properties)
in `reports/mutants.md` and the JSON of DESIGN.md. A clean run (no bug) is
measured too: it must find nothing, so there are no false alarms. The config
swarm varies only the cluster's timing here (`MUTANT_SWARM_AXES`), not its shape
or its producers' promises, which each bug's scenario needs; three leader-churn
bugs are hunted on the reference timing alone (`REFERENCE_TIMING_BUGS`).

Beside DESIGN.md's fields, each bug's JSON carries `shrunk_actions` (the model
actions of the shrunk run in the violation's scope, the figure set beside
`minimal_steps`; see `model_actions`) and `shrunk_actions_all` (every model
action of the shrunk run, whatever partition or group it is on).
"""

from __future__ import annotations

import dataclasses
import statistics
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_verify.harness.campaign import CampaignResult, run_campaign
from kafka_verify.harness.cli_common import UsageError, write_json, write_text
from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.harness.failures import write_failure
from kafka_verify.harness.profiles import PROFILES
from kafka_verify.harness.runner import RunOutcome, StepRecord, execute
from kafka_verify.harness.trace import violation_record
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.model import Action, NotAllowed, step
from kafka_verify.model.actions import ControllerFailover, Flush
from kafka_verify.model.actions import Crash as CrashAction
from kafka_verify.model.actions import Restart as RestartAction
from kafka_verify.model.minimal import minimal_counterexample_length
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.groups import check_group_step
from kafka_verify.properties.incremental import IncrementalChecker

ROUND_EXAMPLES = 12
# The config swarm varies only the timing of a seeded-bug campaign: every bug's scenario is
# stated for the reference cluster's shape and promises (RF 3 with min ISR 2, acks=all with
# idempotent producers, retention on), and a bug such as ack-before-commit (which needs an ISR
# below min ISR 2) or non-idempotent-retry (idempotent producers) does not exist elsewhere. A
# bug must still be caught whatever the flush interval, replica lag and timeouts.
MUTANT_SWARM_AXES = frozenset({"flush", "replica lag", "session", "request timeout"})
# Bugs hunted on the reference timing alone (no config swarm): each needs several quick
# leader changes, each with a write the others lack (or a truncated leader leading again),
# which the leader-churn nemesis times for the reference session, lag and fetch timing.
# Measured with the timing swarm on, under load, none was caught within 60 s in one full
# `mutants` run (duplicate-offset was caught in 1 to 2.5 s when hunted alone).
REFERENCE_TIMING_BUGS = frozenset(
    {"epoch-end-offset-hole", "no-fetch-epoch-fencing", "duplicate-offset"}
)
# Shrinking after the first failure: Hypothesis on rule choices, then event deletion.
SHRINK_BUDGET_S = 15.0
EVENT_SHRINK_BUDGET_S = 20.0  # a schedule of thousands of events needs it on a busy machine


def hunt(
    bug: str | None,
    budget_s: float,
    reports_root: Path,
    *,
    shrink_budget_s: float = SHRINK_BUDGET_S,
    event_shrink_budget_s: float = EVENT_SHRINK_BUDGET_S,
    engine: str = "hypothesis",
    swarm_axes: frozenset[str] | None = None,
    first_seed: int = 0,
) -> dict[str, Any]:
    """Run rounds of the CI campaign against one bug until it is caught or the budget is gone.

    Round k runs seed `first_seed + k`. The swarm engine needs no rounds (every example
    has its own seed): one run of seed `first_seed` until a failure or the budget's end. The config swarm varies `swarm_axes`
    (None: the bug's own choice, `MUTANT_SWARM_AXES` or, for `REFERENCE_TIMING_BUGS`,
    no swarm at all; empty: no swarm).
    """
    if swarm_axes is None:
        swarm_axes = frozenset() if bug in REFERENCE_TIMING_BUGS else MUTANT_SWARM_AXES
    bugs = frozenset({bug}) if bug else frozenset()
    config = reference_cluster(bugs)
    profile = dataclasses.replace(PROFILES["ci"], targeting=False)
    started = time.perf_counter()
    round_index = 0
    while True:
        round_started = time.perf_counter()
        result: CampaignResult
        seed = first_seed + round_index
        meta: dict[str, Any] = {"seed": seed, "profile": "ci"}
        # What both engines share: the round's seed, the shrinking budgets, the config swarm.
        common: dict[str, Any] = {
            "seed": seed,
            "shrink_budget_s": shrink_budget_s,
            "event_shrink_budget_s": event_shrink_budget_s,
            "config_swarm": bool(swarm_axes),
            "swarm_axes": swarm_axes or None,
        }
        if engine == "swarm":
            from kafka_verify.harness.swarm import run_swarm

            result = run_swarm(config, profile, budget_s=budget_s, **common)
            meta.update(engine="swarm", example=result.failing_example)
        else:
            result = run_campaign(config, profile, examples=ROUND_EXAMPLES, **common)
        if result.violation is not None:
            offset = round_started - started
            detect = offset + (result.seconds_to_detect or result.seconds)
            report, _ = write_failure(result, reports_root, meta)
            counts = model_actions(result)
            return {
                "name": bug or "none",
                "caught": True,
                "property": result.violation.property,
                "seconds_to_detect": round(detect, 2),
                "shrunk_steps": len(result.events),
                "shrunk_actions": counts.scoped,
                "shrunk_actions_all": counts.all,
                "minimal_steps": minimal_steps(bug),
                "report": str(report),
                "violation": violation_record(result.violation, len(result.events)),
            }
        round_index += 1
        if engine == "swarm" or time.perf_counter() - started >= budget_s:
            return {
                "name": bug or "none",
                "caught": False,
                "property": None,
                "seconds_to_detect": None,
                "shrunk_steps": None,
                "shrunk_actions": None,
                "shrunk_actions_all": None,
                "minimal_steps": minimal_steps(bug),
                "report": None,
                "violation": None,
            }


def minimal_steps(bug: str | None) -> int | None:
    """The model's shortest counterexample for this bug, in model actions (None: not a model variant)."""
    return None if bug is None else minimal_counterexample_length(bug)


# Actions of the whole cluster rather than of one partition: a replication
# counterexample counts them whatever partition it is about.
BROKER_ACTIONS = (CrashAction, RestartAction, ControllerFailover)


@dataclass(frozen=True, slots=True)
class Scope:
    """What a counterexample is about: one partition (and the cluster), one group, or everything."""

    partition: int | None = None
    group: str | None = None

    def covers(self, action: Action) -> bool:
        if self.group is not None:
            return getattr(action, "group", None) == self.group
        if self.partition is not None:
            return isinstance(action, BROKER_ACTIONS) or (
                getattr(action, "partition", None) == self.partition
            )
        return True


@dataclass(frozen=True, slots=True)
class ActionCounts:
    """The shrunk run's model actions up to the failing one, Flush left out: in scope and all."""

    scoped: int
    all: int


def model_actions(result: CampaignResult) -> ActionCounts:
    """How many model actions the shrunk schedule's events name, up to the one that failed.

    The impl counts events (a delivery is one) and the model counts actions;
    this is the figure to set beside `minimal_steps`. Flush actions are left
    out, since the minimal search runs with durable logs (every write is
    flushed as it happens, so it has no Flush actions to count).

    The minimal search also runs in a smaller world: one partition for a
    replication bug, one group (with replication inactive) for a group bug. So
    `scoped` counts only the actions in the violation's scope (`violation_scope`):
    for a group violation, that group's actions; for a replication violation,
    the actions on the violated partition plus Crash, Restart and
    ControllerFailover. `all` counts every action.
    """
    outcome = execute(result.config, result.events)
    if not outcome.steps:
        return ActionCounts(0, 0)
    *earlier, last = outcome.steps
    counted = [a for s in earlier for a in s.actions] + list(_up_to_failure(outcome, last))
    counted = [action for action in counted if not isinstance(action, Flush)]
    if not counted:
        return ActionCounts(0, 0)
    scope = violation_scope(outcome.violation or result.violation, counted[-1])
    return ActionCounts(sum(1 for a in counted if scope.covers(a)), len(counted))


def violation_scope(violation: Violation | None, failing: Action) -> Scope:
    """The group or partition a violation is about: from its facts, else the action that failed.

    Group properties name their group in the details (their `partition` is a
    partition of the group's topic, not a replicated partition, so the group
    comes first); a refinement failure names no scope, and the model action it
    failed on supplies it.
    """
    if violation is None:
        return Scope()
    group = dict(violation.details).get("group")
    if isinstance(group, str) and group:
        return Scope(group=group)
    failing_group = getattr(failing, "group", None)
    if isinstance(failing_group, str):
        return Scope(group=failing_group)
    if violation.partition is not None:
        return Scope(partition=violation.partition)
    failing_partition = getattr(failing, "partition", None)
    if isinstance(failing_partition, int):
        return Scope(partition=failing_partition)
    return Scope()


def _up_to_failure(outcome: RunOutcome, last: StepRecord) -> tuple[Action, ...]:
    """The last event's actions up to the first one the model refuses or a step property flags."""
    config = outcome.config
    if outcome.violation is None or not isinstance(config, ClusterConfig):
        return last.actions
    model_config = config.model_config()
    state = outcome.steps[-2].state if len(outcome.steps) > 1 else outcome.initial
    invariants = IncrementalChecker()
    for index, action in enumerate(last.actions):
        try:
            after = step(state, action, model_config)
        except NotAllowed:
            return last.actions[: index + 1]
        if invariants.check_step(state, action, after, model_config) or check_group_step(
            state, action, after, model_config
        ):
            return last.actions[: index + 1]
        state = after
    return last.actions


def summary(rows: list[dict[str, Any]]) -> dict[str, Any]:
    """Detection time (median, max) over caught bugs, and how many shrunk runs are near-minimal.

    Near-minimal compares like with like: the shrunk run's model actions in the
    violation's scope (`model_actions`) against the model's shortest
    counterexample, within a factor of 1.5.
    """
    seconds = [row["seconds_to_detect"] for row in rows if row["caught"]]
    compared = [row for row in rows if row["caught"] and row["minimal_steps"]]
    near = [row for row in compared if row["shrunk_actions"] <= 1.5 * row["minimal_steps"]]
    return {
        "median_seconds_to_detect": round(statistics.median(seconds), 2) if seconds else None,
        "max_seconds_to_detect": round(max(seconds), 2) if seconds else None,
        "near_minimal": len(near),
        "with_minimal": len(compared),
    }


def _kill_matrix(rows: list[dict[str, Any]], root: Path) -> str:
    properties = sorted({row["property"] for row in rows if row["property"]})
    header = (
        "| bug | caught | "
        + " | ".join(f"`{p}`" for p in properties)
        + " | seconds | shrunk events | shrunk actions | all actions | minimal actions |"
    )
    figures = summary(rows)
    lines = [
        "# Mutation campaign: the kill matrix",
        "",
        "Each row is a seeded bug from the catalogue; a mark shows the property that caught it",
        "and links to its report.",
        "",
        "- **seconds**: wall time to the first failing example, before shrinking.",
        "- **shrunk events**: the reported schedule's length in broker events (a delivery is one).",
        "- **shrunk actions**: the model actions those events named, up to the failing one, in",
        "  the violation's scope: for a group violation, the actions of that group; otherwise",
        "  the actions on the violated partition plus Crash, Restart and ControllerFailover.",
        "  Flush is left out (the minimal search runs with durable logs, which have no Flush).",
        "  The scope matches the minimal search's smaller world (one partition, or one group",
        "  with replication inactive), while the reference cluster also runs a second user",
        "  partition, the offsets topic and two groups.",
        "- **all actions**: the same count over every partition and group.",
        "- **minimal actions**: the model's shortest counterexample (breadth-first search,",
        "  `model/minimal.py`); empty where the bug lives only in the broker.",
        "",
        header,
        "|" + "---|" * (len(properties) + 7),
    ]
    for row in rows:
        marks = []
        for prop in properties:
            if row["property"] == prop:
                link = Path(row["report"]).relative_to(root) if row["report"] else None
                marks.append(f"[x]({link})" if link else "x")
            else:
                marks.append("")
        caught = "yes" if row["caught"] else "**no**"
        numbers = [
            row["seconds_to_detect"],
            row["shrunk_steps"],
            row["shrunk_actions"],
            row["shrunk_actions_all"],
            row["minimal_steps"],
        ]
        lines.append(
            f"| `{row['name']}` | {caught} | "
            + " | ".join(marks)
            + " | "
            + " | ".join("" if n is None else str(n) for n in numbers)
            + " |"
        )
    caught_count = sum(1 for row in rows if row["caught"])
    lines += [
        "",
        f"Caught {caught_count} of {len(rows)}. Seconds to detect: median "
        f"{figures['median_seconds_to_detect']}, max {figures['max_seconds_to_detect']}. "
        f"Shrunk actions (in scope) within 1.5x of the minimal: {figures['near_minimal']} of "
        f"{figures['with_minimal']}.",
    ]
    return "\n".join(lines) + "\n"


def run_mutants(
    requested: list[str],
    budget_s: int,
    json_path: Path | None,
    reports: Path | None,
    engine: str = "hypothesis",
    seed: int = 0,
) -> int:
    from kafka_verify.impl.bugs import BUGS

    unknown = sorted(set(requested) - set(BUGS))
    if unknown:
        raise UsageError(
            f"unknown bug name(s) {', '.join(unknown)}; 'kafka-verify bugs' lists them"
        )
    names = requested or list(BUGS)
    root = reports or Path("reports")
    rows = []
    for name in names:
        row = hunt(name, budget_s, root, engine=engine, first_seed=seed)
        rows.append(row)
        verdict = (
            f"caught by {row['property']} in {row['seconds_to_detect']} s"
            if row["caught"]
            else "NOT caught"
        )
        print(f"{name:32} {verdict}", file=sys.stderr)
    clean = hunt(None, budget_s, root, engine=engine, first_seed=seed)
    print(
        f"{'(no bug)':32} {'FALSE ALARM: ' + str(clean['property']) if clean['caught'] else 'clean'}",
        file=sys.stderr,
    )
    caught = sum(1 for row in rows if row["caught"])
    root.mkdir(parents=True, exist_ok=True)
    write_text(root / "mutants.md", _kill_matrix(rows, root))
    payload = {
        "engine": engine,
        "seed": seed,
        "bugs": rows,
        "caught": caught,
        "total": len(rows),
        **summary(rows),
        "false_alarm": clean if clean["caught"] else None,
    }
    write_json(json_path, payload)
    return 0 if caught == len(rows) and not clean["caught"] else 1
