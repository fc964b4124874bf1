"""`kafka-verify bench`: how fast the reference cluster runs, bare and fully checked.

One long schedule is generated once (seeded, so every run measures the same
work) and then replayed bare (the impl alone) and checked (impl, refinement,
every ALWAYS property and the history checkers). Checking is incremental, so
checked throughput late in a long history should match that early on:
`late_over_early` compares windows near 10,000 and near 100 steps.

A replay takes a fraction of a second, and the machine may be shared, so one
replay can be slowed by anything else running. Bare and checked replays
therefore alternate, `REPEATS` of each, and every figure is the best one seen
(the shortest time for a whole replay or for a window): the replay least
disturbed, measured the same way for both.

`engine_steps_per_s` measures the campaign as `kafka-verify run` drives it: the
ci profile's examples on the reference cluster, seed 7, drawn by Hypothesis and
by the swarm (`harness/swarm.py`), alternating, best of `ENGINE_REPEATS`. Their
steps are the same checked events, so the ratio is the cost of drawing them.
`engine_cpu_steps_per_s` gives the same runs' steps per second of CPU time
(`time.process_time`), which other work on a shared machine disturbs less.

`bench --prove` measures the prover alone (`run_prove_bench`): each engine
and the portfolio on the deep design bugs, and proofs of the correct protocol.
"""

from __future__ import annotations

import os
import random
import statistics
import time
from typing import Any

from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.harness.runner import Checker
from kafka_verify.impl import events as ev
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.world import World

EARLY_WINDOW = (100, 1_100)
LATE_WINDOW = (10_000, 11_000)
REPEATS = 5


def generate_schedule(config: ClusterConfig, length: int, seed: int = 7) -> list[object]:
    """A long, fault-rich but mostly healthy schedule, chosen by reading the world as it runs."""
    chooser = random.Random(seed)
    world = World(config)
    schedule: list[object] = []
    producers = [f"p{i}" for i in range(config.producers)]
    consumers = [f"c{i}" for i in range(config.consumers)]
    while len(schedule) < length:
        event = _next_event(world, chooser, producers, consumers)
        world.apply(event)  # type: ignore[arg-type]
        schedule.append(event)
    return schedule


def _next_event(
    world: World, chooser: random.Random, producers: list[str], consumers: list[str]
) -> object:
    if world.config.groups:
        group_event = _group_event(world, chooser, consumers)
        if group_event is not None:
            return group_event
    down = [n for n in world.nodes() if not world.is_up(n)]
    roll = chooser.random()
    inflight = world.inflight()
    if roll < 0.55 and inflight:
        return ev.Deliver(inflight[min(len(inflight) - 1, int(chooser.expovariate(1.0)))].id)
    if roll < 0.67:
        return ev.Produce(chooser.choice(producers))
    polling = [c for c in consumers if world.is_up(c)]
    if roll < 0.75 and polling:
        return ev.Poll(chooser.choice(polling))
    if roll < 0.76 and inflight:
        return ev.Drop(chooser.choice(inflight).id)
    if roll < 0.765 and down:
        return ev.Restart(chooser.choice(down))
    if roll < 0.768 and not down:
        brokers = [n for n in world.nodes() if n.startswith("b")]
        return ev.Crash(chooser.choice(brokers), chooser.random() < 0.5)
    return ev.Tick(chooser.choice((10, 50, 100, 250)))


def _group_event(world: World, chooser: random.Random, consumers: list[str]) -> object | None:
    """With consumer groups, consumers subscribe (again after leaving or restarting), commit,
    and now and then leave or crash, so rebalances, commits and coordinator reads are measured too."""
    groups = world.config.groups
    for index, consumer in enumerate(consumers):
        if world.is_up(consumer) and not world.subscribed(consumer) and chooser.random() < 0.05:
            return ev.Subscribe(consumer, f"g{index % groups}", ("t",))
    roll = chooser.random()
    consumer = chooser.choice(consumers)
    if not world.is_up(consumer):
        return ev.Restart(consumer) if roll < 0.01 else None
    if not world.subscribed(consumer):
        return None
    if roll < 0.03:
        return ev.CommitOffsets(consumer)
    if roll < 0.032:
        return ev.Close(consumer)
    if roll < 0.033:
        return ev.Crash(consumer)
    return None


