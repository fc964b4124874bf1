"""`kafka-verify check` end to end: exit codes, JSON fields, reports, and bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

CLI = [
    sys.executable,
    "-c",
    "import sys; from kafka_verify.harness.cli import main; sys.exit(main())",
]


def line(index: int, process: str, type_: str, f: str, value: object) -> str:
    return json.dumps(
        {
            "index": index,
            "time_ms": index,
            "process": process,
            "type": type_,
            "f": f,
            "value": value,
        }
    )


CLEAN = [
    line(0, "p0", "invoke", "send", ["t", 0, None, 1]),
    line(1, "p0", "ok", "send", ["t", 0, 0, 1]),
    line(2, "p0", "invoke", "send", ["t", 0, None, 2]),
    line(3, "p0", "ok", "send", ["t", 0, 2, 2]),  # offset 1 is a transaction marker
    line(4, "c0", "invoke", "poll", None),
    line(5, "c0", "ok", "poll", {"t/0": [[0, 1], [2, 2]]}),
]

LOSSY = [
    *CLEAN[:4],
    line(4, "p0", "invoke", "send", ["t", 0, None, 3]),
    line(5, "p0", "ok", "send", ["t", 0, 3, 3]),
    line(6, "c0", "invoke", "poll", None),
    line(7, "c0", "ok", "poll", {"t/0": [[0, 1], [3, 3]]}),
]


def run(*args: str | Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [*CLI, "check", *map(str, args)], capture_output=True, text=True, check=False, timeout=120
    )


def write(path: Path, lines: list[str]) -> Path:
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    return path


def test_a_clean_history_exits_0(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", CLEAN)
    done = run(history, "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["valid"] is True
    assert result["anomaly_types"] == [] and result["anomalies"] == {}
    assert result["ops"] == 6 and result["stats"]["acked"] == 2


def test_anomalies_exit_1_with_reports(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", LOSSY)
    reports = tmp_path / "reports"
    done = run(history, "--format", "jsonl", "--json", tmp_path / "out.json", "--reports", reports)
    assert done.returncode == 1, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["valid"] is False
    assert result["anomaly_types"] == ["int-poll-skip", "lost-write"]  # one poll skipped 2
    [lost] = result["anomalies"]["lost-write"]
    assert lost["record"] == 2 and [op["index"] for op in lost["ops"]] == [3, 7]
    for name in ("report.md", "report.html", "offsets.svg"):
        assert (reports / name).stat().st_size > 0
    markdown = (reports / "report.md").read_text()
    assert "### lost-write (1)" in markdown and "3 p0 ok send" in markdown
    assert "<svg" in (reports / "report.html").read_text()
    assert "<circle" in (reports / "offsets.svg").read_text()


def test_reports_put_the_nemesis_on_the_timeline(tmp_path: Path) -> None:
    """Faults are shaded on the plot and listed with their times; each case names the last
    fault before it; a fault that failed to inject is listed but not shaded."""
    kill = {"fault": "kill", "node": "b1", "pid": 41}
    pause = {"fault": "pause", "node": "b2", "pid": 42, "error": "no such process"}
    start = {"fault": "start", "nodes": ["b1"]}
    lines = [
        *CLEAN[:4],
        line(4, "nemesis", "invoke", "nemesis", kill),
        line(5, "nemesis", "ok", "nemesis", kill),
        line(6, "p0", "invoke", "send", ["t", 0, None, 3]),
        line(7, "p0", "ok", "send", ["t", 0, 3, 3]),
        line(8, "nemesis", "invoke", "nemesis", pause),
        line(9, "nemesis", "info", "nemesis", pause),
        line(10, "nemesis", "invoke", "nemesis", start),
        line(11, "nemesis", "ok", "nemesis", start),
        line(12, "c0", "invoke", "poll", None),
        line(13, "c0", "ok", "poll", {"t/0": [[0, 1], [3, 3]]}),
    ]
    history = write(tmp_path / "history.jsonl", lines)
    reports = tmp_path / "reports"
    done = run(history, "--json", tmp_path / "out.json", "--reports", reports)
    assert done.returncode == 1, done.stderr
    markdown = (reports / "report.md").read_text()
    assert "## Faults" in markdown
    assert "| 0.0 s | kill b1 | ok |" in markdown  # times count from the history's first op
    assert "| 0.0 s | pause b2 | failed: no such process |" in markdown
    assert "| 0.0 s | start b1 | ok |" in markdown
    # The lost record 2 was last seen by the poll at time 13 ms; the start at 11 ms came last.
    assert "(after start b1 at 0.0 s (0.0 s before it))" in markdown
    svg = (reports / "offsets.svg").read_text()
    assert svg.count('class="fault"') == 1  # the kill, from 5 to 11 ms; the failed pause is not
    assert "<title>kill b1, 5..11 ms</title>" in svg
    html_text = (reports / "report.html").read_text()
    assert "<h2>Faults</h2>" in html_text and "after start b1" in html_text


def test_a_history_without_a_nemesis_has_no_fault_section(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", LOSSY)
    reports = tmp_path / "reports"
    assert run(history, "--reports", reports).returncode == 1
    assert "## Faults" not in (reports / "report.md").read_text()
    assert 'class="fault"' not in (reports / "offsets.svg").read_text()


def test_an_edn_history_with_allowed_anomalies(tmp_path: Path) -> None:
    history = tmp_path / "history.edn"
    history.write_text(
        "{:index 0, :time 0, :type :invoke, :process 0, :f :send, :value [[:send 1 5]]}\n"
        "{:index 1, :time 1000000, :type :ok, :process 0, :f :send, :value [[:send 1 [0 5]]]}\n"
        "{:index 2, :time 2000000, :type :invoke, :process 1, :f :send, :value [[:send 1 5]]}\n"
        "{:index 3, :time 3000000, :type :ok, :process 1, :f :send, :value [[:send 1 [1 5]]]}\n",
        encoding="utf-8",
    )
    strict = run(history, "--json", tmp_path / "strict.json", "--reports", tmp_path / "r")
    assert strict.returncode == 1
    assert json.loads((tmp_path / "strict.json").read_text())["anomaly_types"] == ["duplicate"]
    relaxed = run(history, "--no-idempotent", "--json", tmp_path / "relaxed.json")
    assert relaxed.returncode == 0, relaxed.stderr
    result = json.loads((tmp_path / "relaxed.json").read_text())
    assert result["valid"] is True and result["allowed_types"] == ["duplicate"]
    assert "idempotence" in result["allowed"]["duplicate"][0]["allowed"]


# Two acknowledged sends at offset 1: acks=1 lets a new leader replace a record the old one
# acknowledged alone, so this history is valid only when the producers ran with acks=1.
REPLACED = [
    *CLEAN[:2],
    line(2, "p0", "invoke", "send", ["t", 0, None, 2]),
    line(3, "p0", "ok", "send", ["t", 0, 1, 2]),
    line(4, "p1", "invoke", "send", ["t", 0, None, 3]),
    line(5, "p1", "ok", "send", ["t", 0, 1, 3]),
    line(6, "c0", "invoke", "poll", None),
    line(7, "c0", "ok", "poll", {"t/0": [[0, 1], [1, 3]]}),
]


@pytest.mark.parametrize("acks", ["all", "-1"])
def test_acks_all_counts_a_replaced_acknowledged_record(tmp_path: Path, acks: str) -> None:
    history = write(tmp_path / "history.jsonl", REPLACED)
    done = run(
        history, "--acks", acks, "--json", tmp_path / "out.json", "--reports", tmp_path / "r"
    )
    assert done.returncode == 1
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["anomaly_types"] == ["inconsistent-offsets", "lost-write"]


def test_acks_1_allows_a_replaced_acknowledged_record_and_says_why(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", REPLACED)
    done = run(history, "--acks", "1", "--json", tmp_path / "out.json")
    assert done.returncode == 0, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["valid"] is True
    assert result["allowed_types"] == ["inconsistent-offsets", "lost-write"]
    assert "acks=1" in result["allowed"]["lost-write"][0]["allowed"]
    assert "allowed: inconsistent-offsets, lost-write" in done.stdout


def test_an_unknown_acks_setting_is_one_sentence_and_exit_2(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", CLEAN)
    done = run(history, "--acks", "2")
    assert done.returncode == 2
    assert "acks must be all, 1 or 0" in done.stderr
    assert "Traceback" not in done.stderr


def test_an_empty_history_is_unknown(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", [])
    done = run(history, "--json", tmp_path / "out.json")
    assert done.returncode == 2
    assert json.loads((tmp_path / "out.json").read_text())["valid"] == "unknown"
    assert "unknown" in done.stdout


@pytest.mark.parametrize(
    ("bad", "line_number"),
    [
        ("{not json", 2),
        (json.dumps({"index": 1, "process": "p", "type": "ok", "f": "send", "value": []}), 2),
        (line(0, "p0", "ok", "poll", {"t/0": []}), 2),  # a repeated index
        (line(1, "p0", "ok", "send", ["t", 0, 1]), 2),  # a value of the wrong shape
        (line(1, "p0", "maybe", "send", ["t", 0, 1, 1]), 2),
    ],
)
def test_bad_input_exits_2_naming_the_line(tmp_path: Path, bad: str, line_number: int) -> None:
    history = write(tmp_path / "history.jsonl", [CLEAN[0], bad, *CLEAN[2:]])
    done = run(history)
    assert done.returncode == 2
    lines = done.stderr.strip().splitlines()
    assert len(lines) == 1 and f"line {line_number}:" in lines[0]
    assert "Traceback" not in done.stderr


def test_a_decreasing_index_names_its_line(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", [*CLEAN, line(3, "c0", "ok", "poll", {})])
    done = run(history)
    assert done.returncode == 2 and "line 7:" in done.stderr and "increasing" in done.stderr


def test_a_missing_file_exits_2(tmp_path: Path) -> None:
    done = run(tmp_path / "nope.jsonl")
    assert done.returncode == 2 and "cannot read" in done.stderr


def test_a_bad_flag_exits_2(tmp_path: Path) -> None:
    history = write(tmp_path / "history.jsonl", CLEAN)
    done = run(history, "--sub-via", "telepathy")
    assert done.returncode == 2 and "Traceback" not in done.stderr


def test_a_jepsen_edn_history_of_tagged_records(tmp_path: Path) -> None:
    history = tmp_path / "history.edn"
    op = "#jepsen.history.Op"
    history.write_text(
        f"{op}{{:index 0, :time 0, :type :invoke, :process 0, :f :txn, :value [[:send 1 5]]}}\n"
        f"{op}{{:index 1, :time 10, :type :fail, :process 0, :f :txn, :value [[:send 1 5]]}}\n"
        f"{op}{{:index 2, :time 20, :type :invoke, :process 1, :f :poll, :value [[:poll]]}}\n"
        f"{op}{{:index 3, :time 30, :type :ok, :process 1, :f :poll, :value [[:poll {{1 [[0 5]]}}]]}}\n"
        f"{op}{{:index 4, :time 40, :type :info, :process :nemesis, :f :kill, :value nil}}\n",
        encoding="utf-8",
    )
    done = run(history, "--json", tmp_path / "out.json", "--reports", tmp_path / "r")
    assert done.returncode == 1, done.stderr
    result = json.loads((tmp_path / "out.json").read_text())
    assert result["anomaly_types"] == ["G1a"]
    [case] = result["anomalies"]["G1a"]
    assert case["key"] == "1" and [op["index"] for op in case["ops"]] == [1, 3]
    assert result["stats"]["by_f_type"]["nemesis:info"] == 1
    broken = tmp_path / "broken.edn"
    broken.write_text(
        history.read_text().replace(":index 3,", ":index 3, :value"), encoding="utf-8"
    )
    bad = run(broken)
    assert bad.returncode == 2 and "line 4:" in bad.stderr and "Traceback" not in bad.stderr
