"""The atomic-interleaving model (`step.enabled` followed by `step.step`) as Z3 formulas.

Rules of this module:
- It encodes exactly what `enabled` yields and `step` then does, for bounded
  configurations: B brokers, `max_log` log slots, epochs up to `max_epoch`.
  Protocol variants switch the same encoding at the same points of deviation
  as `enabled` does. A test compares both relations on random concrete states.
- Logs are fixed-size arrays indexed by *absolute* offset: slot o of a replica
  is meaningful when log_start <= o < leo, and holds the epoch of the record
  there. Slots outside that range hold `JUNK`, so that every concrete state has
  exactly one symbolic value (equal states, equal values).
- A record's id is not a variable: in the explored model a leader writes the
  record `epoch * 100 + offset` (see `enabled`) and records are only ever
  copied to the same offset, so (epoch, offset) identifies a record. States
  whose records break that rule are outside the encoding and are refused by
  `values_of`.
- With `durable` configs, `flushed` is the log end and `checkpoint_hw` the high
  watermark at all times, so they are the same terms, not separate variables.
  Likewise log_start is 0 unless retention is explored, and the controller and
  its epoch are constants unless controller failover is explored.
- One transition is a guarded family instance (action type, partition,
  broker, parameter broker). A step picks one instance with an integer
  selector and every variable's next value is an if-then-else chain over the
  instances that change it, so unchanged variables cost nothing.
"""

from __future__ import annotations

import itertools
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import z3
from kafka_verify.model import variants
from kafka_verify.model.state import Config, Partition, Record, Replica, Role, State

JUNK = -1  # the value of a log slot that holds no record
NONE = -1  # the value of a broker field that is None
ROLE_CODES: dict[Role, int] = {
    Role.UNKNOWN: 0,
    Role.LEADER: 1,
    Role.TRUNCATING: 2,
    Role.FOLLOWING: 3,
}
ROLES_BY_CODE: dict[int, Role] = {code: role for role, code in ROLE_CODES.items()}
UNKNOWN, LEADER, TRUNCATING, FOLLOWING = (ROLE_CODES[r] for r in Role)

Expr = Any  # a z3 expression (z3 ships no type information)

# The replication variants this encoding switches. The group variants switch the
# group encoding (model/symbolic_groups.py); retention-deletes-unreplicated offers
# deletions that `step` refuses, so in the explored model it changes nothing.
ENCODED_VARIANTS = frozenset(
    {
        variants.TRUNCATE_TO_HW,
        variants.EPOCH_END_OFFSET_HOLE,
        variants.NO_FETCH_EPOCH_FENCING,
        variants.UNCLEAN_ELECTION,
        variants.HW_AHEAD_OF_ISR,
        variants.STALE_LEADER_ACCEPTS_WRITES,
    }
)


def _replica_fields(config: Config) -> list[str]:
    names = ["leo", "hw", "epoch", "role", "leader"]
    if config.explore_retention:
        names.append("log_start")
    if not config.durable:
        names += ["flushed", "checkpoint_hw"]
    return names


def variable_names(config: Config) -> list[str]:
    """The names of the free state variables of one step, in a fixed order."""
    names: list[str] = []
    for p in range(config.partitions):
        hosts = config.replicas_of(p)
        names += [f"p{p}.leader", f"p{p}.epoch"] + [f"p{p}.isr{x}" for x in hosts]
        for b in hosts:
            names += [f"p{p}.b{b}.{name}" for name in _replica_fields(config)]
            names += [f"p{p}.b{b}.slot{o}" for o in range(config.max_log)]
            names += [f"p{p}.b{b}.isr{x}" for x in hosts]
    names += [f"running{b}" for b in range(config.brokers)]
    if config.explore_controller:
        names += ["controller", "controller_epoch"]
    return names


def width(config: Config) -> int:
    """Bits of the signed bit-vectors that hold epochs, offsets, roles and broker ids.

    Wide enough for -1 and for one more than the largest bound, so that the
    `+ 1` of a write or an election never wraps around.
    """
    largest = max(config.max_epoch, config.max_log, config.brokers, len(ROLE_CODES)) + 1
    return largest.bit_length() + 1