def _timed_replay(config: ClusterConfig, schedule: list[object], check: bool) -> list[float]:
    """Cumulative seconds after each step."""
    checker = Checker(config, check=check)
    stamps: list[float] = []
    started = time.perf_counter()
    for event in schedule:
        violations = checker.apply_unrecorded(event)
        if violations:
            raise AssertionError(
                f"the benchmark schedule violated {violations[0].property}: {violations[0].message}"
            )
        stamps.append(time.perf_counter() - started)
    return stamps


def _rate(stamps: list[float], window: tuple[int, int]) -> float:
    start, end = window
    end = min(end, len(stamps) - 1)
    return (end - start) / max(stamps[end] - stamps[start], 1e-9)


def run_bench(steps: int = 12_000) -> dict[str, Any]:
    """The replication cluster's figures at top level, the reference cluster's (with consumer
    groups) under `with_groups`, and the prover's under `prove`."""
    figures = _throughput(ClusterConfig(), steps)
    figures["with_groups"] = _throughput(reference_cluster(), steps)
    figures["engine_steps_per_s"], figures["engine_cpu_steps_per_s"] = _engine_figures(
        ENGINE_EXAMPLES, ENGINE_REPEATS
    )
    figures["prove"] = _prove_figures()
    return figures


def _throughput(config: ClusterConfig, steps: int, repeats: int = REPEATS) -> dict[str, Any]:
    steps = max(steps, LATE_WINDOW[1] + 1)
    schedule = generate_schedule(config, steps)
    bare: list[list[float]] = []
    checked: list[list[float]] = []
    for _ in range(repeats):  # alternating, so both see the same machine
        bare.append(_timed_replay(config, schedule, check=False))
        checked.append(_timed_replay(config, schedule, check=True))
    bare_rate = max(len(stamps) / stamps[-1] for stamps in bare)
    checked_rate = max(len(stamps) / stamps[-1] for stamps in checked)
    figures: dict[str, Any] = {
        "steps": len(schedule),
        "repeats": repeats,
        "bare_steps_per_s": round(bare_rate, 1),
        "checked_steps_per_s": round(checked_rate, 1),
        "overhead_ratio": round(bare_rate / checked_rate, 3),
        "early_checked_steps_per_s": round(max(_rate(s, EARLY_WINDOW) for s in checked), 1),
        "late_checked_steps_per_s": round(max(_rate(s, LATE_WINDOW) for s in checked), 1),
    }
    figures["late_over_early"] = round(
        figures["late_checked_steps_per_s"] / figures["early_checked_steps_per_s"], 3
    )
    return figures


ENGINE_EXAMPLES = 50
ENGINE_REPEATS = 2


def engine_throughput(
    examples: int = ENGINE_EXAMPLES, repeats: int = ENGINE_REPEATS
) -> dict[str, float]:
    """Checked steps per second of `run --profile ci --seed 7` with each engine (the best of
    `repeats` alternating runs of `examples` examples), and the swarm's over Hypothesis's."""
    return _engine_figures(examples, repeats)[0]


def _engine_figures(examples: int, repeats: int) -> tuple[dict[str, float], dict[str, float]]:
    """`engine_throughput`'s figures by the wall clock, and the same runs' by CPU time."""
    from kafka_verify.harness.campaign import run_campaign
    from kafka_verify.harness.profiles import PROFILES
    from kafka_verify.harness.swarm import run_swarm

    config = reference_cluster()
    profile = PROFILES["ci"]
    rates: dict[str, float] = {"hypothesis": 0.0, "swarm": 0.0}
    cpu_rates: dict[str, float] = {"hypothesis": 0.0, "swarm": 0.0}
    for _ in range(repeats):
        for name, campaign in (("hypothesis", run_campaign), ("swarm", run_swarm)):
            cpu_started = time.process_time()
            result = campaign(config, profile, seed=7, examples=examples)
            cpu_s = time.process_time() - cpu_started
            if result.violation is not None:
                raise AssertionError(f"the {name} engine found {result.violation.property}")
            rates[name] = max(rates[name], result.steps / result.seconds)
            cpu_rates[name] = max(cpu_rates[name], result.steps / max(cpu_s, 1e-9))
    return _engine_rates(rates), _engine_rates(cpu_rates)


