"""The consumer-group model (`enabled_group_actions` followed by `step_group`) as Z3 formulas.

Rules of this module:
- It encodes exactly what `model.groups` offers and does, for bounded
  configurations: `config.groups` groups, M = `config.members` consumers
  (c0, c1, ...), P = `config.group_partitions` partitions, generations up to
  `config.group_generations` and committed offsets up to `config.group_max_offset`.
  The variants `zombie-commit` and `double-assignment` switch the same encoding
  at the same points of deviation as `model.groups`. A test compares both
  relations on random concrete states.
- Group actions neither read nor write the replication state (a coordinator
  failover is the group reloading itself from the offsets topic, whichever
  broker takes over), so the replication part of a state is not encoded here:
  `decode` takes it from a base state, and a group transition leaves it alone.
  Interleaved with replication actions, the two encodings form a product.
- Every concrete group has exactly one symbolic value: a consumer without a
  view has view generation -1 and owns nothing, None is `NONE`, and a group
  with no committed offset for a partition holds `NONE` there.
- One transition is a guarded family instance (action type, group, member,
  partition, or the whole assignment of a SyncAssignment). A step picks one
  instance with an integer selector; every variable's next value is an
  if-then-else chain over the instances that change it, and the action that
  was taken is the same kind of chain (`SymAction`), so step properties can
  read it.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import z3
from kafka_verify.model import variants
from kafka_verify.model.groups import (
    GROUP_ACTION_TYPES,
    CommitOffset,
    CompleteRebalance,
    CoordinatorFailover,
    DeleteGroup,
    ExpireMember,
    GroupAction,
    GroupState,
    JoinGroup,
    LeaveGroup,
    MemberView,
    Phase,
    SyncAssignment,
    member_ids,
)
from kafka_verify.model.state import Config, State

Expr = Any  # a z3 expression (z3 ships no type information)

NONE = -1  # None, no committed offset, no view generation, no action field
PHASE_CODES: dict[Phase, int] = {
    Phase.EMPTY: 0,
    Phase.PREPARING_REBALANCE: 1,
    Phase.COMPLETING_REBALANCE: 2,
    Phase.STABLE: 3,
    Phase.DEAD: 4,
}
PHASES_BY_CODE: dict[int, Phase] = {code: phase for phase, code in PHASE_CODES.items()}
EMPTY, PREPARING, COMPLETING, STABLE, DEAD = (PHASE_CODES[p] for p in Phase)
# The action kinds a SymAction names; any action that is not a group action is OTHER.
ACTION_CODES: dict[type, int] = {t: code for code, t in enumerate(GROUP_ACTION_TYPES)}
OTHER = NONE

ENCODED_GROUP_VARIANTS = frozenset({variants.ZOMBIE_COMMIT, variants.DOUBLE_ASSIGNMENT})


def group_names(config: Config) -> tuple[str, ...]:
    """The groups the encoding holds, in state order: g0, g1, ..."""
    return tuple(f"g{i}" for i in range(config.groups))


def width(config: Config) -> int:
    """Bits of the signed bit-vectors: room for -1 and one more than the largest bound."""
    largest = (
        max(
            config.group_generations,
            config.group_max_offset,
            config.members,
            config.group_partitions,
            len(PHASE_CODES),
        )
        + 2
    )
    return largest.bit_length() + 1


def _is_bool(name: str) -> bool:
    return name.rsplit(".", 1)[-1].startswith(("member", "joined", "view", "owns"))


def variable_names(config: Config) -> list[str]:
    """The names of the free state variables, in a fixed order."""
    names: list[str] = []
    for i in range(config.groups):
        names += [f"g{i}.phase", f"g{i}.generation", f"g{i}.leader"]
        for m in range(config.members):
            names += [f"g{i}.member{m}", f"g{i}.joined{m}", f"g{i}.view{m}", f"g{i}.c{m}.gen"]
            names += [f"g{i}.c{m}.owns{p}" for p in range(config.group_partitions)]
        for p in range(config.group_partitions):
            names += [f"g{i}.owner{p}", f"g{i}.committed{p}"]
    return names


@dataclass(frozen=True, slots=True)
class SymGroups:
    """The groups of one state as Z3 terms, with accessors named like `GroupState`'s fields."""

    config: Config
    vars: dict[str, Expr]

    def num(self, value: int) -> Expr:
        return z3.BitVecVal(value, width(self.config))

    def phase(self, i: int) -> Expr:
        return self.vars[f"g{i}.phase"]

    def generation(self, i: int) -> Expr:
        return self.vars[f"g{i}.generation"]

    def leader(self, i: int) -> Expr:
        return self.vars[f"g{i}.leader"]

    def member(self, i: int, m: int) -> Expr:
        return self.vars[f"g{i}.member{m}"]

    def joined(self, i: int, m: int) -> Expr:
        return self.vars[f"g{i}.joined{m}"]

    def has_view(self, i: int, m: int) -> Expr:
        return self.vars[f"g{i}.view{m}"]

    def view_generation(self, i: int, m: int) -> Expr:
        return self.vars[f"g{i}.c{m}.gen"]

    def owns(self, i: int, m: int, p: int) -> Expr:
        return self.vars[f"g{i}.c{m}.owns{p}"]

    def owner(self, i: int, p: int) -> Expr:
        return self.vars[f"g{i}.owner{p}"]

    def committed(self, i: int, p: int) -> Expr:
        return self.vars[f"g{i}.committed{p}"]

    # lookups at a symbolic index (an action's member or partition)
    def member_at(self, i: int, m: Expr) -> Expr:
        return z3.Or([z3.And(m == x, self.member(i, x)) for x in range(self.config.members)])

    def owner_at(self, i: int, p: Expr) -> Expr:
        result: Expr = self.num(NONE)
        for x in reversed(range(self.config.group_partitions)):
            result = z3.If(p == x, self.owner(i, x), result)
        return result


