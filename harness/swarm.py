"""The swarm engine: seeded schedules drawn straight from the machine's rules, no Hypothesis in the loop.

`kafka-verify run --engine swarm` explores as TigerBeetle's VOPR does: each
example is one `random.Random` seeded from the run seed and the example's
number, which picks the fault mix, the length, the rules and their arguments.
The rules are `ClusterMachine`'s own methods, called on an instance of the
machine class, so the swarm runs the same fault mixes, example lengths,
nemeses, `Checker`, liveness phase (`settle`, in the machine's teardown) and
EVENTUALLY checks as the Hypothesis engine; only who draws the choices differs.
A failure is shrunk as Hypothesis's is, in two passes: whole rules of the
recorded script (`shrink_script`), then single events (`harness/shrink.py`);
it becomes the same `CampaignResult`, trace and report.

Rules of this module:
- Never the global random: one `random.Random(example_seed(seed, n))` per
  example, so a run is deterministic for its seed, and example n of seed S can
  be re-run alone (`run_swarm(..., first_example=n, examples=1)`).
- The rules are found as Hypothesis finds them (`setup_state()`: the `@rule`,
  `@initialize` and `@invariant` functions with their preconditions) and each
  argument's strategy is translated into a draw (`draw_for`). A strategy the
  translation does not know is an error naming the rule and argument, never a
  skipped rule; `ARGUMENT_DRAWS` is where such an argument gets its draw.
- Rule choice follows Hypothesis's: per example a share of the rules is
  switched off (its swarm of feature flags), and each step picks uniformly among
  the enabled rules whose preconditions hold. A step whose enabled rules all
  fail their preconditions picks among every rule that holds (Hypothesis would
  discard the example instead).
- Coverage and step counts go through the machine's `Recorder`, exactly as
  under Hypothesis; shrinking replays run on a recorder of their own, so a
  run's totals are its search alone.
"""

from __future__ import annotations

import hashlib
import random
import time
import traceback
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from hypothesis.stateful import RuleBasedStateMachine
from hypothesis.strategies import SearchStrategy
from hypothesis.strategies._internal.collections import TupleStrategy
from hypothesis.strategies._internal.lazy import LazyStrategy
from hypothesis.strategies._internal.misc import BooleansStrategy
from hypothesis.strategies._internal.numbers import IntegersStrategy
from hypothesis.strategies._internal.strategies import (
    MappedStrategy,
    OneOfStrategy,
    SampledFromStrategy,
)
from kafka_verify.harness.campaign import CampaignResult, shrink_failure
from kafka_verify.harness.machine import ClusterMachine, PropertyViolated, Recorder, make_machine
from kafka_verify.harness.profiles import Profile
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.properties.catalogue import Violation

Draw = Callable[[random.Random], object]
# A value's simpler alternatives in the same strategy, simplest first (for shrinking).
Simpler = Callable[[object], list[object]]

# Draws for rule arguments whose strategy `draw_for` cannot translate, keyed by
# (rule name, argument name); e.g. a per-example cluster shape drawn by an
# `@initialize` rule from a composite strategy: ("choose_fault_mix", "shape"): draw_shape.
ARGUMENT_DRAWS: dict[tuple[str, str], Draw] = {}


class UnknownStrategy(ValueError):
    """A rule argument's strategy has no swarm draw: add one to ARGUMENT_DRAWS."""


def draw_for(strategy: SearchStrategy[Any]) -> Draw | None:
    """A draw over the same values as `strategy` (uniform, not Hypothesis's bias), if it is one
    of the plain kinds the machine uses: integers in bounds, booleans, sampled_from, just,
    and one_of, tuples and maps of those (the config swarm's draw is one). None for anything
    else."""
    while isinstance(strategy, LazyStrategy):
        strategy = strategy.wrapped_strategy
    if isinstance(strategy, IntegersStrategy):
        low, high = strategy.start, strategy.end
        if low is None or high is None:
            return None
        return lambda rng: rng.randint(low, high)
    if isinstance(strategy, BooleansStrategy):
        return lambda rng: rng.random() < 0.5
    if isinstance(strategy, SampledFromStrategy):  # also just(), and so none()
        if strategy._transformations:  # a map or filter over the elements
            return None
        elements = tuple(strategy.elements)
        if len(elements) == 1:
            only = elements[0]
            return lambda rng: only
        return lambda rng: elements[rng.randrange(len(elements))]
    if isinstance(strategy, OneOfStrategy):
        branches = [draw_for(branch) for branch in strategy.original_strategies]
        known = [branch for branch in branches if branch is not None]
        if len(known) < len(branches):
            return None
        return lambda rng: known[rng.randrange(len(known))](rng)
    if isinstance(strategy, TupleStrategy):
        parts = [draw_for(element) for element in strategy.element_strategies]
        drawn = [part for part in parts if part is not None]
        if len(drawn) < len(parts):
            return None
        return lambda rng: tuple(part(rng) for part in drawn)
    if isinstance(strategy, MappedStrategy):
        inner = draw_for(strategy.mapped_strategy)
        if inner is None:
            return None
        pack = strategy.pack
        return lambda rng: pack(inner(rng))
    return None


