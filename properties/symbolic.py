"""The state properties of `properties/invariants.py` as Z3 formulas over `model.symbolic` states.

Rules of this module:
- Each formula says that a state *breaks* the property, is named after what it
  forbids like its Python predicate, and has exactly the same meaning on every
  state the encoding represents; a Hypothesis test compares the two on random
  concrete states.
- `LEMMAS` are auxiliary invariants of the model (well-formedness facts) that
  strengthen k-induction. They are never assumed: `properties.prove` proves
  them together with the property, so a wrong lemma makes a proof fail, not
  pass.
- Consumer-group properties join `BREAKS` once groups are encoded.
"""

from __future__ import annotations

from collections.abc import Callable

import z3

from model.state import Config
from model.symbolic import FOLLOWING, JUNK, LEADER, NONE, TRUNCATING, UNKNOWN, Expr, SymState

Formula = Callable[[SymState], Expr]


def _max(a: Expr, b: Expr) -> Expr:
    return z3.If(a >= b, a, b)


def _min(a: Expr, b: Expr) -> Expr:
    return z3.If(a <= b, a, b)


def _differ_somewhere(s: SymState, p: int, a: int, b: int, below: Expr) -> Expr:
    """Replicas a and b differ at some offset in [max(log starts), below): a missing record counts."""
    lo = _max(s.log_start(p, a), s.log_start(p, b))
    differ = []
    for o in range(s.config.max_log):
        same = z3.And(s.has(p, a, o), s.has(p, b, o), s.slot(p, a, o) == s.slot(p, b, o))
        differ.append(z3.And(lo <= o, o < below, z3.Not(same)))
    # Offsets at or beyond the last slot are held by no replica (leo <= max_log).
    differ.append(_max(lo, s.config.max_log) < below)
    return z3.Or(differ)


def _top_hw(s: SymState, p: int) -> Expr:
    hosts = s.config.replicas_of(p)
    top = s.hw(p, hosts[0])
    for b in hosts[1:]:
        top = _max(top, s.hw(p, b))
    return top


def breaks_log_agreement(s: SymState) -> Expr:
    """Forbids: an ISR member lacking or differing from a committed record, or two replicas holding different records below both their high watermarks."""
    cases = []
    for p in range(s.config.partitions):
        hosts = s.config.replicas_of(p)
        top = _top_hw(s, p)
        for member in hosts:
            for ref in hosts:
                if ref != member:
                    is_ref = s.hw(p, ref) == top
                    cases.append(
                        z3.And(
                            s.q_isr(p, member), is_ref, _differ_somewhere(s, p, member, ref, top)
                        )
                    )
        for i, a in enumerate(hosts):
            for b in hosts[i + 1 :]:
                cases.append(_differ_somewhere(s, p, a, b, _min(s.hw(p, a), s.hw(p, b))))
    return z3.Or(cases)


def breaks_single_leader_per_epoch(s: SymState) -> Expr:
    """Forbids: two replicas of one partition both acting as leader in the same leader epoch."""
    cases = []
    for p in range(s.config.partitions):
        hosts = s.config.replicas_of(p)
        for i, a in enumerate(hosts):
            for b in hosts[i + 1 :]:
                both = z3.And(s.role(p, a) == LEADER, s.role(p, b) == LEADER)
                cases.append(z3.And(both, s.epoch(p, a) == s.epoch(p, b)))
    return z3.Or(cases)


def breaks_leader_in_isr(s: SymState) -> Expr:
    """Forbids: a quorum leader that is not in the quorum ISR."""
    cases = []
    for p in range(s.config.partitions):
        for b in s.config.replicas_of(p):
            cases.append(z3.And(s.q_leader(p) == b, z3.Not(s.q_isr(p, b))))
        # A leader that hosts no replica is in no ISR either.
        hosts = s.config.replicas_of(p)
        cases.append(z3.And(s.q_leader(p) != NONE, *[s.q_leader(p) != b for b in hosts]))
    return z3.Or(cases)