def fresh_groups(config: Config, prefix: str) -> SymGroups:
    """Groups of fresh variables, named `<prefix>.<variable>`."""
    made: dict[str, Expr] = {}
    for name in variable_names(config):
        full = f"{prefix}.{name}"
        made[name] = z3.Bool(full) if _is_bool(name) else z3.BitVec(full, width(config))
    return SymGroups(config, made)


# -- concrete <-> symbolic ------------------------------------------------------------


def values_of(state: State, config: Config) -> dict[str, int | bool]:
    """The value of every group variable in a concrete state.

    Raises ValueError when the groups lie outside what the encoding represents:
    other group names, consumers other than c0..c{M-1}, partitions outside
    0..P-1, generations or offsets beyond their bounds.
    """
    names = group_names(config)
    if tuple(g.group for g in state.groups) != names:
        raise ValueError(f"the state's groups must be {list(names)}")
    values: dict[str, int | bool] = {}
    for i, g in enumerate(state.groups):
        _group_values(values, i, g, config)
    return values


def _index(member: str | None, config: Config, what: str) -> int:
    if member is None:
        return NONE
    ids = member_ids(config)
    if member not in ids:
        raise ValueError(f"{what} {member!r} is not one of the consumers {list(ids)}")
    return ids.index(member)


def _in_range(value: int, low: int, high: int, what: str) -> int:
    if not low <= value <= high:
        raise ValueError(f"{what} {value} lies outside {low}..{high}")
    return value


def _group_values(values: dict[str, int | bool], i: int, g: GroupState, config: Config) -> None:
    key, top = f"g{i}", config.group_generations
    values[f"{key}.phase"] = PHASE_CODES[g.phase]
    values[f"{key}.generation"] = _in_range(g.generation, 0, top, f"{key}: generation")
    values[f"{key}.leader"] = _index(g.leader, config, f"{key}: leader")
    members = {_index(m, config, f"{key}: member") for m in g.members}
    joined = {_index(m, config, f"{key}: joined member") for m in g.joined}
    views = {_index(v.member, config, f"{key}: view of"): v for v in g.views}
    if len(views) != len(g.views):
        raise ValueError(f"{key} holds two views of one consumer")
    partitions = range(config.group_partitions)
    for m in range(config.members):
        view = views.get(m)
        values[f"{key}.member{m}"] = m in members
        values[f"{key}.joined{m}"] = m in joined
        values[f"{key}.view{m}"] = view is not None
        generation = NONE if view is None else view.generation
        values[f"{key}.c{m}.gen"] = _in_range(generation, NONE, top, f"{key}: view generation")
        owned = frozenset() if view is None else view.owned
        if not owned <= frozenset(partitions):
            raise ValueError(
                f"{key}: c{m} owns partitions {sorted(owned)} outside 0..{len(partitions) - 1}"
            )
        for p in partitions:
            values[f"{key}.c{m}.owns{p}"] = p in owned
    _table_values(values, key, "owner", g.assignment, config, lambda m: _index(m, config, key))
    top_offset = config.group_max_offset
    _table_values(
        values,
        key,
        "committed",
        g.committed,
        config,
        lambda o: _in_range(o, 0, top_offset, f"{key}: committed offset"),
    )


