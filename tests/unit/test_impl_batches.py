"""Record batches of several records: the log's offsets, and the broker's produce, dedupe and fetch.

The simulation's batches hold one record each; the real host's hold what the
producer put in them. These tests drive the same log and broker with batches of
several records, against a reference that numbers every record on its own.
"""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st
from kafka_verify.impl import messages as m
from kafka_verify.impl.bootstrap import initial_coordination
from kafka_verify.impl.broker import Broker
from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.effects import Flush, Handler, Reply, Send, ZkCall
from kafka_verify.impl.group_store import GROUP_CALLS
from kafka_verify.impl.log import PartitionLog, StoredRecord
from kafka_verify.impl.zk import Coordination

# (records in the batch, leader epoch) of each appended batch
BATCHES = st.lists(st.tuples(st.integers(1, 5), st.integers(0, 3)), max_size=12).map(
    lambda batches: sorted(batches, key=lambda b: b[1])  # epochs never go down in a log
)


def _filled(batches: list[tuple[int, int]]) -> tuple[PartitionLog, list[int]]:
    """The log, and the reference: the index of its batch for every offset."""
    log = PartitionLog(segment_records=4)
    owner: list[int] = []
    for index, (count, epoch) in enumerate(batches):
        base = log.append(StoredRecord(index, epoch, -1, 0, index, count, bytes([index]) * count))
        assert base == len(owner)
        owner.extend([index] * count)
    return log, owner


@given(BATCHES, st.data())
def test_offsets_reads_and_cuts_follow_batch_boundaries(
    batches: list[tuple[int, int]], data: st.DataObject
) -> None:
    log, owner = _filled(batches)
    assert log.leo == len(owner)
    for offset, index in enumerate(owner):
        at = log.record_at(offset)
        assert at is not None and at.record_id == index
    assert log.record_at(len(owner)) is None
    if owner:
        offset = data.draw(st.integers(0, len(owner) - 1))
        read = log.read(offset, log.leo, max_records=100)
        assert [b.record_id for b in read] == sorted(set(owner[offset:]) | {owner[offset]})
        assert log.base_offset(log.index_of(offset)) == owner.index(owner[offset])
    for epoch in range(4):
        ends = [o + 1 for o, i in enumerate(owner) if batches[i][1] <= epoch]
        best = max((e for _, e in batches if e <= epoch), default=-1)
        assert log.end_offset_for_epoch(epoch) == ((best, max(ends)) if ends else (-1, -1))
    cut = data.draw(st.integers(0, len(owner)))
    end = log.truncate(cut)
    expected = owner.index(owner[cut]) if cut < len(owner) else cut
    assert end == expected == log.leo
    assert [r.record_id for r in log.records] == sorted(set(owner[:end]))


def test_retention_moves_the_log_start_to_a_batch_boundary() -> None:
    log, _ = _filled([(3, 0), (3, 0), (3, 0)])
    assert log.retention_start(0, None, 5, limit=9, whole_segments=False) == 3
    log.delete_prefix(3)
    assert (log.log_start, log.leo, log.record_at(3).record_id) == (3, 9, 1)  # type: ignore[union-attr]


# -- the broker, with one replica, driven effect by effect as a host would ----------------------


def _single_broker() -> tuple[Broker, Coordination]:
    config = ClusterConfig(
        brokers=1, replication=1, min_insync=1, producers=0, consumers=0, retention_records=None
    )
    zk = initial_coordination(config)
    logs = {0: PartitionLog(config.segment_records)}
    return Broker.initial(0, config, logs, session=1, broker_epoch=1), zk


def _run(broker: Broker, zk: Coordination, handler: Handler) -> list[m.Message]:
    """Perform the handler's effects as World._perform does; the messages it sent."""
    sent: list[m.Message] = []
    try:
        effect = next(handler)
        while True:
            reply: Reply = None
            if isinstance(effect, Send):
                sent.append(effect.message)
            elif isinstance(effect, ZkCall):
                assert not isinstance(effect.request, GROUP_CALLS)
                reply = zk.call(effect.request, 0)
            elif isinstance(effect, Flush):
                broker.replicas[effect.partition].log.flush(effect.hw)
            effect = handler.send(reply)
    except StopIteration:
        return sent


