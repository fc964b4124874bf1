"""Commits and consumer starts: lost-commit and stale-commit fire on planted histories only."""

from __future__ import annotations

from kafka_verify.properties.history import CheckConfig, CheckResult, Op, check
from kafka_verify.properties.registry import PROPERTIES

G = "g"
P0 = "t/0"


class H:
    """Builds a consumer-group history with increasing indexes."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, process: str, type_: str, f: str, value: object, **extra: object) -> H:
        i = len(self.ops)
        self.ops.append(Op(i, i, process, type_, f, value, **extra))  # type: ignore[arg-type]
        return self

    def assign(self, c: str, *keys: str, group: str = G, seek: bool = False) -> H:
        value = {"group": group, "partitions": list(keys or (P0,))}
        self.op(c, "invoke", "assign", value, seek=seek)
        return self.op(c, "ok", "assign", value, seek=seek)

    def subscribe(self, c: str, group: str = G) -> H:
        value = {"group": group, "topics": ["t"]}
        self.op(c, "invoke", "subscribe", value)
        return self.op(c, "ok", "subscribe", value)

    def poll(
        self, c: str, *offsets: int, key: str = P0, events: tuple[tuple[str, str], ...] = ()
    ) -> H:
        """A poll reading `offsets` of `key`; `events` are rebalance callbacks it ran first."""
        self.op(c, "invoke", "poll", {})
        for event, partition in events:
            self.op(c, "ok", event, [partition])
        return self.op(c, "ok", "poll", {key: [[o, 1000 + o] for o in offsets]} if offsets else {})

    def commit(self, c: str, offset: int, type_: str = "ok", key: str = P0) -> H:
        self.invoke_commit(c, offset, key)
        return self.complete_commit(c, offset, type_, key)

    def invoke_commit(self, c: str, offset: int, key: str = P0) -> H:
        return self.op(c, "invoke", "commit", {key: offset})

    def complete_commit(self, c: str, offset: int, type_: str = "ok", key: str = P0) -> H:
        return self.op(c, type_, "commit", {key: offset} if type_ == "ok" else "timed out")

    def crash(self, c: str) -> H:
        self.op(c, "invoke", "crash", None)
        return self.op(c, "info", "crash", None)

    def result(self, config: CheckConfig | None = None) -> CheckResult:
        return check(self.ops, config)


SUBSCRIBE = CheckConfig(sub_via=frozenset({"subscribe"}))


def lost(judged: H | CheckResult) -> list[dict[str, object]]:
    result = judged.result() if isinstance(judged, H) else judged
    found = result.as_dict()["anomalies"]
    assert isinstance(found, dict)
    return list(found.get("lost-commit", []))


def stale(judged: H | CheckResult) -> list[dict[str, object]]:
    result = judged.result() if isinstance(judged, H) else judged
    found = result.as_dict()["anomalies"]
    assert isinstance(found, dict)
    return list(found.get("stale-commit", []))


def committed_then_restarted(first_read: int) -> H:
    """c0 reads 0..9, commits 10 (acknowledged), crashes, assigns again and reads `first_read`."""
    h = H().assign("c0").poll("c0", *range(10)).commit("c0", 10).crash("c0")
    return h.assign("c0").poll("c0", first_read, first_read + 1)


# -- lost-commit ---------------------------------------------------------------------------------


def test_a_restart_below_an_acknowledged_commit_is_a_lost_commit() -> None:
    result = committed_then_restarted(0).result()
    [case] = lost(result)
    assert result.valid is False
    assert case["key"] == P0 and case["read_offset"] == 0 and case["committed_floor"] == 10
    assert case["group"] == G and case["consumer"] == "c0"


def test_a_restart_at_or_above_the_commit_is_clean() -> None:
    assert lost(committed_then_restarted(10)) == []
    # A hole (or records of another run) above the committed offset is no loss.
    assert lost(committed_then_restarted(14)) == []
    assert committed_then_restarted(10).result().valid is True


def test_a_commit_concurrent_with_the_start_may_be_what_it_read() -> None:
    h = H().assign("c1").assign("c0").poll("c0", *range(10)).commit("c0", 10)
    h.poll("c1", *range(4))  # c1 fetched its position before c0's commit
    h.invoke_commit("c1", 4)  # still in flight when c2 fetches its position
    h.assign("c2").poll("c2", 4, 5)
    h.complete_commit("c1", 4)
    assert lost(h.result()) == []
    # Without that concurrent commit the same start is a loss.
    h2 = H().assign("c0").poll("c0", *range(10)).commit("c0", 10)
    h2.assign("c2").poll("c2", 4, 5)
    assert len(lost(h2.result())) == 1


def test_a_commit_acknowledged_after_the_first_read_still_counts_as_possible() -> None:
    h = H().assign("c1").assign("c0").poll("c0", *range(10)).commit("c0", 10)
    h.poll("c1", *range(3))
    h.invoke_commit("c1", 3)
    h.assign("c2").poll("c2", 3)
    h.complete_commit("c1", 3)
    assert lost(h.result()) == []


def test_an_unacknowledged_commit_may_take_effect_any_time_later_in_assign_mode() -> None:
    h = H().assign("c0").poll("c0", *range(3)).commit("c0", 3, "info")
    h.poll("c0", *range(3, 10)).commit("c0", 10)
    h.assign("c1").poll("c1", 3)
    assert lost(h.result()) == []
    # A failed commit may have been applied by an earlier attempt the client retried.
    h = H().assign("c0").poll("c0", *range(3)).commit("c0", 3, "fail")
    h.poll("c0", *range(3, 10)).commit("c0", 10)
    h.assign("c1").poll("c1", 3)
    assert lost(h.result()) == []


def test_a_commit_surely_overwritten_before_the_start_is_not_possible() -> None:
    h = H().assign("c0").poll("c0", *range(5)).commit("c0", 5)
    h.poll("c0", *range(5, 10)).commit("c0", 10)  # invoked after the first was acknowledged
    h.assign("c1").poll("c1", 5)
    [case] = lost(h.result())
    assert case["committed_floor"] == 10 and case["read_offset"] == 5


def test_assign_mode_interleaved_commits_raise_no_false_alarm() -> None:
    """Two consumers reading every partition commit their own positions in turn: the register
    follows whichever was applied last, lower or higher."""
    h = H().assign("c0", "t/0", "t/1").assign("c1", "t/0", "t/1")
    h.poll("c0", *range(10)).poll("c0", *range(8), key="t/1")
    h.poll("c1", *range(4)).poll("c1", *range(2), key="t/1")
    h.op("c0", "invoke", "commit", {"t/0": 10, "t/1": 8}).op(
        "c0", "ok", "commit", {"t/0": 10, "t/1": 8}
    )
    h.op("c1", "invoke", "commit", {"t/0": 4, "t/1": 2}).op(
        "c1", "ok", "commit", {"t/0": 4, "t/1": 2}
    )
    h.crash("c0").assign("c0", "t/0", "t/1").poll("c0", 4).poll("c0", 2, key="t/1")
    assert lost(h.result()) == []
    h.crash("c1").assign("c1", "t/0", "t/1").poll("c1", 3)
    assert len(lost(h.result())) == 1


def test_no_commit_yet_leaves_the_start_to_the_client_reset() -> None:
    h = H().assign("c0").poll("c0", 0, 1)
    h.assign("c1").poll("c1", *range(3)).invoke_commit("c1", 3)
    h.assign("c2").poll("c2", 0)
    h.complete_commit("c1", 3)
    assert lost(h.result()) == []


def test_the_final_read_seeks_and_other_groups_are_not_judged() -> None:
    h = H().assign("c0").poll("c0", *range(10)).commit("c0", 10)
    h.assign("final", seek=True, group="g-final").poll("final", 0, 1)
    h.assign("other", group="g2").poll("other", 0)
    assert lost(h.result()) == []


def test_histories_without_commit_values_are_not_judged() -> None:
    h = H().assign("c0").poll("c0", *range(10))
    h.op("c0", "invoke", "commit", None).op("c0", "ok", "commit", None)
    h.crash("c0").assign("c0").poll("c0", 0)
    result = h.result()
    assert lost(result) == [] and result.valid is True
    # Nor without groups: the simple assign of older histories names only partitions.
    h = H().op("c0", "invoke", "assign", [P0]).op("c0", "ok", "assign", [P0])
    h.poll("c0", *range(10)).commit("c0", 10).crash("c0")
    h.op("c0", "invoke", "assign", [P0]).op("c0", "ok", "assign", [P0]).poll("c0", 0)
    assert lost(h.result()) == []


def test_subscribe_mode_lost_commit_across_a_rebalance() -> None:
    h = H().subscribe("c0").poll("c0", *range(10), events=(("assigned", P0),))
    h.commit("c0", 10).poll("c0", events=(("revoked", P0),))
    h.subscribe("c1").poll("c1", 0, 1, events=(("assigned", P0),))
    [case] = lost(h.result(SUBSCRIBE))
    assert case["consumer"] == "c1" and case["read_offset"] == 0
    clean = H().subscribe("c0").poll("c0", *range(10), events=(("assigned", P0),))
    clean.commit("c0", 10).poll("c0", events=(("revoked", P0),))
    clean.subscribe("c1").poll("c1", 10, 11, events=(("assigned", P0),))
    assert lost(clean.result(SUBSCRIBE)) == []


def test_a_subscribe_without_rebalance_events_opens_the_window_at_the_subscribe() -> None:
    h = H().subscribe("c0").poll("c0", *range(10)).commit("c0", 10).crash("c0")
    h.subscribe("c1").poll("c1", 0)
    assert len(lost(h.result(SUBSCRIBE))) == 1
    h = H().subscribe("c0").poll("c0", *range(10)).commit("c0", 10)
    h.subscribe("c1").poll("c1", 3)  # c0's commit may have been overwritten by another meanwhile
    h.commit("c0", 3)
    assert len(lost(h.result(SUBSCRIBE))) == 1
    h = H().subscribe("c1").subscribe("c0").poll("c0", *range(10)).commit("c0", 10)
    h.poll("c1", 3)  # c1 subscribed before the commit: it may have fetched before it
    assert lost(h.result(SUBSCRIBE)) == []


def test_a_rejoin_fences_an_unacknowledged_commit_under_eager_rebalancing() -> None:
    """c0's timed-out commit of 3 was sent in its old generation: once c0 has revoked and been
    assigned again, a correct group refuses it, so c0's later acknowledged 10 stands."""

    def history() -> H:
        h = H().subscribe("c0").poll("c0", *range(3), events=(("assigned", P0),))
        h.commit("c0", 3, "info").poll("c0", events=(("revoked", P0),))
        h.poll("c0", *range(3, 10), events=(("assigned", P0),)).commit("c0", 10)
        h.poll("c0", events=(("revoked", P0),))
        return h.subscribe("c1").poll("c1", 3, events=(("assigned", P0),))

    [case] = lost(history().result(SUBSCRIBE))
    assert case["committed_floor"] == 10
    cooperative = CheckConfig(sub_via=frozenset({"subscribe"}), eager_groups=False)
    assert lost(history().result(cooperative)) == []