def choice_variable(name: str, count: int) -> Expr:
    """A selector for one of `count` transition instances."""
    return z3.BitVec(name, max(1, count.bit_length()))


def _is_bool(name: str) -> bool:
    return ".isr" in name or name.startswith("running")


@dataclass(frozen=True, slots=True)
class SymState:
    """One state as Z3 terms, with accessors named like the fields of `model.state`."""

    config: Config
    vars: dict[str, Expr]

    def num(self, value: int) -> Expr:
        """A constant of the sort of the state's numeric variables."""
        return z3.BitVecVal(value, width(self.config))

    def _get(self, name: str, default: Expr) -> Expr:
        return self.vars.get(name, default)

    # quorum state (the coordination service)
    def q_leader(self, p: int) -> Expr:
        return self.vars[f"p{p}.leader"]

    def q_epoch(self, p: int) -> Expr:
        return self.vars[f"p{p}.epoch"]

    def q_isr(self, p: int, x: int) -> Expr:
        return self._get(f"p{p}.isr{x}", z3.BoolVal(False))

    # one replica's local state
    def leo(self, p: int, b: int) -> Expr:
        return self.vars[f"p{p}.b{b}.leo"]

    def hw(self, p: int, b: int) -> Expr:
        return self.vars[f"p{p}.b{b}.hw"]

    def log_start(self, p: int, b: int) -> Expr:
        return self._get(f"p{p}.b{b}.log_start", self.num(0))

    def flushed(self, p: int, b: int) -> Expr:
        return self._get(f"p{p}.b{b}.flushed", self.leo(p, b))

    def checkpoint_hw(self, p: int, b: int) -> Expr:
        return self._get(f"p{p}.b{b}.checkpoint_hw", self.hw(p, b))

    def epoch(self, p: int, b: int) -> Expr:
        return self.vars[f"p{p}.b{b}.epoch"]

    def role(self, p: int, b: int) -> Expr:
        return self.vars[f"p{p}.b{b}.role"]

    def leader(self, p: int, b: int) -> Expr:
        return self.vars[f"p{p}.b{b}.leader"]

    def isr(self, p: int, b: int, x: int) -> Expr:
        return self._get(f"p{p}.b{b}.isr{x}", z3.BoolVal(False))

    def slot(self, p: int, b: int, o: int) -> Expr:
        return self.vars[f"p{p}.b{b}.slot{o}"]

    # cluster
    def running(self, b: int) -> Expr:
        return self.vars[f"running{b}"]

    def controller(self) -> Expr:
        return self._get("controller", self.num(0))

    def controller_epoch(self) -> Expr:
        return self._get("controller_epoch", z3.IntVal(1))

    # derived terms
    def has(self, p: int, b: int, o: int) -> Expr:
        """The replica retains a record at absolute offset o."""
        return z3.And(self.log_start(p, b) <= o, o < self.leo(p, b))

    def slot_at(self, p: int, b: int, offset: Expr) -> Expr:
        """The slot at a symbolic offset (JUNK outside the array)."""
        result: Expr = self.num(JUNK)
        for o in reversed(range(self.config.max_log)):
            result = z3.If(offset == o, self.slot(p, b, o), result)
        return result


def fresh_state(config: Config, prefix: str) -> SymState:
    """A state of fresh variables, named `<prefix>.<variable>`."""
    made: dict[str, Expr] = {}
    for name in variable_names(config):
        full = f"{prefix}.{name}"
        if _is_bool(name):
            made[name] = z3.Bool(full)
        elif name == "controller_epoch":
            made[name] = z3.Int(full)  # unbounded: it grows with every failover
        else:
            made[name] = z3.BitVec(full, width(config))
    return SymState(config, made)


# -- concrete <-> symbolic ------------------------------------------------------------


