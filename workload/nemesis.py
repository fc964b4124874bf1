"""The nemesis: kills, pauses, partitions and slows a managed cluster, and always heals it.

Rules of this module:
- A cluster is known through its cluster file: `kafka-verify serve`'s
  `cluster.json` (nodes with a `pid`, and `serve_pid`, which SIGUSR1 asks to
  start every killed node again), or a user's file of the same shape whose
  nodes carry `kill`, `start`, `pause` and `resume` shell commands.
- Every fault is written down before it is injected (`_down`, `_paused`), so
  `heal_all` undoes it even when an interrupt lands between the two; healing
  a node that is not faulty is harmless (SIGCONT to a running process,
  SIGUSR1 with nothing to start).
- Each fault and each heal is recorded in the history with process and f
  "nemesis": an invoke, then ok (done) or info (it failed, with the reason).
- `partition` and `slow` act on the links of a fault proxy (proxy.py) that
  the cluster file names under `proxy` (`serve --proxy` writes it), through
  its control port; a cluster file without one has them refused with one
  sentence (`proxy_refusal`). A slow fault adds delay and drops on the
  links of a random node.
- Aimed faults read the cluster's metadata as a client does (a partition's
  leader and its replicas in the order the cluster prefers them) and nothing
  else; a node's broker id is its cluster file's `broker_id`, or i for
  serve's `b<i>`. Without metadata, or without broker ids, every fault picks
  its node at random. A partition's heir is the first replica after its
  leader in that order: the replica a leader election prefers.
- `kill` follows one of the plans of `KILL_PLANS`, each aimed at a moment
  when a replica holds state it has not made safe: a random node; a leader
  (and sometimes the leader after it); the heir bounced and the leader
  killed as soon as the heir runs again (the heir leads with whatever its
  restart kept); the leader killed or cut off from its peers, brought back
  as a follower once another leads, and its successor killed (the old
  leader leads again with whatever its rejoining kept); and, with a proxy,
  the heir cut off from the leader and the leader killed around the moment
  the heir has been out of touch for a replica lag time (the heir leads
  with what the leader counted on it having), and sometimes the leader's
  successor too (the heir is the last replica up); or the leader cut off
  from every follower and then killed (a leader alone in its ISR dies with
  what it acknowledged alone); and the workload's group coordinator (as
  FindCoordinator names it), sometimes first cut off from the other
  brokers, and sometimes the coordinator after it (commits it applied that
  no follower has).
- Plans that read one broker's own Metadata answer (`probe`: the ISR it
  knows, the controller it names), since client libraries keep neither:
  `sole-isr` cuts a leader off from every follower (or pauses them without a
  proxy), waits until the leader's metadata shows it alone in the ISR, lets
  it acknowledge alone a moment, kills it and brings the followers back;
  `offsets` does the same to the group's coordinator (the offsets
  partition's leader: its commits acknowledged alone); `controller` kills,
  pauses or cuts off from the coordination service the broker the metadata
  names as controller, brings a paused or cut one back, and sometimes kills
  a leader then, while the controllers change hands. `power-loss` kills
  every broker at once: what none made durable is lost everywhere, and
  nothing acknowledged may be.
- A partition cuts, both ways, a partition's leader off from every other
  node or from some of them (its clients kept), one broker off from the
  coordination service, or a random minority off from the rest, sometimes
  with its clients; or only clients off one broker. The proxy heals the
  coordination service's links first and the rest a moment later, as real
  networks heal: a node back in touch with the coordination service before
  it hears from its peers acts on what it still believed.
"""

from __future__ import annotations

import json
import math
import os
import random
import signal
import subprocess
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from kafka_verify.workload.clients import BrokerMetadata, PartitionView
from kafka_verify.workload.history import Recorder
from kafka_verify.workload.proxy import CUT_MODES, ProxyControl, ProxyError

