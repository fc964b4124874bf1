"""A consumer that can join a consumer group (subscribe mode); unsubscribed, it reads as before (assign mode).

Rules of this module:
- The member id is the consumer's name. One group request (FindCoordinator,
  JoinGroup, SyncGroup, OffsetFetch) is outstanding at a time, plus heartbeats
  and at most one commit.
- Eager rebalancing: before it rejoins, the consumer stops fetching and gives
  up every partition it owns (an `assign` of nothing); it fetches only once
  its new assignment and committed offsets are known.
- The group leader computes the assignment with the range assignor.
- A commit is synchronous, as `commitSync` blocks the poll loop: while one is
  outstanding, polls fetch nothing and fetched records are discarded, so the
  history never holds another operation of this consumer between a commit's
  invoke and its completion. Positions are committed automatically on the next
  poll. An unanswered commit, or one the coordinator lost before it took
  effect, ends as `info`.
- A restarted consumer remembers nothing; it subscribes again and resumes from
  the committed offsets (or the reset policy when none is committed).
- A consumer stops acting as an owner once its session may have lapsed at the
  coordinator, by its own clock: the session counts from when it *sent* the
  last heartbeat, JoinGroup or SyncGroup the coordinator answered with success.
  The coordinator counts from when it *received* that request, and only drops a
  member after a full session (or, mid-rebalance, after the longer rebalance
  timeout), so the consumer always gives up its partitions first: a consumer
  cut off from its coordinator never reads a partition the group has handed to
  someone else.
- Every message type is handled (`HANDLERS`, then Consumer's) or ignored for the
  reason `IGNORED` gives.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

from kafka_verify.impl import bugs
from kafka_verify.impl import group_messages as gm
from kafka_verify.impl import messages as m
from kafka_verify.impl.clients import NOT_FOR_CLIENTS, Consumer
from kafka_verify.impl.config import TOPIC, ClusterConfig
from kafka_verify.impl.dispatch import route
from kafka_verify.impl.effects import ClientOp, Handler, Observe, Send, SetTimer

GROUP_ERRORS_REJOIN = frozenset(
    {gm.REBALANCE_IN_PROGRESS, gm.ILLEGAL_GENERATION, gm.UNKNOWN_MEMBER_ID}
)
LATEST = -1  # a fetch position that is always out of range, so the broker says where the end is


def range_assignment(members: Sequence[str], partitions: int) -> tuple[tuple[int, str], ...]:
    """The range assignor: sorted members take consecutive runs, the first ones one extra."""
    ordered = sorted(members)
    if not ordered:
        return ()
    share, extra = divmod(partitions, len(ordered))
    pairs: list[tuple[int, str]] = []
    start = 0
    for i, member in enumerate(ordered):
        count = share + (1 if i < extra else 0)
        pairs.extend((p, member) for p in range(start, start + count))
        start += count
    return tuple(pairs)


def _keys(partitions: Sequence[int]) -> list[str]:
    return [f"{TOPIC}/{p}" for p in sorted(partitions)]


class GroupConsumer(Consumer):
    def __init__(self, index: int, config: ClusterConfig, incarnation: int) -> None:
        super().__init__(index, config, incarnation)
        model = config.model_config()
        for p in range(config.partitions, model.partitions):
            self.leaders[p] = (model.replicas_of(p)[0], 0)
        self.group: str | None = None
        # Closed: left its group and reads nothing until it subscribes again, as a
        # consumer that is neither subscribed nor assigned has nothing to poll.
        self.closed = False
        self.topics: tuple[str, ...] = ()
        self.phase = "idle"  # idle | joining | syncing | fetching-offsets | stable
        self.coordinator: int | None = None
        self.generation = -1
        self.owned: tuple[int, ...] = ()
        self.ready: set[int] = set()
        self.outstanding: tuple[int, int] | None = None  # (request id, sent at)
        self.heartbeat: int | None = None
        self.heartbeat_sent_ms = 0
        # When this consumer sent the latest request the coordinator answered with
        # success; its session at the coordinator cannot have lapsed before
        # session_anchor_ms + session_timeout_ms.
        self.session_anchor_ms = 0
        self.commit_request: tuple[int, dict[str, int], int] | None = None  # id, value, sent at
        self.rejoin_after_commit = False
        self.committed: dict[int, int] = {}

    # -- client operations ----------------------------------------------------------------

    def subscribe(self, group: str, topics: Sequence[str], now_ms: int) -> Handler:
        self.group, self.topics, self.closed = group, tuple(topics), False
        value = {"group": group, "topics": list(topics)}
        yield Observe(ClientOp(self.name, "ok", "subscribe", value, now_ms))
        yield SetTimer("group", self.config.heartbeat_interval_ms)
        yield from self._rejoin(now_ms)

    def close(self, now_ms: int) -> Handler:
        if self.group is None:
            return
        yield from self._revoke(now_ms)
        if self.coordinator is not None:
            leave = gm.LeaveGroup(self._request_id(), self.group, self.name)
            yield Send(f"b{self.coordinator}", leave)
        self.group, self.phase, self.generation, self.outstanding = None, "idle", -1, None
        self.closed = True

    def commit(self, now_ms: int) -> Handler:
        if self.phase != "stable" or self.commit_request is not None or self.coordinator is None:
            return
        offsets = tuple(
            (p, self.positions[p]) for p in self.owned if p in self.ready and self.positions[p] >= 0
        )
        if not offsets or self.group is None:
            return
        value = {f"{TOPIC}/{p}": offset for p, offset in offsets}
        request_id = self._request_id()
        self.commit_request = (request_id, value, now_ms)
        self.fetching.clear()  # a synchronous commit: fetched records are not taken meanwhile
        yield Observe(ClientOp(self.name, "invoke", "commit", value, now_ms))
        commit = gm.OffsetCommit(request_id, self.group, self.name, self.generation, offsets)
        yield Send(f"b{self.coordinator}", commit)

    def poll(self, now_ms: int) -> Handler:
        if self.group is None:
            if not self.closed:
                yield from super().poll(now_ms)
            return
        if self.phase != "stable" or self.commit_request is not None:
            return
        if not self._session_alive(now_ms):
            yield from self._rejoin(now_ms)  # the group may have handed our partitions on
            return
        if self.coordinator is not None and self._consumed_uncommitted():
            yield from self.commit(now_ms)  # auto-commit what the last polls consumed
            if self.commit_request is not None:
                return
        for p in self.owned:  # with no coordinator known, the commit waits and fetching goes on
            yield from self._fetch(p, now_ms)

    def _fetch(self, p: int, now_ms: int) -> Handler:
        leader, epoch = self.leaders.get(p, (None, -1))
        if leader is None:
            yield from self._refresh_metadata(now_ms)
            return
        pending = self.fetching.get(p)
        if pending is not None and now_ms - pending[1] < self.config.request_timeout_ms:
            return
        request_id = self._request_id()
        self.fetching[p] = (request_id, now_ms)
        fetch = m.Fetch(
            request_id, p, self.positions[p], epoch, None, self.config.fetch_max_records
        )
        yield Send(f"b{leader}", fetch)

    def crash_ops(self, now_ms: int) -> list[ClientOp]:
        if self.commit_request is None:
            return []
        return [ClientOp(self.name, "info", "commit", self.commit_request[1], now_ms)]

    # -- the group protocol ------------------------------------------------------------------

    def _send_group(self, message: gm.GroupRequest, now_ms: int) -> Handler:
        if self.coordinator is None:
            yield from self._find_coordinator(now_ms)
            return
        self.outstanding = (message.request_id, now_ms)
        yield Send(f"b{self.coordinator}", message)

    def _find_coordinator(self, now_ms: int) -> Handler:
        assert self.group is not None
        request_id = self._request_id()
        self.outstanding = (request_id, now_ms)
        for broker in range(self.config.brokers):  # a dead broker never answers
            yield Send(f"b{broker}", gm.FindCoordinator(request_id, self.group))

    def _revoke(self, now_ms: int) -> Handler:
        if self.commit_request is not None:
            yield Observe(ClientOp(self.name, "info", "commit", self.commit_request[1], now_ms))
            self.commit_request = None
        self.fetching.clear()
        self.ready.clear()
        if self.owned:
            self.owned = ()
            yield Observe(ClientOp(self.name, "ok", "assign", [], now_ms))

    def _consumed_uncommitted(self) -> bool:
        return any(
            self.positions[p] != self.committed.get(p) for p in self.owned if p in self.ready
        )

    def _rejoin(self, now_ms: int, commit_first: bool = True) -> Handler:
        idle = self.commit_request is None
        if commit_first and idle and self.phase == "stable" and self._consumed_uncommitted():
            # As auto-commit does when partitions are revoked: commit what was consumed, in
            # the generation it was consumed in, before giving the partitions up. The join
            # waits for the answer; a coordinator that has moved on rejects it as stale.
            yield from self.commit(now_ms)
            if self.commit_request is not None:
                self.rejoin_after_commit = True
                return
        self.rejoin_after_commit = False
        yield from self._revoke(now_ms)
        self.phase, self.heartbeat = "joining", None
        if self.group is not None:
            yield from self._send_group(
                gm.JoinGroup(self._request_id(), self.group, self.name), now_ms
            )

    def _retry_later(self, lost_coordinator: bool) -> Handler:
        if lost_coordinator:
            self.coordinator = None
        self.outstanding = None
        yield SetTimer("retry", self.config.retry_backoff_ms)

    def _resend(self, now_ms: int) -> Handler:
        if self.group is None or self.outstanding is not None:
            return
        if self.coordinator is None:
            yield from self._find_coordinator(now_ms)
        elif self.phase == "fetching-offsets":
            yield from self._fetch_offsets(now_ms)
        elif self.phase != "stable":
            yield from self._rejoin(now_ms)

    def _fetch_offsets(self, now_ms: int) -> Handler:
        assert self.group is not None
        request = gm.OffsetFetch(self._request_id(), self.group, self.owned)
        yield from self._send_group(request, now_ms)

    # -- answers --------------------------------------------------------------------------------

    def handle(self, src: str, message: m.Message, now_ms: int) -> Handler:
        handler = HANDLERS.get(type(message))
        if handler is not None:
            yield from handler(self, message, now_ms)
            return
        if isinstance(message, m.FetchResponse):
            if self.closed:
                return  # fetched before it left its group: nobody owns that read now
            stale = (
                message.partition not in self.ready
                or self.commit_request is not None
                or not self._session_alive(now_ms)
            )
            if stale and self.group is not None:
                self.fetching.pop(message.partition, None)
                return  # no longer ours, or a commit is in progress: fetch it again later
        yield from super().handle(src, message, now_ms)

    def _session_alive(self, now_ms: int) -> bool:
        """Whether the coordinator surely still counts this consumer as a member."""
        if bugs.enabled(self.config, bugs.NO_GENERATION_FENCING_ON_FETCH):
            return True  # the mistake: keep fetching until the coordinator says otherwise
        anchor = self.session_anchor_ms
        if bugs.enabled(self.config, bugs.SESSION_FROM_UNANSWERED_HEARTBEAT):
            anchor = max(anchor, self.heartbeat_sent_ms)  # the seeded bug: sent is not answered
        return now_ms - anchor < self.config.session_timeout_ms

    def _current(self, request_id: int) -> bool:
        if self.outstanding is None or self.outstanding[0] != request_id:
            return False  # late, duplicated, or for a request given up on
        self.outstanding = None
        return True

    def _on_found(self, msg: gm.FindCoordinatorResponse, now_ms: int) -> Handler:
        # Any answer is news while the coordinator is unknown, even one to an earlier request.
        if msg.coordinator is None or msg.group != self.group or self.coordinator is not None:
            return
        self.coordinator = msg.coordinator
        self.outstanding = None  # with no coordinator known, only a lookup can be outstanding
        yield from self._resend(now_ms)

    def _on_joined(self, msg: gm.JoinGroupResponse, now_ms: int) -> Handler:
        sent_ms = self.outstanding[1] if self.outstanding is not None else now_ms
        if self.phase != "joining" or not self._current(msg.request_id):
            return
        if msg.error != gm.NONE:
            yield from self._retry_later(msg.error == gm.NOT_COORDINATOR)
            return
        self.session_anchor_ms = max(self.session_anchor_ms, sent_ms)
        assert self.group is not None
        self.generation, self.phase = msg.generation, "syncing"
        assignment: tuple[tuple[int, str], ...] = ()
        if msg.leader == self.name:
            assignment = range_assignment(msg.members, self.config.partitions)
        sync = gm.SyncGroup(self._request_id(), self.group, self.name, msg.generation, assignment)
        yield from self._send_group(sync, now_ms)

    def _on_synced(self, msg: gm.SyncGroupResponse, now_ms: int) -> Handler:
        sent_ms = self.outstanding[1] if self.outstanding is not None else now_ms
        if self.phase != "syncing" or not self._current(msg.request_id):
            return
        if msg.error != gm.NONE:
            self.phase = "joining"
            yield from self._retry_later(msg.error == gm.NOT_COORDINATOR)
            return
        self.session_anchor_ms = max(self.session_anchor_ms, sent_ms)
        self.owned = tuple(sorted(msg.partitions))
        yield Observe(ClientOp(self.name, "ok", "assign", _keys(self.owned), now_ms))
        self.phase = "fetching-offsets"
        yield from self._fetch_offsets(now_ms)

    def _on_offsets(self, msg: gm.OffsetFetchResponse, now_ms: int) -> Handler:
        if self.phase != "fetching-offsets" or not self._current(msg.request_id):
            return
        if msg.error != gm.NONE:
            yield from self._retry_later(msg.error == gm.NOT_COORDINATOR)
            return
        known = dict(msg.offsets)
        reset = 0 if self.config.reset_earliest else LATEST
        for p in self.owned:
            self.positions[p] = known.get(p, reset)
            if p in known:
                self.committed[p] = known[p]
            else:
                self.committed.pop(p, None)
        self.ready = set(self.owned)
        self.phase = "stable"

    def _on_heartbeat(self, msg: gm.HeartbeatResponse, now_ms: int) -> Handler:
        if msg.request_id != self.heartbeat:
            return
        self.heartbeat = None
        if msg.error == gm.NONE:
            self.session_anchor_ms = max(self.session_anchor_ms, self.heartbeat_sent_ms)
        if msg.error in GROUP_ERRORS_REJOIN and self.phase in ("stable", "fetching-offsets"):
            self.outstanding = None
            yield from self._rejoin(now_ms)
        elif msg.error == gm.NOT_COORDINATOR:
            self.coordinator = None

    def _on_committed(self, msg: gm.OffsetCommitResponse, now_ms: int) -> Handler:
        if self.commit_request is None or self.commit_request[0] != msg.request_id:
            return
        _, value, _ = self.commit_request
        self.commit_request = None
        rejoin = self.rejoin_after_commit
        if msg.error == gm.NONE:
            for key, offset in value.items():
                self.committed[int(key.split("/")[1])] = offset
            yield Observe(ClientOp(self.name, "ok", "commit", value, now_ms))
        else:
            outcome = "info" if msg.error in gm.UNKNOWN_OUTCOME else "fail"
            yield Observe(ClientOp(self.name, outcome, "commit", value, now_ms))
            if msg.error == gm.NOT_COORDINATOR:
                self.coordinator = None
            rejoin = rejoin or msg.error in GROUP_ERRORS_REJOIN
        if rejoin:
            yield from self._rejoin(now_ms, commit_first=False)

    def _on_left(self, msg: gm.LeaveGroupResponse, now_ms: int) -> Handler:
        yield from ()

    # -- timers ----------------------------------------------------------------------------------

    def on_timer(self, name: str, now_ms: int) -> Handler:
        if self.group is None:
            return
        if name == "retry":
            yield from self._resend(now_ms)
            return
        if name != "group":
            return
        yield SetTimer("group", self.config.heartbeat_interval_ms)
        timeout = self.config.request_timeout_ms
        if self.commit_request is not None and now_ms - self.commit_request[2] >= timeout:
            yield Observe(ClientOp(self.name, "info", "commit", self.commit_request[1], now_ms))
            self.commit_request, self.coordinator = None, None
            if self.rejoin_after_commit:
                yield from self._rejoin(now_ms, commit_first=False)
        if self.outstanding is not None and now_ms - self.outstanding[1] >= timeout:
            self.outstanding, self.coordinator = None, None
            yield from self._resend(now_ms)
            return
        if self.heartbeat is not None and now_ms - self.heartbeat_sent_ms >= timeout:
            self.heartbeat, self.coordinator = (
                None,
                None,
            )  # no answer: the coordinator may have moved
        if self.outstanding is None and self.coordinator is None:
            yield from self._find_coordinator(now_ms)
            return
        if self.phase in ("stable", "fetching-offsets", "syncing") and self.coordinator is not None:
            if self.heartbeat is not None:
                return  # the last one is still unanswered
            self.heartbeat, self.heartbeat_sent_ms = self._request_id(), now_ms
            beat = gm.Heartbeat(self.heartbeat, self.group, self.name, self.generation)
            yield Send(f"b{self.coordinator}", beat)


_ROUTES = (
    route(gm.FindCoordinatorResponse, GroupConsumer._on_found),
    route(gm.JoinGroupResponse, GroupConsumer._on_joined),
    route(gm.SyncGroupResponse, GroupConsumer._on_synced),
    route(gm.OffsetFetchResponse, GroupConsumer._on_offsets),
    route(gm.HeartbeatResponse, GroupConsumer._on_heartbeat),
    route(gm.OffsetCommitResponse, GroupConsumer._on_committed),
    route(gm.LeaveGroupResponse, GroupConsumer._on_left),
)
# The group protocol's answers; every other message goes on to Consumer.handle (clients.py).
HANDLERS: dict[type, Callable[[GroupConsumer, object, int], Handler]] = dict(_ROUTES)
IGNORED: dict[type, str] = {
    **NOT_FOR_CLIENTS,
    m.ProduceResponse: "a consumer never produces",
}
