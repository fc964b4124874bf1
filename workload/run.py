"""One workload: producers, consumers and a nemesis against a cluster, then a check.

Rules of this module:
- Clients run on threads, one client object per thread. librdkafka does its
  network work on its own threads outside the GIL, and one recorder in one
  process gives every operation its place in a single total order for free;
  separate processes would need their clocks and indexes merged afterwards.
- Producer `p<i>` sends unique integers (one shared counter) to each
  partition in turn, waiting for each acknowledgement. After an `info` send
  its outcome is unknown, so the thread goes on as a new process with a new
  client, as Jepsen's do. Records are `"<run>:<n>"`: records of earlier runs
  in the topic are not this run's, and are left out of polls.
- Consumer `c<j>` assigns every partition (or subscribes to the topic), polls,
  commits every few polls, and is sometimes crashed: closed without a commit,
  recorded as a `crash`, then started again from the group's committed offsets.
  A commit records the offsets it asks for and, when ok, the ones the client
  says it committed; assign and subscribe name the group; the rebalance
  callbacks a call ran are recorded inside it (`assigned`, `revoked`, `lost`).
- The nemesis runs on the main thread, in rounds: a quiet stretch, then one
  fault held for a while, then its heal. After the duration every fault is
  healed, producers stop, consumers drain for a quiet while, and a fresh
  consumer reads every partition from the beginning up to its high watermark.
- Whatever happens, SIGINT or SIGTERM included, the `finally` path heals every
  fault (further interrupts are ignored meanwhile) and stops every client.
- The history is checked in process by `properties.history`, with the
  configuration the clients ran under (idempotence, assign or subscribe).
"""

from __future__ import annotations

import contextlib
import itertools
import random
import signal
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType

from kafka_verify.properties.history import Analysis, CheckConfig, CheckResult, Op
from kafka_verify.workload.clients import (
    ClientFactory,
    ClientSettingError,
    CommitError,
    ConsumerClient,
    ProducerClient,
    ask_metadata,
    find_coordinator,
)
from kafka_verify.workload.history import Recorder
from kafka_verify.workload.nemesis import ClusterFile, Nemesis, proxy_refusal

SEND_TIMEOUT_S = 15.0  # past the clients' own 10 s delivery timeout
POLL_TIMEOUT_S = 0.2
POLL_RECORDS = 500
COMMIT_EVERY = 5  # polls
FINAL_READ_TIMEOUT_S = 90.0
JOIN_TIMEOUT_S = 30.0
FAULT_SPREAD = 0.5  # a fault is held for fault_s times 1 +- this


class WorkloadError(ValueError):
    """A workload that cannot start (bad settings, no cluster): one sentence."""


class Interrupted(BaseException):
    """SIGINT or SIGTERM: stop, heal, leave nothing behind."""


@dataclass(frozen=True)
class WorkloadOptions:
    bootstrap: str
    topic: str = "t"
    partitions: int = 3
    client: str = "confluent"
    settings: dict[str, str] = field(default_factory=dict)
    duration_s: float = 30.0
    producers: int = 4
    consumers: int = 2
    rate: float = 200.0  # sends per second, all producers together
    sub_via: str = "assign"
    crash_every_s: float = 8.0  # mean time between crashes of one consumer
    cluster: ClusterFile | None = None
    nemesis: tuple[str, ...] = ()
    fault_s: float = 3.0
    quiet_s: float = 3.0
    drain_s: float = 5.0
    seed: int | None = None
    log: Callable[[str], None] = lambda _: None


@dataclass
class WorkloadOutcome:
    recorder: Recorder
    result: CheckResult | None  # None when interrupted
    interrupted: bool
    final_read_complete: bool
    faults: int
    errors: list[str]

    def summary(self) -> dict[str, object]:
        """The `workload` field of the JSON: operations by f and type, and how the run went."""
        return {
            "ops": self.recorder.counts(),
            "faults": self.faults,
            "final_read_complete": self.final_read_complete,
            "interrupted": self.interrupted,
            "errors": self.errors,
        }


def _key(topic: str, partition: int) -> str:
    return f"{topic}/{partition}"


