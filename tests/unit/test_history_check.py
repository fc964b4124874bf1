"""The black-box checker: each planted history fires its anomaly, and its clean twin does not."""

from __future__ import annotations

import pytest
from kafka_verify.properties.history import (
    ALLOWANCES,
    CheckConfig,
    CheckResult,
    HistoryError,
    Op,
    check,
    edn_ops,
    jsonl_ops,
)


class H:
    """Builds a history with increasing indexes and times."""

    def __init__(self) -> None:
        self.ops: list[Op] = []

    def op(self, process: str, type_: str, f: str, value: object, **extra: object) -> H:
        i = len(self.ops)
        self.ops.append(Op(i, i * 10, process, type_, f, value, **extra))  # type: ignore[arg-type]
        return self

    def send(
        self, p: str, record: int, offset: int | None, type_: str = "ok", key: str = "t/0"
    ) -> H:
        topic, partition = key.split("/")
        self.op(p, "invoke", "send", [topic, int(partition), None, record])
        return self.op(p, type_, "send", [topic, int(partition), offset, record])

    def poll(self, c: str, *pairs: tuple[int, int], key: str = "t/0", type_: str = "ok") -> H:
        self.op(c, "invoke", "poll", None)
        return self.op(c, type_, "poll", {key: [list(p) for p in pairs]})

    def txn(self, process: str, *mops: list[object], type_: str = "ok") -> H:
        self.op(process, "invoke", "txn", None)
        return self.op(process, type_, "txn", [list(m) for m in mops])

    def result(self, config: CheckConfig | None = None) -> CheckResult:
        return check(self.ops, config)


def counted(result: CheckResult) -> set[str]:
    return set(result.anomaly_types)


def cases(result: CheckResult, name: str) -> list[dict[str, object]]:
    found = result.as_dict()["anomalies"]
    assert isinstance(found, dict)
    return list(found.get(name, []))


def clean() -> H:
    h = H()
    h.send("p0", 1, 0).send("p0", 2, 1).send("p0", 3, 2)
    h.poll("c0", (0, 1), (1, 2)).poll("c0", (2, 3))
    return h


def test_a_clean_history_is_valid() -> None:
    result = clean().result()
    assert result.valid is True
    assert result.anomaly_types == [] and result.judged == ()
    assert result.ops == 10  # invokes and completions
    assert result.stats["acked"] == 3 and result.stats["read"] == 3


def test_an_empty_history_is_unknown() -> None:
    assert check([]).valid == "unknown"
    nemesis_only = [Op(0, 0, "nemesis", "info", "start-partition", None)]
    assert check(nemesis_only).valid == "unknown"


def test_lost_write() -> None:
    h = H().send("p0", 1, 0).send("p0", 2, 1).send("p0", 3, 2)
    h.poll("c0", (0, 1)).op("c0", "ok", "crash", None).poll("c0", (2, 3))
    result = h.result()
    assert counted(result) == {"lost-write"}
    [case] = cases(result, "lost-write")
    assert case["record"] == 2 and case["offset"] == 1
    assert [op["index"] for op in case["ops"]] == [3, 10]  # type: ignore[index]


def test_duplicate_and_inconsistent_offsets() -> None:
    dup = H().send("p0", 1, 0).send("p1", 1, 1)
    assert "duplicate" in counted(dup.result())
    assert cases(dup.result(), "duplicate")[0]["offsets"] == [0, 1]
    conflict = H().send("p0", 1, 0).poll("c0", (0, 9))
    # Record 1, acknowledged at offset 0, was never read there: lost as well.
    assert counted(conflict.result()) == {"inconsistent-offsets", "lost-write"}
    assert cases(conflict.result(), "inconsistent-offsets")[0]["records"] == [1, 9]


def test_one_value_sent_to_two_partitions_is_two_records() -> None:
    h = H().send("p0", 7, 0, key="t/0").send("p0", 7, 0, key="t/1")
    h.poll("c0", (0, 7), key="t/0").poll("c0", (0, 7), key="t/1")
    assert h.result().valid is True