def values_of(state: State, config: Config) -> dict[str, int | bool]:
    """The value of every state variable in a concrete state.

    Raises ValueError when the state lies outside what the encoding can
    represent (see the module docstring).
    """
    if state.groups or config.explore_groups:
        raise ValueError("consumer groups are not part of the symbolic encoding yet")
    if len(state.partitions) != config.partitions:
        raise ValueError(
            f"the state has {len(state.partitions)} partitions, the config {config.partitions}"
        )
    values: dict[str, int | bool] = {}
    for p, part in enumerate(state.partitions):
        _partition_values(values, p, part, config)
    for b in range(config.brokers):
        values[f"running{b}"] = b in state.running
    if not state.running <= frozenset(range(config.brokers)):
        raise ValueError(f"running brokers {sorted(state.running)} do not all exist")
    controller = NONE if state.controller is None else state.controller
    if config.explore_controller:
        values["controller"] = controller
        values["controller_epoch"] = state.controller_epoch
    elif (controller, state.controller_epoch) != (0, 1):
        raise ValueError("without controller failover the controller is broker 0 in epoch 1")
    return values


def _partition_values(
    values: dict[str, int | bool], p: int, part: Partition, config: Config
) -> None:
    hosts = config.replicas_of(p)
    if tuple(r.broker for r in part.replicas) != hosts:
        raise ValueError(f"partition {p} must have replicas on brokers {hosts}")
    _require_brokers(part.isr, hosts, f"the ISR of partition {p}")
    values[f"p{p}.leader"] = NONE if part.leader is None else part.leader
    values[f"p{p}.epoch"] = part.epoch
    for x in hosts:
        values[f"p{p}.isr{x}"] = x in part.isr
    for r in part.replicas:
        _replica_values(values, f"p{p}.b{r.broker}", r, hosts, config)


def _replica_values(
    values: dict[str, int | bool], key: str, r: Replica, hosts: tuple[int, ...], config: Config
) -> None:
    if r.leo > config.max_log:
        raise ValueError(f"{key} has log end {r.leo} beyond max_log {config.max_log}")
    if r.log_start != 0 and not config.explore_retention:
        raise ValueError(f"{key} has log start {r.log_start} but retention is not explored")
    if config.durable and (r.flushed, r.checkpoint_hw) != (r.leo, r.hw):
        raise ValueError(
            f"{key} is not durable: flushed/checkpoint differ from log end/high watermark"
        )
    _require_brokers(r.isr, hosts, f"the ISR of {key}")
    if r.leader is not None and r.leader not in hosts:
        raise ValueError(f"{key} follows broker {r.leader}, which hosts no replica")
    for o in range(config.max_log):
        record = r.record_at(o)
        if record is not None and record.id != record.epoch * 100 + o:
            raise ValueError(
                f"{key} holds record {record} at offset {o}: ids must be epoch*100+offset"
            )
        values[f"{key}.slot{o}"] = JUNK if record is None else record.epoch
    own = {
        "leo": r.leo,
        "hw": r.hw,
        "log_start": r.log_start,
        "flushed": r.flushed,
        "checkpoint_hw": r.checkpoint_hw,
        "epoch": r.epoch,
        "role": ROLE_CODES[r.role],
        "leader": NONE if r.leader is None else r.leader,
    }
    for name in _replica_fields(config):
        values[f"{key}.{name}"] = own[name]
    for x in hosts:
        values[f"{key}.isr{x}"] = x in r.isr


def _require_brokers(brokers: frozenset[int], hosts: tuple[int, ...], what: str) -> None:
    if not brokers <= frozenset(hosts):
        raise ValueError(
            f"{what} names brokers {sorted(brokers - frozenset(hosts))} that host no replica"
        )


def equals(sym: SymState, state: State) -> Expr:
    """The formula 'sym is this concrete state'."""
    values = values_of(state, sym.config)
    return z3.And([sym.vars[name] == value for name, value in values.items()])


def decode(sym: SymState, model: z3.ModelRef) -> State:
    """The concrete state that a Z3 model assigns to `sym`."""
    config = sym.config

    def val(term: Expr) -> int:
        value = model.eval(term, model_completion=True)
        return int(value.as_signed_long() if z3.is_bv_value(value) else value.as_long())

    def holds(term: Expr) -> bool:
        return bool(z3.is_true(model.eval(term, model_completion=True)))

    parts = []
    for p in range(config.partitions):
        hosts = config.replicas_of(p)
        replicas = tuple(_decode_replica(sym, p, b, hosts, val, holds) for b in hosts)
        leader = val(sym.q_leader(p))
        parts.append(
            Partition(
                leader=None if leader == NONE else leader,
                epoch=val(sym.q_epoch(p)),
                isr=frozenset(x for x in hosts if holds(sym.q_isr(p, x))),
                replicas=replicas,
            )
        )
    controller = val(sym.controller())
    return State(
        partitions=tuple(parts),
        running=frozenset(b for b in range(config.brokers) if holds(sym.running(b))),
        controller=None if controller == NONE else controller,
        controller_epoch=val(sym.controller_epoch()),
    )


