"""The suite installs as one namespace, kafka_verify, and never as top-level model/impl/properties/harness.

PyPI has packages named `properties`, `impl` and `harness`; a wheel that put ours
at the top level would overwrite them, and uninstalling either would delete the
other's files.
"""

from __future__ import annotations

import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
ROOMS = ("model", "impl", "properties", "harness", "wire", "workload")
PIP_WHEEL = (sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q")
RUN = (sys.executable, "-m", "kafka_verify.harness.cli", "run")


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> zipfile.ZipFile:
    out = tmp_path_factory.mktemp("wheel")
    build = tmp_path_factory.mktemp("build")
    done = subprocess.run(
        [*PIP_WHEEL, "-w", str(out), str(ROOT)],
        capture_output=True,
        text=True,
        check=False,
        # Keep the build's scratch files out of the work tree.
        env={**os.environ, "TMPDIR": str(build)},
    )
    assert done.returncode == 0, done.stderr
    (built,) = out.glob("kafka_verify-*.whl")
    return zipfile.ZipFile(built)


def test_the_wheel_holds_only_kafka_verify_at_the_top(wheel: zipfile.ZipFile) -> None:
    top = {name.split("/")[0] for name in wheel.namelist()}
    assert {name for name in top if not name.endswith(".dist-info")} == {"kafka_verify"}


def test_the_wheel_holds_every_module_of_every_room(wheel: zipfile.ZipFile) -> None:
    inside = set(wheel.namelist())
    expected = {
        f"kafka_verify/{path.relative_to(ROOT).as_posix()}"
        for room in ROOMS
        if (ROOT / room).is_dir()
        for path in (ROOT / room).rglob("*.py")
    }
    assert len(expected) > 50
    assert expected - inside == set()
    entry_points = wheel.read(
        next(n for n in inside if n.endswith(".dist-info/entry_points.txt"))
    ).decode()
    assert "kafka-verify = kafka_verify.harness.cli:main" in entry_points


def test_run_works_beside_packages_named_like_the_rooms(tmp_path: Path) -> None:
    """Top-level packages called properties, model, impl and harness (PyPI has some) change nothing."""
    for name in ("properties", "model", "impl", "harness"):
        package = tmp_path / "site" / name
        package.mkdir(parents=True)
        (package / "__init__.py").write_text(
            f"raise ImportError('the unrelated top-level package {name} was imported')\n"
        )
    env = {**os.environ, "PYTHONPATH": str(tmp_path / "site"), "CI": "true"}
    done = subprocess.run(
        [*RUN, "--examples", "2", "--steps", "30", "--reports", str(tmp_path / "reports")],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        env=env,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    # A run this short may pass with its coverage short of the targets: a pass all the same.
    assert "\npass:" in done.stderr or "\npass, coverage short:" in done.stderr
