"""Breadth-first search over the symbolic encoding, one whole BFS layer at a time, with numpy.

The transition instances of `model.symbolic` (a guard and an update per
variable for each action family instance) are evaluated on every state of a
layer at once: each state variable is a column of a small-integer matrix, and
each Z3 term is one vectorised numpy operation over the layer. A layer's
successors are packed into exact integer keys, reduced to one canonical
member per class of broker renamings (the renamings `explore.Canonicalizer`
uses), and deduplicated against everything seen with sorted arrays. Per state
that costs a few hundred machine operations in C, where the explicit search
(`model.explore`) spends tens of microseconds of Python.

Rules of this module:
- It answers only what the encoding answers: the encoding is held to
  `model.step` by the tests of `model.symbolic`, and this search to
  `model.explore` by its own tests (the same state counts per layer, with and
  without symmetry, and the same shortest depths). A path found here is
  decoded into model states and replayed action by action on `model.step`
  from the initial state (a step it cannot take is an error, never a
  report); the caller (properties/prove_explicit.py) then confirms the last
  state with the property's Python predicate.
- Keys are exact: each variable's value is packed into its own range (mixed
  radix), and a value outside its range stops the search with an error, so two
  different states never share a key (no fingerprints, no collisions).
- Layers are searched in order, each finished before the next is started;
  within a layer, each chunk of parents' new states is checked before the next
  chunk is expanded. So the first violation found is at the minimal depth, and
  the first violating state of the first violating chunk (in a fixed order) is
  reported: same config, same path.
- No clock, no randomness, no files: a time limit is the caller's.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import z3
from kafka_verify.model.actions import Action
from kafka_verify.model.explore import Canonicalizer, broker_symmetries
from kafka_verify.model.state import Config, State, initial_state
from kafka_verify.model.step import NotAllowed, enabled, step
from kafka_verify.model.symbolic import (
    NONE,
    ROLE_CODES,
    Expr,
    SymState,
    Transition,
    decode,
    fresh_state,
    transitions,
    values_of,
    width,
)

# A column of a layer: one value per state, or one value for every state:
# numpy arrays, or numpy scalars that broadcast (numpy's stubs cannot type the mix).
Column = Any
Violation = Callable[[SymState], Expr]

_PREFIX = "s"
# Keys are packed into signed 64-bit words: each word holds at most this many distinct values.
_WORD_CAPACITY = 1 << 62
# Parent states expanded at a time: large enough for numpy, small enough to stop early.
_CHUNK = 1 << 14


class UnsupportedConfig(ValueError):
    """A configuration this search does not cover (the callers fall back to another engine)."""


class SearchMismatch(RuntimeError):
    """A path of this search that `model.step` does not reproduce: a defect, never a report."""


@dataclass(frozen=True, slots=True)
class LayeredResult:
    """What a layered search found."""

    states: int  # distinct states (symmetry classes) in every layer searched
    layers: tuple[int, ...]  # how many new states each layer held, the initial state's first
    complete: bool  # the whole reachable set was searched
    actions: tuple[Action, ...] | None  # the shortest path to a violation, if one was found
    path: tuple[State, ...] | None  # its states, the initial state first

    @property
    def depth(self) -> int:
        """Index of the deepest layer reached (0: only the initial state)."""
        return len(self.layers) - 1


# One node of a compiled term: an operation on the values of earlier nodes.
_Op = Callable[[list[Column]], Column]


class _Program:
    """Z3 terms compiled once into numpy operations; shared subterms become one node.

    Walking Z3's own term objects costs a call into Z3 per node and layer, so
    the walk is done once, here; a layer then runs plain Python closures over
    numpy columns.
    """

    def __init__(self, names: Sequence[str], bits: int) -> None:
        self.bits = bits
        self.column_of = {f"{_PREFIX}.{n}": j for j, n in enumerate(names)}
        # Each node: its operation and child nodes, or (for a state variable) its column.
        self.nodes: list[tuple[_Op | None, tuple[int, ...], int]] = []
        self._index: dict[int, int] = {}
        # Z3 reuses the id of a term it has freed: every compiled term is kept alive.
        self._terms: list[Expr] = []

    def add(self, term: Expr) -> int:
        """The node computing `term` (compiled on first sight)."""
        key = term.get_id()
        found = self._index.get(key)
        if found is None:
            if term.decl().kind() == z3.Z3_OP_UNINTERPRETED and term.num_args() == 0:
                self.nodes.append((None, (), self.column_of[term.decl().name()]))
            else:
                children = tuple(self.add(child) for child in term.children())
                self.nodes.append((self._op(term), children, -1))
            found = len(self.nodes) - 1
            self._index[key] = found
            self._terms.append(term)
        return found

    def run(self, roots: Sequence[int], columns: list[Column], rows: int) -> list[Column]:
        """The values of `roots` on a layer given as its columns (each at least `rows` long)."""
        values: dict[int, Column] = {}

        def value(node: int) -> Column:
            found = values.get(node)
            if found is None:
                op, children, column = self.nodes[node]
                found = columns[column] if op is None else op([value(c) for c in children])
                values[node] = found
            return found

        results = []
        for root in roots:
            result = value(root)
            results.append(np.broadcast_to(result, (rows,)) if np.ndim(result) == 0 else result)
        return results

    def _op(self, term: Expr) -> _Op:
        kind = term.decl().kind()
        if kind == z3.Z3_OP_BNUM:
            number = np.int16(term.as_signed_long())
            return lambda args: number
        if kind in (z3.Z3_OP_TRUE, z3.Z3_OP_FALSE):
            truth = np.bool_(kind == z3.Z3_OP_TRUE)
            return lambda args: truth
        return self._apply(kind, term)

    def _apply(self, kind: int, term: Expr) -> _Op:
        bits = self.bits
        half, mask = 1 << (bits - 1), (1 << bits) - 1

        def wrap(value: Column) -> Column:
            # A signed bit-vector result, wrapped into the encoding's width as Z3 does.
            return ((np.asarray(value, dtype=np.int16) + half) & mask) - half

        if kind == z3.Z3_OP_AND:
            return lambda args: _reduce(np.logical_and, args)
        if kind == z3.Z3_OP_OR:
            return lambda args: _reduce(np.logical_or, args)
        if kind == z3.Z3_OP_NOT:
            return lambda args: np.logical_not(args[0])
        if kind == z3.Z3_OP_IMPLIES:
            return lambda args: np.logical_or(np.logical_not(args[0]), args[1])
        if kind == z3.Z3_OP_XOR or (kind == z3.Z3_OP_DISTINCT and term.num_args() == 2):
            return lambda args: np.not_equal(args[0], args[1])
        if kind == z3.Z3_OP_DISTINCT:
            return lambda args: _reduce(
                np.logical_and, [np.not_equal(a, b) for a, b in itertools.combinations(args, 2)]
            )
        if kind in (z3.Z3_OP_EQ, z3.Z3_OP_IFF):
            return lambda args: np.equal(args[0], args[1])
        if kind == z3.Z3_OP_ITE:
            return lambda args: np.where(args[0], args[1], args[2])
        signed = _SIGNED.get(kind)
        if signed is not None:
            return lambda args: signed(args[0], args[1])
        unsigned = _UNSIGNED.get(kind)
        if unsigned is not None:
            return lambda args: unsigned(
                np.asarray(args[0], dtype=np.int16) & mask,
                np.asarray(args[1], dtype=np.int16) & mask,
            )
        if kind == z3.Z3_OP_BADD:
            return lambda args: wrap(_reduce(np.add, [np.asarray(a, dtype=np.int16) for a in args]))
        if kind == z3.Z3_OP_BSUB:
            return lambda args: wrap(
                np.subtract(
                    np.asarray(args[0], dtype=np.int16), np.asarray(args[1], dtype=np.int16)
                )
            )
        if kind == z3.Z3_OP_BNEG:
            return lambda args: wrap(np.negative(np.asarray(args[0], dtype=np.int16)))
        raise UnsupportedConfig(f"the layered search cannot evaluate Z3 terms like {term.sexpr()}")


def _reduce(op: np.ufunc, args: Sequence[Column]) -> Column:
    result = args[0]
    for arg in args[1:]:
        result = op(result, arg)
    return result


_SIGNED: dict[int, Callable[[Column, Column], Column]] = {
    z3.Z3_OP_SLEQ: np.less_equal,
    z3.Z3_OP_SLT: np.less,
    z3.Z3_OP_SGEQ: np.greater_equal,
    z3.Z3_OP_SGT: np.greater,
}
_UNSIGNED: dict[int, Callable[[Column, Column], Column]] = {
    z3.Z3_OP_ULEQ: np.less_equal,
    z3.Z3_OP_ULT: np.less,
    z3.Z3_OP_UGEQ: np.greater_equal,
    z3.Z3_OP_UGT: np.greater,
}


def _value_range(name: str, config: Config) -> tuple[int, int]:
    """The least and greatest value a state variable takes (booleans are 0 and 1)."""
    field = name.rsplit(".", 1)[-1]
    if ".isr" in name or name.startswith("running"):
        return (0, 1)
    if field in ("leo", "hw", "flushed", "checkpoint_hw", "log_start"):
        return (0, config.max_log)
    if field == "epoch" or field.startswith("slot"):
        return (-1, config.max_epoch)
    if field == "role":
        return (0, len(ROLE_CODES) - 1)
    if field in ("leader", "controller"):
        return (NONE, config.brokers - 1)
    half = 1 << (width(config) - 1)
    return (-half, half - 1)


class _Packing:
    """Exact integer keys for states: each variable in its own range, mixed radix, 64-bit words."""

    def __init__(self, names: Sequence[str], config: Config) -> None:
        self.low = np.array([_value_range(n, config)[0] for n in names], dtype=np.int64)
        self.high = np.array([_value_range(n, config)[1] for n in names], dtype=np.int64)
        sizes = self.high - self.low + 1
        self.sizes = sizes.tolist()
        # Greedy: consecutive variables share a word while the product of their sizes fits.
        self.words: list[tuple[int, int]] = []
        start, capacity = 0, 1
        for j, size in enumerate(self.sizes):
            if capacity * size > _WORD_CAPACITY:
                self.words.append((start, j))
                start, capacity = j, 1
            capacity *= size
        self.words.append((start, len(names)))

    def check(self, matrix: np.ndarray) -> None:
        if len(matrix) == 0:
            return
        if (matrix.min(axis=0) < self.low).any() or (matrix.max(axis=0) > self.high).any():
            raise SearchMismatch("a state variable left the range its key packs it in")

    def keys(self, matrix: np.ndarray) -> np.ndarray:
        """One key per row: an int64 for a single word, else a row of int64 words."""
        words = []
        for a, b in self.words:
            # Horner's rule, one column at a time (integer matrix products have no BLAS).
            word = np.zeros(len(matrix), dtype=np.int64)
            for j in range(a, b):
                word *= self.sizes[j]
                word += matrix[:, j]
                if self.low[j]:
                    word -= self.low[j]
            words.append(word)
        if len(words) == 1:
            return words[0]
        return np.ascontiguousarray(np.stack(words, axis=1))


def _less(a: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Row-wise: key a before key b (words compared in order)."""
    if a.ndim == 1:
        return np.asarray(a < b)
    less = np.zeros(len(a), dtype=bool)
    tied = np.ones(len(a), dtype=bool)
    for w in range(a.shape[1]):
        less |= tied & (a[:, w] < b[:, w])
        tied &= a[:, w] == b[:, w]
    return less