def _table_values(
    values: dict[str, int | bool],
    key: str,
    name: str,
    pairs: tuple[tuple[int, Any], ...],
    config: Config,
    encode: Callable[[Any], int],
) -> None:
    """A (partition, value) table as one variable per partition (NONE where it has no entry)."""
    table = dict(pairs)
    if len(table) != len(pairs) or not set(table) <= set(range(config.group_partitions)):
        raise ValueError(f"{key}: {name} table {pairs} is not one entry per partition 0..P-1")
    for p in range(config.group_partitions):
        values[f"{key}.{name}{p}"] = encode(table[p]) if p in table else NONE


def equals(sym: SymGroups, state: State) -> Expr:
    """The formula 'sym holds the groups of this concrete state'."""
    values = values_of(state, sym.config)
    return z3.And([sym.vars[name] == value for name, value in values.items()])


def decode(sym: SymGroups, model: z3.ModelRef, base: State) -> State:
    """The concrete state a Z3 model assigns: `base` with the groups replaced."""
    config = sym.config
    ids = member_ids(config)

    def val(term: Expr) -> int:
        value = model.eval(term, model_completion=True)
        return int(value.as_signed_long())

    def holds(term: Expr) -> bool:
        return bool(z3.is_true(model.eval(term, model_completion=True)))

    def name(index: int) -> str | None:
        return None if index == NONE else ids[index]

    groups = []
    for i, group in enumerate(group_names(config)):
        everyone = range(config.members)
        partitions = range(config.group_partitions)
        views = tuple(
            MemberView(
                ids[m],
                val(sym.view_generation(i, m)),
                frozenset(p for p in partitions if holds(sym.owns(i, m, p))),
            )
            for m in sorted(everyone, key=lambda m: ids[m])
            if holds(sym.has_view(i, m))
        )
        assignment = [(p, val(sym.owner(i, p))) for p in partitions]
        committed = [(p, val(sym.committed(i, p))) for p in partitions]
        groups.append(
            GroupState(
                group=group,
                phase=PHASES_BY_CODE[val(sym.phase(i))],
                generation=val(sym.generation(i)),
                members=frozenset(ids[m] for m in everyone if holds(sym.member(i, m))),
                joined=frozenset(ids[m] for m in everyone if holds(sym.joined(i, m))),
                leader=name(val(sym.leader(i))),
                assignment=tuple((p, ids[m]) for p, m in assignment if m != NONE),
                committed=tuple((p, o) for p, o in committed if o != NONE),
                views=views,
            )
        )
    return State(
        partitions=base.partitions,
        running=base.running,
        controller=base.controller,
        controller_epoch=base.controller_epoch,
        groups=tuple(groups),
    )


# -- actions as terms -----------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SymAction:
    """The fields of a group action that properties read, as terms (NONE where it has none)."""

    kind: Expr
    group: Expr
    member: Expr
    partition: Expr
    offset: Expr
    generation: Expr


def action_values(action: object, config: Config) -> dict[str, int]:
    """A concrete action's SymAction fields, mapped into the encoding's ranges.

    Values the encoding cannot hold are replaced by ones that compare the same
    way with every state: an unknown group, consumer or partition is NONE (it
    matches nothing), an offset or generation beyond the bounds is one past them.
    """
    kind = ACTION_CODES.get(type(action), OTHER)
    group = getattr(action, "group", None)
    member = getattr(action, "member", None)
    ids = member_ids(config)
    partition = getattr(action, "partition", NONE)
    offset = getattr(action, "offset", 0)
    generation = getattr(action, "generation", 0)
    names = group_names(config)
    return {
        "kind": kind,
        "group": names.index(group) if group in names else NONE,
        "member": ids.index(member) if member in ids else NONE,
        "partition": partition if 0 <= partition < config.group_partitions else NONE,
        "offset": min(max(offset, 0), config.group_max_offset + 1),
        "generation": min(max(generation, NONE), config.group_generations + 1),
    }