KINDS = ("kill", "pause", "partition", "slow")
PROXY_KINDS = ("partition", "slow")
CLIENT = "client"  # the proxy's name for Kafka clients, as a link's source
CLIENTS_ONLY_CHANCE = 0.2  # of a partition that cuts only the clients off one broker
CLIENTS_TOO_CHANCE = 0.25  # of a node partition that cuts the isolated brokers' clients too
SLOW_DELAYS_MS = (20, 50, 100, 250)
SLOW_DROPS = (0.0, 0.0, 0.001, 0.01)  # per chunk: a drop resets the connection
COMMANDS = ("kill", "start", "pause", "resume")
# An aimed leader kill also kills the partition's next leader this often, once one is
# elected: a leader change followed at once by another.
CASCADE_CHANCE = 0.5
CASCADE_WAIT_S = 20.0  # past a session timeout: the dead leader's successor is elected then
# The kill nemesis's plans and their weights (see the module's rules); the ones that need a
# proxy are left out without one, and every aimed plan falls back to a random node when the
# metadata names no leader.
KILL_PLANS: dict[str, float] = {
    "node": 0.1,
    "leader": 0.15,
    "heir-bounce": 0.2,
    "leader-return": 0.2,
    "heir-cut": 0.2,
    "coordinator": 0.2,
    "sole-isr": 0.25,
    "offsets": 0.15,
    "controller": 0.15,
    "power-loss": 0.25,
}
KILL_PLANS_NEEDING_PROXY = frozenset({"heir-cut"})
# Plans that read one broker's own Metadata answer (its ISR, the controller it names).
KILL_PLANS_NEEDING_PROBE = frozenset({"sole-isr", "offsets", "controller"})
# A sole-ISR plan waits this long at most for the leader's metadata to show it alone in its
# ISR (past a replica lag time), then lets it acknowledge alone for a moment before it dies.
SOLE_ISR_WAIT_S = 20.0
SOLE_ISR_HOLD_S = (0.2, 3.0)
PROBE_EVERY_S = 0.25
# Of a controller fault: the controller killed, paused, or cut off from the coordination
# service; and how often a partition's leader is killed meanwhile (a leader moved while the
# controller changes hands).
CONTROLLER_FAULTS = ("kill", "pause", "cut")
CONTROLLER_HOLD_S = (1.0, 9.0)
CONTROLLER_MOVE_CHANCE = 0.5
# A coordinator kill first cuts the coordinator off from the other brokers this often (the
# coordination service kept), so commits it applies meanwhile reach no follower.
COORDINATOR_CUT_CHANCE = 0.5
COORDINATOR_CUT_S = (0.3, 4.0)
# After the heir runs again, the leader dies within this: before the heir has fetched much.
HEIR_BOUNCE_DELAY_S = (0.0, 0.5)
# An old leader back as a follower rejoins (truncating what it had alone) within this.
RETURN_DELAY_S = (0.5, 4.0)
LEADER_RETURN_CUT_CHANCE = 0.5
# Across a replica lag time (5 s in a served cluster): the cut heir is still in the ISR
# when the leader dies, or has just been dropped from it (and then the leader's successor
# dies too, this often, leaving the heir as the one replica up).
HEIR_CUT_DELAY_S = (0.3, 8.0)
HEIR_CUT_CASCADE_CHANCE = 0.5
# Of a heir cut: the leader cut off from every follower instead, the coordination service
# kept, so that it shrinks its ISR to itself and, where min ISR allows, acknowledges alone.
FOLLOWERS_CUT_CHANCE = 0.5
# Of a partition fault: a partition's leader cut off from every other node, its clients
# kept; a leader cut off from some of the other nodes only (a partial partition, in which
# a leader that still reaches one follower may count on it alone); one broker cut off from
# the coordination service; else a random minority.
ISOLATE_LEADER_CHANCE = 0.2
PARTIAL_CHANCE = 0.2
COORDINATION_CUT_CHANCE = 0.2
STAGGERED_HEAL_S = (0.5, 3.0)
RESTART_TIMEOUT_S = 60.0
# How often serve is asked again (SIGUSR1) to start nodes that are still down.
RESTART_ASK_AGAIN_S = 1.0
COMMAND_TIMEOUT_S = 60.0
NEMESIS = "nemesis"
_NO_VIEW = PartitionView(None, ())


class ClusterFileError(ValueError):
    """A cluster file that cannot be used: one sentence."""


class NemesisError(RuntimeError):
    """A fault that could not be injected or healed."""


@dataclass(frozen=True)
class Node:
    name: str
    role: str
    pid: int | None
    commands: dict[str, str]
    broker_id: int | None = None  # the id the cluster's metadata names it by, when known


@dataclass(frozen=True)
class ProxyLink:
    name: str
    src: str
    dst: str


@dataclass(frozen=True)
class ProxyInfo:
    """The fault proxy a cluster file names: its control address and its links."""

    control: str
    links: tuple[ProxyLink, ...]


@dataclass(frozen=True)
class ClusterFile:
    """A parsed cluster file: its path (re-read for new pids), bootstrap, nodes, serve_pid and
    fault proxy."""

    path: Path
    bootstrap: str | None
    nodes: tuple[Node, ...]
    serve_pid: int | None
    proxy: ProxyInfo | None = None

    @classmethod
    def load(cls, path: Path) -> ClusterFile:
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
        except OSError as error:
            raise ClusterFileError(f"cannot read {path}: {error.strerror}") from None
        except (json.JSONDecodeError, UnicodeDecodeError):
            raise ClusterFileError(f"{path} is not JSON") from None
        if not isinstance(data, dict) or not isinstance(data.get("nodes"), list):
            raise ClusterFileError(f"{path} has no list of nodes")
        serve_pid = data.get("serve_pid")
        if serve_pid is not None and type(serve_pid) is not int:
            raise ClusterFileError(f"{path}: serve_pid is an integer")
        nodes = tuple(_node(item, path, serve_pid is not None) for item in data["nodes"])
        if not nodes:
            raise ClusterFileError(f"{path} names no node")
        bootstrap = data.get("bootstrap")
        proxy = _proxy(data["proxy"], path) if data.get("proxy") is not None else None
        return cls(path, bootstrap if isinstance(bootstrap, str) else None, nodes, serve_pid, proxy)

    def pids(self) -> dict[str, int]:
        """Each node's pid as the file says now (serve rewrites it when it restarts nodes)."""
        try:
            fresh = ClusterFile.load(self.path)
        except ClusterFileError:
            return {}  # being rewritten: ask again
        return {n.name: n.pid for n in fresh.nodes if n.pid is not None}