def test_duplicates_are_allowed_without_idempotence() -> None:
    h = H().send("p0", 1, 0).send("p1", 1, 1)
    result = h.result(CheckConfig(idempotent=False))
    assert result.valid is True and result.allowed_types == ["duplicate"]
    assert "retried" in str(result.as_dict()["allowed"])


def test_poll_skip_is_judged_over_records_known_to_exist() -> None:
    skipped = H().send("p0", 1, 0).send("p0", 2, 1).send("p0", 3, 2)
    skipped.poll("c0", (0, 1)).poll("c0", (2, 3))
    assert "poll-skip" in counted(skipped.result())
    # Offsets 1 and 3 hold transaction markers: no record is known there, no skip.
    gaps = H().send("p0", 1, 0).send("p0", 2, 2).send("p0", 3, 4)
    gaps.poll("c0", (0, 1)).poll("c0", (2, 2)).poll("c0", (4, 3))
    assert gaps.result().valid is True


def test_a_record_known_only_from_a_later_poll_makes_a_skip() -> None:
    h = H().poll("c0", (0, 1)).poll("c0", (2, 3)).poll("c1", (0, 1), (1, 2), (2, 3))
    result = h.result()
    assert counted(result) == {"poll-skip"}
    assert cases(result, "poll-skip")[0]["skipped"] == [2]


def test_nonmonotonic_poll() -> None:
    h = H().poll("c0", (0, 1), (1, 2)).poll("c0", (1, 2))
    assert counted(h.result()) == {"nonmonotonic-poll"}
    seek = H().poll("c0", (0, 1), (1, 2)).op("c0", "ok", "assign", ["t/0"], seek=True)
    seek.poll("c0", (0, 1))
    assert seek.result().valid is True


def test_a_resubscription_keeps_the_partitions_it_still_covers() -> None:
    h = H().poll("c0", (0, 1), key="t/0").poll("c0", (0, 5), key="t/1")
    h.op("c0", "ok", "assign", ["t/0"])
    h.poll("c0", (0, 1), key="t/0")  # t/0 kept its position: a re-read
    h.poll("c0", (0, 5), key="t/1")  # t/1 was dropped and reassigned: reading afresh is fine
    result = h.result()
    assert counted(result) == {"nonmonotonic-poll"}
    assert {c["key"] for c in cases(result, "nonmonotonic-poll")} == {"t/0"}


def test_subscribe_mode_allows_skips_across_rebalances() -> None:
    h = H().send("p0", 1, 0).send("p0", 2, 1).send("p0", 3, 2)
    h.op("c0", "ok", "subscribe", ["t"]).poll("c0", (0, 1)).poll("c0", (2, 3))
    h.poll("c1", (1, 2))
    assert counted(h.result()) == {"poll-skip"}
    relaxed = h.result(CheckConfig(sub_via=frozenset({"subscribe"})))
    assert relaxed.valid is True and relaxed.allowed_types == ["poll-skip"]


def test_nonmonotonic_send() -> None:
    h = H().send("p0", 2, 1).send("p0", 1, 0)
    assert "nonmonotonic-send" in counted(h.result())
    other = H().send("p0", 2, 1).send("p1", 1, 0)
    assert other.result().valid is True


def test_an_info_send_later_read_counts_as_written() -> None:
    h = H().send("p0", 1, None, type_="info").poll("c0", (0, 1))
    assert h.result().valid is True
    # ... and a record acknowledged after it but never read, below what was read, is lost.
    lost = H().send("p0", 1, 0).send("p1", 2, None, type_="info").send("p2", 3, 2)
    lost.poll("c0", (1, 2), (2, 3))
    assert counted(lost.result()) == {"lost-write"}
    assert cases(lost.result(), "lost-write")[0]["record"] == 1


def test_info_and_fail_polls_count_as_reads() -> None:
    h = H().send("p0", 1, 0).send("p0", 2, 1)
    h.poll("c0", (0, 1), type_="info").poll("c1", (1, 2), type_="fail")
    assert h.result().valid is True
    conflict = H().send("p0", 1, 0).poll("c0", (0, 5), type_="fail")
    assert "inconsistent-offsets" in counted(conflict.result())