def test_the_call_that_revoked_and_reassigned_a_partition_reads_from_the_commit() -> None:
    """A poll that ran a revoke and an assign of the partition may return records fetched
    before the revoke, but those lie at or above the member's own commit."""

    def history(read: int) -> H:
        h = H().subscribe("c0").poll("c0", *range(10), events=(("assigned", P0),))
        h.commit("c0", 10).op("c0", "invoke", "poll", {})
        h.op("c0", "ok", "revoked", [P0]).op("c0", "ok", "assigned", [P0])
        return h.op("c0", "ok", "poll", {P0: [[read, 1000 + read]]})

    assert lost(history(10).result(SUBSCRIBE)) == []
    [case] = lost(history(5).result(SUBSCRIBE))
    assert case["read_offset"] == 5


# -- stale-commit --------------------------------------------------------------------------------


def test_a_commit_acknowledged_after_a_newer_member_was_assigned_is_stale() -> None:
    h = H().subscribe("c0").poll("c0", *range(5), events=(("assigned", P0),))
    h.subscribe("c1").poll("c1", events=(("assigned", "t/1"),))
    h.commit("c0", 5)  # c0 never rejoined: its generation ended when c1's began
    result = h.result(SUBSCRIBE)
    [case] = stale(result)
    assert case["consumer"] == "c0" and case["newer_member"] == "c1"
    assert result.valid is False