def _node(item: object, path: Path, served: bool) -> Node:
    if not isinstance(item, dict) or not isinstance(item.get("name"), str):
        raise ClusterFileError(f"{path}: every node is an object with a name")
    name = item["name"]
    commands = {k: item[k] for k in COMMANDS if isinstance(item.get(k), str)}
    pid = item.get("pid")
    if pid is not None and type(pid) is not int:
        raise ClusterFileError(f"{path}: node {name}'s pid is an integer")
    if len(commands) != len(COMMANDS) and not (served and pid is not None):
        raise ClusterFileError(
            f"{path}: node {name} needs a pid (with serve_pid) or all of the commands "
            f"{', '.join(COMMANDS)}"
        )
    role = item.get("role")
    broker_id = item.get("broker_id")
    if broker_id is not None and type(broker_id) is not int:
        raise ClusterFileError(f"{path}: node {name}'s broker_id is an integer")
    if broker_id is None and role == "broker" and name[:1] == "b" and name[1:].isdigit():
        broker_id = int(name[1:])  # serve names broker i "b<i>"
    return Node(name, role if isinstance(role, str) else "", pid, commands, broker_id)


def _proxy(item: object, path: Path) -> ProxyInfo:
    if not isinstance(item, dict) or not isinstance(item.get("control"), str):
        raise ClusterFileError(f"{path}: proxy is an object with a control address")
    try:
        ProxyControl(item["control"])
    except ValueError as error:
        raise ClusterFileError(f"{path}: {error}") from None
    links = item.get("links")
    if not isinstance(links, list) or not all(
        isinstance(link, dict) and all(isinstance(link.get(k), str) for k in ("name", "src", "dst"))
        for link in links
    ):
        raise ClusterFileError(f"{path}: the proxy's links are objects with a name, src and dst")
    return ProxyInfo(
        item["control"], tuple(ProxyLink(link["name"], link["src"], link["dst"]) for link in links)
    )


@dataclass(frozen=True)
class _Partition:
    links: list[str]
    isolated: list[str]
    clients_cut: list[str]
    mode: str  # the proxy's cut mode: stall or reset
    apart_from: str = "every other node"  # what the isolated nodes are cut off from

    def as_value(self) -> dict[str, object]:
        return {
            "fault": "partition",
            "isolated": self.isolated,
            "apart_from": self.apart_from,
            "clients_cut": self.clients_cut,
            "mode": self.mode,
            "links": self.links,
        }

    def describe(self) -> str:
        return (
            f"partition ({self.mode}) isolating {', '.join(self.isolated) or 'no node'} from "
            f"{self.apart_from}, clients cut from {', '.join(self.clients_cut) or 'no broker'}"
        )


@dataclass(frozen=True)
class _Slow:
    links: list[str]
    node: str
    delay_ms: int
    drop: float  # per chunk; a drop resets the connection

    def as_value(self) -> dict[str, object]:
        return {
            "fault": "slow",
            "node": self.node,
            "delay_ms": self.delay_ms,
            "drop": self.drop,
            "links": self.links,
        }

    def describe(self) -> str:
        return f"slow {self.delay_ms} ms, drop {self.drop}, on the {len(self.links)} links of {self.node}"


def _crosses(link: ProxyLink, isolated: list[str], clients_cut: list[str]) -> bool:
    """Whether a partition cuts `link`: it joins an isolated node to one that is not, or it
    carries clients to a broker they are cut from."""
    if link.src == CLIENT:
        return link.dst in clients_cut
    return (link.src in isolated) != (link.dst in isolated)


def parse_kinds(text: str) -> tuple[str, ...]:
    """A comma-separated list of nemesis kinds; ValueError (one sentence) for others."""
    kinds = tuple(dict.fromkeys(k.strip() for k in text.split(",") if k.strip()))
    for kind in kinds:
        if kind not in KINDS:
            raise ValueError(f"{kind!r} is not a nemesis kind ({', '.join(KINDS)})")
    if not kinds:
        raise ValueError("--nemesis names no kind")
    return kinds


def proxy_refusal(kinds: tuple[str, ...], cluster: ClusterFile) -> str | None:
    """Why `kinds` cannot run on `cluster` (one sentence), or None when they can."""
    needing = [kind for kind in kinds if kind in PROXY_KINDS]
    if not needing or cluster.proxy is not None:
        return None
    return (
        f"the {' and '.join(needing)} nemesis needs a fault proxy between the nodes, and "
        f"{cluster.path} names none: start the cluster with `kafka-verify serve --proxy`"
    )


