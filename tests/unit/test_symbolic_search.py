"""The layered search (numpy over the symbolic encoding) agrees with `model.explore` and with Z3.

Agreement means the same states per BFS layer (with and without broker
symmetry), the same verdict and the same shortest depth for every property, on
the pinned bounds and on random small configurations; a path it reports is a
real `model.step` path to a state the Python predicate rejects.
"""

from __future__ import annotations

import random

import numpy as np
import pytest
from kafka_verify.model import variants
from kafka_verify.model.actions import (
    BecomeFollower,
    BecomeLeader,
    Crash,
    ElectLeader,
    FollowerReplicate,
    IncHighWatermark,
    LeaderWrite,
    Restart,
    ShrinkIsr,
    Truncate,
)
from kafka_verify.model.explore import explore
from kafka_verify.model.state import Config, Record, State, initial_state
from kafka_verify.model.step import step
from kafka_verify.model.symbolic import ENCODED_VARIANTS, values_of
from kafka_verify.model.symbolic_search import (
    LayeredSearch,
    SearchMismatch,
    UnsupportedConfig,
    layered_search,
)
from kafka_verify.properties.invariants import STATE_PROPERTIES
from kafka_verify.properties.prove import BOUNDED, PROVED, UNKNOWN, VIOLATED, default_config, prove
from kafka_verify.properties.prove_explicit import layered, search
from kafka_verify.properties.symbolic import BREAKS

# The whole reachable space in a fraction of a second (test_explore_symmetry.py pins it too).
THREE = Config(brokers=3, replication=3, min_insync=2, max_log=1, max_epoch=1, durable=True)


def _explored_layers(config: Config, depth: int, symmetry: bool) -> list[int]:
    totals = [explore(config, max_depth=d, symmetry=symmetry).states for d in range(depth + 1)]
    return [b - a for a, b in zip([0, *totals], totals, strict=False)]


def test_the_whole_space_has_the_counts_explicit_search_pins() -> None:
    full = layered_search(THREE, symmetry=False)
    reduced = layered_search(THREE, symmetry=True)
    assert (full.states, full.depth, full.complete) == (55944, 24, True)
    assert (reduced.states, reduced.depth, reduced.complete) == (28319, 24, True)


@pytest.mark.parametrize("symmetry", [False, True])
@pytest.mark.parametrize("bugs", [frozenset(), frozenset({variants.TRUNCATE_TO_HW})])
def test_every_layer_holds_the_states_explicit_search_finds(
    bugs: frozenset[str], symmetry: bool
) -> None:
    config = default_config(bugs)
    found = layered_search(config, max_depth=6, symmetry=symmetry)
    assert list(found.layers) == _explored_layers(config, 6, symmetry)


def test_four_and_five_brokers_merge_every_renaming_of_the_followers() -> None:
    config = default_config(brokers=4)
    reduced = layered_search(config, max_depth=4)
    full = layered_search(config, max_depth=4, symmetry=False)
    assert list(reduced.layers) == _explored_layers(config, 4, symmetry=True)
    assert list(full.layers) == _explored_layers(config, 4, symmetry=False)
    assert reduced.states < full.states <= 6 * reduced.states
    # Five brokers: the 24 renamings of the four that are not the controller.
    five = default_config(brokers=5)
    assert list(layered_search(five, max_depth=3).layers) == _explored_layers(five, 3, True)


def test_non_durable_logs_and_flushes_are_searched_as_explore_does() -> None:
    config = Config(brokers=2, replication=2, min_insync=1, max_log=2, max_epoch=2, durable=False)
    found, explored = layered_search(config), explore(config)
    assert (found.states, found.depth, found.complete) == (85798, 28, True)
    assert (explored.states, explored.depth, explored.complete) == (85798, 28, True)


TRUNCATE_TO_HW_PATH = (
    LeaderWrite(0, 0, 0, -1),
    FollowerReplicate(0, 1, Record(0, 0)),
    FollowerReplicate(0, 2, Record(0, 0)),
    IncHighWatermark(0, 0, 1),
    Crash(1),
    Restart(1),
    Truncate(0, 1, 0, True),
)

EPOCH_END_OFFSET_HOLE_PATH = (
    ElectLeader(0, 1, frozenset({0, 1, 2}), 1),
    BecomeLeader(0, 1, 1, frozenset({0, 1, 2})),
    ElectLeader(0, 0, frozenset({0, 1, 2}), 1),
    LeaderWrite(0, 1, 100, -1),
    BecomeFollower(0, 1, 2, 0),
    LeaderWrite(0, 0, 0, -1),
    BecomeLeader(0, 0, 2, frozenset({0, 1, 2})),
    Truncate(0, 1, 1, True),
    ShrinkIsr(0, 0, frozenset({0, 1})),
    IncHighWatermark(0, 0, 1),
)


