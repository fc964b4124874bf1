"""A portfolio of the prover's engines: each in a process of its own, the first definitive answer wins.

Rules of this module:
- The engines are "layered" and "bfs" (properties/prove_explicit.py:
  breadth-first search reduced by broker symmetry, whole layers in numpy or
  one state at a time in Python) and "bmc" (properties/prove.py: Z3 induction
  and bounded model checking). The portfolio races "layered" and "bmc" (one
  per core on two cores); "bfs" is the slower ground truth, run on request.
  At most one process per core runs at a time.
- A definitive answer is a proof, or a counterexample. Every engine only
  reports a counterexample once nothing shorter exists (a BFS searched every
  shorter path; BMC found none below it), so the first one is minimal. A
  bounded or unknown answer waits for the other engines.
- An engine's process sends back JSON, never pickled objects: the status, the
  figures and its path as the index of each action among those `enabled`
  offers at that state. The path is replayed here on `model.step` and the
  property's Python predicate must confirm the last state; nothing an engine
  says is trusted on its word.
- Z3's inductive invariant of a config comes back with an answer and is kept
  here, so the engines started for the next property inherit it.
- Once an answer is in, or the time is up, the engines still running are
  stopped (only the processes started here).
"""

from __future__ import annotations

import json
import multiprocessing
import os
import time
from collections.abc import Sequence
from multiprocessing.connection import Connection, wait
from typing import Any

from kafka_verify.model.actions import Action
from kafka_verify.model.state import Config, initial_state
from kafka_verify.model.step import enabled, step
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.prove import (
    BOUNDED,
    PROVED,
    UNKNOWN,
    VIOLATED,
    EncodingMismatch,
    ProofResult,
    known_invariant,
    prove,
    remember_invariant,
)
from kafka_verify.properties.prove_explicit import LAYERED, layered, search

# What the portfolio races by default, and every engine `--engine` may name.
ENGINES = (LAYERED, "bmc")
ALL_ENGINES = (LAYERED, "bfs", "bmc")
# How much lower the priority of the engines that yield the CPU while racing is.
_YIELD_NICENESS = 10
# Time an engine's process gets after the deadline to send the answer it has reached.
_GRACE_S = 2.0


def run_engine(
    name: str, engine: str, config: Config, depth: int, timeout_s: float, racing: bool = False
) -> ProofResult:
    """One engine, in this process (the explicit search has no time limit of its own).

    When `racing` (other engines run beside it), Z3's bounded model checking and the
    one-state-at-a-time search run niced: on a machine with fewer free cores than
    engines, the layered search, which answers every design bug first, keeps the CPU.
    Z3's proof attempts (the inductive invariant) keep their priority: they answer the
    fixed protocol, where no search can.
    """
    if engine == "bmc":
        return prove(
            name, config, depth=depth, timeout_s=timeout_s, before_bmc=_yield if racing else None
        )
    if engine == "bfs":
        if racing:
            _yield()
        return search(name, config, depth)
    if engine == LAYERED:
        return layered(name, config, depth)
    raise ValueError(f"unknown engine {engine!r}: the engines are {', '.join(ALL_ENGINES)}")


def portfolio(
    name: str,
    config: Config,
    depth: int,
    timeout_s: float,
    engines: Sequence[str] = ENGINES,
    workers: int | None = None,
) -> ProofResult:
    """Race `engines` on property `name`; the first proof or counterexample, else the best answer."""
    started = time.perf_counter()
    deadline = started + timeout_s
    workers = workers or max(1, min(len(engines), os.cpu_count() or 1))
    # Fork where there is one: the engines start at once, with the model already imported.
    forks = "fork" in multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("fork") if forks else multiprocessing.get_context("spawn")
    pending = list(engines)
    running: dict[Connection, tuple[str, Any]] = {}
    answers: list[ProofResult] = []
    try:
        while pending or running:
            while pending and len(running) < workers:
                engine = pending.pop(0)
                receiver, sender = context.Pipe(duplex=False)
                left = max(0.1, deadline - time.perf_counter())
                process = context.Process(
                    target=_engine_process,
                    args=(sender, name, engine, config, depth, left, len(engines) > 1),
                    daemon=True,
                )
                process.start()
                sender.close()
                running[receiver] = (engine, process)
            left = deadline + _GRACE_S - time.perf_counter()
            if left <= 0:
                break
            for ready in wait(list(running), timeout=left):
                assert isinstance(ready, Connection)
                engine, process = running.pop(ready)
                result = _receive(ready, name, engine, config)
                process.join()
                if result.status in (PROVED, VIOLATED):
                    return _timed(result, started)
                answers.append(result)
    finally:
        for receiver, (_, process) in running.items():
            process.terminate()
            process.join()
            receiver.close()
    return _timed(_best(name, answers, timeout_s), started)