def concrete_action(action: object, config: Config) -> SymAction:
    """A concrete action as constant terms."""
    values = action_values(action, config)
    w = width(config)
    return SymAction(**{key: z3.BitVecVal(value, w) for key, value in values.items()})


# -- the transition families -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class GroupTransition:
    """One guarded family instance: when `guard` holds, the variables in `updates` change."""

    action: type  # the model action type this instance performs
    group: int
    member: int | None
    partition: int | None
    owners: tuple[int, ...] | None  # a SyncAssignment's owner per partition
    guard: Expr
    updates: dict[str, Expr] = field(default_factory=dict)
    offset: Expr | None = None  # a CommitOffset's offset, a term of the state before
    generation: Expr | None = None  # the generation a CommitOffset or SyncAssignment carries


def _phase_in(s: SymGroups, i: int, *codes: int) -> Expr:
    return z3.Or([s.phase(i) == code for code in codes])


def _clear_assignment(s: SymGroups, i: int, updates: dict[str, Expr]) -> None:
    for p in range(s.config.group_partitions):
        updates[f"g{i}.owner{p}"] = s.num(NONE)


def _revoke(s: SymGroups, i: int, m: int, updates: dict[str, Expr], keep: bool) -> None:
    """The consumer's view exists from now on; it owns nothing unless `keep`."""
    updates[f"g{i}.view{m}"] = z3.BoolVal(True)
    if not keep:
        for p in range(s.config.group_partitions):
            updates[f"g{i}.c{m}.owns{p}"] = z3.BoolVal(False)


def _join(s: SymGroups, i: int, m: int) -> GroupTransition:
    config = s.config
    can_rebalance = s.generation(i) < config.group_generations
    guard = z3.And(
        can_rebalance, _phase_in(s, i, EMPTY, PREPARING, COMPLETING, STABLE), z3.Not(s.joined(i, m))
    )
    preparing = s.phase(i) == PREPARING
    updates: dict[str, Expr] = {
        f"g{i}.phase": s.num(PREPARING),
        f"g{i}.member{m}": z3.BoolVal(True),
    }
    for x in range(config.members):
        updates[f"g{i}.joined{x}"] = (
            z3.BoolVal(True) if x == m else z3.And(preparing, s.joined(i, x))
        )
    _clear_assignment(s, i, updates)
    _revoke(s, i, m, updates, keep=variants.DOUBLE_ASSIGNMENT in config.bugs)
    return GroupTransition(JoinGroup, i, m, None, None, guard, updates)


def first_joined(s: SymGroups, i: int) -> Expr:
    """`min(g.joined)`: the joined consumer whose name sorts first (NONE if nobody joined)."""
    ids = member_ids(s.config)
    result: Expr = s.num(NONE)
    for m in sorted(range(s.config.members), key=lambda m: ids[m], reverse=True):
        result = z3.If(s.joined(i, m), s.num(m), result)
    return result


def _complete_rebalance(s: SymGroups, i: int) -> GroupTransition:
    config = s.config
    anyone = z3.Or([s.joined(i, m) for m in range(config.members)])
    guard = z3.And(s.generation(i) < config.group_generations, s.phase(i) == PREPARING, anyone)
    updates: dict[str, Expr] = {
        f"g{i}.phase": s.num(COMPLETING),
        f"g{i}.generation": s.generation(i) + 1,
        f"g{i}.leader": first_joined(s, i),
    }
    for m in range(config.members):
        updates[f"g{i}.member{m}"] = s.joined(i, m)
        updates[f"g{i}.joined{m}"] = z3.BoolVal(False)
    _clear_assignment(s, i, updates)
    return GroupTransition(CompleteRebalance, i, None, None, None, guard, updates)