class Workload:
    def __init__(self, options: WorkloadOptions) -> None:
        self.o = options
        self.recorder = Recorder()
        self.run_id = f"{random.SystemRandom().getrandbits(40):010x}"
        self.rng = random.Random(options.seed)
        self.factory = ClientFactory(options.client, options.bootstrap, options.settings)
        self.values = itertools.count()
        self.stop_producers = threading.Event()
        self.stop_consumers = threading.Event()
        self.threads: list[threading.Thread] = []
        self.errors: list[str] = []
        self.nemesis = (
            Nemesis(
                options.cluster,
                self.recorder,
                random.Random(self.rng.random()),
                layout=lambda: self.factory.layout(options.topic),
                coordinator=lambda: find_coordinator(options.bootstrap, self.group),
                probe=lambda broker: ask_metadata(options.bootstrap, options.topic, broker),
            )
            if options.cluster is not None and options.nemesis
            else None
        )
        self.group = f"kafka-verify-workload-{self.run_id}"
        self.prefix = f"{self.run_id}:".encode()

    # -- clients -----------------------------------------------------------------------------

    def _thread(self, name: str, body: Callable[[], None]) -> None:
        def guarded() -> None:
            try:
                body()
            except Exception as error:  # a client bug must not take the run down unseen
                self.errors.append(f"{name}: {type(error).__name__}: {error}")

        # Daemon: a client call hung past every timeout must not keep the process alive.
        thread = threading.Thread(target=guarded, name=name, daemon=True)
        self.threads.append(thread)
        thread.start()

    def _producer(self, i: int) -> None:
        o = self.o
        process = f"p{i}"
        generation = 0
        interval = o.producers / o.rate if o.rate > 0 else 0.0
        client = self.factory.producer()
        try:
            for partition in itertools.cycle(range(o.partitions)):
                if self.stop_producers.is_set():
                    return
                started = time.monotonic()
                n = next(self.values)
                self.recorder.record(process, "invoke", "send", [o.topic, partition, None, n])
                try:
                    kind, detail = client.send(
                        o.topic, partition, self.prefix + str(n).encode(), SEND_TIMEOUT_S
                    )
                except Exception as error:  # a fatal client error: the outcome is unknown
                    kind, detail = "info", str(error)
                    self.errors.append(f"{process}: {type(error).__name__}: {error}")
                offset = detail if kind == "ok" and isinstance(detail, int) else None
                self.recorder.record(process, kind, "send", [o.topic, partition, offset, n])
                if kind == "info":
                    # A new process gets a new client, as in Jepsen: a client wedged by its
                    # broker (a librdkafka producer whose id the broker forgot retries it
                    # for ever) would otherwise wedge every later send of this thread.
                    generation += 1
                    process = f"p{i}.{generation}"
                    _close_quietly(client)
                    client = self.factory.producer()
                wait = interval - (time.monotonic() - started)
                if wait > 0:
                    self.stop_producers.wait(wait)
        finally:
            _close_quietly(client)

    def _cover(self, process: str, client: ConsumerClient) -> None:
        o = self.o
        if o.sub_via == "subscribe":
            value: dict[str, object] = {"group": self.group, "topics": [o.topic]}
            self.recorder.record(process, "invoke", "subscribe", value)
            client.subscribe(o.topic)
            self.recorder.record(process, "ok", "subscribe", value)
        else:
            keys = [_key(o.topic, p) for p in range(o.partitions)]
            value = {"group": self.group, "partitions": keys}
            self.recorder.record(process, "invoke", "assign", value)
            client.assign(o.topic, list(range(o.partitions)), from_beginning=False)
            self.recorder.record(process, "ok", "assign", value)

    def _rebalances(self, process: str, client: ConsumerClient) -> None:
        """Record the rebalance callbacks a call ran, inside that call's invoke and completion."""
        for event, partitions in client.rebalances():
            self.recorder.record(process, "ok", event, [_key(self.o.topic, p) for p in partitions])

    def _poll(self, process: str, client: ConsumerClient, timeout_s: float) -> list[int]:
        """One recorded poll; the partitions it read."""
        self.recorder.record(process, "invoke", "poll", {})
        try:
            polled = client.poll(timeout_s, POLL_RECORDS)
        except Exception as error:
            self._rebalances(process, client)
            self.recorder.record(process, "info", "poll", {})
            raise ConsumerLost(str(error)) from None
        self._rebalances(process, client)
        value: dict[str, list[list[int]]] = {}
        for partition, offset, record in polled:
            if record.startswith(self.prefix) and record[len(self.prefix) :].isdigit():
                n = int(record[len(self.prefix) :])
                value.setdefault(_key(self.o.topic, partition), []).append([offset, n])
        self.recorder.record(process, "ok", "poll", value)
        return [p for p, _, _ in polled]

    def _commit(self, process: str, client: ConsumerClient) -> None:
        """Commit what was read; the history says what was asked and what was committed."""
        positions = client.positions()
        if not positions:
            return  # nothing read since the last assignment: nothing to commit
        asked = {_key(self.o.topic, p): o for p, o in sorted(positions.items())}
        self.recorder.record(process, "invoke", "commit", asked)
        try:
            committed = client.commit(positions)
        except CommitError as error:
            self._rebalances(process, client)
            self.recorder.record(process, error.kind, "commit", error.reason)
            return
        except Exception as error:  # a client error of another kind: the outcome is unknown
            self._rebalances(process, client)
            self.recorder.record(
                process, "info", "commit", f"{type(error).__name__}: {error}"[:200]
            )
            return
        self._rebalances(process, client)
        value = {_key(self.o.topic, p): o for p, o in sorted(committed.items())}
        self.recorder.record(process, "ok", "commit", value)

    def _consumer(self, j: int) -> None:
        process = f"c{j}"
        crash_chance = POLL_TIMEOUT_S / self.o.crash_every_s if self.o.crash_every_s > 0 else 0.0
        rng = random.Random(self.rng.random())
        while not self.stop_consumers.is_set():
            client = self.factory.consumer(self.group)
            crashed = False
            try:
                self._cover(process, client)
                polls = 0
                while not self.stop_consumers.is_set():
                    self._poll(process, client, POLL_TIMEOUT_S)
                    polls += 1
                    if polls % COMMIT_EVERY == 0:
                        self._commit(process, client)
                    # No crashes while draining: the quiet stretch lets every consumer catch up.
                    if not self.stop_producers.is_set() and rng.random() < crash_chance:
                        self.recorder.record(process, "invoke", "crash", None)
                        self.recorder.record(process, "info", "crash", None)
                        crashed = True
                        break
                if not crashed:
                    self._commit(process, client)
            except ConsumerLost:
                pass  # recorded as an info poll; start afresh
            finally:
                _close_quietly(client)

    # -- the final read ----------------------------------------------------------------------

    def final_read(self) -> bool:
        """Read every partition from the beginning up to its high watermark, as polls."""
        o = self.o
        process = "final"
        partitions = list(range(o.partitions))
        deadline = time.monotonic() + FINAL_READ_TIMEOUT_S
        client = self.factory.consumer(f"{self.group}-final")
        try:
            ends: dict[int, int] | None = None
            while ends is None:
                try:
                    ends = client.high_watermarks(o.topic, partitions, 10.0)
                except Exception as error:  # a leader still moving: ask again
                    if time.monotonic() > deadline:
                        self.errors.append(f"final read: no high watermarks: {error}")
                        return False
                    time.sleep(0.5)
            keys = [_key(o.topic, p) for p in partitions]
            self.recorder.record(process, "invoke", "assign", keys, seek=True)
            client.assign(o.topic, partitions, from_beginning=True)
            self.recorder.record(process, "ok", "assign", keys, seek=True)
            positions = dict.fromkeys(partitions, 0)
            while any(positions[p] < ends[p] for p in partitions):
                if time.monotonic() > deadline:
                    self.errors.append(f"final read stopped at {positions}, short of {ends}")
                    return False
                self.recorder.record(process, "invoke", "poll", {})
                polled = client.poll(0.5, POLL_RECORDS)
                value: dict[str, list[list[int]]] = {}
                for partition, offset, record in polled:
                    positions[partition] = max(positions[partition], offset + 1)
                    if record.startswith(self.prefix) and record[len(self.prefix) :].isdigit():
                        n = int(record[len(self.prefix) :])
                        value.setdefault(_key(o.topic, partition), []).append([offset, n])
                self.recorder.record(process, "ok", "poll", value)
            return True
        finally:
            client.close()

    # -- the whole run -----------------------------------------------------------------------

    def run(self) -> WorkloadOutcome:
        o = self.o
        interrupted = False
        complete = False
        previous = _handle_interrupts(_raise_interrupted)
        try:
            self._check_clients()
            for i in range(o.producers):
                self._thread(f"p{i}", lambda i=i: self._producer(i))  # type: ignore[misc]
            for j in range(o.consumers):
                self._thread(f"c{j}", lambda j=j: self._consumer(j))  # type: ignore[misc]
            self._faults(time.monotonic() + o.duration_s)
            _handle_interrupts(signal.SIG_IGN)
            self._heal()
            _handle_interrupts(_raise_interrupted)
            self.stop_producers.set()
            self._join(self.threads[: o.producers])
            o.log(f"draining for {o.drain_s:.0f} s")
            time.sleep(o.drain_s)
            self.stop_consumers.set()
            self._join(self.threads)
            o.log("final read")
            complete = self.final_read()
        except Interrupted:
            interrupted = True
        finally:
            # Nothing may cut the healing short: a second Ctrl-C waits for it.
            _handle_interrupts(signal.SIG_IGN)
            try:
                self._heal()
                self.stop_producers.set()
                self.stop_consumers.set()
                self._join(self.threads)
            finally:
                for signum, handler in previous.items():
                    signal.signal(signum, handler)
        result = None if interrupted else self.check()
        faults = self.nemesis.faults if self.nemesis is not None else 0
        return WorkloadOutcome(self.recorder, result, interrupted, complete, faults, self.errors)

    def _check_clients(self) -> None:
        """Make one producer and one consumer first: bad settings fail here, in one sentence."""
        try:
            self.factory.acks()  # the checker reads it at the end: refuse a bad one now
            self.factory.producer().close()
            self.factory.consumer(self.group).close()
        except ClientSettingError as error:
            raise WorkloadError(str(error)) from None

    def _faults(self, end: float) -> None:
        o = self.o
        if self.nemesis is None:
            _sleep_until(end)
            return
        while time.monotonic() + o.quiet_s + o.fault_s < end:
            time.sleep(o.quiet_s)
            kind = self.rng.choice(o.nemesis)
            o.log(f"nemesis: {self.nemesis.inject(kind)}")
            # Held for a random time around fault_s: some faults outlast the cluster's timeouts
            # (a session, a replica lag time) and some heal before them, whatever fault_s is.
            time.sleep(self.rng.uniform(1 - FAULT_SPREAD, 1 + FAULT_SPREAD) * o.fault_s)
            self.nemesis.heal_all()
        _sleep_until(end)

    def _heal(self) -> None:
        if self.nemesis is not None and self.nemesis.faulty:
            self.o.log(f"healing {', '.join(self.nemesis.faulty)}")
            self.nemesis.heal_all()

    def _join(self, threads: list[threading.Thread]) -> None:
        deadline = time.monotonic() + JOIN_TIMEOUT_S
        for thread in threads:
            thread.join(max(0.0, deadline - time.monotonic()))
            if thread.is_alive():
                self.errors.append(f"{thread.name} did not stop in {JOIN_TIMEOUT_S:.0f} s")

    def check(self) -> CheckResult:
        sub_via = frozenset({self.o.sub_via})
        config = CheckConfig(
            idempotent=self.factory.idempotent(),
            acks=self.factory.acks(),
            sub_via=sub_via,
            eager_groups=self.factory.eager_groups(),
        )
        analysis = Analysis(config)
        for line in self.recorder.lines():
            analysis.observe(Op.from_json(line))
        return analysis.result()