def _sortable(keys: np.ndarray) -> np.ndarray:
    """Keys as one sortable value per row: multi-word keys viewed as raw bytes."""
    if keys.ndim == 1:
        return keys
    return (
        np.ascontiguousarray(keys).view(np.dtype((np.void, keys.itemsize * keys.shape[1]))).ravel()
    )


class _Renaming:
    """One renaming of brokers as a column permutation plus a table for broker-valued columns."""

    def __init__(self, perm: Sequence[int], names: Sequence[str], config: Config) -> None:
        index = {n: j for j, n in enumerate(names)}
        self.sources = np.array(
            [index[_renamed_name(n, perm, inverse=True)] for n in names], dtype=np.intp
        )
        self.broker_columns = np.array(
            [j for j, n in enumerate(names) if n.rsplit(".", 1)[-1] in ("leader", "controller")],
            dtype=np.intp,
        )
        # Broker ids -1..B-1, shifted by one: table[id + 1] is the renamed id.
        self.table = np.array([NONE, *perm], dtype=np.int8)

    def apply(self, matrix: np.ndarray) -> np.ndarray:
        renamed = matrix[:, self.sources]
        if len(self.broker_columns):
            ids = renamed[:, self.broker_columns]
            renamed[:, self.broker_columns] = self.table[ids + 1]
        return renamed