def test_a_commit_after_the_member_rejoined_is_not_stale() -> None:
    h = H().subscribe("c0").poll("c0", *range(5), events=(("assigned", P0),))
    h.subscribe("c1").poll("c1", events=(("assigned", "t/1"),))
    h.poll("c0", events=(("revoked", P0),)).poll("c0", 5, events=(("assigned", P0),))
    h.commit("c0", 6)
    assert stale(h.result(SUBSCRIBE)) == []


def test_a_member_that_joined_before_the_assignment_proves_nothing() -> None:
    """c1 joined before c0's assignment: both may be in the same generation."""
    h = H().subscribe("c0").subscribe("c1")
    h.poll("c0", *range(5), events=(("assigned", P0),))
    h.poll("c1", events=(("assigned", "t/1"),))
    h.commit("c0", 5)
    assert stale(h.result(SUBSCRIBE)) == []
    # A rejoin's earliest moment is the invoke of the call that ran its revoke callback.
    h = H().subscribe("c0").subscribe("c1")
    h.op("c1", "invoke", "poll", {})
    h.poll("c0", *range(5), events=(("assigned", P0),))
    h.op("c1", "ok", "revoked", ["t/1"]).op("c1", "ok", "poll", {})
    h.poll("c1", events=(("assigned", "t/1"),))
    h.commit("c0", 5)
    assert stale(h.result(SUBSCRIBE)) == []


def test_stale_commit_is_not_judged_without_eager_rebalancing() -> None:
    h = H().subscribe("c0").poll("c0", *range(5), events=(("assigned", P0),))
    h.subscribe("c1").poll("c1", events=(("assigned", "t/1"),))
    h.commit("c0", 5)
    assert stale(h.result(CheckConfig(eager_groups=False))) == []


def test_the_commit_anomalies_are_catalogued() -> None:
    for name in ("lost-commit", "stale-commit"):
        info = PROPERTIES[name]
        assert info.checks == "history" and info.forbids