def process_alive(pid: int) -> bool:
    """Running or stopped, not a zombie waiting for its parent."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii") as stat:
            return stat.read().rsplit(")", 1)[-1].split()[0] != "Z"
    except FileNotFoundError:
        return False


class Nemesis:
    """Injects one fault at a time on a managed cluster and heals it."""

    def __init__(
        self,
        cluster: ClusterFile,
        recorder: Recorder,
        rng: random.Random,
        layout: Callable[[], dict[int, PartitionView]] | None = None,
        coordinator: Callable[[], int | None] | None = None,
        probe: Callable[[int | None], BrokerMetadata | None] | None = None,
    ) -> None:
        self.cluster = cluster
        self.recorder = recorder
        self.rng = rng
        # Partition -> its leader and replicas, from the cluster's metadata (a client's view).
        self.layout = layout
        # The broker id of the workload's group coordinator, as FindCoordinator names it.
        self.coordinator = coordinator
        # One broker's own Metadata answer about the workload's topic (None: any broker's).
        self.probe = probe
        brokers = [n for n in cluster.nodes if n.role == "broker"]
        self.targets = tuple(brokers or cluster.nodes)
        self._down: dict[str, int | None] = {}  # killed node -> its pid then
        self._paused: dict[str, int | None] = {}  # paused node -> its pid
        self._proxy_links: set[str] = set()  # links the proxy may have cut or slowed
        self.proxy = ProxyControl(cluster.proxy.control) if cluster.proxy is not None else None
        self.faults = 0
        self.kill_plans = {
            plan: weight
            for plan, weight in KILL_PLANS.items()
            if (self.proxy is not None or plan not in KILL_PLANS_NEEDING_PROXY)
            and (coordinator is not None or plan not in ("coordinator", "offsets"))
            and (probe is not None or plan not in KILL_PLANS_NEEDING_PROBE)
        }

    # -- one fault ---------------------------------------------------------------------------

    def inject(self, kind: str) -> str:
        """Inject one fault of `kind`, on a node or links chosen at random; says what was done."""
        if kind in PROXY_KINDS:
            return self._inject_on_links(kind)
        if kind == "kill":
            plans = list(self.kill_plans)
            plan = self.rng.choices(plans, [self.kill_plans[p] for p in plans])[0]
            aimed = self._aimed_kill(plan)
            if aimed is not None:
                return aimed
        node = self.rng.choice(self.targets)
        return self._signal_node(kind, node)

    def _signal_node(self, kind: str, node: Node, **why: object) -> str:
        pid = self.cluster.pids().get(node.name, node.pid)
        value = {"fault": kind, "node": node.name, "pid": pid, **why}
        self.recorder.record(NEMESIS, "invoke", NEMESIS, value)
        try:
            if kind == "kill":
                self._down[node.name] = pid
                self._act(node, "kill", pid, signal.SIGKILL)
            else:
                self._paused[node.name] = pid
                self._act(node, "pause", pid, signal.SIGSTOP)
        except NemesisError as error:
            self.recorder.record(NEMESIS, "info", NEMESIS, {**value, "error": str(error)})
            return f"{kind} {node.name} failed: {error}"
        self.faults += 1
        self.recorder.record(NEMESIS, "ok", NEMESIS, value)
        return f"{kind} {node.name} (pid {pid})"

    def _by_broker_id(self) -> dict[int, Node]:
        return {n.broker_id: n for n in self.targets if n.broker_id is not None}

    def _current_layout(self) -> dict[int, PartitionView]:
        if self.layout is None:
            return {}
        try:
            return self.layout()
        except Exception:  # a cluster in trouble answers no metadata: aim at random instead
            return {}

    def _aimed(self) -> tuple[int, PartitionView, Node] | None:
        """A random partition whose leader is known and running: (partition, view, leader)."""
        nodes = self._by_broker_id()
        layout = self._current_layout()
        known = sorted(
            p
            for p, view in layout.items()
            if view.leader in nodes and nodes[view.leader].name not in self._down
        )
        if not known:
            return None
        partition = self.rng.choice(known)
        view = layout[partition]
        assert view.leader is not None
        return partition, view, nodes[view.leader]

    def _heir(self, view: PartitionView, leader: Node) -> Node | None:
        """The replica an election prefers once `leader` is gone: the first of the others in
        the metadata's order (a random other broker when the client does not give it)."""
        nodes = self._by_broker_id()
        running = [n for n in nodes.values() if n is not leader and n.name not in self._down]
        ordered = [nodes[b] for b in view.replicas if b in nodes and nodes[b] in running]
        if ordered:
            return ordered[0]
        return self.rng.choice(sorted(running, key=lambda n: n.name)) if running else None

    def _successor(self, partition: int, old: Node) -> Node | None:
        """The leader elected after `old`, once the metadata names one that runs."""
        nodes = self._by_broker_id()
        deadline = time.monotonic() + CASCADE_WAIT_S
        while time.monotonic() < deadline:
            leader = self._current_layout().get(partition, PartitionView(None, ())).leader
            if (
                leader is not None
                and leader in nodes
                and nodes[leader] is not old
                and nodes[leader].name not in self._down
            ):
                return nodes[leader]
            time.sleep(0.05)
        return None

    def _restart(self, node: Node, **why: object) -> str:
        """Start a killed node again now, and wait until it runs."""
        pid = self._down.get(node.name)
        start: dict[str, object] = {"fault": "start", "nodes": [node.name], **why}
        self.recorder.record(NEMESIS, "invoke", NEMESIS, start)
        try:
            self._start({node.name: pid})
        except NemesisError as error:
            self.recorder.record(NEMESIS, "info", NEMESIS, {**start, "error": str(error)})
            return f"start {node.name} failed: {error}"
        del self._down[node.name]
        self.recorder.record(
            NEMESIS, "ok", NEMESIS, {**start, "pids": self._pids({node.name: pid})}
        )
        return f"start {node.name}"

    def _wait(self, bounds: tuple[float, float]) -> None:
        time.sleep(self.rng.uniform(*bounds))

    def _aimed_kill(self, plan: str) -> str | None:
        """Kill following `plan`; None when the plan needs a leader and none can be learned
        (the kill goes to a random node)."""
        if plan == "node":
            return None
        if plan == "coordinator":
            return self._kill_coordinator()
        if plan == "offsets":
            return self._offsets_alone()
        if plan == "controller":
            return self._controller_fault()
        if plan == "power-loss":
            return self._power_loss()
        aimed = self._aimed()
        if aimed is None:
            return None
        partition, view, leader = aimed
        why = {"leader_of": partition, "plan": plan}
        said: list[str] = []
        if plan == "leader":
            said.append(self._signal_node("kill", leader, **why))
            if self.rng.random() < CASCADE_CHANCE:
                successor = self._successor(partition, leader)
                if successor is not None:
                    said.append(self._signal_node("kill", successor, **why))
            return "; then ".join(said)
        if plan == "sole-isr":
            return self._alone_then_kill(leader, [partition], leader_of=partition, plan=plan)
        heir = self._heir(view, leader)
        if heir is None:
            return None
        if plan == "heir-bounce":
            said.append(self._signal_node("kill", heir, heir_of=partition, plan=plan))
            if heir.name in self._down:
                said.append(self._restart(heir, plan=plan))
            self._wait(HEIR_BOUNCE_DELAY_S)
            said.append(self._signal_node("kill", leader, **why))
        elif plan == "leader-return":
            # Cut off (with a proxy, half the time) rather than killed, the leader keeps
            # appending its clients' records that no follower sees, and flushes them: a
            # divergent tail that a kill -9 would mostly have taken with it.
            cut = self.proxy is not None and self.rng.random() < LEADER_RETURN_CUT_CHANCE
            if cut:
                isolation = self._isolation(leader)
                said.append(self._apply_on_links(isolation))
            else:
                said.append(self._signal_node("kill", leader, **why))
            successor = self._successor(partition, leader)
            if cut:
                self._heal_links(isolation.links)
                self._proxy_links.difference_update(isolation.links)
                said.append(f"heal {leader.name}")
            elif leader.name in self._down:
                said.append(self._restart(leader, plan=plan))
            if successor is not None:
                self._wait(RETURN_DELAY_S)
                said.append(self._signal_node("kill", successor, **why))
        else:  # heir-cut
            followers = [n for n in self.targets if n is not leader]
            every_follower = self.rng.random() < FOLLOWERS_CUT_CHANCE
            said.append(self._cut_between(leader, followers if every_follower else [heir]))
            self._wait(HEIR_CUT_DELAY_S)
            said.append(self._signal_node("kill", leader, **why))
            if not every_follower and self.rng.random() < HEIR_CUT_CASCADE_CHANCE:
                successor = self._successor(partition, leader)
                if successor is not None and successor is not heir:
                    said.append(self._signal_node("kill", successor, **why))
        return "; then ".join(said)

    def _current_coordinator(self, other_than: Node | None = None) -> Node | None:
        """The running node that coordinates the workload's group now, if it can be learned."""
        assert self.coordinator is not None
        nodes = self._by_broker_id()
        try:
            found = self.coordinator()
        except Exception:  # a cluster in trouble: no coordinator to aim at
            return None
        node = nodes.get(found) if found is not None else None
        if node is None or node is other_than or node.name in self._down:
            return None
        return node

    def _kill_coordinator(self) -> str | None:
        """Kill the group's coordinator (first cut off from the other brokers, sometimes), and
        sometimes the coordinator after it; None when none can be learned."""
        coordinator = self._current_coordinator()
        if coordinator is None:
            return None
        why = {"plan": "coordinator"}
        said: list[str] = []
        if self.proxy is not None and self.rng.random() < COORDINATOR_CUT_CHANCE:
            brokers = [n for n in self.targets if n is not coordinator]
            said.append(self._cut_between(coordinator, brokers))
            self._wait(COORDINATOR_CUT_S)
        said.append(self._signal_node("kill", coordinator, coordinator=True, **why))
        if self.rng.random() < CASCADE_CHANCE:
            deadline = time.monotonic() + CASCADE_WAIT_S
            while time.monotonic() < deadline:
                successor = self._current_coordinator(other_than=coordinator)
                if successor is not None:
                    said.append(self._signal_node("kill", successor, coordinator=True, **why))
                    break
                time.sleep(0.2)
        return "; then ".join(said)

    def _probe(self, broker: int | None) -> BrokerMetadata | None:
        assert self.probe is not None
        try:
            return self.probe(broker)
        except Exception:  # a cluster in trouble answers nothing: the plan goes on blind
            return None

    def _alone_in_isr(self, leader: Node, partitions: list[int]) -> bool:
        """Wait until `leader`'s own metadata shows it alone in the ISR of every one of
        `partitions` it still leads; False when that is not seen in time."""
        assert leader.broker_id is not None
        deadline = time.monotonic() + SOLE_ISR_WAIT_S
        while time.monotonic() < deadline:
            found = self._probe(leader.broker_id) if self.probe is not None else None
            if found is not None:
                led = [
                    p
                    for p in partitions
                    if found.partitions.get(p, _NO_VIEW).leader == leader.broker_id
                ]
                if led and all(found.isrs.get(p) == (leader.broker_id,) for p in led):
                    return True
            time.sleep(PROBE_EVERY_S)
        return False

    def _alone_then_kill(self, leader: Node, partitions: list[int], **why: object) -> str:
        """Cut `leader` off from every follower (the coordination service kept), or pause
        them without a proxy; once its metadata shows it alone in the ISR, let it acknowledge
        alone for a moment, kill it, and bring its followers back (it stays down: a leader
        alone in its ISR dies with what it acknowledged alone)."""
        followers = [n for n in self.targets if n is not leader and n.name not in self._down]
        said: list[str] = []
        cut: _Partition | None = None
        if self.proxy is not None:
            cut = self._between(leader, followers)
            said.append(self._apply_on_links(cut))
        else:
            said.extend(self._signal_node("pause", f, **why) for f in followers)
        alone = self._alone_in_isr(leader, partitions)
        if alone:
            self._wait(SOLE_ISR_HOLD_S)
        said.append(self._signal_node("kill", leader, alone=alone, **why))
        if cut is not None:
            self._heal_links(cut.links)
            self._proxy_links.difference_update(cut.links)
        for follower in followers:
            if follower.name in self._paused:
                self._resume(follower.name)
        said.append(f"followers back{'' if alone else ' (never seen alone in the ISR)'}")
        return "; then ".join(said)

    def _offsets_alone(self) -> str | None:
        """The group coordinator (the offsets partition's leader) left alone in its ISRs, its
        commits acknowledged meanwhile, then killed; None when no coordinator is known."""
        coordinator = self._current_coordinator()
        if coordinator is None:
            return None
        # The client sees no ISR of the offsets topic: the user partitions the coordinator
        # leads shrink with it, over the same replica lag time.
        found = self._probe(None) if self.probe is not None else None
        led = sorted(
            p
            for p, view in (found.partitions.items() if found is not None else ())
            if view.leader == coordinator.broker_id
        )
        return self._alone_then_kill(coordinator, led, coordinator=True, plan="offsets")

    def _controller_fault(self) -> str | None:
        """The broker the metadata names as controller killed, paused, or cut off from the
        coordination service; a paused or cut one comes back after a while (deposed, or not),
        and sometimes a partition's leader is killed then, while the controllers change
        hands; None when no controller is named."""
        found = self._probe(None)
        nodes = self._by_broker_id()
        node = (
            nodes.get(found.controller)
            if found is not None and found.controller is not None
            else None
        )
        if node is None or node.name in self._down:
            return None
        why = {"plan": "controller", "controller": True}
        kinds = [k for k in CONTROLLER_FAULTS if k != "cut" or self.proxy is not None]
        fault = self.rng.choice(kinds)
        said: list[str] = []
        cut: _Partition | None = None
        if fault == "cut":
            coordination = [n for n in self.cluster.nodes if n.role not in ("broker", "")]
            cut = self._between(node, coordination)
            said.append(self._apply_on_links(cut))
        else:
            said.append(self._signal_node(fault, node, **why))
        self._wait(CONTROLLER_HOLD_S)
        if cut is not None:
            self._heal_links(cut.links)
            self._proxy_links.difference_update(cut.links)
            said.append(f"heal {node.name}")
        elif node.name in self._paused:
            self._resume(node.name)
            said.append(f"resume {node.name}")
        if self.rng.random() < CONTROLLER_MOVE_CHANCE:
            aimed = self._aimed()
            if aimed is not None:
                partition, _, leader = aimed
                said.append(
                    self._signal_node("kill", leader, leader_of=partition, plan="controller")
                )
        return "; then ".join(said)

    def _power_loss(self) -> str:
        """Every broker killed at once, as a power loss takes them: what no broker made
        durable is lost everywhere, and acks=all must still lose nothing."""
        up = [n for n in self.targets if n.name not in self._down]
        return "; ".join(self._signal_node("kill", n, plan="power-loss") for n in up)

    def _isolation(self, node: Node) -> _Partition:
        """`node` cut off from every other node, both ways; its clients still reach it."""
        assert self.cluster.proxy is not None
        links = sorted(
            link.name
            for link in self.cluster.proxy.links
            if link.src != CLIENT and node.name in (link.src, link.dst)
        )
        return _Partition(links, [node.name], [], self.rng.choice(CUT_MODES))

    def _cut_between(self, node: Node, others: list[Node]) -> str:
        """Cut the links between `node` and each of `others`, both ways; its clients and the
        coordination service still reach it."""
        return self._apply_on_links(self._between(node, others))

    def _between(self, node: Node, others: list[Node]) -> _Partition:
        """The partition that cuts the links between `node` and each of `others`, both ways."""
        assert self.cluster.proxy is not None
        names = {n.name for n in others}
        links = sorted(
            link.name
            for link in self.cluster.proxy.links
            if {link.src, link.dst} - {node.name} <= names and node.name in (link.src, link.dst)
        )
        apart = ", ".join(sorted(names))
        return _Partition(links, [node.name], [], self.rng.choice(CUT_MODES), apart)

    def _inject_on_links(self, kind: str) -> str:
        if self.proxy is None:
            raise NemesisError(f"the {kind} nemesis needs a fault proxy")
        return self._apply_on_links(self._partition() if kind == "partition" else self._slow())

    def _apply_on_links(self, fault: _Partition | _Slow) -> str:
        assert self.proxy is not None
        kind = "partition" if isinstance(fault, _Partition) else "slow"
        value = fault.as_value()
        self.recorder.record(NEMESIS, "invoke", NEMESIS, value)
        self._proxy_links.update(fault.links)  # written down before the proxy acts
        try:
            if isinstance(fault, _Partition):
                self.proxy.cut(fault.links, fault.mode)
            else:
                seed = self.rng.getrandbits(32)  # the proxy's drops follow the workload's seed
                self.proxy.request(
                    "slow", links=fault.links, delay_ms=fault.delay_ms, drop=fault.drop, seed=seed
                )
        except ProxyError as error:
            self.recorder.record(NEMESIS, "info", NEMESIS, {**value, "error": str(error)})
            return f"{kind} failed: {error}"
        self.faults += 1
        self.recorder.record(NEMESIS, "ok", NEMESIS, value)
        return fault.describe()

    def _partition(self) -> _Partition:
        """A partition's leader cut off from every other node or from some of them (its clients
        kept), a broker cut off from the coordination service, or a random minority cut off
        from the rest, both ways, sometimes with its clients; or only the clients cut off from
        one broker."""
        assert self.cluster.proxy is not None
        links = self.cluster.proxy.links
        nodes = sorted({n for link in links if link.src != CLIENT for n in (link.src, link.dst)})
        brokers = sorted({link.dst for link in links if link.src == CLIENT})
        coordination = sorted(n.name for n in self.cluster.nodes if n.role not in ("broker", ""))
        isolated: list[str] = []
        clients_cut: list[str] = []
        apart_from = "every other node"
        draw = self.rng.random()
        aimed = self._aimed() if draw < ISOLATE_LEADER_CHANCE + PARTIAL_CHANCE else None
        if aimed is not None and draw >= ISOLATE_LEADER_CHANCE:
            leader = aimed[2].name
            others = [n for n in nodes if n != leader]
            apart = sorted(self.rng.sample(others, self.rng.randint(1, max(1, len(others) - 1))))
            fault_links = sorted(
                link.name
                for link in links
                if link.src != CLIENT
                and {link.src, link.dst} - {leader} <= set(apart)
                and leader in (link.src, link.dst)
            )
            return _Partition(
                fault_links, [leader], [], self.rng.choice(CUT_MODES), ", ".join(apart)
            )
        if aimed is not None:
            isolated = [aimed[2].name]
        elif (
            draw < ISOLATE_LEADER_CHANCE + PARTIAL_CHANCE + COORDINATION_CUT_CHANCE
            and coordination
            and brokers
        ):
            one = self.rng.choice(brokers)
            fault_links = sorted(
                link.name
                for link in links
                if {link.src, link.dst} & {one} and {link.src, link.dst} & set(coordination)
            )
            return _Partition(
                fault_links, [one], [], self.rng.choice(CUT_MODES), ", ".join(coordination)
            )
        elif brokers and (not nodes or self.rng.random() < CLIENTS_ONLY_CHANCE):
            clients_cut = [self.rng.choice(brokers)]
        else:
            size = self.rng.randint(1, max(1, (len(nodes) - 1) // 2))
            isolated = sorted(self.rng.sample(nodes, size))
            if self.rng.random() < CLIENTS_TOO_CHANCE:
                clients_cut = [n for n in isolated if n in brokers]
        cut = [link.name for link in links if _crosses(link, isolated, clients_cut)]
        return _Partition(
            sorted(cut), isolated, clients_cut, self.rng.choice(CUT_MODES), apart_from
        )

    def _slow(self) -> _Slow:
        """Delay and drops on every link to and from one random node (its clients' included)."""
        assert self.cluster.proxy is not None
        links = self.cluster.proxy.links
        node = self.rng.choice(sorted({link.dst for link in links}))
        chosen = sorted(link.name for link in links if node in (link.src, link.dst))
        return _Slow(chosen, node, self.rng.choice(SLOW_DELAYS_MS), self.rng.choice(SLOW_DROPS))

    def heal_all(self) -> None:
        """Heal the proxy's links, resume every paused node and start every killed one; wait
        until they run."""
        if self._proxy_links and self.proxy is not None:
            coordination = {n.name for n in self.cluster.nodes if n.role not in ("broker", "")}
            assert self.cluster.proxy is not None
            first = sorted(
                link.name
                for link in self.cluster.proxy.links
                if link.name in self._proxy_links and {link.src, link.dst} & coordination
            )
            if first and len(first) < len(self._proxy_links):
                self._heal_links(first)
                self._wait(STAGGERED_HEAL_S)
            self._heal_links(None)
            self._proxy_links.clear()
        for name in list(self._paused):
            self._resume(name)
        if self._down:
            down = dict(self._down)
            start: dict[str, object] = {"fault": "start", "nodes": sorted(down)}
            self.recorder.record(NEMESIS, "invoke", NEMESIS, start)
            try:
                self._start(down)
                self.recorder.record(NEMESIS, "ok", NEMESIS, {**start, "pids": self._pids(down)})
            except NemesisError as error:
                self.recorder.record(NEMESIS, "info", NEMESIS, {**start, "error": str(error)})
            self._down.clear()

    def _resume(self, name: str) -> None:
        """SIGCONT (or the resume command) to a paused node, recorded."""
        pid = self._paused[name]
        resume: dict[str, object] = {"fault": "resume", "node": name, "pid": pid}
        self.recorder.record(NEMESIS, "invoke", NEMESIS, resume)
        try:
            self._act(self._node(name), "resume", pid, signal.SIGCONT)
            self.recorder.record(NEMESIS, "ok", NEMESIS, resume)
        except NemesisError as error:
            self.recorder.record(NEMESIS, "info", NEMESIS, {**resume, "error": str(error)})
        del self._paused[name]

    def _heal_links(self, links: list[str] | None) -> None:
        """Heal these links of the proxy (None: all of them), recorded."""
        assert self.proxy is not None
        named = links if links is not None else sorted(self._proxy_links)
        heal: dict[str, object] = {"fault": "heal", "links": named}
        self.recorder.record(NEMESIS, "invoke", NEMESIS, heal)
        try:
            self.proxy.heal(links)
            self.recorder.record(NEMESIS, "ok", NEMESIS, heal)
        except ProxyError as error:
            self.recorder.record(NEMESIS, "info", NEMESIS, {**heal, "error": str(error)})

    @property
    def faulty(self) -> list[str]:
        """Nodes that are (or may be) killed or paused now, and the proxy's faulty links."""
        links = [f"links {', '.join(sorted(self._proxy_links))}"] if self._proxy_links else []
        return sorted({*self._down, *self._paused}) + links

    # -- acting on nodes ---------------------------------------------------------------------

    def _node(self, name: str) -> Node:
        return next(n for n in self.cluster.nodes if n.name == name)

    def _act(self, node: Node, action: str, pid: int | None, signum: int) -> None:
        if action in node.commands:
            _run(node.commands[action])
            return
        if pid is None:
            raise NemesisError(f"node {node.name} has neither a pid nor a {action} command")
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            raise NemesisError(f"node {node.name} (pid {pid}) is not running") from None

    def _start(self, down: dict[str, int | None]) -> None:
        by_command = [name for name in down if "start" in self._node(name).commands]
        for name in by_command:
            _run(self._node(name).commands["start"])
        served = [name for name in down if name not in by_command]
        if not served:
            return
        if self.cluster.serve_pid is None:
            raise NemesisError(f"no serve_pid to start {', '.join(served)} again")
        deadline = time.monotonic() + RESTART_TIMEOUT_S
        asked_at = -math.inf
        while time.monotonic() < deadline:
            pids = self.cluster.pids()
            if all(
                pids.get(n) is not None and pids[n] != down[n] and process_alive(pids[n])
                for n in served
            ):
                return
            # serve starts only the nodes it has already seen exit; a node killed a moment
            # before may not have been reaped yet, so ask again until every one is back.
            if time.monotonic() - asked_at >= RESTART_ASK_AGAIN_S:
                try:
                    os.kill(self.cluster.serve_pid, signal.SIGUSR1)
                except ProcessLookupError:
                    raise NemesisError(
                        f"serve (pid {self.cluster.serve_pid}) is not running"
                    ) from None
                asked_at = time.monotonic()
            time.sleep(0.1)
        raise NemesisError(f"serve did not start {', '.join(served)} again")

    def _pids(self, names: dict[str, int | None]) -> dict[str, int]:
        pids = self.cluster.pids()
        return {n: pids[n] for n in names if n in pids}


def _run(command: str) -> None:
    try:
        done = subprocess.run(
            command,
            shell=True,
            timeout=COMMAND_TIMEOUT_S,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
            check=False,
        )
    except subprocess.TimeoutExpired:
        raise NemesisError(f"{command!r} did not finish in {COMMAND_TIMEOUT_S:.0f} s") from None
    if done.returncode != 0:
        reason = (done.stderr or "").strip().splitlines()[-1:] or [f"exit {done.returncode}"]
        raise NemesisError(f"{command!r} failed: {reason[0]}")