def test_aborted_read() -> None:
    h = H().send("p0", 1, None, type_="fail").poll("c0", (0, 1))
    assert counted(h.result()) == {"G1a"}
    aborted = H().txn("p0", ["send", "t/0", 5], type_="fail").poll("c0", (0, 5))
    assert counted(aborted.result()) == {"G1a"}


def test_precommitted_read() -> None:
    h = H().txn("p0", ["send", "t/0", [0, 1]], ["poll", {"t/0": [[0, 1]]}])
    assert counted(h.result()) == {"precommitted-read"}


def test_internal_poll_skip_and_nonmonotonic_poll() -> None:
    h = H().send("p0", 1, 0).send("p0", 2, 1).send("p0", 3, 2)
    h.txn("c0", ["poll", {"t/0": [[0, 1]]}], ["poll", {"t/0": [[2, 3]]}])
    assert counted(h.result()) == {"int-poll-skip", "lost-write"}  # record 2 was never read
    back = H().txn("c0", ["poll", {"t/0": [[1, 2]]}], ["poll", {"t/0": [[0, 1]]}])
    assert counted(back.result()) == {"int-nonmonotonic-poll"}
    rebalanced = H().op("c0", "invoke", "txn", None)
    rebalanced.op(
        "c0",
        "ok",
        "txn",
        [["poll", {"t/0": [[1, 2]]}], ["poll", {"t/0": [[0, 1]]}]],
        rebalanced=frozenset({"t/0"}),
    )
    assert rebalanced.result().valid is True
    assert rebalanced.result().allowed_types == ["int-nonmonotonic-poll"]


def test_internal_send_skip_is_allowed_and_internal_nonmonotonic_send_is_not() -> None:
    h = H().txn("p0", ["send", "t/0", [0, 1]], ["send", "t/0", [2, 2]]).send("p1", 3, 1)
    result = h.result()
    assert result.valid is True and result.allowed_types == ["int-send-skip"]
    back = H().txn("p0", ["send", "t/0", [1, 1]], ["send", "t/0", [0, 2]])
    assert counted(back.result()) == {"int-nonmonotonic-send"}


def test_sends_placed_only_by_polls_are_ordered() -> None:
    h = H().txn("p0", ["send", "t/0", 1], ["send", "t/0", 2], type_="info")
    h.poll("c0", (0, 2), (1, 1))
    assert "int-nonmonotonic-send" in counted(h.result())


def test_g1c_cycle_of_reads() -> None:
    h = H()
    h.txn("a", ["send", "t/0", [0, 1]], ["poll", {"t/1": [[0, 2]]}])
    h.txn("b", ["send", "t/1", [0, 2]], ["poll", {"t/0": [[0, 1]]}])
    result = h.result()
    assert counted(result) == {"G1c"}
    [case] = cases(result, "G1c")
    assert len(case["steps"]) == 2  # type: ignore[arg-type]
    assert {op["process"] for op in case["ops"]} == {"a", "b"}  # type: ignore[index]
    assert h.result(CheckConfig(ww_deps=True)).valid is True  # allowed with --ww-deps


def test_g0_write_cycle_with_ww_deps() -> None:
    h = H()
    h.txn("a", ["send", "t/0", [0, 1]], ["send", "t/1", [1, 2]])
    h.txn("b", ["send", "t/0", [1, 3]], ["send", "t/1", [0, 4]])
    assert h.result().allowed_types == []
    with_ww = h.result(CheckConfig(ww_deps=True))
    assert "G0" in with_ww.allowed_types and with_ww.valid is True


def test_repeated_or_decreasing_indexes_are_bad_input() -> None:
    ops = [Op(0, 0, "p0", "invoke", "send", None), Op(0, 1, "p0", "ok", "send", ["t", 0, 0, 1])]
    with pytest.raises(HistoryError, match="unique and increasing"):
        check(ops)