def _decode_replica(
    sym: SymState,
    p: int,
    b: int,
    hosts: tuple[int, ...],
    val: Callable[[Expr], int],
    holds: Callable[[Expr], bool],
) -> Replica:
    log_start, leo = val(sym.log_start(p, b)), val(sym.leo(p, b))
    epochs = [val(sym.slot(p, b, o)) for o in range(log_start, leo)]
    leader = val(sym.leader(p, b))
    return Replica(
        broker=b,
        log=tuple(Record(e * 100 + log_start + i, e) for i, e in enumerate(epochs)),
        log_start=log_start,
        hw=val(sym.hw(p, b)),
        flushed=val(sym.flushed(p, b)),
        checkpoint_hw=val(sym.checkpoint_hw(p, b)),
        epoch=val(sym.epoch(p, b)),
        role=ROLES_BY_CODE[val(sym.role(p, b))],
        leader=None if leader == NONE else leader,
        isr=frozenset(x for x in hosts if holds(sym.isr(p, b, x))),
    )


# -- the transition families -----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Transition:
    """One guarded family instance: when `guard` holds, the variables in `updates` change."""

    action: str  # the model action type this instance performs
    partition: int | None
    broker: int | None
    other: int | None  # the second broker: the fetch source, the ISR member, the candidate
    guard: Expr
    updates: dict[str, Expr] = field(default_factory=dict)


def _min(a: Expr, b: Expr) -> Expr:
    return z3.If(a <= b, a, b)


def _max(a: Expr, b: Expr) -> Expr:
    return z3.If(a >= b, a, b)


def _key(p: int, b: int, name: str) -> str:
    return f"p{p}.b{b}.{name}"


def _set_durability(
    s: SymState, p: int, b: int, updates: dict[str, Expr], flushed: Expr, checkpoint: Expr
) -> None:
    """Record new flushed/checkpoint values; with durable configs they follow leo/hw by definition."""
    if not s.config.durable:
        updates[_key(p, b, "flushed")] = flushed
        updates[_key(p, b, "checkpoint_hw")] = checkpoint


def _cut_slots(s: SymState, p: int, b: int, end: Expr, updates: dict[str, Expr]) -> None:
    """Slots at or above `end` become JUNK (the log is cut there)."""
    for o in range(s.config.max_log):
        updates[_key(p, b, f"slot{o}")] = z3.If(o < end, s.slot(p, b, o), JUNK)


def last_epoch(s: SymState, p: int, b: int) -> Expr:
    """The epoch of the last record, or -1 for an empty log."""
    return z3.If(s.leo(p, b) > s.log_start(p, b), s.slot_at(p, b, s.leo(p, b) - 1), -1)


def end_offset_for_epoch(s: SymState, p: int, b: int, epoch: Expr) -> tuple[Expr, Expr]:
    """`Replica.end_offset_for_epoch` as terms: (largest epoch <= `epoch`, its end) or (-1, -1)."""
    best: Expr = s.num(-1)
    for o in range(s.config.max_log):
        slot = s.slot(p, b, o)
        best = z3.If(z3.And(s.has(p, b, o), slot <= epoch, slot > best), slot, best)
    end: Expr = s.leo(p, b)
    for o in reversed(range(s.config.max_log)):
        end = z3.If(z3.And(s.has(p, b, o), s.slot(p, b, o) > best), o, end)
    return best, z3.If(best == -1, -1, end)


def epoch_start_offset(s: SymState, p: int, b: int) -> Expr:
    """`step.epoch_start_offset` as a term: the first offset of the replica's epoch, else its leo."""
    start: Expr = s.leo(p, b)
    for o in reversed(range(s.config.max_log)):
        start = z3.If(z3.And(s.has(p, b, o), s.slot(p, b, o) >= s.epoch(p, b)), o, start)
    return start


