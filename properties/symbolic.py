"""The state properties of `properties/invariants.py` as Z3 formulas over `model.symbolic` states.

Rules of this module:
- Each formula says that a state *breaks* the property, is named after what it
  forbids like its Python predicate, and has exactly the same meaning on every
  state the encoding represents; a Hypothesis test compares the two on random
  concrete states.
- `LEMMAS` are candidate auxiliary invariants of the model: well-formedness,
  and the facts about epochs, logs and high watermarks that make log agreement
  inductive (log matching, a follower in step is a prefix of its leader, a
  deposed leader cannot commit, ...). They are never assumed:
  `properties.prove` keeps the largest subset of lemmas and properties that
  holds initially and is inductive as a whole (Houdini), so a wrong lemma, or
  one that a protocol variant breaks, drops out instead of making a proof pass.
- Consumer-group formulas live in properties/symbolic_groups.py, over the group
  encoding of model/symbolic_groups.py.
"""

from __future__ import annotations

from collections.abc import Callable

import z3
from kafka_verify.model.state import Config
from kafka_verify.model.symbolic import (
    FOLLOWING,
    JUNK,
    LEADER,
    NONE,
    TRUNCATING,
    UNKNOWN,
    Expr,
    SymState,
    epoch_start_offset,
)

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


# -- the strengthening that makes log agreement inductive ---------------------------------
#
# Each lemma below is one fact of the correct protocol, stated for every partition.
# Together with the properties they form an inductive invariant of the correct model
# (checked, not assumed, by `properties.prove`); leaving out any one of them lets Z3
# find an unreachable state from which one step breaks the conjunction.


def _per_partition(
    s: SymState, facts: Callable[[SymState, int, tuple[int, ...]], list[Expr]]
) -> Expr:
    found: list[Expr] = []
    for p in range(s.config.partitions):
        found += facts(s, p, s.config.replicas_of(p))
    return z3.And(found)


def _is_follower(s: SymState, p: int, x: int) -> Expr:
    return z3.Or(s.role(p, x) == FOLLOWING, s.role(p, x) == TRUNCATING)


def _agrees_at(s: SymState, p: int, a: int, b: int, o: int) -> Expr:
    """Replica a holds the record that replica b holds at offset o."""
    return z3.And(s.has(p, a, o), s.slot(p, a, o) == s.slot(p, b, o))


