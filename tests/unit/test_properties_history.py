"""Client-history properties: each anomaly is reported on a planted history and not on its clean twin."""

from __future__ import annotations

from dataclasses import replace

import pytest
from kafka_verify.model.state import Config, Record, Role, State, initial_state
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.history import HistoryChecker, Op, converged, parse_poll, parse_send

CONFIG = Config(brokers=3, replication=3, min_insync=2)


def committed(*ids: int, hw: int | None = None, log_start: int = 0) -> State:
    """A state whose three replicas all hold `ids` from `log_start`, committed up to `hw`."""
    state = initial_state(CONFIG)
    records = tuple(Record(i, 0) for i in ids)
    top = log_start + len(records) if hw is None else hw
    part = state.partitions[0]
    for r in part.replicas:
        part = part.with_replica(
            replace(r, log=records, log_start=log_start, hw=top, flushed=top, checkpoint_hw=top)
        )
    return state.with_partition(0, part)


class History:
    """Builds ops with increasing indexes and feeds them to a checker."""

    def __init__(self, state: State) -> None:
        self.checker = HistoryChecker(CONFIG)
        self.state = state
        self.index = 0
        self.found: list[Violation] = []

    def op(self, process: str, type_: str, f: str, value: object) -> None:
        op = Op(self.index, self.index * 10, process, type_, f, value)
        self.index += 1
        self.found += self.checker.observe(op, self.state)

    def send(
        self, process: str, record: int, offset: int | None, type_: str = "ok", partition: int = 0
    ) -> None:
        self.op(process, "invoke", "send", ["t", partition, None, record])
        self.op(process, type_, "send", ["t", partition, offset, record])

    def poll(self, process: str, *pairs: tuple[int, int], partition: int = 0) -> None:
        self.op(process, "invoke", "poll", None)
        self.op(process, "ok", "poll", {f"t/{partition}": [list(p) for p in pairs]})

    def names(self) -> set[str]:
        return {v.property for v in self.found}


def test_a_clean_history_reports_nothing() -> None:
    h = History(committed(1, 2, 3))
    h.send("p0", 1, 0)
    h.send("p0", 2, 1)
    h.send("p0", 3, 2)
    h.poll("c0", (0, 1), (1, 2))
    h.poll("c0", (2, 3))
    assert h.found == []
    assert h.checker.finish(h.state) == []


def test_inconsistent_offsets() -> None:
    h = History(committed(1, 2))
    h.send("p0", 1, 0)
    h.poll("c0", (0, 9))
    assert "inconsistent-offsets" in h.names()
    v = next(v for v in h.found if v.property == "inconsistent-offsets")
    assert dict(v.details)["records"] == (1, 9) and v.partition == 0


def test_duplicate() -> None:
    h = History(committed(1, 1))
    h.send("p0", 1, 0)
    h.send("p0", 1, 1)  # a retry without deduplication, acknowledged twice
    assert h.names() == {"duplicate"}


def test_nonmonotonic_poll_and_its_reset() -> None:
    h = History(committed(1, 2, 3))
    h.poll("c0", (0, 1), (1, 2))
    h.poll("c0", (1, 2))
    assert h.names() == {"nonmonotonic-poll"}
    clean = History(committed(1, 2, 3))
    clean.poll("c0", (0, 1), (1, 2))
    clean.op("c0", "info", "assign", ["t/0"])
    clean.poll("c0", (1, 2))
    assert clean.found == []


def test_poll_skip_of_a_retained_offset() -> None:
    h = History(committed(1, 2, 3))
    h.poll("c0", (0, 1))
    h.poll("c0", (2, 3))
    assert h.names() == {"poll-skip"}


def test_poll_skip_over_offsets_retention_removed_is_fine() -> None:
    h = History(committed(1, 2, 3))
    h.poll("c0", (0, 1))
    h.state = committed(3, log_start=2, hw=3)
    h.poll("c0", (2, 3))
    assert h.found == []


def test_nonmonotonic_send() -> None:
    h = History(committed(1, 2))
    h.send("p0", 2, 1)
    h.send("p0", 1, 0)
    assert "nonmonotonic-send" in h.names()
    other = History(committed(1, 2))
    other.send("p0", 2, 1)
    other.send("p1", 1, 0)  # another producer: no order between them
    assert other.found == []


def test_committed_read_beyond_the_high_watermark() -> None:
    h = History(committed(1, 2, hw=1))
    h.poll("c0", (0, 1), (1, 2))
    assert h.names() == {"committed-read"}
    v = h.found[0]
    assert dict(v.details) == {"offset": 1, "record": 2, "hw": 1, "op": 1}


def test_committed_read_of_a_record_that_is_not_the_committed_one() -> None:
    h = History(committed(1, 2))
    h.poll("c0", (0, 1), (1, 7))
    assert h.names() == {"committed-read"}


