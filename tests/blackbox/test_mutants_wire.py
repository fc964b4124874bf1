"""`kafka-verify mutants --wire` as a user runs it: bad input is one sentence, and a seeded bug
run in a real `serve --bug` cluster under the workload is reported with the anomaly."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from kafka_verify.workload.nemesis import process_alive


def _mutants(*args: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    command = [sys.executable, "-m", "kafka_verify.harness.cli", "mutants", "--wire", *args]
    return subprocess.run(command, capture_output=True, text=True, timeout=timeout)


@pytest.mark.parametrize(
    ("args", "sentence"),
    [
        (["--bug", "no-such-bug"], "unknown bug name(s) no-such-bug"),
        (["--budget-s", "10", "--round-s", "30"], "--budget-s 10 is shorter than one round"),
        (["--nemesis", "flood"], "'flood' is not a nemesis kind"),
    ],
)
def test_bad_input_is_one_sentence(args: list[str], sentence: str) -> None:
    done = _mutants(*args)
    assert done.returncode == 2
    assert sentence in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1


@pytest.mark.slow
def test_a_bug_a_client_can_see_is_caught_and_the_correct_broker_is_clean(tmp_path: Path) -> None:
    result = tmp_path / "mutants-wire.json"
    done = _mutants(
        "--bug", "ack-before-commit",
        "--budget-s", "300",
        "--round-s", "20",
        "--json", str(result),
        "--reports", str(tmp_path / "reports"),
        timeout=1200,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    data = json.loads(result.read_text())
    (row,) = data["bugs"]
    assert row["caught"] is True and row["observable"] is True
    assert "lost-write" in row["property"] or "inconsistent-offsets" in row["property"]
    assert Path(row["report"]).is_file()
    assert data["false_alarm"] is None and data["clean"]["caught"] is False
    leftover = subprocess.run(
        ["pgrep", "-f", "kafka-verify-mutants-wire"], capture_output=True, text=True
    ).stdout.split()
    assert not [pid for pid in leftover if process_alive(int(pid))]


def _processes_under(directory: Path) -> list[int]:
    """Live processes whose command line names `directory` (a campaign's clusters live in
    its temporary directory)."""
    found = subprocess.run(
        ["pgrep", "-f", str(directory)], capture_output=True, text=True
    ).stdout.split()
    return [int(pid) for pid in found if process_alive(int(pid))]


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGINT])
def test_a_campaign_stopped_mid_round_stops_its_cluster(tmp_path: Path, signum: int) -> None:
    scratch = tmp_path / "scratch"  # the campaign's TMPDIR: its clusters are made in it
    scratch.mkdir()
    command = [sys.executable, "-m", "kafka_verify.harness.cli", "mutants", "--wire"]
    command += ["--bug", "truncate-to-hw", "--budget-s", "600", "--round-s", "60"]
    command += ["--reports", str(tmp_path / "reports")]
    campaign = subprocess.Popen(
        command,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "TMPDIR": str(scratch)},
    )
    try:
        deadline = time.monotonic() + 120
        # serve, its coordination node, its brokers and the fault proxy run: a round is on.
        while len(_processes_under(scratch)) < 5 and time.monotonic() < deadline:
            time.sleep(0.2)
        assert len(_processes_under(scratch)) >= 5
        time.sleep(3)  # into the workload's faults
        campaign.send_signal(signum)
        _, err = campaign.communicate(timeout=180)
    finally:
        if campaign.poll() is None:
            campaign.kill()
            campaign.wait()
    assert campaign.returncode == 130, err
    assert "Traceback" not in err, err
    assert _processes_under(scratch) == []
