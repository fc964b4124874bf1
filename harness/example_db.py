"""Hypothesis example databases named on the command line, so found failures travel between machines.

`--example-db` takes:
- `DIR`: a directory database (Hypothesis's default kind);
- `redis://HOST:PORT/N`: Hypothesis's Redis database, shared by every CI job that names it;
- `multi:SPEC,SPEC,...`: all of them at once (a failure found by any is saved to every one);
- `readonly:SPEC`: replay what is stored, never write (for untrusted branches).

Rules of this module:
- A spec that cannot be used (a malformed URL, a Redis server that does not
  answer, a directory that cannot be created) is a `UsageError`, found before
  the campaign starts.
- Every cluster configuration gets keys of its own (`ConfigKeyedDatabase`), so
  a failure stored for one seeded bug is never replayed against another, while
  the same configuration on another machine finds it first.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import urlparse

from hypothesis.database import (
    DirectoryBasedExampleDatabase,
    ExampleDatabase,
    MultiplexedDatabase,
    ReadOnlyDatabase,
)
from kafka_verify.harness.cli_common import UsageError, check_output_dir

REDIS_CONNECT_TIMEOUT_S = 3.0


def _redis_database(spec: str) -> ExampleDatabase:
    parsed = urlparse(spec)
    if not parsed.hostname or parsed.port is None:
        raise UsageError(f"--example-db {spec}: a Redis database is redis://HOST:PORT/N")
    number = parsed.path.lstrip("/") or "0"
    if not number.isdigit():
        raise UsageError(f"--example-db {spec}: the database number {number!r} is not a number")
    try:
        import redis
        from hypothesis.extra.redis import RedisExampleDatabase
    except ImportError:
        raise UsageError(
            "--example-db redis:// needs the redis package: pip install 'kafka-verify[redis]'"
        ) from None
    client = redis.Redis(
        host=parsed.hostname,
        port=parsed.port,
        db=int(number),
        socket_connect_timeout=REDIS_CONNECT_TIMEOUT_S,
        socket_timeout=REDIS_CONNECT_TIMEOUT_S,
    )
    try:
        client.ping()
    except redis.RedisError as error:
        raise UsageError(
            f"--example-db {spec}: the Redis server does not answer ({error})"
        ) from None
    return RedisExampleDatabase(client)


def parse_example_db(spec: str) -> ExampleDatabase:
    """The database a `--example-db` spec names; UsageError if it cannot be used."""
    if not spec:
        raise UsageError("--example-db needs a directory, a redis:// URL, multi: or readonly:")
    if spec.startswith("readonly:"):
        return ReadOnlyDatabase(parse_example_db(spec.removeprefix("readonly:")))
    if spec.startswith("multi:"):
        parts = [part for part in spec.removeprefix("multi:").split(",") if part]
        if not parts:
            raise UsageError("--example-db multi: names no database")
        return MultiplexedDatabase(*(parse_example_db(part) for part in parts))
    if spec.startswith("redis://"):
        return _redis_database(spec)
    if "://" in spec:
        raise UsageError(f"--example-db {spec}: only directories and redis:// URLs are supported")
    check_output_dir(Path(spec), "--example-db")
    return DirectoryBasedExampleDatabase(spec)


class ConfigKeyedDatabase(ExampleDatabase):
    """Another database, with every key prefixed by a digest of the cluster configuration."""

    def __init__(self, inner: ExampleDatabase, config_text: str) -> None:
        super().__init__()
        self.inner = inner
        self.prefix = hashlib.sha256(config_text.encode()).hexdigest()[:16].encode() + b"."

    def __repr__(self) -> str:
        return f"ConfigKeyedDatabase({self.inner!r}, prefix={self.prefix!r})"

    def __eq__(self, other: object) -> bool:
        return (
            isinstance(other, ConfigKeyedDatabase)
            and self.inner == other.inner
            and self.prefix == other.prefix
        )

    def __hash__(self) -> int:
        return hash(self.prefix)

    def fetch(self, key: bytes) -> Iterable[bytes]:
        return self.inner.fetch(self.prefix + key)

    def save(self, key: bytes, value: bytes) -> None:
        self.inner.save(self.prefix + key, value)

    def delete(self, key: bytes, value: bytes) -> None:
        self.inner.delete(self.prefix + key, value)

    def move(self, src: bytes, dest: bytes, value: bytes) -> None:
        self.inner.move(self.prefix + src, self.prefix + dest, value)


def parse_shard(text: str) -> tuple[int, int]:
    """`I/N` (0 <= I < N) as (I, N): the I-th of N disjoint slices of the campaign's seeds."""
    index, slash, count = text.partition("/")
    if not slash or not index.isdigit() or not count.isdigit():
        raise UsageError(f"--shard {text}: write it as I/N, for example 0/4")
    shard, shards = int(index), int(count)
    if shards < 1 or shard >= shards:
        raise UsageError(f"--shard {text}: I must be at least 0 and below N")
    return shard, shards


def shard_seed(base_seed: int, shard: int, shards: int) -> int:
    """The seed of shard `shard` of `shards`: seeds congruent to `shard` mod `shards` belong to it,
    so no two shards ever run the same seed, and shard 0/1 runs the base seed itself."""
    return base_seed * shards + shard