def breaks_hw_within_isr(s: SymState) -> Expr:
    """Forbids: an acting quorum leader whose high watermark is above the log end of a quorum-ISR member."""
    cases = []
    for p in range(s.config.partitions):
        hosts = s.config.replicas_of(p)
        for leader in hosts:
            acting = z3.And(
                s.q_leader(p) == leader,
                s.running(leader),
                s.role(p, leader) == LEADER,
                s.epoch(p, leader) == s.q_epoch(p),
            )
            for member in hosts:
                short = _max(s.leo(p, member), s.log_start(p, leader)) < s.hw(p, leader)
                cases.append(z3.And(acting, s.q_isr(p, member), short))
    return z3.Or(cases)


BREAKS: dict[str, Formula] = {
    "log-agreement": breaks_log_agreement,
    "single-leader-per-epoch": breaks_single_leader_per_epoch,
    "leader-in-isr": breaks_leader_in_isr,
    "hw-within-isr": breaks_hw_within_isr,
}


# -- auxiliary invariants for k-induction ------------------------------------------------


def well_formed(s: SymState) -> Expr:
    """Every variable is in its range, logs are canonical, and record epochs never go down."""
    config = s.config
    facts: list[Expr] = []
    for p in range(config.partitions):
        hosts = config.replicas_of(p)
        facts.append(z3.And(s.q_epoch(p) >= 0, s.q_epoch(p) <= config.max_epoch))
        facts.append(z3.Or(s.q_leader(p) == NONE, *[s.q_leader(p) == b for b in hosts]))
        facts.append(z3.Or([s.q_isr(p, x) for x in hosts]))
        for b in hosts:
            facts += _replica_well_formed(s, p, b, hosts)
    return z3.And(facts)


def _replica_well_formed(s: SymState, p: int, b: int, hosts: tuple[int, ...]) -> list[Expr]:
    config = s.config
    ls, leo, hw = s.log_start(p, b), s.leo(p, b), s.hw(p, b)
    facts = [
        ls >= 0,
        ls <= hw,
        hw <= leo,
        leo <= config.max_log,
        ls <= s.checkpoint_hw(p, b),
        s.checkpoint_hw(p, b) <= hw,
        s.flushed(p, b) <= leo,
        s.epoch(p, b) >= -1,
        s.epoch(p, b) <= s.q_epoch(p),
        z3.Or([s.role(p, b) == code for code in (UNKNOWN, LEADER, TRUNCATING, FOLLOWING)]),
        z3.Or(s.leader(p, b) == NONE, *[s.leader(p, b) == x for x in hosts]),
        z3.Implies(s.role(p, b) == LEADER, s.leader(p, b) == b),
        z3.Implies(s.role(p, b) != UNKNOWN, z3.And(s.epoch(p, b) >= 0, s.leader(p, b) != NONE)),
        # A restarted replica keeps the epoch it learned (it is on disk) but has no leader.
        z3.Implies(s.role(p, b) == UNKNOWN, s.leader(p, b) == NONE),
        z3.Implies(z3.Not(s.running(b)), s.role(p, b) == UNKNOWN),
    ]
    for o in range(config.max_log):
        held = s.has(p, b, o)
        slot = s.slot(p, b, o)
        facts.append(z3.If(held, z3.And(slot >= 0, slot <= s.q_epoch(p)), slot == JUNK))
        if o + 1 < config.max_log:
            facts.append(
                z3.Implies(s.has(p, b, o + 1), z3.Or(z3.Not(held), slot <= s.slot(p, b, o + 1)))
            )
    return facts


def epoch_facts(s: SymState) -> Expr:
    """What leader epochs imply: one leader per epoch, and records no newer than their holder's epoch."""
    config = s.config
    facts: list[Expr] = []
    for p in range(config.partitions):
        hosts = config.replicas_of(p)
        for b in hosts:
            leading_now = z3.And(s.role(p, b) == LEADER, s.epoch(p, b) == s.q_epoch(p))
            facts.append(z3.Implies(leading_now, s.q_leader(p) == b))
            for o in range(config.max_log):
                # A running replica that knows its epoch holds no record from a later epoch.
                known = z3.And(s.role(p, b) != UNKNOWN, s.has(p, b, o))
                facts.append(z3.Implies(known, s.slot(p, b, o) <= s.epoch(p, b)))
    return z3.And(facts)


LEMMAS: dict[str, Callable[[SymState], Expr]] = {
    "well-formed": well_formed,
    "epoch-facts": epoch_facts,
}


def property_names(config: Config) -> list[str]:
    """The properties that have a formula for this config."""
    return list(BREAKS)
