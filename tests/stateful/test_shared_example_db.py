"""Found failures travel between machines: `--example-db` with a real Redis server, and `--shard`.

The server is a real `redis-server`: `.ci/run` starts one on a free loopback
port and names it in KAFKA_VERIFY_REDIS_URL; elsewhere this module starts its
own when the binary is installed. Under CI a missing server is a failure, not a
skip, so the test can never quietly stop running.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)
from kafka_verify.harness.cli_common import UsageError
from kafka_verify.harness.example_db import (
    ConfigKeyedDatabase,
    parse_example_db,
    parse_shard,
    shard_seed,
)

# A bug the CI campaign finds within a few examples, so the first process is quick.
BUG = "hw-ahead-of-isr"


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="module")
def redis_url(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    given = os.environ.get("KAFKA_VERIFY_REDIS_URL")
    if given:
        yield given
        return
    binary = shutil.which("redis-server")
    if binary is None:
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail("CI must provide redis-server (KAFKA_VERIFY_REDIS_URL or on PATH)")
        pytest.skip("redis-server is not installed (apt-get install redis-server)")
    port = _free_port()
    workdir = tmp_path_factory.mktemp("redis")
    server = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        cwd=workdir,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 10
        while time.monotonic() < deadline:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.2).close()
                break
            except OSError:
                time.sleep(0.05)
        yield f"redis://127.0.0.1:{port}/0"
    finally:
        server.terminate()
        server.wait(timeout=10)


def _run(args: list[str], cwd: Path) -> tuple[int, dict[str, object], str]:
    out = cwd / "out.json"
    done = subprocess.run(
        [sys.executable, "-m", "kafka_verify.harness.cli", "run", *args, "--json", str(out)],
        cwd=cwd,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
        env={**os.environ, "CI": "true"},
    )
    payload = json.loads(out.read_text()) if out.exists() else {}
    return done.returncode, payload, done.stderr


def test_a_failure_found_by_one_process_is_replayed_first_by_another(
    redis_url: str, tmp_path: Path
) -> None:
    import redis

    # A database number of its own, emptied first, so reruns start clean.
    url = redis_url.rsplit("/", 1)[0] + "/7"
    client = redis.Redis.from_url(url)
    client.flushdb()
    first, second, control = tmp_path / "first", tmp_path / "second", tmp_path / "control"
    for folder in (first, second, control):
        folder.mkdir()

    code, found, stderr = _run(
        ["--bug", BUG, "--profile", "ci", "--seed", "1", "--example-db", url], first
    )
    assert code == 1, stderr
    assert found["status"] == "violation"
    stored = client.keys("*")
    assert stored, "the failing example was not stored in Redis"

    # Another process, another seed, an empty local directory and a budget of one
    # example: it replays the stored failure before generating anything.
    spec = f"multi:{second / 'local-db'},{url}"
    code, replayed, stderr = _run(
        ["--bug", BUG, "--profile", "ci", "--seed", "999", "--examples", "1", "--example-db", spec],
        second,
    )
    assert code == 1, stderr
    assert replayed["status"] == "violation"
    violations = replayed["violations"]
    assert isinstance(violations, list)
    assert violations[0]["property"] == found["violations"][0]["property"]  # type: ignore[index]

    # The control: the same one-example run without the shared database finds nothing.
    code, clean, stderr = _run(
        ["--bug", BUG, "--profile", "ci", "--seed", "999", "--examples", "1"], control
    )
    assert code == 0, stderr
    assert clean["status"] == "pass"
    client.flushdb()


def test_an_unreachable_redis_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    url = f"redis://127.0.0.1:{_free_port()}/0"
    done = subprocess.run(
        [sys.executable, "-m", "kafka_verify.harness.cli", "run", "--example-db", url],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    lines = [line for line in done.stderr.splitlines() if line.strip()]
    assert len(lines) == 1 and "does not answer" in lines[0], done.stderr


def test_example_db_specs_build_the_databases_they_name(tmp_path: Path) -> None:
    local = parse_example_db(str(tmp_path / "db"))
    assert isinstance(local, DirectoryBasedExampleDatabase)
    readonly = parse_example_db(f"readonly:{tmp_path / 'db'}")
    assert isinstance(readonly, ReadOnlyDatabase)
    multi = parse_example_db(f"multi:{tmp_path / 'a'},{tmp_path / 'b'}")
    assert isinstance(multi, MultiplexedDatabase)
    for bad in ("", "multi:", "ftp://host/x", "redis://nohost", "redis://127.0.0.1:1/x"):
        with pytest.raises(UsageError):
            parse_example_db(bad)


def test_each_configuration_has_keys_of_its_own(tmp_path: Path) -> None:
    inner = DirectoryBasedExampleDatabase(tmp_path)
    one, other = ConfigKeyedDatabase(inner, "a"), ConfigKeyedDatabase(inner, "b")
    one.save(b"key", b"value")
    assert list(one.fetch(b"key")) == [b"value"]
    assert list(other.fetch(b"key")) == []


def test_shards_take_disjoint_seeds() -> None:
    assert parse_shard("2/4") == (2, 4)
    for bad in ("4/4", "1", "a/b", "0/0", "-1/3"):
        with pytest.raises(UsageError):
            parse_shard(bad)
    seeds = [{shard_seed(base, i, 4) for base in range(50)} for i in range(4)]
    assert all(not a & b for i, a in enumerate(seeds) for b in seeds[i + 1 :])
    assert shard_seed(7, 0, 1) == 7