@pytest.mark.parametrize(
    "value",
    [["t", 0, 1], ["t", -1, 0, 1], [3, 0, 0, 1], ["t", 0, 0, 1.5], "t/0", [["write", "t/0", 1]]],
)
def test_values_of_the_wrong_shape_are_bad_input(value: object) -> None:
    with pytest.raises(HistoryError):
        check([Op(0, 0, "p0", "ok", "send", value)])


def test_unknown_operations_are_counted_not_dropped() -> None:
    h = clean().op("p9", "ok", "frobnicate", None)
    assert h.result().stats["unchecked"] == {"frobnicate": 1}


def test_unseen_and_realtime_lag_are_measured() -> None:
    h = H().send("p0", 1, 0).send("p0", 2, 1).poll("c0", (0, 1))
    stats = h.result().stats
    unseen = stats["unseen"]
    assert isinstance(unseen, dict) and unseen["count"] == 1 and unseen["records"] == {"t/0": [2]}
    lag = stats["realtime_lag"]
    # Offset 1 existed from t=30 (op 3); the poll was invoked at t=40.
    assert isinstance(lag, dict) and lag["worst_ms"] == 10 and lag["worst_key"] == "t/0"


def test_every_allowance_has_a_reason() -> None:
    assert all(row.reason for row in ALLOWANCES)


EDN_PLAIN = """\
{:index 0, :time 1000000, :type :invoke, :process 0, :f :send, :value [[:send 5 1]]}
{:index 1, :time 2000000, :type :ok, :process 0, :f :send, :value [[:send 5 [0 1]]]}
{:index 2, :time 3000000, :type :invoke, :process 1, :f :poll, :value [[:poll]]}
{:index 3, :time 4000000, :type :ok, :process 1, :f :poll, :value [[:poll {5 [[0 1]]}]]}
{:index 4, :time 5000000, :type :info, :process :nemesis, :f :start-partition, :value nil}
"""

EDN_RECORDS = """\
#jepsen.history.Op{:index 0, :time 10, :type :invoke, :process 0, :f :txn, :value [[:send 5 1] [:send 6 2]]}
#jepsen.history.Op{:index 1, :time 20, :type :ok, :process 0, :f :txn, :value [[:send 5 [0 1]] [:send 6 [0 2]]]}
#jepsen.history.Op{:index 2, :time 30, :type :invoke, :process 1, :f :assign, :value [5 6]}
#jepsen.history.Op{:index 3, :time 40, :type :ok, :process 1, :f :assign, :value [5 6]}
#jepsen.history.Op{:index 4, :time 50, :type :invoke, :process 1, :f :poll, :value [[:poll]]}
#jepsen.history.Op{:index 5, :time 60, :type :ok, :process 1, :f :poll, :value [[:poll {5 [[0 1]], 6 [[0 9]]}]]}
"""


def test_jepsen_edn_histories_load_in_both_forms() -> None:
    plain = [op for _, op in edn_ops(EDN_PLAIN.splitlines())]
    assert [op.f for op in plain] == ["send", "send", "poll", "poll", "start-partition"]
    assert plain[1].time_ms == 2 and plain[4].process == "nemesis"
    assert check(plain).valid is True
    records = [op for _, op in edn_ops(EDN_RECORDS.splitlines())]
    result = check(records)
    # Offset 0 of key 6 held 2 and 9; record 2 was never read there, so it is lost too.
    assert result.anomaly_types == ["inconsistent-offsets", "lost-write"]
    assert cases(result, "inconsistent-offsets")[0]["key"] == "6"


def test_loaders_name_the_bad_line() -> None:
    with pytest.raises(HistoryError, match=r"^line 2: not EDN"):
        list(
            edn_ops(["{:index 0, :time 1, :type :ok, :process 0, :f :poll, :value nil}", "{:index"])
        )
    with pytest.raises(HistoryError, match=r"^line 3: .*'time_ms'"):
        list(
            jsonl_ops(
                [
                    "",
                    '{"index": 0, "time_ms": 0, "process": "p", "type": "ok", "f": "x"}',
                    '{"index": 1}',
                ]
            )
        )