def _close_quietly(client: ProducerClient | ConsumerClient) -> None:
    """Close a client that may be broken already; what it says on the way out changes nothing."""
    with contextlib.suppress(Exception):
        client.close()


class ConsumerLost(Exception):
    """A poll raised: the consumer is closed and started again."""


def _sleep_until(end: float) -> None:
    while (left := end - time.monotonic()) > 0:
        time.sleep(min(left, 0.5))


def _raise_interrupted(signum: int, frame: FrameType | None) -> None:
    raise Interrupted(signal.Signals(signum).name)


Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None


def _handle_interrupts(handler: Handler) -> dict[int, Handler]:
    """Set the SIGINT and SIGTERM handler; returns the previous ones."""
    return {s: signal.signal(s, handler) for s in (signal.SIGINT, signal.SIGTERM)}  # type: ignore[arg-type]


def run_workload(options: WorkloadOptions) -> WorkloadOutcome:
    """Run a workload to its end (or an interrupt) and check its history."""
    if options.nemesis and options.cluster is None:
        raise WorkloadError(
            "--nemesis needs --cluster FILE: faults are injected only on managed clusters"
        )
    refusal = proxy_refusal(options.nemesis, options.cluster) if options.cluster else None
    if refusal is not None:
        raise WorkloadError(refusal)
    return Workload(options).run()