def _fetch_source(s: SymState, p: int, b: int, c: int) -> Expr:
    """Replica b may fetch from broker c (`step._fetch_source` is c's replica)."""
    same_epoch = s.epoch(p, c) == s.epoch(p, b)
    if variants.NO_FETCH_EPOCH_FENCING in s.config.bugs:
        same_epoch = z3.BoolVal(True)
    return z3.And(s.leader(p, b) == c, s.running(c), s.role(p, c) == LEADER, same_epoch)


def _append(
    s: SymState, p: int, b: int, epoch_at: Callable[[int], Expr], updates: dict[str, Expr]
) -> None:
    leo = s.leo(p, b)
    for o in range(s.config.max_log):
        updates[_key(p, b, f"slot{o}")] = z3.If(leo == o, epoch_at(o), s.slot(p, b, o))
    updates[_key(p, b, "leo")] = leo + 1


def _become(s: SymState, p: int, b: int, hosts: tuple[int, ...]) -> Iterator[Transition]:
    ok = z3.And(s.running(b), s.epoch(p, b) < s.q_epoch(p), s.q_leader(p) != NONE)
    lead = {
        _key(p, b, "epoch"): s.q_epoch(p),
        _key(p, b, "role"): s.num(LEADER),
        _key(p, b, "leader"): s.num(b),
    }
    lead.update({_key(p, b, f"isr{x}"): s.q_isr(p, x) for x in hosts})
    yield Transition(
        "BecomeLeader", p, b, None, z3.And(ok, s.q_leader(p) == b, s.q_isr(p, b)), lead
    )
    follow = {
        _key(p, b, "epoch"): s.q_epoch(p),
        _key(p, b, "role"): s.num(TRUNCATING),
        _key(p, b, "leader"): s.q_leader(p),
    }
    follow.update({_key(p, b, f"isr{x}"): z3.BoolVal(False) for x in hosts})
    rejoin = z3.And(
        s.running(b),
        s.epoch(p, b) == s.q_epoch(p),
        s.role(p, b) == UNKNOWN,
        s.q_leader(p) != NONE,
    )
    yield Transition(
        "BecomeFollower", p, b, None, z3.And(z3.Or(ok, rejoin), s.q_leader(p) != b), follow
    )


def _leader_actions(s: SymState, p: int, b: int, hosts: tuple[int, ...]) -> Iterator[Transition]:
    config = s.config
    is_leader = z3.And(s.running(b), s.role(p, b) == LEADER)
    write: dict[str, Expr] = {}
    _append(s, p, b, lambda _o: s.epoch(p, b), write)
    yield Transition(
        "LeaderWrite", p, b, None, z3.And(is_leader, s.leo(p, b) < config.max_log), write
    )
    target = _leader_hw_target(s, p, b, hosts)
    yield Transition(
        "IncHighWatermark",
        p,
        b,
        None,
        z3.And(is_leader, target > s.hw(p, b)),
        {_key(p, b, "hw"): target},
    )
    in_isr = z3.And(is_leader, s.q_isr(p, b))
    fenced_ok = z3.And(s.q_leader(p) == b, s.q_epoch(p) == s.epoch(p, b))
    shrink_ok = fenced_ok
    if variants.STALE_LEADER_ACCEPTS_WRITES in config.bugs:
        shrink_ok = z3.BoolVal(True)
    for x in hosts:
        if x == b:
            continue
        shrunk = {f"p{p}.isr{x}": z3.BoolVal(False)}
        shrunk.update({_key(p, b, f"isr{y}"): z3.And(s.q_isr(p, y), y != x) for y in hosts})
        yield Transition("ShrinkIsr", p, b, x, z3.And(in_isr, shrink_ok, s.q_isr(p, x)), shrunk)
        grown = {f"p{p}.isr{x}": z3.BoolVal(True)}
        grown.update({_key(p, b, f"isr{y}"): z3.Or(s.q_isr(p, y), y == x) for y in hosts})
        caught_up = z3.And(
            s.running(x),
            z3.Not(s.q_isr(p, x)),
            s.role(p, x) == FOLLOWING,
            s.epoch(p, x) == s.epoch(p, b),
            s.leader(p, x) == b,
            _min(s.leo(p, x), s.flushed(p, x)) >= _max(s.hw(p, b), epoch_start_offset(s, p, b)),
        )
        yield Transition("ExpandIsr", p, b, x, z3.And(in_isr, fenced_ok, caught_up), grown)