def _yield() -> None:
    if hasattr(os, "nice"):
        os.nice(_YIELD_NICENESS)


def _engine_process(
    sender: Connection,
    name: str,
    engine: str,
    config: Config,
    depth: int,
    timeout_s: float,
    racing: bool,
) -> None:
    """The body of an engine's process: run it, send the answer as JSON."""
    try:
        result = run_engine(name, engine, config, depth, timeout_s, racing)
        payload: dict[str, Any] = {
            "status": result.status,
            "depth": result.depth,
            "seconds": result.seconds,
            "message": result.message,
            "notes": list(result.notes),
            "path": action_indices(result.actions, config),
        }
        invariant = known_invariant(config)
        if invariant is not None and invariant.closed:
            payload["invariant"] = {"names": invariant.names, "dropped": invariant.dropped}
    except Exception as error:  # reported by the parent, which raises it there
        payload = {"error": f"{type(error).__name__}: {error}"}
    sender.send_bytes(json.dumps(payload).encode("utf-8"))
    sender.close()


def _receive(receiver: Connection, name: str, engine: str, config: Config) -> ProofResult:
    try:
        payload = json.loads(receiver.recv_bytes().decode("utf-8"))
    except EOFError:
        message = f"the {engine} engine's process ended without an answer"
        return ProofResult(name, UNKNOWN, 0, 0.0, message=message, engine=engine)
    finally:
        receiver.close()
    if "error" in payload:
        raise RuntimeError(f"the {engine} engine failed on {name}: {payload['error']}")
    if "invariant" in payload:
        # The engines of the next property fork from here and start with it.
        remember_invariant(config, payload["invariant"]["names"], payload["invariant"]["dropped"])
    actions = replay_indices(payload["path"], config)
    if payload["status"] == VIOLATED:
        _confirm(name, engine, config, actions)
    return ProofResult(
        name,
        payload["status"],
        int(payload["depth"]),
        float(payload["seconds"]),
        actions,
        str(payload["message"]),
        tuple(payload["notes"]),
        engine=engine,
    )


def _confirm(name: str, engine: str, config: Config, actions: tuple[Action, ...]) -> None:
    state = initial_state(config)
    for action in actions:
        state = step(state, action, config)
    if not STATE_PROPERTIES[name](state, config):
        raise EncodingMismatch(
            f"the {engine} counterexample for {name} does not replay to a violation"
        )


def action_indices(actions: Sequence[Action], config: Config) -> list[int]:
    """A path as the index of each action among those `enabled` yields at its state."""
    state = initial_state(config)
    indices = []
    for action in actions:
        indices.append(list(enabled(state, config)).index(action))
        state = step(state, action, config)
    return indices


def replay_indices(indices: Sequence[int], config: Config) -> tuple[Action, ...]:
    """The actions a path of indices names, each taken with `step` from the initial state."""
    state = initial_state(config)
    actions: list[Action] = []
    for index in indices:
        offered = list(enabled(state, config))
        if not 0 <= index < len(offered):
            raise EncodingMismatch(f"step {len(actions)} names action {index} of {len(offered)}")
        actions.append(offered[index])
        state = step(state, offered[index], config)
    return tuple(actions)


def _best(name: str, answers: list[ProofResult], timeout_s: float) -> ProofResult:
    """No engine was definitive: the deepest bounded answer, else an unknown one."""
    bounded = [a for a in answers if a.status == BOUNDED]
    if bounded:
        return max(bounded, key=lambda a: a.depth)
    if answers:
        return max(answers, key=lambda a: a.depth)
    message = f"no engine answered within {timeout_s:g} s"
    return ProofResult(name, UNKNOWN, 0, timeout_s, message=message, engine="portfolio")


def _timed(result: ProofResult, started: float) -> ProofResult:
    """The answer, with the time the race took (processes included) as its seconds."""
    return ProofResult(
        result.property,
        result.status,
        result.depth,
        time.perf_counter() - started,
        result.actions,
        result.message,
        result.notes,
        result.engine,
    )
