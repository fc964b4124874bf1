"""`model.values.fast_init`: a faster `__init__` that builds exactly what the dataclass's own does."""

from __future__ import annotations

import dataclasses
import inspect
import typing
from dataclasses import InitVar, dataclass, field

import pytest
from kafka_verify.impl import effects, messages, world, zk
from kafka_verify.model import actions, state
from kafka_verify.model.state import Replica, Role
from kafka_verify.model.values import fast_init


@dataclass(frozen=True, slots=True)
class Plain:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


@fast_init
@dataclass(frozen=True, slots=True)
class Fast:
    a: int
    b: str = "b"
    c: tuple[int, ...] = ()


def test_builds_what_the_dataclass_builds_positionally_by_keyword_and_by_default() -> None:
    for args, kwargs in (
        ((1,), {}),
        ((1, "x"), {}),
        ((1, "x", (2,)), {}),
        ((), {"a": 1, "c": (3,)}),
    ):
        slow, fast = Plain(*args, **kwargs), Fast(*args, **kwargs)
        assert (fast.a, fast.b, fast.c) == (slow.a, slow.b, slow.c)
    assert Fast(1) == Fast(1) and hash(Fast(1)) == hash(Fast(1)) and Fast(1) != Fast(2)
    assert repr(Fast(1, "x")) == "Fast(a=1, b='x', c=())"
    assert dataclasses.replace(Fast(1), b="y") == Fast(1, "y")


def test_the_signature_and_its_errors_are_the_dataclasses() -> None:
    assert str(inspect.signature(Fast)) == str(inspect.signature(Plain))
    with pytest.raises(TypeError, match="missing 1 required positional argument: 'a'"):
        Fast()
    with pytest.raises(TypeError, match="unexpected keyword argument 'd'"):
        Fast(1, d=2)
    with pytest.raises(TypeError, match="takes from 2 to 4 positional arguments but 5"):
        Fast(1, "b", (), 4)


def test_the_instances_stay_frozen() -> None:
    replica = Replica(0, hw=3)
    with pytest.raises(dataclasses.FrozenInstanceError):
        replica.hw = 4  # type: ignore[misc]
    assert replica.hw == 3 and replica.role is Role.UNKNOWN and replica.epoch == -1


def test_annotations_resolve_in_the_class_module() -> None:
    hints = typing.get_type_hints(Replica.__init__)
    assert hints["log"] == tuple[state.Record, ...] and hints["leader"] == int | None


def _refused(cls: type) -> str:
    with pytest.raises(TypeError) as error:
        fast_init(cls)
    return str(error.value)


def test_refuses_any_class_whose_init_does_more_than_store_its_arguments() -> None:
    @dataclass(frozen=True, slots=True)
    class Validated:
        a: int

        def __post_init__(self) -> None:
            if self.a < 0:
                raise ValueError("negative")

    @dataclass(frozen=True, slots=True)
    class Factory:
        a: list[int] = field(default_factory=list)

    @dataclass(frozen=True, slots=True)
    class KeywordOnly:
        a: int = field(kw_only=True)

    @dataclass(frozen=True)
    class Unslotted:
        a: int

    @dataclass(slots=True)
    class Mutable:
        a: int

    @dataclass(frozen=True)
    class InitOnly:
        a: int
        b: InitVar[int]

    assert "__post_init__" in _refused(Validated)
    assert "default factory" in _refused(Factory)
    assert "keyword-only" in _refused(KeywordOnly)
    assert "not a slotted dataclass" in _refused(Unslotted)
    assert "not frozen" in _refused(Mutable)
    assert "not a slotted dataclass" in _refused(InitOnly)
    assert "Validated" in _refused(Validated)


def test_the_classes_that_validate_themselves_keep_their_own_init() -> None:
    # Each checks its arguments in __post_init__, which a generated __init__ would skip.
    for cls in (state.Config, actions.SyncAssignment, actions.CommitOffset):
        assert "_set_0" not in cls.__init__.__code__.co_freevars, cls.__name__
    with pytest.raises(ValueError):
        state.Config(brokers=0)


def test_the_hot_values_use_it() -> None:
    # The values built on every step: model states, effects, envelopes, messages, zk records.
    for cls in (
        state.Replica,
        state.Partition,
        state.State,
        actions.LeaderWrite,
        effects.Send,
        effects.Observe,
        world.Envelope,
        messages.Fetch,
        messages.FetchResponse,
        zk.ZkCluster,
    ):
        assert "_set_0" in cls.__init__.__code__.co_freevars, cls.__name__