def _renamed_name(name: str, perm: Sequence[int], inverse: bool) -> str:
    """The variable that broker renaming `perm` moves `name` to (or from, with `inverse`)."""
    target = {old: new for old, new in enumerate(perm)}
    if inverse:
        target = {new: old for old, new in target.items()}
    parts = name.split(".")
    out = []
    for part in parts:
        for prefix in ("b", "isr", "running"):
            digits = part[len(prefix) :]
            if part.startswith(prefix) and digits.isdigit():
                part = f"{prefix}{target[int(digits)]}"
                break
        out.append(part)
    return ".".join(out)


def _symmetries(config: Config) -> tuple[tuple[int, ...], ...]:
    """The renamings `explore.Canonicalizer` merges: those that keep the controller where it is."""
    perms = broker_symmetries(config)
    if config.explore_controller:
        raise UnsupportedConfig("the layered search does not model controller failover")
    controller = initial_state(config).controller
    return tuple(p for p in perms if controller is None or p[controller] == controller)


class LayeredSearch:
    """The compiled search for one config: transition instances and packing, built once."""

    def __init__(self, config: Config, symmetry: bool = True) -> None:
        if config.explore_groups or config.groups:
            raise UnsupportedConfig("the layered search covers replication, not consumer groups")
        if config.explore_controller:
            raise UnsupportedConfig("the layered search does not model controller failover")
        self.config = config
        self.sym = fresh_state(config, _PREFIX)
        self.names = list(self.sym.vars)
        self.column_of = {n: j for j, n in enumerate(self.names)}
        self.bits = width(config)
        self.bool_columns = frozenset(
            j for j, n in enumerate(self.names) if z3.is_bool(self.sym.vars[n])
        )
        self.program = _Program(self.names, self.bits)
        instances: list[Transition] = transitions(self.sym)
        self.guards = [self.program.add(i.guard) for i in instances]
        # Per instance: the columns it changes and the nodes of their new values.
        self.updates = [
            (
                [self.column_of[n] for n in i.updates],
                [self.program.add(term) for term in i.updates.values()],
            )
            for i in instances
        ]
        self.packing = _Packing(self.names, config)
        perms = _symmetries(config) if symmetry else (tuple(range(config.brokers)),)
        self.renamings = [_Renaming(p, self.names, config) for p in perms[1:]]
        self.symmetry = symmetry
        values = values_of(initial_state(config), config)
        self.start = np.array([[int(values[n]) for n in self.names]], dtype=np.int8)

    def _columns(self, matrix: np.ndarray) -> list[Column]:
        return [
            matrix[:, j].astype(bool) if j in self.bool_columns else matrix[:, j]
            for j in range(len(self.names))
        ]

    def canonical(self, matrix: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Each row replaced by the member of its class with the least key, and those keys."""
        keys = self.packing.keys(matrix)
        best = matrix
        # Every renaming is applied to the rows as given: the class is the orbit of each row.
        for renaming in self.renamings:
            other = renaming.apply(matrix)
            other_keys = self.packing.keys(other)
            smaller = _less(other_keys, keys)
            if smaller.any():
                best = np.where(smaller[:, None], other, best)
                keys = np.where(smaller[:, None] if keys.ndim == 2 else smaller, other_keys, keys)
        return best, _sortable(keys)

    def successors(self, layer: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Every successor of every row (instance by instance), and the row each came from."""
        guards = self.program.run(self.guards, self._columns(layer), len(layer))
        blocks: list[np.ndarray] = []
        origins: list[np.ndarray] = []
        rows = np.arange(len(layer))
        for guard, (targets, roots) in zip(guards, self.updates):
            if not guard.any():
                continue
            chosen = layer[guard]
            values = self.program.run(roots, self._columns(chosen), len(chosen))
            updated = chosen.copy()
            for column, value in zip(targets, values):
                updated[:, column] = value
            blocks.append(updated)
            origins.append(rows[guard])
        if not blocks:
            return layer[:0], rows[:0]
        return np.concatenate(blocks), np.concatenate(origins)

    def violating(self, layer: np.ndarray, root: int) -> np.ndarray:
        """Which rows break the property compiled at node `root`."""
        return np.asarray(self.program.run([root], self._columns(layer), len(layer))[0], dtype=bool)

    def run(
        self,
        breaks: Violation | None,
        max_depth: int | None = None,
        max_states: int | None = None,
    ) -> LayeredResult:
        """Layer by layer from the initial state, until a violation, the depth, the state cap
        (checked after each layer), or the end.

        A layer is built from its parents a chunk at a time, and each chunk's new
        states are checked before the next chunk is expanded: the search stops
        inside the first violating layer, at the first violating chunk.
        """
        root = None if breaks is None else self.program.add(breaks(self.sym))
        start, start_keys = self.canonical(self.start)
        seen = np.sort(start_keys)
        layers: list[np.ndarray] = [start]
        parents: list[np.ndarray] = [np.zeros(1, dtype=np.intp)]
        if root is not None and self.violating(start, root).any():
            return self._found(layers, parents, 0)
        total = 1
        while len(layers[-1]) and (max_depth is None or len(layers) <= max_depth):
            if max_states is not None and total >= max_states:
                break
            frontier = layers[-1]
            # The states of the new layer so far: chunks of rows, parents and sorted keys.
            rows: list[np.ndarray] = []
            origins: list[np.ndarray] = []
            layer_keys = seen[:0]
            for offset in range(0, len(frontier), _CHUNK):
                successors, born = self.successors(frontier[offset : offset + _CHUNK])
                self.packing.check(successors)
                successors, keys = self.canonical(successors)
                # The first occurrence of each key, in generation order (deterministic).
                keys, first = np.unique(keys, return_index=True)
                fresh = ~(_member(keys, seen) | _member(keys, layer_keys))
                order = np.sort(first[fresh])
                rows.append(successors[order])
                origins.append(born[order] + offset)
                layer_keys = np.sort(np.concatenate([layer_keys, keys[fresh]]))
                if root is not None and len(order):
                    bad = self.violating(rows[-1], root)
                    if bad.any():
                        before = sum(len(r) for r in rows[:-1])
                        layers.append(np.concatenate(rows))
                        parents.append(np.concatenate(origins))
                        return self._found(layers, parents, before + int(np.argmax(bad)))
            layers.append(np.concatenate(rows) if rows else frontier[:0])
            parents.append(np.concatenate(origins) if origins else np.zeros(0, dtype=np.intp))
            seen = np.sort(np.concatenate([seen, layer_keys]))
            total += len(layers[-1])
        complete = len(layers[-1]) == 0
        if complete:
            layers.pop()
        counts = tuple(len(layer) for layer in layers)
        return LayeredResult(sum(counts), counts, complete, None, None)

    def _found(
        self, layers: list[np.ndarray], parents: list[np.ndarray], row: int
    ) -> LayeredResult:
        rows = [row]
        for depth in range(len(layers) - 1, 0, -1):
            rows.append(int(parents[depth][rows[-1]]))
        rows.reverse()
        decoded = [self.decode_row(layers[d][r]) for d, r in enumerate(rows)]
        actions, path = self.replay(decoded)
        counts = tuple(len(layer) for layer in layers)
        return LayeredResult(sum(counts), counts, False, actions, path)

    def decode_row(self, row: np.ndarray) -> State:
        """The model state a row of a layer stands for."""
        solver = z3.Solver()
        for name, value in zip(self.names, row.tolist()):
            var = self.sym.vars[name]
            solver.add(var == (bool(value) if z3.is_bool(var) else value))
        if solver.check() != z3.sat:
            raise SearchMismatch("a row of the search is not a state of the encoding")
        return decode(self.sym, solver.model())

    def replay(self, classes: Sequence[State]) -> tuple[tuple[Action, ...], tuple[State, ...]]:
        """A real model path through the symmetry classes of `classes`, replayed on `step`.

        Each class member in `classes` is a renaming of the state the path really
        reaches; the path takes, from the state it is in, the first enabled action
        whose successor is in the next class.
        """
        canon = Canonicalizer(self.config) if self.symmetry else None

        def key(state: State) -> object:
            return canon.key(state) if canon is not None else state

        current = initial_state(self.config)
        if key(current) != key(classes[0]):
            raise SearchMismatch("the search's path does not start at the initial state")
        actions: list[Action] = []
        states = [current]
        for target in classes[1:]:
            wanted = key(target)
            for action in enabled(current, self.config):
                try:
                    following = step(current, action, self.config)
                except NotAllowed:
                    continue
                if key(following) == wanted:
                    break
            else:
                raise SearchMismatch(
                    f"no enabled model action leads from {current!r} to {target!r}"
                )
            actions.append(action)
            states.append(following)
            current = following
        return tuple(actions), tuple(states)


def _member(keys: np.ndarray, sorted_seen: np.ndarray) -> np.ndarray:
    """Which of `keys` occur in the sorted array `sorted_seen`."""
    if len(sorted_seen) == 0:
        return np.zeros(len(keys), dtype=bool)
    at = np.searchsorted(sorted_seen, keys)
    at[at == len(sorted_seen)] = 0
    return np.asarray(sorted_seen[at] == keys)


def layered_search(
    config: Config,
    breaks: Violation | None = None,
    max_depth: int | None = None,
    symmetry: bool = True,
    max_states: int | None = None,
) -> LayeredResult:
    """Breadth-first search of the encoding from the initial state (see the module docstring)."""
    return LayeredSearch(config, symmetry).run(breaks, max_depth, max_states)
