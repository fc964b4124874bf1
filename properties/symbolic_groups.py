"""The consumer-group properties of `properties/groups.py` as Z3 formulas over `model.symbolic_groups`.

Rules of this module:
- Each formula says that a state (`STATE_BREAKS`) or a step (`STEP_BREAKS`:
  before, action taken, after) *breaks* the property, is named after what it
  forbids like its Python predicate, and has exactly the same meaning on every
  state and action the encoding represents; a Hypothesis test compares the two
  on random concrete states and actions.
- `LEMMAS` are auxiliary invariants of the group model that strengthen
  k-induction. They are never assumed: `properties.prove_groups` proves them
  inductive for the configuration (variants included) before it uses them, so a
  wrong lemma makes a proof fail, not pass.
"""

from __future__ import annotations

from collections.abc import Callable

import z3
from kafka_verify.model.groups import CommitOffset, DeleteGroup
from kafka_verify.model.symbolic_groups import (
    ACTION_CODES,
    COMPLETING,
    DEAD,
    EMPTY,
    NONE,
    PREPARING,
    STABLE,
    Expr,
    SymAction,
    SymGroups,
)

StateFormula = Callable[[SymGroups], Expr]
StepFormula = Callable[[SymGroups, SymAction, SymGroups], Expr]


def _pairs(s: SymGroups) -> list[tuple[int, int]]:
    members = range(s.config.members)
    return [(a, b) for a in members for b in members if a < b]


# -- state properties ------------------------------------------------------------------


def breaks_single_member_per_partition(s: SymGroups) -> Expr:
    """Forbids: two current members owning one partition in the same generation, or a current
    member of a Stable group owning a partition its generation's assignment does not give it."""
    cases: list[Expr] = []
    for i in range(s.config.groups):
        for p in range(s.config.group_partitions):
            for a, b in _pairs(s):
                cases.append(
                    z3.And(
                        s.member(i, a),
                        s.member(i, b),
                        s.owns(i, a, p),
                        s.owns(i, b, p),
                        s.view_generation(i, a) == s.view_generation(i, b),
                    )
                )
            for m in range(s.config.members):
                cases.append(
                    z3.And(
                        s.phase(i) == STABLE,
                        s.member(i, m),
                        s.has_view(i, m),
                        s.view_generation(i, m) == s.generation(i),
                        s.owns(i, m, p),
                        s.owner(i, p) != m,
                    )
                )
    return z3.Or(cases)


def breaks_complete_assignment_when_stable(s: SymGroups) -> Expr:
    """Forbids: a Stable group whose assignment leaves a partition unassigned or gives it to
    someone who is not a member."""
    cases: list[Expr] = []
    for i in range(s.config.groups):
        for p in range(s.config.group_partitions):
            owner = s.owner(i, p)
            cases.append(z3.And(s.phase(i) == STABLE, z3.Not(s.member_at(i, owner))))
    return z3.Or(cases)


STATE_BREAKS: dict[str, StateFormula] = {
    "single-member-per-partition": breaks_single_member_per_partition,
    "complete-assignment-when-stable": breaks_complete_assignment_when_stable,
}


# -- step properties -------------------------------------------------------------------


def _is(a: SymAction, kind: type, i: int) -> Expr:
    return z3.And(a.kind == ACTION_CODES[kind], a.group == i)


def breaks_committed_offsets_durable(s: SymGroups, a: SymAction, t: SymGroups) -> Expr:
    """Forbids: a committed offset that changes or disappears other than by an accepted commit of
    that partition (or by deleting the group)."""
    cases: list[Expr] = []
    for i in range(s.config.groups):
        for p in range(s.config.group_partitions):
            now = t.committed(i, p)
            committed = z3.And(_is(a, CommitOffset, i), a.partition == p, a.offset == now)
            deleted = z3.And(_is(a, DeleteGroup, i), now == NONE)
            cases.append(z3.And(s.committed(i, p) != now, z3.Not(committed), z3.Not(deleted)))
    return z3.Or(cases)


def breaks_no_stale_generation_commit(s: SymGroups, a: SymAction, t: SymGroups) -> Expr:
    """Forbids: an accepted offset commit from a non-member, from another generation, outside the
    Stable phase, or for a partition the member does not own in the current generation."""
    cases: list[Expr] = []
    for i in range(s.config.groups):
        stale = z3.Or(
            s.phase(i) != STABLE,
            z3.Not(s.member_at(i, a.member)),
            a.generation != s.generation(i),
            s.owner_at(i, a.partition) != a.member,
        )
        cases.append(z3.And(_is(a, CommitOffset, i), stale))
    return z3.Or(cases)