def simpler_for(strategy: SearchStrategy[Any]) -> Simpler:
    """What shrinking tries in place of a drawn value: the strategy's first value and the value
    halfway there, for integers, booleans (False) and sampled_from (the first element); nothing
    for other strategies."""
    while isinstance(strategy, LazyStrategy):
        strategy = strategy.wrapped_strategy
    if isinstance(strategy, IntegersStrategy) and strategy.start is not None:
        low = strategy.start

        def smaller(value: object) -> list[object]:
            if not isinstance(value, int) or value <= low:
                return []
            return list(dict.fromkeys((low, (low + value) // 2)))

        return smaller
    if isinstance(strategy, BooleansStrategy):
        return lambda value: [False] if value is True else []
    if isinstance(strategy, SampledFromStrategy) and not strategy._transformations:
        first = tuple(strategy.elements)[:1]
        return lambda value: [first[0]] if first and value != first[0] else []
    return lambda value: []


@dataclass(frozen=True)
class SwarmRule:
    """One rule of the machine as the swarm calls it: the method, its preconditions, its draws."""

    name: str
    function: Callable[..., object]
    preconditions: tuple[Callable[[Any], bool], ...]
    arguments: tuple[tuple[str, Draw], ...]
    # Invariants only: whether it runs while initialize rules are still to run.
    during_init: bool = False
    simpler: tuple[tuple[str, Simpler], ...] = ()

    def holds(self, machine: object) -> bool:
        return all(precondition(machine) for precondition in self.preconditions)

    def draw(self, rng: random.Random) -> Step:
        return Step(self, {name: draw(rng) for name, draw in self.arguments})


@dataclass(frozen=True)
class Step:
    """One rule call of an example, with the arguments drawn for it: a script is a list of them."""

    rule: SwarmRule
    arguments: dict[str, object]

    def run(self, machine: object) -> None:
        self.rule.function(machine, **self.arguments)


@dataclass(frozen=True)
class SwarmRules:
    """Everything the swarm calls on a machine class: initialize rules, rules, invariants."""

    initializers: tuple[SwarmRule, ...]
    rules: tuple[SwarmRule, ...]
    invariants: tuple[SwarmRule, ...]

    def names(self) -> dict[str, tuple[str, ...]]:
        """Rule name -> its argument names, initialize rules included."""
        return {r.name: tuple(n for n, _ in r.arguments) for r in self.initializers + self.rules}


def swarm_rules(
    machine_class: type[RuleBasedStateMachine],
    overrides: Mapping[tuple[str, str], Draw] = ARGUMENT_DRAWS,
) -> SwarmRules:
    """The machine's rules with a draw for every argument; UnknownStrategy if one has none."""
    state = machine_class.setup_state()

    def translated(rule: Any) -> SwarmRule:
        name = rule.function.__name__
        if rule.bundles or rule.targets:
            raise UnknownStrategy(f"rule {name} uses bundles, which the swarm engine cannot draw")
        arguments: list[tuple[str, Draw]] = []
        for argument, strategy in sorted(rule.arguments.items()):
            draw = overrides.get((name, argument)) or draw_for(strategy)
            if draw is None:
                raise UnknownStrategy(
                    f"rule {name}'s argument {argument} is drawn from {strategy!r}, which the "
                    f"swarm engine cannot translate: add a draw for ({name!r}, {argument!r}) "
                    "to ARGUMENT_DRAWS in harness/swarm.py"
                )
            arguments.append((argument, draw))
        simpler = tuple(
            (argument, simpler_for(s)) for argument, s in sorted(rule.arguments.items())
        )
        return SwarmRule(
            name, rule.function, tuple(rule.preconditions), tuple(arguments), simpler=simpler
        )

    invariants = tuple(
        SwarmRule(
            inv.function.__name__,
            inv.function,
            tuple(inv.preconditions),
            (),
            during_init=inv.check_during_init,
        )
        for inv in state.invariants
    )
    # Hypothesis's own order (by name), so a draw picks the same rule on every platform.
    by_name = sorted(state.rules, key=lambda rule: rule.function.__name__)
    return SwarmRules(
        initializers=tuple(translated(r) for r in state.initializers),
        rules=tuple(translated(r) for r in by_name),
        invariants=invariants,
    )


def example_seed(run_seed: int, example: int) -> int:
    """The seed of example number `example` of a run seeded `run_seed` (stable across platforms)."""
    text = f"kafka-verify swarm {run_seed} {example}".encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


# A rule shrink without a budget (`shrink_budget_s=None`) still ends: it is a finite sweep.
SHRINK_FOREVER_S = 3_600.0
# How many random picks a step tries before listing the rules whose preconditions hold.
PICK_TRIES = 8


def run_example(
    machine: ClusterMachine,
    rules: SwarmRules,
    rng: random.Random,
    max_steps: int,
    script: list[Step] | None = None,
) -> None:
    """One example on a fresh machine: its initialize rules, rules until the drawn length (or
    `max_steps`) is spent, then its teardown (the liveness phase). PropertyViolated on a failure;
    the rules called so far (`script`, filled as they run) are then the failing script.

    As under Hypothesis, `max_steps` counts the initialize rules, and the teardown runs
    whatever happened (the machine's teardown does nothing after a failure)."""
    pending = list(rules.initializers)
    initial = [pending.pop(rng.randrange(len(pending))).draw(rng) for _ in rules.initializers]
    enabled = _enabled_rules(rules.rules, rng)

    def choose() -> Step | None:
        rule = _pick(machine, enabled, rng) or _pick(machine, rules.rules, rng)
        return None if rule is None else rule.draw(rng)

    _drive(machine, rules, initial, choose, max_steps, [] if script is None else script)


def replay_script(
    machine: ClusterMachine,
    rules: SwarmRules,
    script: Sequence[Step],
    liveness: bool = True,
    ran: list[Step] | None = None,
) -> None:
    """Run a recorded script again on a fresh machine, leaving out the rules whose preconditions
    no longer hold (a shortened script changes the states the later rules meet); without
    `liveness`, the teardown's liveness phase is left out too. `ran` is filled with the
    steps that ran, up to a failure."""
    initial = [step for step in script if step.rule in rules.initializers]
    rest = iter([step for step in script if step.rule not in rules.initializers])

    def choose() -> Step | None:
        return next((step for step in rest if step.rule.holds(machine)), None)

    _drive(machine, rules, initial, choose, len(script), [] if ran is None else ran, liveness)


def _drive(
    machine: ClusterMachine,
    rules: SwarmRules,
    initial: Sequence[Step],
    choose: Callable[[], Step | None],
    max_steps: int,
    script: list[Step],
    liveness: bool = True,
) -> None:
    try:
        _check_invariants(machine, rules.invariants, initializing=bool(initial))
        for index, step in enumerate(initial):  # Hypothesis runs them first
            script.append(step)
            step.run(machine)
            _check_invariants(machine, rules.invariants, initializing=index + 1 < len(initial))
        while len(script) < max_steps and not machine.idle:
            chosen = choose()
            if chosen is None:
                break
            script.append(chosen)
            chosen.run(machine)
            _check_invariants(machine, rules.invariants, initializing=False)
    finally:
        if liveness:
            machine.teardown()


def _check_invariants(
    machine: object, invariants: Sequence[SwarmRule], *, initializing: bool
) -> None:
    for invariant in invariants:
        if (invariant.during_init or not initializing) and invariant.holds(machine):
            invariant.function(machine)


def _enabled_rules(rules: Sequence[SwarmRule], rng: random.Random) -> tuple[SwarmRule, ...]:
    """Hypothesis's feature flags: a share drawn per example (0 to 254/255) of the rules is off,
    at least one stays on."""
    p_disabled = rng.randrange(255) / 255
    enabled = tuple(rule for rule in rules if rng.random() >= p_disabled)
    return enabled or (rules[rng.randrange(len(rules))],)


def _pick(machine: object, rules: Sequence[SwarmRule], rng: random.Random) -> SwarmRule | None:
    """A rule uniformly among those of `rules` whose preconditions hold (None if none does)."""
    for _ in range(PICK_TRIES):
        rule = rules[rng.randrange(len(rules))]
        if rule.holds(machine):
            return rule
    valid = [rule for rule in rules if rule.holds(machine)]
    return valid[rng.randrange(len(valid))] if valid else None


@dataclass(frozen=True)
class Failure:
    """A failing script, with the violation it ends in and the events it applied."""

    violation: Violation
    events: list[object]
    script: list[Step]
    # Whether it failed in the liveness phase (the machine's teardown) rather than in a rule.
    in_liveness: bool


def _failure(
    violation: Violation, machine: ClusterMachine | None, script: Sequence[Step]
) -> Failure:
    events = [] if machine is None else list(machine.events)
    return Failure(violation, events, list(script), machine is not None and machine.settling)


def _try_script(
    machine_class: type[ClusterMachine],
    rules: SwarmRules,
    script: Sequence[Step],
    liveness: bool,
) -> Failure | None:
    machine: ClusterMachine | None = None
    ran: list[Step] = []
    try:
        machine = machine_class()
        replay_script(machine, rules, script, liveness, ran)
    except PropertyViolated as failure:
        return _failure(failure.violation, machine, ran)
    except Exception as unexpected:
        violation = Violation("internal-error", f"{type(unexpected).__name__}: {unexpected}")
        return _failure(violation, machine, ran)
    return None


def shrink_script(
    machine_class: type[ClusterMachine], rules: SwarmRules, found: Failure, budget_s: float
) -> Failure:
    """Delete rules from a failing script, and simplify their arguments, while the same property
    still fails, in fewer rules (or as many, and no more events).

    The swarm's counterpart of Hypothesis's shrinking of rule choices: a nemesis rule is
    dozens of events, so whole rules go first (chunks of half the script, a quarter, ...
    down to single rules, from the end), then each rule's arguments are tried at simpler
    values (fewer rounds, the first partition, no lost writes), and the event shrinker then
    works on the events of a much shorter run. Each try replays the script on a fresh
    machine (the initialize rules always kept), with the liveness phase only if that is
    where the failure was found; deterministic until the budget runs out.
    """
    search = _ScriptSearch(machine_class, rules, found, time.perf_counter() + budget_s)
    while not search.expired():
        before = (len(search.best.script), len(search.best.events))
        search.delete_rules()
        search.simplify_arguments()
        if (len(search.best.script), len(search.best.events)) == before:
            break
    return search.best


@dataclass
class _ScriptSearch:
    machine_class: type[ClusterMachine]
    rules: SwarmRules
    best: Failure
    deadline: float

    def expired(self) -> bool:
        return time.perf_counter() >= self.deadline

    def _keep_if_failing(self, candidate: list[Step]) -> None:
        if candidate == self.best.script:
            return
        tried = _try_script(self.machine_class, self.rules, candidate, self.best.in_liveness)
        if (
            tried is not None
            and tried.violation.property == self.best.violation.property
            and (len(tried.script), len(tried.events))
            <= (len(self.best.script), len(self.best.events))
        ):
            self.best = tried

    def delete_rules(self) -> None:
        chunk = max(1, len(self.best.script) // 2)
        while chunk >= 1 and not self.expired():
            start = len(self.best.script) - chunk
            while start >= 0 and not self.expired():
                self._keep_if_failing(
                    [
                        step
                        for index, step in enumerate(self.best.script)
                        if not start <= index < start + chunk
                        or step.rule in self.rules.initializers
                    ]
                )
                start -= chunk
            chunk //= 2

    def simplify_arguments(self) -> None:
        for index in range(len(self.best.script) - 1, -1, -1):
            if index >= len(self.best.script):
                continue  # a simpler argument let the failure come sooner
            step = self.best.script[index]
            if step.rule in self.rules.initializers:
                continue
            script = self.best.script
            options = [
                (argument, value)
                for argument, simpler in step.rule.simpler
                for value in simpler(step.arguments[argument])
            ]
            for argument, value in options:
                if self.expired():
                    return
                replaced = Step(step.rule, {**step.arguments, argument: value})
                self._keep_if_failing([*script[:index], replaced, *script[index + 1 :]])
                if self.best.script is not script:
                    break  # kept: the script (and what stands at this index) has changed


@dataclass
class SwarmResult(CampaignResult):
    """A campaign result, with the run seed and, after a failure, the failing example."""

    seed: int = 0
    failing_example: int | None = None
    failing_example_seed: int | None = None


def run_swarm(
    config: ClusterConfig,
    profile: Profile,
    *,
    seed: int | None = None,
    examples: int | None = None,
    steps: int | None = None,
    on_example: Callable[[Recorder], None] | None = None,
    shrink_budget_s: float | None = 120.0,
    event_shrink_budget_s: float = 20.0,
    budget_s: float | None = None,
    first_example: int = 0,
    config_swarm: bool = False,
    swarm_axes: frozenset[str] | None = None,
) -> SwarmResult:
    """Run seeded examples until a property fails, the examples are done or `budget_s` is spent.

    Examples `first_example`, `first_example + 1`, ... of the run `seed` (None: 0 under a
    derandomized profile, else a fresh one) are run; `examples` defaults to the profile's,
    and `steps` (rules per example at most) too. With `budget_s`, no example starts once
    that many seconds have passed, and `examples` (if given) still caps the run. A failure
    is shrunk as `run_campaign` shrinks one: rules first (`shrink_script`, within
    `shrink_budget_s`), then events (`harness/shrink.py`, within `event_shrink_budget_s`).
    """
    if seed is None:
        seed = 0 if profile.derandomize else random.SystemRandom().randrange(2**32)
    count = examples if examples is not None else (None if budget_s else profile.examples)
    max_steps = steps if steps is not None else profile.steps
    recorder = Recorder(on_example=on_example)
    machine_class = make_machine(config, recorder, config_swarm=config_swarm, swarm_axes=swarm_axes)
    rules = swarm_rules(machine_class)
    started = time.perf_counter()
    recorder.started = started
    violation: Violation | None = None
    events: list[object] = []
    failing: int | None = None
    in_liveness = False
    failed_config = config
    number = first_example
    while count is None or number < first_example + count:
        if budget_s is not None and time.perf_counter() - started >= budget_s:
            break
        machine: ClusterMachine | None = None
        script: list[Step] = []
        try:
            machine = machine_class()  # checks the initial state: a failure is possible already
            rng = random.Random(example_seed(seed, number))
            run_example(machine, rules, rng, max_steps, script)
        except PropertyViolated as failure:
            violation = failure.violation
            events = list(recorder.failure_events)
            in_liveness = machine is not None and machine.settling
        except Exception as unexpected:  # an error of the harness itself is a finding too
            violation = Violation(
                property="internal-error",
                message=f"{type(unexpected).__name__}: {unexpected}",
                details=(("traceback", traceback.format_exc(limit=8)),),
            )
            events = [] if machine is None else list(machine.events)
            recorder.first_failure_seconds = time.perf_counter() - started
            recorder.first_failure_at_step = recorder.steps
        if violation is not None:
            failing = number
            # The failing example's own cluster (an initialize rule may draw one per example).
            if machine is not None:
                failed_config = machine.checker.config
            break
        number += 1
    if violation is not None and shrink_budget_s != 0:
        # Shrinking tries run on a recorder of their own: the run's totals are its search.
        shrinking = make_machine(
            config, Recorder(), config_swarm=config_swarm, swarm_axes=swarm_axes
        )
        found = Failure(violation, events, script, in_liveness)
        smaller = shrink_script(shrinking, rules, found, shrink_budget_s or SHRINK_FOREVER_S)
        violation, events = smaller.violation, smaller.events
    if violation is not None and event_shrink_budget_s > 0:
        violation, events = shrink_failure(failed_config, violation, events, event_shrink_budget_s)
    return SwarmResult(
        config=failed_config,
        seconds=time.perf_counter() - started,
        examples=recorder.examples,
        steps=recorder.steps,
        coverage=dict(recorder.coverage),
        config_draws={name: dict(counts) for name, counts in recorder.config_draws.items()},
        violation=violation,
        events=events,
        seconds_to_detect=recorder.first_failure_seconds,
        seed=seed,
        failing_example=failing,
        failing_example_seed=None if failing is None else example_seed(seed, failing),
    )
