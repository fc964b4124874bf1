"""What every subcommand shares: the usage error, argument types, output paths and JSON writing.

Rules of this module:
- It is a leaf of `harness`: it imports no other subcommand module, so every
  subcommand can import it without an import circle.
- A user's mistake is a `UsageError`: one sentence, exit code 2, no traceback.
- Every path the user names for output is checked before any work starts
  (`check_output_file`, `check_output_dir`), by really creating a file there, so
  a run never spends minutes and then fails to write its result. Writing a file
  never fails silently: `write_json` and `write_text` raise `UsageError`.
"""

from __future__ import annotations

import argparse
import json
import os
import tempfile
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, NoReturn

from kafka_verify.harness.cluster import reference_cluster
from kafka_verify.impl.config import ClusterConfig


class UsageError(Exception):
    """Bad input from the user: one sentence, exit code 2."""


class Parser(argparse.ArgumentParser):
    """An argument parser whose errors are UsageErrors (one sentence, exit 2)."""

    def error(self, message: str) -> NoReturn:
        raise UsageError(f"{message} (see 'kafka-verify {self.prog.split()[-1]} --help')")


def whole_number(minimum: int) -> Callable[[str], int]:
    """An argparse type: a whole number of at least `minimum`, or one clear sentence."""

    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"{text!r} is not a whole number") from None
        if value < minimum:
            raise argparse.ArgumentTypeError(f"{value} must be at least {minimum}")
        return value

    return parse


positive = whole_number(1)
non_negative = whole_number(0)


def _reason(error: OSError) -> str:
    return (error.strerror or str(error)).lower()


def _probe(directory: Path) -> None:
    """Create and remove a file in `directory`: the only sure test that it takes writes."""
    with tempfile.NamedTemporaryFile(dir=directory, prefix=".kafka-verify-probe-"):
        pass


def check_output_file(path: Path | None, flag: str) -> None:
    """`path` can be written: its folder exists and takes files, and it is not a folder itself."""
    if path is None:
        return
    if path.is_dir():
        raise UsageError(f"{flag} {path} is a directory, not a file")
    folder = path.parent
    if not folder.is_dir():
        raise UsageError(f"{flag} {path}: the directory {folder} does not exist")
    try:
        _probe(folder)
    except OSError as error:
        raise UsageError(f"{flag} {path} cannot be written: {_reason(error)}") from None


def check_output_dir(path: Path | None, flag: str) -> None:
    """`path` is (or can be made) a folder that takes files."""
    if path is None:
        return
    if path.exists() and not path.is_dir():
        raise UsageError(f"{flag} {path} is a file, not a directory")
    try:
        path.mkdir(parents=True, exist_ok=True)
        _probe(path)
    except OSError as error:
        raise UsageError(f"{flag} {path} cannot be used for output: {_reason(error)}") from None


# The output flags of every subcommand, checked before the subcommand starts.
OUTPUT_FILE_FLAGS = ("json", "history")
OUTPUT_DIR_FLAGS = ("reports",)


def check_output_paths(args: argparse.Namespace) -> None:
    """Check every output path the parsed arguments name (see OUTPUT_*_FLAGS)."""
    for name in OUTPUT_FILE_FLAGS:
        check_output_file(getattr(args, name, None), f"--{name}")
    for name in OUTPUT_DIR_FLAGS:
        check_output_dir(getattr(args, name, None), f"--{name}")


def write_text(path: Path, text: str) -> None:
    """Write `text` to `path`, or raise UsageError with one sentence."""
    try:
        path.write_text(text, encoding="utf-8")
    except OSError as error:
        raise UsageError(f"cannot write {path}: {_reason(error)}") from None


def write_json(path: Path | None, payload: dict[str, Any]) -> None:
    """Write `payload` as indented JSON to `path` (nothing when no path was asked for)."""
    if path is None:
        return
    write_text(path, json.dumps(payload, indent=2, sort_keys=False) + "\n")


def cluster_config_from(args: argparse.Namespace, bugs: Sequence[str]) -> ClusterConfig:
    """A ClusterConfig from the cluster flags; impossible configs are usage errors."""
    try:
        return reference_cluster(
            frozenset(bugs),
            brokers=args.brokers,
            partitions=args.partitions,
            replication=args.replication,
            min_insync=args.min_insync,
            groups=args.groups,
        )
    except ValueError as error:
        raise UsageError(str(error)) from None


def plain_output() -> bool:
    """No live progress: under CI, or when stderr is not a terminal."""
    return os.environ.get("CI", "").lower() == "true" or not os.isatty(2)
