"""The scripts in examples/ run, as the README shows them, against `kafka-verify serve`."""

from __future__ import annotations

import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from served import ServedCluster

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedCluster]:
    with ServedCluster(
        tmp_path_factory.mktemp("examples"), brokers=3, topics=["greetings:3:3"]
    ) as served:
        yield served


def _run(command: list[str]) -> str:
    done = subprocess.run(command, capture_output=True, text=True, timeout=180, cwd=REPO)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-2000:]
    return done.stdout


def test_the_python_producer_and_consumer(cluster: ServedCluster) -> None:
    sent = _run([sys.executable, "examples/python/producer.py", "--bootstrap", cluster.bootstrap])
    assert sent.count("sent hello") == 10
    read = _run(
        [
            sys.executable,
            "examples/python/consumer.py",
            "--bootstrap",
            cluster.bootstrap,
            "--idle-s",
            "4",
        ]
    )
    assert "read 10 records" in read
    assert "user-1 -> hello 4" in read
    again = _run(
        [
            sys.executable,
            "examples/python/consumer.py",
            "--bootstrap",
            cluster.bootstrap,
            "--idle-s",
            "4",
        ]
    )
    assert "read 0 records" in again  # the group committed what it read


def test_the_node_producer_and_consumer(cluster: ServedCluster) -> None:
    node = shutil.which("node")
    assert node is not None and (REPO / "node_modules" / "kafkajs").is_dir()
    sent = _run([node, "examples/node/producer.js", cluster.bootstrap, "5"])
    assert sent.count("sent hello") == 5
    read = _run([node, "examples/node/consumer.js", cluster.bootstrap, "4"])
    # The Node group reads the topic from the beginning: the Python example's ten, and these five.
    assert "read 15 records" in read or "read 5 records" in read
    assert "user-2 -> hello 2" in read
