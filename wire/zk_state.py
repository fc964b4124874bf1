"""The coordination node's durable state: Coordination and GroupStore as one JSON file.

Rules of this module:
- JSON through the node codec's dataclass codecs, never pickle; a file that
  does not decode is a `ZkStateError` with one sentence, never a crash.
- Writes are atomic and durable: a temporary file, fsync, rename over the
  old one, fsync of the directory. A crash leaves the old state or the new.
- Session heartbeat times are not stored: the clock of a new process starts
  again, and a reloaded service restarts every session's clock, as
  `Coordination.restarted` does after an outage.
"""

from __future__ import annotations

import json
import os
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from kafka_verify.impl.config import ClusterConfig
from kafka_verify.impl.group_store import GroupRecord, GroupStore
from kafka_verify.impl.zk import Coordination, Lease, PartitionRecord, TopicRecord, _Session
from kafka_verify.wire.node_codec import NodeCodecError, dataclass_codec

STATE_FILE = "zk-state.json"
FORMAT = 2  # 2: the topics are stored (format 1 had only the configured ones)


class ZkStateError(Exception):
    """The state file cannot be read back: the reason is one sentence."""


@dataclass(frozen=True, slots=True)
class SessionEntry:
    session: int
    broker: int


@dataclass(frozen=True, slots=True)
class CoordinationState:
    sessions: tuple[SessionEntry, ...]
    registrations: dict[int, tuple[int, int]]  # broker -> (session, broker epoch)
    lease: Lease
    partitions: tuple[PartitionRecord, ...]
    topics: tuple[TopicRecord, ...]
    next_session: int
    next_broker_epoch: int
    partition_of: dict[str, int]
    groups: tuple[GroupRecord, ...]
    applied: dict[int, int]


_ENCODE, _DECODE = dataclass_codec(CoordinationState)


def capture(zk: Coordination, store: GroupStore) -> CoordinationState:
    return CoordinationState(
        tuple(SessionEntry(s, session.broker) for s, session in sorted(zk.sessions.items())),
        dict(sorted(zk.registrations.items())),
        zk.lease,
        tuple(zk.partitions),
        zk.topics,
        zk._next_session,
        zk._next_broker_epoch,
        dict(sorted(store.partition_of.items())),
        tuple(store.groups[g] for g in sorted(store.groups)),
        dict(sorted(store.applied.items())),
    )


def encode_state(zk: Coordination, store: GroupStore) -> bytes:
    data = {"format": FORMAT, "state": _ENCODE(capture(zk, store), "state")}
    return json.dumps(data, separators=(",", ":")).encode("utf-8")


def restore(payload: bytes, config: ClusterConfig, now_ms: int) -> tuple[Coordination, GroupStore]:
    """The service the payload describes, every session's clock restarted at `now_ms`."""
    try:
        data: Any = json.loads(payload.decode("utf-8"))
    except (UnicodeDecodeError, ValueError, RecursionError):
        raise ZkStateError("the coordination state file is not JSON") from None
    if not isinstance(data, dict) or data.get("format") != FORMAT or "state" not in data:
        raise ZkStateError(f"the coordination state file is not of format {FORMAT}")
    try:
        state: CoordinationState = _DECODE(data["state"], "state")
    except NodeCodecError as error:
        raise ZkStateError(f"the coordination state file is damaged: {error.reason}") from None
    try:
        zk = Coordination(config, state.partitions, state.lease, state.topics)
    except ValueError as error:
        raise ZkStateError(f"the coordination state file is inconsistent: {error}") from None
    # The session records are the service's own (private) type; heartbeat times start again.
    zk.sessions = {entry.session: _Session(entry.broker, now_ms) for entry in state.sessions}
    zk.registrations = dict(state.registrations)
    zk._next_session = state.next_session
    zk._next_broker_epoch = state.next_broker_epoch
    zk.restarted(now_ms)
    store = GroupStore(dict(state.partition_of))
    store.groups = {g.group: g for g in state.groups}
    store.applied = dict(state.applied)
    return zk, store


def write_state(directory: Path, payload: bytes) -> None:
    """Replace the state file with `payload`, atomically and durably."""
    target = directory / STATE_FILE
    temporary = directory / (STATE_FILE + ".tmp")
    with open(temporary, "wb") as file:
        file.write(payload)
        file.flush()
        os.fsync(file.fileno())
    os.replace(temporary, target)
    fsync_directory(directory)


def read_state(directory: Path) -> bytes | None:
    """The state file's bytes, or None in a fresh directory."""
    try:
        return (directory / STATE_FILE).read_bytes()
    except FileNotFoundError:
        return None


def fsync_directory(directory: Path) -> None:
    fd = os.open(directory, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