@pytest.mark.parametrize(
    ("bug", "states", "layers", "path"),
    [
        (
            variants.TRUNCATE_TO_HW,
            19060,
            (1, 5, 24, 100, 396, 1422, 4533, 12579),
            TRUNCATE_TO_HW_PATH,
        ),
        (
            variants.EPOCH_END_OFFSET_HOLE,
            156452,
            (1, 5, 24, 98, 379, 1326, 4109, 11204, 27051, 58349, 53906),
            EPOCH_END_OFFSET_HOLE_PATH,
        ),
    ],
)
def test_the_shortest_paths_and_counts_are_pinned(
    bug: str, states: int, layers: tuple[int, ...], path: tuple[object, ...]
) -> None:
    config = default_config(frozenset({bug}))
    found = layered_search(config, BREAKS["log-agreement"])
    assert (found.states, found.layers, found.actions) == (states, layers, path)
    assert found.path is not None
    # The path is a real model path: replayed here once more, it ends in a violation.
    state = initial_state(config)
    for action in path:
        state = step(state, action, config)  # type: ignore[arg-type]
    assert state == found.path[-1] and STATE_PROPERTIES["log-agreement"](state, config)
    # Explicit search one state at a time finds the same minimal depth.
    assert search("log-agreement", config).depth == len(path)


def test_the_deepest_variant_is_found_at_depth_13_and_replays() -> None:
    config = default_config(frozenset({variants.NO_FETCH_EPOCH_FENCING}))
    result = layered("log-agreement", config, depth=14)
    assert (result.status, result.depth, result.engine) == (VIOLATED, 13, "layered")
    assert "823448 states" in result.notes[0] and result.notes[0].startswith("minimal:")
    state = initial_state(config)
    for action in result.actions:
        state = step(state, action, config)
    assert STATE_PROPERTIES["log-agreement"](state, config)


def _random_configs(count: int, seed: int) -> list[Config]:
    chooser = random.Random(seed)
    bugs = sorted(ENCODED_VARIANTS)
    configs = []
    for _ in range(count):
        brokers = chooser.choice((2, 3))
        configs.append(
            Config(
                brokers=brokers,
                replication=brokers,
                min_insync=chooser.choice((1, 2)),
                bugs=frozenset(chooser.sample(bugs, chooser.choice((0, 1, 1, 2)))),
                max_log=chooser.choice((1, 2)),
                max_epoch=chooser.choice((1, 2)),
                durable=True,
            )
        )
    return configs


def _name(config: Config) -> str:
    bugs = "+".join(sorted(config.bugs)) or "correct"
    return f"{bugs}-b{config.brokers}-l{config.max_log}-e{config.max_epoch}-isr{config.min_insync}"


@pytest.mark.parametrize("config", _random_configs(8, seed=15), ids=_name)
def test_the_search_engines_agree_on_random_small_configurations(config: Config) -> None:
    for name in BREAKS:
        by_layers = layered(name, config, depth=8)
        one_by_one = search(name, config, depth=8)
        assert (by_layers.status, by_layers.depth) == (one_by_one.status, one_by_one.depth), name
        assert by_layers.status in (VIOLATED, PROVED, BOUNDED), name


@pytest.mark.parametrize("config", _random_configs(3, seed=320), ids=_name)
def test_z3_finds_the_same_minimal_depth_as_the_layered_search(config: Config) -> None:
    for name in ("log-agreement", "hw-within-isr"):
        by_layers = layered(name, config, depth=6)
        by_z3 = prove(name, config, depth=6, timeout_s=120)
        if by_layers.status == VIOLATED:
            assert (by_z3.status, by_z3.depth) == (VIOLATED, by_layers.depth), name
        else:
            assert by_z3.status in (PROVED, BOUNDED), name


def test_a_value_outside_its_packed_range_stops_the_search() -> None:
    search_ = LayeredSearch(THREE)
    row = search_.start.copy()
    row[0, search_.names.index("p0.epoch")] = THREE.max_epoch + 1
    with pytest.raises(SearchMismatch, match="range"):
        search_.packing.check(row)


def test_a_path_through_classes_that_no_step_links_is_refused() -> None:
    search_ = LayeredSearch(THREE)
    start = initial_state(THREE)
    # Two crashes in one step: no enabled action leads there.
    both_down = step(step(start, Crash(1), THREE), Crash(2), THREE)
    with pytest.raises(SearchMismatch, match="no enabled model action"):
        search_.replay([start, both_down])
    actions, states = search_.replay([start, step(start, Crash(2), THREE)])
    # Broker 2 crashing is broker 1 crashing, renamed: the path takes the first such action.
    assert len(actions) == 1 and states[-1] in (step(start, Crash(1), THREE),)


def test_configs_outside_the_encoding_are_unknown_not_passed() -> None:
    with_failover = Config(brokers=3, replication=3, durable=True, explore_controller=True)
    with pytest.raises(UnsupportedConfig):
        LayeredSearch(with_failover)
    result = layered("log-agreement", with_failover, depth=3)
    assert result.status == UNKNOWN and "does not cover" in result.message


def test_the_packing_is_exact_and_renaming_keeps_the_class() -> None:
    search_ = LayeredSearch(THREE)
    start = initial_state(THREE)
    one, two = step(start, Crash(1), THREE), step(start, Crash(2), THREE)
    rows = np.array(
        [
            [int(v) for v in _values(search_, state)]
            for state in (start, one, two, step(start, Crash(0), THREE))
        ],
        dtype=np.int8,
    )
    _, keys = search_.canonical(rows)
    assert keys[1] == keys[2] and len({keys[0], keys[1], keys[3]}) == 3


def _values(search_: LayeredSearch, state: State) -> list[int]:
    values = values_of(state, search_.config)
    return [int(values[n]) for n in search_.names]