def _epoch_views(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for x in hosts:
        known = s.role(p, x) != UNKNOWN
        # Every replica starts in epoch 0 and keeps its epoch across a crash.
        facts.append(s.epoch(p, x) >= 0)
        facts += [
            z3.Implies(s.has(p, x, o), s.slot(p, x, o) <= s.epoch(p, x))
            for o in range(s.config.max_log)
        ]
        facts.append(z3.Implies(_is_follower(s, p, x), s.leader(p, x) != x))
        current = z3.And(known, s.epoch(p, x) == s.q_epoch(p))
        facts.append(z3.Implies(current, s.leader(p, x) == s.q_leader(p)))
        for y in hosts:
            if y != x:
                fetching = z3.And(s.role(p, x) == FOLLOWING, s.leader(p, x) == y)
                facts.append(z3.Implies(fetching, s.epoch(p, y) >= s.epoch(p, x)))
            if y > x:
                same = z3.And(known, s.role(p, y) != UNKNOWN, s.epoch(p, x) == s.epoch(p, y))
                facts.append(z3.Implies(same, s.leader(p, x) == s.leader(p, y)))
    return facts


def epoch_views(s: SymState) -> Expr:
    """Replicas that know the same epoch know the same leader (the quorum's, in the quorum epoch), no follower follows itself or fetches from an older epoch, and no record is newer than its holder's epoch."""
    return _per_partition(s, _epoch_views)


def _local_isr_shape(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for b in hosts:
        leads = s.role(p, b) == LEADER
        acting = z3.And(leads, s.epoch(p, b) == s.q_epoch(p))
        facts.append(z3.Implies(leads, s.isr(p, b, b)))
        for x in hosts:
            facts.append(z3.Implies(z3.Not(leads), z3.Not(s.isr(p, b, x))))
            facts.append(z3.Implies(acting, s.isr(p, b, x) == s.q_isr(p, x)))
    return facts


def local_isr_shape(s: SymState) -> Expr:
    """Only leaders have a local ISR, it contains the leader, and the leader of the quorum epoch acts on exactly the quorum ISR (ISR writes are fenced)."""
    return _per_partition(s, _local_isr_shape)


def _log_matching(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for a in hosts:
        for b in hosts:
            for o in range(s.config.max_log):
                for later in range(o + 1, s.config.max_log):
                    same_epoch = z3.And(
                        s.has(p, a, o), s.has(p, b, later), s.slot(p, a, o) == s.slot(p, b, later)
                    )
                    within = s.log_start(p, b) <= o
                    facts.append(z3.Implies(z3.And(same_epoch, within), _agrees_at(s, p, b, a, o)))
                    same_record = z3.And(
                        s.has(p, a, later),
                        s.has(p, b, later),
                        s.slot(p, a, later) == s.slot(p, b, later),
                    )
                    both = z3.And(s.has(p, a, o), s.has(p, b, o))
                    agree = s.slot(p, a, o) == s.slot(p, b, o)
                    facts.append(z3.Implies(z3.And(same_record, both), agree))
    return facts


def log_matching(s: SymState) -> Expr:
    """Two logs that hold the same record agree on every offset below it, and the records of one epoch form one run of offsets: a replica holding a record of epoch e at offset o also holds epoch e at every offset of an epoch-e record below o."""
    return _per_partition(s, _log_matching)


def _attached(s: SymState, p: int, x: int, leader: int, roles: tuple[int, ...]) -> Expr:
    """Replica x follows `leader` in the leader's own epoch, in one of `roles`, and it leads."""
    return z3.And(
        z3.Or([s.role(p, x) == role for role in roles]),
        s.leader(p, x) == leader,
        s.epoch(p, x) == s.epoch(p, leader),
        s.role(p, leader) == LEADER,
    )


def _in_step_prefix(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for x in hosts:
        for leader in hosts:
            if x != leader:
                prefix = [s.leo(p, x) <= s.leo(p, leader)]
                prefix += [
                    z3.Implies(s.has(p, x, o), _agrees_at(s, p, leader, x, o))
                    for o in range(s.config.max_log)
                ]
                facts.append(z3.Implies(_attached(s, p, x, leader, (FOLLOWING,)), z3.And(prefix)))
    return facts


def in_step_prefix(s: SymState) -> Expr:
    """A fetching follower's log is a prefix of its leader's log (truncation left only what the leader holds)."""
    return _per_partition(s, _in_step_prefix)


def _leader_holds_its_epoch(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for leader in hosts:
        leads = s.role(p, leader) == LEADER
        for x in hosts:
            for o in range(s.config.max_log):
                mine = z3.And(leads, s.has(p, x, o), s.slot(p, x, o) == s.epoch(p, leader))
                facts.append(z3.Implies(mine, _agrees_at(s, p, leader, x, o)))
    return facts


def leader_holds_its_epoch(s: SymState) -> Expr:
    """Every record of a leader's epoch, wherever it is, is also in that leader's log at the same offset (only it writes them, and it never truncates while it leads)."""
    return _per_partition(s, _leader_holds_its_epoch)


def _newest_epoch_led(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    became_leader = z3.Or(
        [z3.And(s.q_leader(p) == c, s.epoch(p, c) == s.q_epoch(p)) for c in hosts]
    )
    return [
        z3.Implies(z3.And(s.has(p, x, o), s.slot(p, x, o) == s.q_epoch(p)), became_leader)
        for x in hosts
        for o in range(s.config.max_log)
    ]


def newest_epoch_led(s: SymState) -> Expr:
    """A record of the quorum epoch exists only once the quorum leader has taken up that epoch (so a new leader starts with no record of its own epoch anywhere)."""
    return _per_partition(s, _newest_epoch_led)


def _stale_leader_blocked(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for leader in hosts:
        stale = z3.And(s.role(p, leader) == LEADER, s.epoch(p, leader) < s.q_epoch(p))
        others = [x for x in hosts if x != leader]
        moved_on = z3.Or(
            [z3.And(s.isr(p, leader, x), s.epoch(p, x) > s.epoch(p, leader)) for x in others]
        )
        quorum_within = z3.And(
            *[z3.Implies(s.q_isr(p, x), s.isr(p, leader, x)) for x in hosts],
            z3.Or(
                s.q_leader(p) == NONE,
                *[z3.And(s.q_leader(p) == x, s.isr(p, leader, x)) for x in hosts],
            ),
        )
        facts.append(z3.Implies(stale, z3.Or(moved_on, quorum_within)))
    return facts


def stale_leader_blocked(s: SymState) -> Expr:
    """A deposed leader either has an ISR member that moved to a later epoch (so its high watermark is stuck), or the quorum ISR and leader are still within its ISR (so whatever it commits, they hold)."""
    return _per_partition(s, _stale_leader_blocked)


def _holds_below_high_watermarks(
    s: SymState, p: int, hosts: tuple[int, ...], holder: int, same_epoch_only: bool
) -> list[Expr]:
    """`holder` holds, at the same offsets, every record below the high watermark of each other replica (of its own epoch only, if asked)."""
    facts: list[Expr] = []
    for r in hosts:
        if r == holder:
            continue
        counted = s.epoch(p, r) == s.epoch(p, holder) if same_epoch_only else z3.BoolVal(True)
        for o in range(s.config.max_log):
            below = z3.And(counted, o < s.hw(p, r))
            facts.append(z3.Implies(below, _agrees_at(s, p, holder, r, o)))
    return facts


def _sources_hold_committed(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for source in hosts:
        leads = s.role(p, source) == LEADER
        followed = [
            z3.And(s.q_isr(p, x), _attached(s, p, x, source, (FOLLOWING, TRUNCATING)))
            for x in hosts
            if x != source
        ]
        serves_isr = z3.And(leads, z3.Or(s.q_isr(p, source), *followed))
        everyone = _holds_below_high_watermarks(s, p, hosts, source, same_epoch_only=False)
        facts.append(z3.Implies(serves_isr, z3.And(everyone)))
        # High watermarks of its own epoch were learned from it, or were committed
        # when it was elected (and it was in the ISR then).
        own_epoch = _holds_below_high_watermarks(s, p, hosts, source, same_epoch_only=True)
        facts.append(z3.Implies(leads, z3.And(own_epoch)))
    return facts


def sources_hold_committed(s: SymState) -> Expr:
    """A leader holds every record below the high watermark of each replica in its epoch, and every committed record if it is in the quorum ISR or an ISR member follows it (so truncating against it never cuts a committed record)."""
    return _per_partition(s, _sources_hold_committed)


def _leader_covers_high_watermarks(s: SymState, p: int, hosts: tuple[int, ...]) -> list[Expr]:
    facts: list[Expr] = []
    for leader in hosts:
        acting = z3.And(s.role(p, leader) == LEADER, s.epoch(p, leader) == s.q_epoch(p))
        cover = _max(s.hw(p, leader), epoch_start_offset(s, p, leader))
        facts += [z3.Implies(acting, s.hw(p, r) <= cover) for r in hosts if r != leader]
    return facts


def leader_covers_high_watermarks(s: SymState) -> Expr:
    """No replica's high watermark passes both the acting leader's and the start of its epoch (what was committed before it led, it held when elected), so a follower caught up to both holds every committed record."""
    return _per_partition(s, _leader_covers_high_watermarks)


LEMMAS: dict[str, Callable[[SymState], Expr]] = {
    "well-formed": well_formed,
    "epoch-facts": epoch_facts,
    "epoch-views": epoch_views,
    "local-isr-shape": local_isr_shape,
    "log-matching": log_matching,
    "in-step-prefix": in_step_prefix,
    "leader-holds-its-epoch": leader_holds_its_epoch,
    "newest-epoch-led": newest_epoch_led,
    "stale-leader-blocked": stale_leader_blocked,
    "sources-hold-committed": sources_hold_committed,
    "leader-covers-high-watermarks": leader_covers_high_watermarks,
}


def property_names(config: Config) -> list[str]:
    """The properties that have a formula for this config."""
    return list(BREAKS)