def _leader_hw_target(s: SymState, p: int, b: int, hosts: tuple[int, ...]) -> Expr:
    """`step._leader_hw_target` as a term."""
    target = _min(s.leo(p, b), s.flushed(p, b))
    for x in hosts:
        if x == b:
            continue
        in_step = z3.And(
            s.role(p, x) == FOLLOWING,
            s.epoch(p, x) == s.epoch(p, b),
            s.leader(p, x) == b,
            s.running(x),
        )
        counted = s.isr(p, b, x)
        if variants.HW_AHEAD_OF_ISR in s.config.bugs:
            counted = z3.And(counted, s.running(x))
        advertised = z3.If(in_step, s.flushed(p, x), s.hw(p, b))
        target = z3.If(counted, _min(target, advertised), target)
    return target


def _truncation(s: SymState, p: int, b: int, c: int) -> tuple[Expr, Expr]:
    """`variants.truncation_offset` for follower b and leader c (not truncate-to-hw): (offset, complete)."""
    bugs = s.config.bugs
    log_start, leo, hw = s.log_start(p, b), s.leo(p, b), s.hw(p, b)
    requested = last_epoch(s, p, b)
    ask_epoch, ask_end = end_offset_for_epoch(s, p, c, requested)
    answer_epoch = z3.If(requested >= s.epoch(p, c), s.epoch(p, c), ask_epoch)
    answer_end = z3.If(requested >= s.epoch(p, c), s.leo(p, c), ask_end)
    own_epoch, own_end = end_offset_for_epoch(s, p, b, answer_epoch)
    if variants.EPOCH_END_OFFSET_HOLE in bugs:
        trusted = _min(answer_end, leo)
        incomplete: Expr = z3.BoolVal(False)
    else:
        trusted = z3.If(
            own_epoch == -1,
            log_start,
            z3.If(
                own_epoch != answer_epoch, _min(own_end, leo), _min(_min(answer_end, own_end), leo)
            ),
        )
        incomplete = z3.And(own_epoch != -1, own_epoch != answer_epoch)
    offset = z3.If(
        requested == -1,
        leo,
        z3.If(answer_epoch == -1, _max(log_start, _min(hw, leo)), trusted),
    )
    complete = z3.Not(z3.And(requested != -1, answer_epoch != -1, incomplete))
    return _max(log_start, offset), complete


def _truncate_updates(s: SymState, p: int, b: int, offset: Expr, role: Expr) -> dict[str, Expr]:
    updates: dict[str, Expr] = {
        _key(p, b, "leo"): offset,
        _key(p, b, "hw"): _min(s.hw(p, b), offset),
        _key(p, b, "role"): role,
    }
    _cut_slots(s, p, b, offset, updates)
    _set_durability(
        s, p, b, updates, _min(s.flushed(p, b), offset), _min(s.checkpoint_hw(p, b), offset)
    )
    return updates


def _slots_of(s: SymState, p: int, b: int) -> Callable[[int], Expr]:
    return lambda o: s.slot(p, b, o)


