"""A report folder replays as its report says, after it is moved away from where it was written.

A CI job writes the folder; someone downloads it as an artifact, somewhere
else, and runs the command that report.md shows. That command must reproduce
the violation (exit 1) from the folder the report tells them to run it in.
"""

from __future__ import annotations

import html
import os
import re
import shlex
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
from kafka_verify.harness.cli import main

REGRESSIONS = Path(__file__).resolve().parents[1] / "regressions"
TRACE = REGRESSIONS / "committed-read-read-uncommitted.json"


def written_report(root: Path, capsys: pytest.CaptureFixture[str]) -> Path:
    """The report folder that `kafka-verify replay TRACE --reports root` writes."""
    assert main(["replay", str(TRACE), "--reports", str(root)]) == 1
    capsys.readouterr()
    (folder,) = [p for p in root.iterdir() if p.is_dir()]
    return folder


def markdown_replay_commands(report_md: str) -> list[tuple[str, str]]:
    """(where to run it, command) for each command in report.md's Replay section."""
    section = report_md.split("\n## Replay\n", 1)[1]
    return re.findall(r"\n([^\n`]+)\n\n```sh\n([^\n]+)\n```\n", section)


def html_replay_commands(report_html: str) -> list[tuple[str, str]]:
    section = report_html.split("<h2>Replay</h2>\n", 1)[1]
    pairs = re.findall(r"<p>([^<]+)</p>\n<pre>([^<]+)</pre>", section)
    return [(html.unescape(where), html.unescape(command)) for where, command in pairs]


def run_from(command: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    # The console script of this environment, found the way a shell finds it.
    bin_dir = str(Path(sys.executable).parent)
    env = {**os.environ, "PATH": bin_dir + os.pathsep + os.environ.get("PATH", "")}
    return subprocess.run(
        shlex.split(command), cwd=cwd, env=env, capture_output=True, text=True, check=False
    )


def test_a_moved_report_folder_replays_with_the_commands_it_shows(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    written = written_report(tmp_path / "ci" / "reports", capsys)
    folder = tmp_path / "downloads" / "artifact" / written.name
    folder.parent.mkdir(parents=True)
    shutil.move(written, folder)
    shutil.rmtree(tmp_path / "ci")  # nothing is left where the report was written
    before = {name: (folder / name).read_bytes() for name in ("report.md", "report.html")}
    commands = markdown_replay_commands(before["report.md"].decode("utf-8"))
    assert commands == [
        ("From this report's folder:", "kafka-verify replay trace.json"),
        ("From the folder that holds it:", f"kafka-verify replay {written.name}/trace.json"),
    ]
    assert html_replay_commands(before["report.html"].decode("utf-8")) == commands
    for text in before.values():
        assert str(tmp_path).encode() not in text
    for where, command in commands:
        cwd = folder if "this report's folder" in where else folder.parent
        done = run_from(command, cwd)
        assert done.returncode == 1, (where, command, done.stdout, done.stderr)
        assert done.stdout.startswith("reproduced committed-read at step "), done.stdout
        assert f"report: {folder.resolve() / 'report.md'}" in done.stdout
        # The replay rewrote the report in its new place, byte for byte as it was.
        for name, content in before.items():
            assert (folder / name).read_bytes() == content, (command, name)
