"""Bad input gets one clear sentence on stderr and exit code 2, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from kafka_verify.harness.cli import main


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--no-such-flag"], "unrecognized arguments"),
        (["run", "--brokers", "2", "--replication", "3"], "replication factor 3"),
        (["run", "--replication", "2", "--min-insync", "3"], "min.insync.replicas 3"),
        (["run", "--partitions", "0"], "partition"),
        (["run", "--bug", "no-such-bug"], "no-such-bug"),
        (["run", "--examples", "zero"], "not a whole number"),
        (["frobnicate"], "invalid choice"),
        (["replay", "/nonexistent/trace.json"], "trace"),
        (["mutants", "--bug", "no-such-bug", "--budget-s", "1"], "no-such-bug"),
        (["mutants", "--wire", "--seed", "3"], "--seed picks the simulation's schedules"),
        (["mutants", "--seed", "-1"], "--seed"),
    ],
)
def test_bad_input_exits_2_with_one_sentence(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(argv)
    captured = capsys.readouterr()
    assert code == 2
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert fragment in lines[0]
    assert "Traceback" not in captured.err


def test_properties_lists_every_property_with_what_it_forbids(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kafka_verify.properties.registry import PROPERTIES

    assert main(["properties"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert len(out) == len(PROPERTIES)
    for name, info in PROPERTIES.items():
        line = next(line for line in out if line.split()[0] == name)
        assert info.forbids in line


def test_bugs_lists_every_seeded_bug(capsys: pytest.CaptureFixture[str]) -> None:
    from kafka_verify.impl.bugs import BUGS

    assert main(["bugs"]) == 0
    out = capsys.readouterr().out.splitlines()
    assert {line.split()[0] for line in out} == set(BUGS)
    assert len(BUGS) >= 16


@pytest.mark.parametrize(
    ("argv", "fragment"),
    [
        (["run", "--json", "/no/such/dir/x.json"], "/no/such/dir does not exist"),
        (["run", "--reports", "/proc/x"], "--reports /proc/x cannot be used"),
        (["prove", "--json", "/no/such/dir/x.json"], "/no/such/dir does not exist"),
        (["bench", "--json", "/proc/x.json"], "--json /proc/x.json cannot be written"),
        (["mutants", "--json", "/no/such/dir/x.json"], "does not exist"),
        (["replay", "t.json", "--reports", "/proc/x"], "--reports /proc/x"),
    ],
)
def test_an_unusable_output_path_exits_2_before_any_work(
    argv: list[str], fragment: str, capsys: pytest.CaptureFixture[str]
) -> None:
    """A CI gate must never read a result file that was silently not written."""
    assert main(argv) == 2
    captured = capsys.readouterr()
    lines = [line for line in captured.err.splitlines() if line.strip()]
    assert len(lines) == 1, captured.err
    assert fragment in lines[0]
    assert "Traceback" not in captured.err


def test_a_directory_given_as_the_json_file_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["run", "--json", str(tmp_path)]) == 2
    assert "is a directory" in capsys.readouterr().err


def test_a_file_given_as_the_reports_folder_is_refused(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    plain = tmp_path / "plain"
    plain.write_text("")
    assert main(["run", "--reports", str(plain)]) == 2
    assert "is a file, not a directory" in capsys.readouterr().err


def test_a_failed_write_is_one_sentence(tmp_path: Path) -> None:
    from kafka_verify.harness.cli_common import UsageError, write_json

    missing = tmp_path / "gone" / "out.json"
    with pytest.raises(UsageError, match="cannot write"):
        write_json(missing, {"status": "pass"})


def test_the_long_catalogue_is_docs_bugs_md_and_tells_every_bug(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from kafka_verify.harness.bug_catalogue import STORIES, render_markdown
    from kafka_verify.impl.bugs import BUGS
    from kafka_verify.properties.registry import PROPERTIES

    assert main(["bugs", "--long"]) == 0
    printed = capsys.readouterr().out
    assert printed == render_markdown()
    docs = Path(__file__).resolve().parents[2] / "docs" / "bugs.md"
    assert docs.read_text() == printed, "regenerate: kafka-verify bugs --long > docs/bugs.md"
    assert [story.name for story in STORIES] == list(BUGS)
    for story in STORIES:
        assert f"### `{story.name}`" in printed
        assert story.caught_by and story.caught_by <= set(PROPERTIES), story.name


@pytest.mark.parametrize("engine", ["hypothesis", "swarm"])
def test_a_campaign_s_first_seed_is_recorded_in_its_trace(tmp_path: Path, engine: str) -> None:
    from kafka_verify.harness.mutants import hunt

    row = hunt("hw-ahead-of-isr", 60, tmp_path, engine=engine, first_seed=5)
    assert row["caught"], row
    trace = json.loads((Path(row["report"]).parent / "trace.json").read_text())
    assert trace["meta"]["seed"] == 5