def _follower_actions(s: SymState, p: int, b: int, hosts: tuple[int, ...]) -> Iterator[Transition]:
    role = s.role(p, b)
    if variants.TRUNCATE_TO_HW in s.config.bugs:
        offset = _max(s.log_start(p, b), _min(s.hw(p, b), s.leo(p, b)))
        guard = z3.And(
            s.running(b),
            z3.Or(role == TRUNCATING, z3.And(role == UNKNOWN, offset < s.leo(p, b))),
        )
        new_role = z3.If(role == TRUNCATING, FOLLOWING, role)
        yield Transition(
            "Truncate", p, b, None, guard, _truncate_updates(s, p, b, offset, new_role)
        )
    for c in hosts:
        source = z3.And(s.running(b), _fetch_source(s, p, b, c))
        if variants.TRUNCATE_TO_HW not in s.config.bugs:
            offset, complete = _truncation(s, p, b, c)
            new_role = z3.If(complete, s.num(FOLLOWING), s.num(TRUNCATING))
            yield Transition(
                "Truncate",
                p,
                b,
                c,
                z3.And(source, role == TRUNCATING),
                _truncate_updates(s, p, b, offset, new_role),
            )
        following = z3.And(source, role == FOLLOWING)
        leo = s.leo(p, b)
        record_epoch = s.slot_at(p, c, leo)
        fetchable = z3.And(
            s.log_start(p, c) <= leo,
            leo < s.leo(p, c),
            record_epoch <= s.epoch(p, b),
            z3.Or(leo == s.log_start(p, b), record_epoch >= last_epoch(s, p, b)),
        )
        fetched: dict[str, Expr] = {}
        _append(s, p, b, _slots_of(s, p, c), fetched)
        yield Transition("FollowerReplicate", p, b, c, z3.And(following, fetchable), fetched)
        new_hw = _min(s.hw(p, c), leo)
        yield Transition(
            "IncHighWatermark",
            p,
            b,
            c,
            z3.And(following, new_hw > s.hw(p, b)),
            {_key(p, b, "hw"): new_hw},
        )


def _storage_actions(s: SymState, p: int, b: int) -> Iterator[Transition]:
    config = s.config
    if not config.durable:
        dirty = z3.Or(s.flushed(p, b) < s.leo(p, b), s.checkpoint_hw(p, b) != s.hw(p, b))
        updates: dict[str, Expr] = {}
        _set_durability(s, p, b, updates, s.leo(p, b), s.hw(p, b))
        yield Transition("Flush", p, b, None, z3.And(s.running(b), dirty), updates)
    if config.explore_retention:
        start = s.log_start(p, b)
        # `enabled` offers retention up to the log end under the variant, but `step`
        # never deletes at or above the high watermark, so only that part remains.
        guard = z3.And(s.running(b), start < s.hw(p, b))
        if variants.RETENTION_DELETES_UNREPLICATED in config.bugs:
            guard = z3.And(guard, start < s.leo(p, b))
        new_start = start + 1
        deleted: dict[str, Expr] = {_key(p, b, "log_start"): new_start}
        for o in range(config.max_log):
            deleted[_key(p, b, f"slot{o}")] = z3.If(start == o, JUNK, s.slot(p, b, o))
        flushed = _max(s.flushed(p, b), new_start)
        _set_durability(s, p, b, deleted, flushed, _max(s.checkpoint_hw(p, b), new_start))
        yield Transition("RetentionDelete", p, b, None, guard, deleted)


def _elections(s: SymState, p: int, hosts: tuple[int, ...]) -> Iterator[Transition]:
    config = s.config
    controller_up = z3.Or(
        [z3.And(s.controller() == b, s.running(b)) for b in range(config.brokers)]
    )
    ok = z3.And(controller_up, s.q_epoch(p) < config.max_epoch)
    live = {x: z3.And(s.q_isr(p, x), s.running(x)) for x in hosts}
    unclean = variants.UNCLEAN_ELECTION in config.bugs
    for c in hosts:
        eligible = s.running(c) if unclean else live[c]
        updates = {f"p{p}.leader": s.num(c), f"p{p}.epoch": s.q_epoch(p) + 1}
        for x in hosts:
            updates[f"p{p}.isr{x}"] = z3.If(s.q_isr(p, c), z3.Or(live[x], x == c), x == c)
        # A leader that restarted remembers its epoch and may not lead it again: re-elect.
        bounced = z3.And(s.role(p, c) == UNKNOWN, s.epoch(p, c) == s.q_epoch(p))
        not_current = z3.Or(s.q_leader(p) != c, bounced)
        yield Transition("ElectLeader", p, None, c, z3.And(ok, eligible, not_current), updates)
    offline = z3.And(ok, z3.Not(z3.Or(list(live.values()))), s.q_leader(p) != NONE)
    yield Transition(
        "ElectLeader",
        p,
        None,
        None,
        offline,
        {f"p{p}.leader": s.num(NONE), f"p{p}.epoch": s.q_epoch(p) + 1},
    )