def _engine_rates(rates: dict[str, float]) -> dict[str, float]:
    return {
        "hypothesis": round(rates["hypothesis"], 1),
        "swarm": round(rates["swarm"], 1),
        "swarm_over_hypothesis": round(rates["swarm"] / rates["hypothesis"], 2),
    }


PROVE_BENCH_DEPTH = 6
# The three deep design bugs, each with the property it breaks and its minimal depth.
PROVE_VARIANTS = ("truncate-to-hw", "epoch-end-offset-hole", "no-fetch-epoch-fencing")
PROVE_VARIANT_TIMEOUT_S = 600.0
PROVE_REPEATS = 5


def run_prove_bench() -> dict[str, Any]:
    """`kafka-verify bench --prove`: the prover's figures alone.

    For each deep variant, the time to its minimal counterexample of
    log-agreement by the portfolio and by each engine alone (each in its own
    process, as `kafka-verify prove` runs them), and the time to prove the
    correct protocol at the default bounds and at 4 brokers, 3 log slots and
    4 epochs. The machine may be shared: the portfolio and the layered search
    (a few seconds each) run `PROVE_REPEATS` times and report the median and
    every run; the slow engines (bfs, bmc) run once.
    """
    from kafka_verify.properties.prove import DEFAULT_DEPTH, default_config, prove_timings
    from kafka_verify.properties.prove_portfolio import ALL_ENGINES, ENGINES, portfolio

    figures: dict[str, Any] = {"cores": os.cpu_count()}
    for bug in PROVE_VARIANTS:
        config = default_config(frozenset({bug}))
        entry: dict[str, Any] = {}
        for label, engines in (("portfolio", ENGINES), *((e, (e,)) for e in ALL_ENGINES)):
            repeats = PROVE_REPEATS if label in ("portfolio", "layered") else 1
            runs = [
                portfolio("log-agreement", config, DEFAULT_DEPTH, PROVE_VARIANT_TIMEOUT_S, engines)
                for _ in range(repeats)
            ]
            result = runs[-1]
            entry[label] = {
                "status": result.status,
                "depth": result.depth,
                "seconds": round(statistics.median(r.seconds for r in runs), 3),
                "runs_s": [round(r.seconds, 3) for r in runs],
                "engines": sorted({r.engine for r in runs}),
                "engine": result.engine,
            }
        figures[bug] = entry
    for label, config in (
        ("correct_default", default_config()),
        ("correct_brokers_4_log_3_epochs_4", default_config(brokers=4, max_log=3, max_epoch=4)),
    ):
        timings = prove_timings(PROVE_BENCH_DEPTH, PROVE_VARIANT_TIMEOUT_S, config)
        figures[label] = {
            "prove_total_s": timings["prove_total_s"],
            "prove_proved": timings["prove_proved"],
            "properties": len(timings) - 2,
        }
    return figures


def _prove_figures() -> dict[str, Any]:
    """Z3 proof times on the correct model (default and larger bounds), and the time to find a
    seeded design bug."""
    from kafka_verify.model.state import Config
    from kafka_verify.properties.prove import default_config, prove, prove_timings

    figures: dict[str, Any] = {"depth": PROVE_BENCH_DEPTH}
    figures.update(prove_timings(depth=PROVE_BENCH_DEPTH, timeout_s=120))
    larger = prove_timings(PROVE_BENCH_DEPTH, 120, default_config(brokers=4, max_log=3))
    figures["brokers_4_log_3"] = {
        "prove_total_s": larger["prove_total_s"],
        "prove_proved": larger["prove_proved"],
    }
    buggy: Config = default_config(frozenset({"truncate-to-hw"}))
    started = time.perf_counter()
    result = prove("log-agreement", buggy, depth=8, timeout_s=120)
    figures["find_truncate_to_hw_s"] = round(time.perf_counter() - started, 3)
    figures["find_truncate_to_hw_depth"] = result.depth
    return figures
