"""The shortest counterexample each seeded design bug has in the model, in model actions.

A breadth-first search over `enabled`/`step` finds these lengths, but the deep
ones take minutes (no-fetch-epoch-fencing: about 140 s, about 60 s with symmetry
reduction), far too long to redo
inside every mutation campaign. So the lengths live here as a table, each with
the bounds that produced it, and a test recomputes them with
`shortest_violation_depth` (the slow one under the `slow` mark), with and
without symmetry reduction (one state per class of broker renamings, about half
as many states at these bounds, since the controller stays on broker 0).

Rules of this module: the model only. The property being searched for is
passed in as a predicate, since the model does not know the property catalogue.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from dataclasses import dataclass, replace

from kafka_verify.model import variants
from kafka_verify.model.actions import Action
from kafka_verify.model.explore import Canonicalizer, no_cycle_collection
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import enabled, step

# A predicate over one transition (before, action, after): does it break a property?
ViolatingStep = Callable[[State, Action, State], bool]

# The bounds of the public TLA+ specifications (and of `kafka-verify prove`):
# 3 brokers, 1 partition, RF 3, min ISR 2, 2 log slots, epochs up to 3, durable logs.
REPLICATION_BOUNDS = Config(
    brokers=3, partitions=1, replication=3, min_insync=2, max_log=2, max_epoch=3, durable=True
)

# One broker and no writes or crashes, so `enabled` yields group actions only:
# 2 members, 2 partitions, generations up to 3.
GROUP_BOUNDS = Config(
    brokers=1,
    replication=1,
    min_insync=1,
    max_log=0,
    explore_crashes=False,
    groups=1,
    members=2,
    group_partitions=2,
    group_generations=3,
    explore_groups=True,
)


@dataclass(frozen=True, slots=True)
class MinimalLength:
    """A shortest counterexample's length (in model actions), and the bounds it was found at."""

    actions: int
    bounds: Config

    def config(self, bug: str) -> Config:
        """The bounds with `bug` switched on: the search that reproduces this length."""
        return replace(self.bounds, bugs=frozenset({bug}))


# Found by `shortest_violation_depth` with every state, step and group property
# (tests/unit/test_minimal.py recomputes them). Bugs that live only in the broker
# (no model variant), or whose variant the model refuses outright
# (retention-deletes-unreplicated: `step` rejects the deletion), have no entry.
KNOWN_MINIMAL: dict[str, MinimalLength] = {
    variants.STALE_LEADER_ACCEPTS_WRITES: MinimalLength(2, REPLICATION_BOUNDS),
    variants.HW_AHEAD_OF_ISR: MinimalLength(4, REPLICATION_BOUNDS),
    variants.UNCLEAN_ELECTION: MinimalLength(5, REPLICATION_BOUNDS),
    variants.TRUNCATE_TO_HW: MinimalLength(7, REPLICATION_BOUNDS),
    variants.EPOCH_END_OFFSET_HOLE: MinimalLength(10, REPLICATION_BOUNDS),
    variants.NO_FETCH_EPOCH_FENCING: MinimalLength(13, REPLICATION_BOUNDS),
    variants.ZOMBIE_COMMIT: MinimalLength(7, GROUP_BOUNDS),
    variants.DOUBLE_ASSIGNMENT: MinimalLength(7, GROUP_BOUNDS),
}


def minimal_counterexample_length(bug: str) -> int | None:
    """The model's shortest counterexample for `bug`, in actions; None when the model has none."""
    known = KNOWN_MINIMAL.get(bug)
    return None if known is None else known.actions


def shortest_violation_depth(
    config: Config,
    violates: ViolatingStep,
    max_depth: int | None = None,
    symmetry: bool = False,
) -> int | None:
    """Breadth-first search: the fewest actions from the initial state to a violating step.

    Every transition out of a layer is checked before the next layer is
    expanded, so the first violation found is at the minimal depth. None when
    no violation is reachable (within `max_depth`). With `symmetry`, one state
    of each class of broker renamings is expanded (model/explore.py), which
    keeps the depth when `violates` treats brokers alike.
    """
    key_of = Canonicalizer(config).key if symmetry else _itself
    with no_cycle_collection():
        start = initial_state(config)
        depth_of = {key_of(start): 0}
        queue = deque([(start, 0)])
        while queue:
            state, depth = queue.popleft()
            if max_depth is not None and depth >= max_depth:
                continue
            for action in enabled(state, config):
                after = step(state, action, config)
                if violates(state, action, after):
                    return depth + 1
                key = key_of(after)
                if key not in depth_of:
                    depth_of[key] = depth + 1
                    queue.append((after, depth + 1))
        return None


def _itself(state: State) -> object:
    return state