def breaks_generation_monotonic(s: SymGroups, a: SymAction, t: SymGroups) -> Expr:
    """Forbids: a group's generation, or the generation one of its consumers is in, going down."""
    cases: list[Expr] = []
    for i in range(s.config.groups):
        cases.append(t.generation(i) < s.generation(i))
        for m in range(s.config.members):
            seen = z3.And(s.has_view(i, m), t.has_view(i, m))
            cases.append(z3.And(seen, t.view_generation(i, m) < s.view_generation(i, m)))
    return z3.Or(cases)


STEP_BREAKS: dict[str, StepFormula] = {
    "committed-offsets-durable": breaks_committed_offsets_durable,
    "no-stale-generation-commit": breaks_no_stale_generation_commit,
    "generation-monotonic": breaks_generation_monotonic,
}

PROPERTY_NAMES: tuple[str, ...] = (*STATE_BREAKS, *STEP_BREAKS)


# -- auxiliary invariants for k-induction ------------------------------------------------


def well_formed(s: SymGroups) -> Expr:
    """Every variable is in its range, views are canonical, and each phase has its shape."""
    config = s.config
    facts: list[Expr] = []
    for i in range(config.groups):
        anyone = z3.Or([s.member(i, m) for m in range(config.members)])
        facts += [
            s.phase(i) >= EMPTY,
            s.phase(i) <= DEAD,
            s.generation(i) >= 0,
            s.generation(i) <= config.group_generations,
            z3.Or(s.leader(i) == NONE, s.member_at(i, s.leader(i))),
            # Only a Stable group has an assignment; an empty one has nobody at all.
            z3.Implies(s.phase(i) == EMPTY, z3.And(z3.Not(anyone), s.leader(i) == NONE)),
            z3.Implies(s.phase(i) == COMPLETING, s.leader(i) != NONE),
            z3.Implies(_open(s, i), anyone),
        ]
        for p in range(config.group_partitions):
            owner, committed = s.owner(i, p), s.committed(i, p)
            facts.append(z3.If(s.phase(i) == STABLE, s.member_at(i, owner), owner == NONE))
            facts.append(z3.And(committed >= NONE, committed <= config.group_max_offset))
        for m in range(config.members):
            facts += _view_well_formed(s, i, m)
    return z3.And(facts)


def _open(s: SymGroups, i: int) -> Expr:
    return z3.Or(s.phase(i) == PREPARING, s.phase(i) == COMPLETING, s.phase(i) == STABLE)


def _view_well_formed(s: SymGroups, i: int, m: int) -> list[Expr]:
    generation = s.view_generation(i, m)
    owns_nothing = z3.And([z3.Not(s.owns(i, m, p)) for p in range(s.config.group_partitions)])
    return [
        z3.Implies(s.joined(i, m), s.member(i, m)),
        z3.Implies(s.phase(i) != PREPARING, z3.Not(s.joined(i, m))),
        generation >= NONE,
        generation <= s.generation(i),
        z3.Implies(z3.Not(s.has_view(i, m)), z3.And(generation == NONE, owns_nothing)),
    ]


def ownership(s: SymGroups) -> Expr:
    """Eager rebalancing: members own disjoint partitions, all from the current generation."""
    config = s.config
    facts: list[Expr] = []
    for i in range(config.groups):
        for m in range(config.members):
            member, revoked = s.member(i, m), _owns_nothing(s, i, m)
            facts += [
                z3.Implies(s.joined(i, m), revoked),
                z3.Implies(z3.And(s.phase(i) == COMPLETING, member), revoked),
                z3.Implies(
                    z3.And(member, z3.Not(revoked)), s.view_generation(i, m) == s.generation(i)
                ),
            ]
            for p in range(config.group_partitions):
                # In a Stable group every member holds exactly its share.
                held = s.owns(i, m, p) == (s.owner(i, p) == m)
                facts.append(z3.Implies(z3.And(s.phase(i) == STABLE, member), held))
        for p in range(config.group_partitions):
            for a, b in _pairs(s):
                both = z3.And(s.member(i, a), s.member(i, b), s.owns(i, a, p), s.owns(i, b, p))
                facts.append(z3.Not(both))
    return z3.And(facts)


def _owns_nothing(s: SymGroups, i: int, m: int) -> Expr:
    return z3.And([z3.Not(s.owns(i, m, p)) for p in range(s.config.group_partitions)])


# The prover uses the longest prefix of these that is inductive for the config: the
# ownership facts hold only where rebalancing is eager (not under double-assignment).
LEMMAS: dict[str, Callable[[SymGroups], Expr]] = {
    "well-formed": well_formed,
    "ownership": ownership,
}