def _sync(s: SymGroups, i: int, owners: tuple[int, ...]) -> GroupTransition:
    config = s.config
    guard = z3.And(
        s.phase(i) == COMPLETING,
        s.leader(i) != NONE,
        *[s.member(i, m) for m in sorted(set(owners))],
    )
    updates: dict[str, Expr] = {f"g{i}.phase": s.num(STABLE)}
    for p, m in enumerate(owners):
        updates[f"g{i}.owner{p}"] = s.num(m)
    for m in range(config.members):
        # Members learn the generation and add their share to what they hold.
        synced = s.member(i, m)
        updates[f"g{i}.view{m}"] = z3.Or(synced, s.has_view(i, m))
        updates[f"g{i}.c{m}.gen"] = z3.If(synced, s.generation(i), s.view_generation(i, m))
        for p in range(config.group_partitions):
            gained = z3.BoolVal(owners[p] == m)
            updates[f"g{i}.c{m}.owns{p}"] = z3.Or(s.owns(i, m, p), z3.And(synced, gained))
    return GroupTransition(
        SyncAssignment, i, None, None, owners, guard, updates, generation=s.generation(i)
    )


def _drop(s: SymGroups, i: int, m: int) -> dict[str, Expr]:
    """`groups._drop_member`: the member goes; a join phase opens unless nobody is left."""
    config = s.config
    remaining = z3.Or([s.member(i, x) for x in range(config.members) if x != m])
    preparing = s.phase(i) == PREPARING
    updates: dict[str, Expr] = {
        f"g{i}.member{m}": z3.BoolVal(False),
        f"g{i}.phase": z3.If(remaining, s.num(PREPARING), s.num(EMPTY)),
        f"g{i}.leader": z3.If(z3.And(remaining, s.leader(i) != m), s.leader(i), s.num(NONE)),
    }
    for x in range(config.members):
        stays = z3.BoolVal(False) if x == m else z3.And(remaining, preparing, s.joined(i, x))
        updates[f"g{i}.joined{x}"] = stays
    _clear_assignment(s, i, updates)
    return updates


def _expire(s: SymGroups, i: int, m: int) -> GroupTransition:
    guard = z3.And(_phase_in(s, i, PREPARING, COMPLETING, STABLE), s.member(i, m))
    # The member's view is untouched: it does not know it was expired.
    return GroupTransition(ExpireMember, i, m, None, None, guard, _drop(s, i, m))


def _leave(s: SymGroups, i: int, m: int) -> GroupTransition:
    guard = z3.And(_phase_in(s, i, PREPARING, COMPLETING, STABLE), s.member(i, m))
    updates = _drop(s, i, m)
    _revoke(s, i, m, updates, keep=False)
    return GroupTransition(LeaveGroup, i, m, None, None, guard, updates)


def next_offset(s: SymGroups, i: int, p: int) -> Expr:
    """What a consumer commits next: one past the committed offset (None counts as 0)."""
    return z3.If(s.committed(i, p) < 1, s.num(1), s.committed(i, p) + 1)


def _commit(s: SymGroups, i: int, m: int, p: int) -> GroupTransition:
    config = s.config
    generation = s.view_generation(i, m)
    offset = next_offset(s, i, p)
    current = z3.And(s.member(i, m), generation == s.generation(i), s.owner(i, p) == m)
    accepted = current
    if variants.ZOMBIE_COMMIT in config.bugs:
        accepted = z3.Or(generation < s.generation(i), current)
    guard = z3.And(
        s.has_view(i, m),
        s.owns(i, m, p),
        offset <= config.group_max_offset,
        s.phase(i) == STABLE,
        accepted,
    )
    updates = {f"g{i}.committed{p}": offset}
    return GroupTransition(
        CommitOffset, i, m, p, None, guard, updates, offset=offset, generation=generation
    )


def _failover(s: SymGroups, i: int) -> GroupTransition:
    # An open join phase or a pending sync lives only in the old coordinator's memory.
    lost = _phase_in(s, i, PREPARING, COMPLETING)
    updates: dict[str, Expr] = {f"g{i}.phase": z3.If(lost, s.num(PREPARING), s.phase(i))}
    for m in range(s.config.members):
        updates[f"g{i}.joined{m}"] = z3.And(z3.Not(lost), s.joined(i, m))
    for p in range(s.config.group_partitions):
        updates[f"g{i}.owner{p}"] = z3.If(lost, s.num(NONE), s.owner(i, p))
    guard = s.phase(i) != DEAD
    return GroupTransition(CoordinatorFailover, i, None, None, None, guard, updates)