def _produce(broker: Broker, zk: Coordination, request_id: int, seq: int, count: int) -> m.Message:
    produce = m.Produce(request_id, 0, request_id, 7, seq, -1, count, b"x" * count)
    sent = _run(broker, zk, broker.handle("client", produce, 0))
    if not sent:  # acks=all waits for the high watermark: a flush timer advances it
        sent = _run(broker, zk, broker.on_timer("flush", 10))
    (answer,) = [s for s in sent if isinstance(s, m.ProduceResponse)]
    return answer


def test_a_batch_takes_as_many_offsets_as_it_holds_records_and_a_retry_gets_its_base() -> None:
    broker, zk = _single_broker()
    first = _produce(broker, zk, 1, seq=0, count=3)
    second = _produce(broker, zk, 2, seq=3, count=2)
    assert (first.error, first.offset, second.offset) == ("NONE", 0, 3)  # type: ignore[union-attr]
    retry = _produce(broker, zk, 3, seq=0, count=3)  # the first batch again: not re-appended
    assert (retry.error, retry.offset, broker.replicas[0].log.leo) == ("NONE", 0, 5)  # type: ignore[union-attr]
    gap = _produce(broker, zk, 4, seq=9, count=1)
    assert gap.error == m.OUT_OF_ORDER_SEQUENCE  # type: ignore[union-attr]


def test_a_fetch_inside_a_batch_returns_the_whole_batch_and_names_its_base() -> None:
    broker, zk = _single_broker()
    _produce(broker, zk, 1, seq=0, count=3)
    _produce(broker, zk, 2, seq=3, count=2)
    fetch = m.Fetch(5, 0, fetch_offset=1, current_leader_epoch=-1, replica=None, max_records=10)
    (response,) = _run(broker, zk, broker.handle("client", fetch, 20))
    assert isinstance(response, m.FetchResponse)
    assert (response.base_offset, [b.count for b in response.records]) == (0, [3, 2])
    budget = m.Fetch(6, 0, 0, -1, None, max_records=10, max_bytes=1)
    (limited,) = _run(broker, zk, broker.handle("client", budget, 20))
    assert [b.count for b in limited.records] == [3]  # type: ignore[union-attr]


def test_list_offsets_names_the_log_start_and_the_high_watermark() -> None:
    broker, zk = _single_broker()
    _produce(broker, zk, 1, seq=0, count=4)
    earliest, latest = (
        _run(broker, zk, broker.handle("client", m.ListOffsets(9, 0, -1, ts), 30))[0]
        for ts in (m.EARLIEST_TIMESTAMP, m.LATEST_TIMESTAMP)
    )
    assert (earliest.offset, latest.offset) == (0, 4)  # type: ignore[union-attr]
    fenced = _run(broker, zk, broker.handle("client", m.ListOffsets(9, 0, 5, -1), 30))[0]
    assert fenced.error == m.UNKNOWN_LEADER_EPOCH  # type: ignore[union-attr]


# -- named topics and groups of any name ----------------------------------------------------


def test_named_topics_lay_out_the_model_partitions_in_order() -> None:
    config = ClusterConfig(partitions=5, topics=(("orders", 3), ("audit", 2)))
    assert config.topic_partitions()[3] == ("audit", 0)
    assert (config.model_partition("orders", 2), config.model_partition("audit", 1)) == (2, 4)
    assert config.model_partition("audit", 2) is None and config.model_partition("x", 0) is None
    assert ClusterConfig().topic_layout() == (("t", 1),)


def test_a_topic_layout_that_disagrees_with_the_partitions_is_refused() -> None:
    import pytest

    with pytest.raises(ValueError, match="add up to 3, not to partitions=2"):
        ClusterConfig(partitions=2, topics=(("orders", 3),))
    with pytest.raises(ValueError, match="distinct"):
        ClusterConfig(partitions=2, topics=(("a", 1), ("a", 1)))


def test_a_cluster_that_serves_any_group_finds_a_coordinator_for_a_new_name() -> None:
    from kafka_verify.impl import group_messages as gm

    for any_group, expected in ((True, 0), (False, None)):
        config = ClusterConfig(
            brokers=1,
            replication=1,
            min_insync=1,
            producers=0,
            consumers=0,
            groups=1,
            any_group=any_group,
        )
        zk = initial_coordination(config)
        logs = {p: PartitionLog(config.segment_records) for p in range(2)}
        broker = Broker.initial(0, config, logs, session=1, broker_epoch=1)
        (found,) = _run(broker, zk, broker.handle("client", gm.FindCoordinator(1, "orders"), 0))
        assert found == gm.FindCoordinatorResponse(1, "orders", expected)
