"""A stateful campaign: run the Hypothesis machine, and turn a failure into a report.

Used by `kafka-verify run`, `kafka-verify mutants` and the quality tests.

Rules of this module:
- The campaign is given a base config; with the config swarm on, each example
  runs its own draw over it (`harness/config_swarm.py`). Whatever is done with a
  failure (event shrinking, the result, and so the trace, report and replay)
  uses the failing example's drawn config, never the base.
- The example database is keyed by the base config and by whether the swarm is
  on: the same stored choices mean another run when the swarm is switched.
"""

from __future__ import annotations

import json
import time
import traceback
from collections.abc import Callable
from dataclasses import dataclass, field

from hypothesis import Verbosity
from hypothesis import seed as hypothesis_seed
from hypothesis.database import ExampleDatabase
from hypothesis.errors import Flaky
from hypothesis.stateful import run_state_machine_as_test
from kafka_verify.harness.example_db import ConfigKeyedDatabase
from kafka_verify.harness.machine import PropertyViolated, Recorder, make_machine
from kafka_verify.harness.profiles import Profile, hypothesis_settings
from kafka_verify.harness.runner import execute
from kafka_verify.harness.shrink import shrink_events
from kafka_verify.harness.trace import config_to_json
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.registry import PROPERTIES, Kind


@dataclass
class CampaignResult:
    """What a campaign found, with the shrunk schedule when it found something."""

    config: ClusterConfig  # the failing example's config when there is a violation, else the base
    seconds: float
    examples: int
    steps: int
    coverage: dict[str, int]
    # The config swarm's draws: per field, how many examples ran each value (empty: no swarm).
    config_draws: dict[str, dict[str, int]] = field(default_factory=dict)
    violation: Violation | None = None
    events: list[object] = field(default_factory=list)
    seconds_to_detect: float | None = None
    error: str | None = None


def run_campaign(
    config: ClusterConfig,
    profile: Profile,
    *,
    seed: int | None = None,
    examples: int | None = None,
    steps: int | None = None,
    on_example: Callable[[Recorder], None] | None = None,
    shrink_budget_s: float | None = 120.0,
    event_shrink_budget_s: float = 20.0,
    database: ExampleDatabase | None = None,
    config_swarm: bool = True,
    swarm_axes: frozenset[str] | None = None,
) -> CampaignResult:
    """Run the machine until a property fails or the budget is spent; shrink what fails.

    Hypothesis shrinks first (within `shrink_budget_s`), then `harness/shrink.py`
    deletes whole kinds of traffic, chunks and single events (within `event_shrink_budget_s`).
    With `config_swarm`, each example draws its cluster settings over `config` (only
    on `swarm_axes`, when given: see `harness/config_swarm.py`).
    """
    if database is not None and profile.derandomize and seed is None:
        seed = 0  # the same commit still gives the same run, now with stored examples first
    recorder = Recorder(on_example=on_example, shrink_budget_s=shrink_budget_s)
    machine = make_machine(config, recorder, config_swarm=config_swarm, swarm_axes=swarm_axes)
    if seed is not None:
        machine = hypothesis_seed(seed)(machine)
    # Quiet: the report is the counterexample; Hypothesis's own printout of the
    # final replay would only repeat it (or show an empty one once shrinking is cut short).
    if database is not None:
        config_text = json.dumps(config_to_json(config), sort_keys=True)
        if config_swarm:
            config_text += " config-swarm " + ",".join(sorted(swarm_axes or ("all",)))
        database = ConfigKeyedDatabase(database, config_text)
    settings = hypothesis_settings(profile, examples, steps, database)
    settings = type(settings)(settings, verbosity=Verbosity.quiet)
    started = time.perf_counter()
    recorder.started = started
    violation: Violation | None = None
    error: str | None = None
    try:
        run_state_machine_as_test(machine, settings=settings)
    except PropertyViolated as failure:
        violation = failure.violation
    except Flaky as flaky:
        if recorder.shrink_spent and recorder.smallest_failure is not None:
            # Shrinking ran out of time (examples went inert, so the final replay
            # passed): the smallest failing schedule reached so far is the result.
            violation = recorder.smallest_failure
            recorder.failure_events = list(recorder.smallest_events or [])
            recorder.failure_config = recorder.smallest_config
        else:
            error = f"the failure did not reproduce deterministically: {flaky}"
    except Exception as unexpected:  # an internal error of the broker or harness is a finding too
        recorder.failure_config = recorder.current_config
        violation = Violation(
            property="internal-error",
            message=f"{type(unexpected).__name__}: {unexpected}",
            details=(("traceback", traceback.format_exc(limit=8)),),
        )
    events = list(recorder.failure_events) if violation else []
    # An internal error raised outside any example has no example config: the base's.
    ran = (recorder.failure_config or config) if violation else config
    if violation is not None and event_shrink_budget_s > 0:
        violation, events = shrink_failure(ran, violation, events, event_shrink_budget_s)
    seconds = time.perf_counter() - started
    detected = recorder.first_failure_seconds
    return CampaignResult(
        config=ran,
        seconds=seconds,
        examples=recorder.examples,
        steps=recorder.steps,
        coverage=dict(recorder.coverage),
        config_draws={name: dict(counts) for name, counts in recorder.config_draws.items()},
        violation=violation,
        events=events,
        seconds_to_detect=detected,
        error=error,
    )


def shrink_failure(
    config: ClusterConfig, violation: Violation, events: list[object], budget_s: float
) -> tuple[Violation, list[object]]:
    """Delete events while the same property still fails; the violation as the shorter run shows it."""
    found = PROPERTIES.get(violation.property)
    eventually = found is not None and found.kind is Kind.EVENTUALLY
    shorter = shrink_events(config, events, violation.property, eventually, budget_s)
    if len(shorter) >= len(events):
        return violation, events
    try:
        outcome = execute(config, shorter, finish=eventually)
    except Exception:  # internal-error: the shorter run trips the broker as the longer one did
        return violation, shorter
    if outcome.violation is None or outcome.violation.property != violation.property:
        return (
            violation,
            events,
        )  # cannot happen for a deterministic world; keep what Hypothesis found
    return outcome.violation, shorter