def _delete(s: SymGroups, i: int) -> GroupTransition:
    updates: dict[str, Expr] = {f"g{i}.phase": s.num(DEAD)}
    for p in range(s.config.group_partitions):
        updates[f"g{i}.committed{p}"] = s.num(NONE)
    return GroupTransition(DeleteGroup, i, None, None, None, s.phase(i) == EMPTY, updates)


def _group_transitions(s: SymGroups, i: int) -> Iterator[GroupTransition]:
    config = s.config
    everyone = range(config.members)
    for m in everyone:
        yield _join(s, i, m)
    yield _complete_rebalance(s, i)
    for owners in itertools.product(everyone, repeat=config.group_partitions):
        yield _sync(s, i, owners)
    for m in everyone:
        yield _expire(s, i, m)
        yield _leave(s, i, m)
        for p in range(config.group_partitions):
            yield _commit(s, i, m, p)
    yield _failover(s, i)
    yield _delete(s, i)


def transitions(s: SymGroups) -> list[GroupTransition]:
    """Every family instance of the group model from `s`, in a fixed order."""
    return [t for i in range(s.config.groups) for t in _group_transitions(s, i)]


def _action_fields(s: SymGroups, t: GroupTransition) -> dict[str, Expr]:
    def known(value: int | None) -> Expr:
        return s.num(NONE if value is None else value)

    return {
        "kind": s.num(ACTION_CODES[t.action]),
        "group": s.num(t.group),
        "member": known(t.member),
        "partition": known(t.partition),
        "offset": s.num(0) if t.offset is None else t.offset,
        "generation": s.num(0) if t.generation is None else t.generation,
    }


def choice_variable(name: str, count: int) -> Expr:
    """A selector for one of `count` transition instances."""
    return z3.BitVec(name, max(1, count.bit_length()))


def transition_relation(
    s: SymGroups, t: SymGroups, choice_name: str
) -> tuple[Expr, list[GroupTransition], Expr, SymAction]:
    """The formula 'from s, one instance leads to t', the instances, the selector, the action taken."""
    instances = transitions(s)
    choice = choice_variable(choice_name, len(instances))
    chains: dict[str, Expr] = dict(s.vars)
    action: dict[str, Expr] = {key: s.num(OTHER) for key in SymAction.__slots__}
    for index, instance in enumerate(instances):
        picked = choice == index
        for name, value in instance.updates.items():
            chains[name] = z3.If(picked, value, chains[name])
        for key, value in _action_fields(s, instance).items():
            action[key] = z3.If(picked, value, action[key])
    guards = [z3.Implies(choice == i, inst.guard) for i, inst in enumerate(instances)]
    frame = [t.vars[name] == chains[name] for name in t.vars]
    formula = z3.And(z3.ULT(choice, len(instances)), *guards, *frame)
    return formula, instances, choice, SymAction(**action)


def initial(s: SymGroups, start: State) -> Expr:
    """The formula 's holds the groups of the initial state'."""
    return equals(s, start)


def action_of(instance: GroupTransition, before: State, config: Config) -> GroupAction:
    """The concrete model action an instance performs from the concrete state `before`."""
    ids = member_ids(config)
    g = before.groups[instance.group]
    member = None if instance.member is None else ids[instance.member]
    if instance.action is JoinGroup and member is not None:
        return JoinGroup(g.group, member)
    if instance.action is CompleteRebalance:
        return CompleteRebalance(g.group, min(g.joined))
    if instance.action is SyncAssignment and instance.owners is not None and g.leader is not None:
        assignment = tuple((p, ids[m]) for p, m in enumerate(instance.owners))
        return SyncAssignment(g.group, g.leader, g.generation, assignment)
    if instance.action is ExpireMember and member is not None:
        return ExpireMember(g.group, member)
    if instance.action is LeaveGroup and member is not None:
        return LeaveGroup(g.group, member)
    if instance.action is CommitOffset and member is not None and instance.partition is not None:
        view = g.view(member) or MemberView(member)
        offset = (g.committed_offset(instance.partition) or 0) + 1
        return CommitOffset(g.group, member, view.generation, instance.partition, offset)
    if instance.action is CoordinatorFailover:
        return CoordinatorFailover(g.group)
    if instance.action is DeleteGroup:
        return DeleteGroup(g.group)
    raise ValueError(f"instance {instance.action.__name__} cannot act on group {g.group}")