def _crash(s: SymState, b: int) -> Transition:
    config = s.config
    updates: dict[str, Expr] = {f"running{b}": z3.BoolVal(False)}
    for p in range(config.partitions):
        hosts = config.replicas_of(p)
        if b not in hosts:
            continue
        kept = _min(s.leo(p, b), _max(s.log_start(p, b), s.flushed(p, b)))
        checkpoint = _min(s.checkpoint_hw(p, b), kept)
        updates[_key(p, b, "leo")] = kept
        updates[_key(p, b, "hw")] = checkpoint
        _set_durability(s, p, b, updates, kept, checkpoint)
        _cut_slots(s, p, b, kept, updates)
        updates[_key(p, b, "role")] = s.num(UNKNOWN)
        updates[_key(p, b, "leader")] = s.num(NONE)
        updates.update({_key(p, b, f"isr{x}"): z3.BoolVal(False) for x in hosts})
    return Transition("Crash", None, b, None, s.running(b), updates)


def transitions(s: SymState) -> list[Transition]:
    """Every family instance of the model from state `s`, in a fixed order."""
    config = s.config
    found: list[Transition] = []
    for p in range(config.partitions):
        hosts = config.replicas_of(p)
        for b in hosts:
            found += _become(s, p, b, hosts)
            found += _leader_actions(s, p, b, hosts)
            found += _follower_actions(s, p, b, hosts)
            found += _storage_actions(s, p, b)
        found += _elections(s, p, hosts)
    if config.explore_crashes:
        for b in range(config.brokers):
            found.append(_crash(s, b))
            found.append(
                Transition(
                    "Restart",
                    None,
                    b,
                    None,
                    z3.Not(s.running(b)),
                    {f"running{b}": z3.BoolVal(True)},
                )
            )
    if config.explore_controller:
        for b in range(config.brokers):
            guard = z3.And(s.running(b), s.controller() != b)
            updates = {"controller": s.num(b), "controller_epoch": s.controller_epoch() + 1}
            found.append(Transition("ControllerFailover", None, None, b, guard, updates))
    return found


def transition_relation(
    s: SymState, t: SymState, choice_name: str
) -> tuple[Expr, list[Transition], Expr]:
    """The formula 'from s, one instance leads to t', the instances, and the selector naming it.

    Every variable of t is an if-then-else chain over the instances that change
    it, falling back to its value in s.
    """
    instances = transitions(s)
    choice = choice_variable(choice_name, len(instances))
    chains: dict[str, Expr] = dict(s.vars)
    for index, instance in enumerate(instances):
        for name, value in instance.updates.items():
            chains[name] = z3.If(choice == index, value, chains[name])
    picked = [z3.Implies(choice == i, inst.guard) for i, inst in enumerate(instances)]
    frame = [t.vars[name] == chains[name] for name in t.vars]
    formula = z3.And(z3.ULT(choice, len(instances)), *picked, *frame)
    return formula, instances, choice


def initial(s: SymState, start: State) -> Expr:
    """The formula 's is the initial state'."""
    return equals(s, start)


def commuting_pairs(s: SymState, instances: list[Transition]) -> list[tuple[int, int]]:
    """The pairs (i, j), i < j, of instances that commute: neither writes what the other reads or writes.

    Two such instances taken one after the other reach the same state in either
    order, and each is enabled after the other exactly when it was before, so a
    path can always be reordered to take them in index order. Bounded model
    checking uses this (a partial-order reduction) to skip the other order.
    """
    names_of = {var.get_id(): name for name, var in s.vars.items()}
    reads = [_read_names(inst, names_of) for inst in instances]
    writes = [frozenset(inst.updates) for inst in instances]
    pairs: list[tuple[int, int]] = []
    for i, j in itertools.combinations(range(len(instances)), 2):
        if not (writes[i] & (reads[j] | writes[j]) or writes[j] & reads[i]):
            pairs.append((i, j))
    return pairs


def _read_names(instance: Transition, names_of: dict[int, str]) -> frozenset[str]:
    """The state variables the guard and the new values of an instance depend on."""
    found: set[str] = set()
    seen: set[int] = set()
    pending = [instance.guard, *instance.updates.values()]
    while pending:
        term = pending.pop()
        if term.get_id() in seen:
            continue
        seen.add(term.get_id())
        if term.get_id() in names_of:
            found.add(names_of[term.get_id()])
        else:
            pending.extend(term.children())
    return frozenset(found)