def test_phantom_write_both_orders() -> None:
    h = History(committed(1))
    h.send("p0", 1, None, type_="fail")
    h.poll("c0", (0, 1))
    assert "phantom-write" in h.names()
    late = History(committed(1))
    late.poll("c0", (0, 1))
    late.send("p0", 1, None, type_="fail")
    assert "phantom-write" in late.names()
    unknown = History(committed(1))
    unknown.send("p0", 1, None, type_="info")  # unknown outcome: may appear
    unknown.poll("c0", (0, 1))
    assert unknown.found == []


def test_lost_write_missing_from_the_final_log() -> None:
    h = History(committed(1, 2))
    h.send("p0", 1, 0)
    h.send("p0", 2, 1)
    final = committed(1)
    lost = h.checker.finish(final)
    assert {v.property for v in lost} == {"lost-write"}
    assert dict(lost[0].details)["record"] == 2


def test_lost_write_allows_retention() -> None:
    h = History(committed(1, 2))
    h.send("p0", 1, 0)
    h.send("p0", 2, 1)
    assert h.checker.finish(committed(2, log_start=1)) == []


def test_lost_write_never_read_while_later_offsets_were() -> None:
    h = History(committed(1, 2, 3))
    for record, offset in ((1, 0), (2, 1), (3, 2)):
        h.send("p0", record, offset)
    h.poll("c0", (0, 1))
    h.op("c0", "ok", "reset", None)
    h.poll("c0", (2, 3))
    lost = h.checker.finish(h.state)
    assert [v.property for v in lost] == ["lost-write"]
    assert dict(lost[0].details)["record"] == 2


def test_unseen_acked_writes_are_fine_when_the_log_has_them() -> None:
    h = History(committed(1, 2))
    h.send("p0", 1, 0)
    h.send("p0", 2, 1)
    h.poll("c0", (0, 1))
    assert h.checker.finish(h.state) == []


def test_converged() -> None:
    state = committed(1, 2)
    assert converged(state, CONFIG) == []
    part = state.partitions[0]
    behind = state.with_partition(0, part.with_replica(replace(part.replica(2), hw=1)))
    assert {v.property for v in converged(behind, CONFIG)} == {"converged"}
    down = replace(state, running=frozenset({0, 1}))
    assert {v.property for v in converged(down, CONFIG)} == {"converged"}
    leaderless = state.with_partition(0, replace(part, leader=None))
    assert {v.property for v in converged(leaderless, CONFIG)} == {"converged"}
    diverged = state.with_partition(
        0, part.with_replica(replace(part.replica(1), log=(Record(1, 0), Record(5, 0))))
    )
    assert {v.property for v in converged(diverged, CONFIG)} == {"converged"}
    stale = state.with_partition(0, part.with_replica(replace(part.replica(0), role=Role.UNKNOWN)))
    assert {v.property for v in converged(stale, CONFIG)} == {"converged"}


@pytest.mark.parametrize(
    "value",
    [["t", 0, 1], ["t", -1, 0, 1], [3, 0, 0, 1], ["t", 0, 0, 1.5], "t/0", ["t", 0, True, 1]],
)
def test_malformed_sends_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):
        parse_send(Op(0, 0, "p0", "ok", "send", value))


@pytest.mark.parametrize(
    "value", [["t/0"], {"t0": []}, {"t/0": [[0]]}, {"t/0": [[-1, 1]]}, {"t/x": []}, {"t/0": 5}]
)
def test_malformed_polls_are_rejected(value: object) -> None:
    with pytest.raises(ValueError):
        parse_poll(Op(0, 0, "c0", "ok", "poll", value))


def test_ops_load_from_json_lines_field_by_field() -> None:
    line = {
        "index": 3,
        "time_ms": 7,
        "process": "p0",
        "type": "ok",
        "f": "send",
        "value": ["t", 0, 1, 5],
    }
    assert Op.from_json(line) == Op(3, 7, "p0", "ok", "send", ["t", 0, 1, 5])
    with pytest.raises(ValueError):
        Op.from_json({**line, "type": "maybe"})
    with pytest.raises(ValueError):
        Op.from_json({**line, "index": "3"})


def test_finish_without_a_model_judges_the_history_alone() -> None:
    h = History(committed(1, 2, 3))
    for record, offset in ((1, 0), (2, 1), (3, 2)):
        h.send("p0", record, offset)
    h.poll("c0", (0, 1))
    h.op("c0", "ok", "reset", None)
    h.poll("c0", (2, 3))
    lost = h.checker.finish(None)
    assert [v.property for v in lost] == ["lost-write"]
    assert dict(lost[0].details)["record"] == 2


def test_a_repeated_index_is_refused() -> None:
    checker = HistoryChecker(CONFIG)
    checker.observe(Op(0, 0, "c0", "ok", "poll", {"t/0": [[0, 1]]}), None)
    with pytest.raises(ValueError, match="increasing"):
        checker.observe(Op(0, 1, "c0", "ok", "poll", {"t/0": [[1, 2]]}), None)


def test_a_txn_is_checked_not_skipped() -> None:
    h = History(committed(1))
    h.send("p0", 1, None, type_="fail")
    h.op("c0", "ok", "txn", [["poll", {"t/0": [[0, 1]]}]])
    assert "phantom-write" in h.names()
