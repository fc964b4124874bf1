"""Counterexample reports: content, determinism, every step described in words, safe HTML.

The outcomes here are built from model actions applied with `model.step`, so the
report is tested without the reference broker. `Outcome` and `Step` have exactly
the fields of `harness.runner.RunOutcome` and `StepRecord`, which the report
reads by name.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from datetime import UTC, datetime, timedelta, timezone
from html.parser import HTMLParser
from pathlib import Path
from typing import Any

import pytest
from kafka_verify.harness.report import (
    build_content,
    describe,
    mermaid,
    report_directory,
    state_listing,
    timeline_svg,
    wording,
    write_report,
)
from kafka_verify.harness.report import content as report_content
from kafka_verify.harness.trace import SCHEMA_VERSION, Trace, load_trace, violation_record
from kafka_verify.impl import events as ev
from kafka_verify.model import Config, State, initial_state, step
from kafka_verify.model import actions as act
from kafka_verify.model import groups as grp
from kafka_verify.model.state import Record
from kafka_verify.properties.catalogue import Violation
from kafka_verify.properties.registry import PROPERTIES


@dataclass(frozen=True)
class Step:
    index: int
    event: object
    actions: tuple[Any, ...]
    ops: tuple[Any, ...]
    delivered: Any
    lost_records: int
    state: State
    time_ms: int


@dataclass(frozen=True)
class Outcome:
    engine: str
    config: Any
    initial: State
    steps: tuple[Step, ...]
    violation: Violation | None


@dataclass(frozen=True)
class Envelope:
    id: int
    src: str
    dst: str
    message: object
    kind: str


@dataclass(frozen=True)
class Fetch:
    partition: int
    offset: int
    epoch: int


@dataclass(frozen=True)
class ClientOp:
    process: str
    type: str
    f: str
    value: Any
    time_ms: int


CONFIG = Config(brokers=2, replication=2, min_insync=1, bugs=frozenset({"truncate-to-hw"}))

# Pre-KIP-101: b1 truncates to its stale high watermark after a restart, then
# becomes leader and the committed record 2 is gone.
ACTIONS: tuple[Any, ...] = (
    act.LeaderWrite(0, 0, 1, -1),
    act.FollowerReplicate(0, 1, Record(1, 0)),
    act.Flush(0, 0),
    act.Flush(0, 1),
    act.IncHighWatermark(0, 0, 1),
    act.LeaderWrite(0, 0, 2, -1),
    act.FollowerReplicate(0, 1, Record(2, 0)),
    act.Flush(0, 1),
    act.IncHighWatermark(0, 0, 2),
    act.Flush(0, 0),
    act.Crash(1),
    act.Restart(1),
    act.Truncate(0, 1, 0),
    act.Crash(0),
    act.ElectLeader(0, 1, frozenset({1}), 1),
    act.BecomeLeader(0, 1, 1, frozenset({1})),
)

PROPERTY = next(iter(sorted(PROPERTIES)))


def model_outcome(
    actions: tuple[Any, ...] = ACTIONS, config: Config = CONFIG, message: str = "record 2 is gone"
) -> tuple[Outcome, Trace]:
    state = initial_state(config)
    steps = []
    for index, action in enumerate(actions, start=1):
        state = step(state, action, config)
        steps.append(Step(index, action, (action,), (), None, 0, state, 0))
    details = (("offsets", (0, 1)), ("records", tuple(range(9))))
    violation = Violation(PROPERTY, message, partition=0, details=details)
    outcome = Outcome("model", config, initial_state(config), tuple(steps), violation)
    trace = Trace(
        SCHEMA_VERSION,
        "model",
        config,
        actions,
        violation_record(violation, len(actions)),
        {"seed": 7},
    )
    return outcome, trace


def write(tmp_path: Path, name: str, **kwargs: Any) -> Path:
    outcome, trace = model_outcome(**kwargs)
    write_report(outcome, trace, tmp_path / name)
    return tmp_path / name


# -- the three files ---------------------------------------------------------------------


def test_write_report_writes_the_three_files(tmp_path: Path) -> None:
    outcome, trace = model_outcome()
    path = write_report(outcome, trace, tmp_path / "r")
    assert path == tmp_path / "r" / "report.md"
    assert sorted(p.name for p in (tmp_path / "r").iterdir()) == [
        "report.html",
        "report.md",
        "trace.json",
    ]
    assert load_trace(tmp_path / "r" / "trace.json") == trace


def test_the_same_outcome_gives_byte_identical_reports(tmp_path: Path) -> None:
    # Two folders of the same name: a report names its folder in a replay command.
    first, second = write(tmp_path / "a", "r"), write(tmp_path / "b", "r")
    for name in ("report.md", "report.html", "trace.json"):
        assert (first / name).read_bytes() == (second / name).read_bytes(), name


def test_trace_meta_does_not_reach_the_report(tmp_path: Path) -> None:
    outcome, trace = model_outcome()
    write_report(outcome, trace, tmp_path / "a" / "r")
    write_report(outcome, replace(trace, meta={"seed": 99}), tmp_path / "b" / "r")
    for name in ("report.md", "report.html"):
        assert (tmp_path / "a" / "r" / name).read_bytes() == (
            tmp_path / "b" / "r" / name
        ).read_bytes()


# -- report.md ---------------------------------------------------------------------------


def test_markdown_has_every_section(tmp_path: Path) -> None:
    text = (write(tmp_path, "r") / "report.md").read_text(encoding="utf-8")
    forbids = report_content._sentence(PROPERTIES[PROPERTY].forbids)
    assert text.startswith(f"# Violation: `{PROPERTY}`\n")
    assert forbids in text
    assert "> record 2 is gone" in text
    assert "| brokers | `2` |" in text
    assert "- `truncate-to-hw` — a follower truncates to its own high watermark" in text
    assert "\n1. leader b0 writes record 1 at offset 0 of partition 0 (acks=all)\n" in text
    assert "\n13. b1 truncates partition 0 to offset 0, removing 2 records\n" in text
    assert "\n16. b1 learns it leads partition 0 in epoch 1 with ISR {b1} **← violation**\n" in text
    assert "## State after step 16" in text
    assert "```mermaid\nsequenceDiagram\n" in text
    assert "```sh\nkafka-verify replay trace.json\n```" in text


def test_replay_commands_are_relative_to_the_report_folder(tmp_path: Path) -> None:
    folder = write(tmp_path / "ci-artifact", "20260301T073005Z-log-agreement")
    markdown = (folder / "report.md").read_text(encoding="utf-8")
    page = (folder / "report.html").read_text(encoding="utf-8")
    replay = markdown.split("## Replay\n")[1]
    assert replay == (
        "\nFrom this report's folder:\n\n"
        "```sh\nkafka-verify replay trace.json\n```\n\n"
        "From the folder that holds it:\n\n"
        "```sh\nkafka-verify replay 20260301T073005Z-log-agreement/trace.json\n```\n"
    )
    assert (
        "<p>From this report&#x27;s folder:</p>\n<pre>kafka-verify replay trace.json</pre>\n"
        "<p>From the folder that holds it:</p>\n"
        "<pre>kafka-verify replay 20260301T073005Z-log-agreement/trace.json</pre>\n"
    ) in page
    for text in (markdown, page):
        assert str(tmp_path) not in text and "ci-artifact" not in text


def test_a_folder_name_a_shell_would_split_is_quoted(tmp_path: Path) -> None:
    markdown = (write(tmp_path, "odd name") / "report.md").read_text(encoding="utf-8")
    assert "```sh\nkafka-verify replay 'odd name/trace.json'\n```" in markdown


def test_state_section_marks_what_the_violating_step_changed(tmp_path: Path) -> None:
    text = (write(tmp_path, "r") / "report.md").read_text(encoding="utf-8")
    diff = text.split("```diff\n")[1].split("```")[0].splitlines()
    assert "-   b1 unknown    log [] hw 0 leo 0 flushed 0 (epoch 0)" in diff
    assert "+   b1 leader     log [] hw 0 leo 0 flushed 0 (epoch 1, leader b1, ISR {b1})" in diff
    assert "  partition 0: leader b1, epoch 1, ISR {b1}" in diff
    assert "    b0 unknown    log [0:1@0 1:2@0] hw 2 leo 2 flushed 2 (epoch 0)" in diff
    assert sum(line.startswith("+") for line in diff) == 1


def test_details_are_condensed_to_a_count_and_the_first_few(tmp_path: Path) -> None:
    text = (write(tmp_path, "r") / "report.md").read_text(encoding="utf-8")
    assert "| partition | `0` |" in text
    assert "| offsets | `[0, 1]` |" in text
    assert "| records | `9 cases; the first 5: 0, 1, 2, 3, 4` |" in text


def test_mermaid_draws_fetches_as_arrows_and_wraps_the_violating_step() -> None:
    outcome, trace = model_outcome()
    diagram = mermaid(build_content(outcome, trace, "r"))
    lines = diagram.splitlines()
    assert lines[:4] == [
        "sequenceDiagram",
        "    participant b0",
        "    participant b1",
        "    participant ctl",
    ]
    assert "    b0->>b1: 2. record 1@0" in lines
    assert "    ctl->>b1: 15. elect (epoch 1)" in lines
    assert "    Note over b1: 11. broker b1 crashes, losing nothing" in lines
    start = lines.index("    rect rgb(255, 225, 225)")
    assert lines[start + 1 : start + 4] == [
        "        Note over b1: 16. b1 leads partition 0 in epoch 1",
        f"        Note over b0,ctl: violation of {PROPERTY}",
        "    end",
    ]


def test_mermaid_keeps_long_schedules_readable() -> None:
    actions = tuple(
        a
        for i in range(25)
        for a in (act.LeaderWrite(0, 0, i, -1), act.FollowerReplicate(0, 1, Record(i, 0)))
    )
    outcome, trace = model_outcome(actions, replace(CONFIG, bugs=frozenset()))
    diagram = mermaid(build_content(outcome, trace, "r"))
    assert "Note over b0,ctl: 10 earlier steps not drawn" in diagram
    after_note = diagram.split("not drawn\n")[1]
    assert after_note.startswith("    Note over b0: 11. b0 appends record 5 to partition 0\n")
    assert "record 4@0" not in diagram and "record 5@0" in diagram
    assert diagram.count("->>") == 20


# -- describe(): every event and every action in words -----------------------------------

MESSAGE = Envelope(7, "b1", "b0", Fetch(0, 3, 1), "request")
SEND = ClientOp("p0", "invoke", "send", ["t", 0, None, 12], 10)
ACKED = ClientOp("p0", "ok", "send", ["t", 0, 3, 12], 20)
POLLED = ClientOp("c0", "ok", "poll", {"t/0": [[0, 1], [1, 2]]}, 30)

EVENT_CASES: list[tuple[object, dict[str, Any], str]] = [
    (ev.Produce("p0", "t", 0), {"ops": (SEND,)}, "producer p0 sends record 12 to t/0"),
    (ev.Poll("c0"), {"ops": (POLLED,)}, "consumer c0 polls — c0 poll returns t/0 [0:1, 1:2]"),
    (ev.CommitOffsets("c0"), {}, "consumer c0 commits the offsets it has consumed"),
    (ev.Subscribe("c0", "g0", ("t",)), {}, "consumer c0 joins group g0, subscribing to t"),
    (ev.Close("c0"), {}, "consumer c0 closes"),
    (
        ev.Deliver(7),
        {"delivered": MESSAGE},
        "network delivers Fetch b1 → b0 (partition 0, offset 3, epoch 1)",
    ),
    (
        ev.Drop(7),
        {"delivered": MESSAGE},
        "network drops Fetch b1 → b0 (partition 0, offset 3, epoch 1)",
    ),
    (ev.Duplicate(7), {}, "network delivers a copy of message #7"),
    (ev.Crash("b2"), {"lost_records": 1}, "broker b2 crashes, losing 1 unflushed record"),
    (ev.Restart("b2"), {}, "broker b2 restarts from its disk"),
    (
        ev.Partition((("b0", "p0"), ("b1", "b2", "zk"))),
        {},
        "network splits into {b0, p0} | {b1, b2, zk}",
    ),
    (ev.Heal(), {}, "network heals"),
    (ev.Tick(100), {"time_ms": 1200}, "clock advances 100 ms (to 1200 ms)"),
]


def impl_step(event: object, **fields: Any) -> Step:
    base: dict[str, Any] = {
        "index": 1,
        "event": event,
        "actions": (),
        "ops": (),
        "delivered": None,
        "lost_records": 0,
        "state": initial_state(CONFIG),
        "time_ms": 0,
    }
    base.update(fields)
    return Step(**base)


@pytest.mark.parametrize(("event", "fields", "words"), EVENT_CASES)
def test_every_event_type_is_described_in_words(
    event: object, fields: dict[str, Any], words: str
) -> None:
    assert describe(impl_step(event, **fields)) == words


def test_the_event_cases_cover_the_whole_alphabet() -> None:
    assert {type(e) for e, _, _ in EVENT_CASES} == set(ev.EVENT_TYPES.values())
    assert set(wording.EVENT_DESCRIBERS) >= set(ev.EVENT_TYPES.values())


def test_an_event_line_names_what_the_step_did_and_what_clients_learned() -> None:
    produced = impl_step(
        ev.Deliver(4),
        delivered=Envelope(4, "p0", "b0", Fetch(0, 0, 0), "request"),
        actions=(act.LeaderWrite(0, 0, 12, -1), act.IncHighWatermark(0, 0, 1)),
        ops=(ACKED,),
    )
    assert describe(produced).endswith(
        "— b0 appends record 12 to partition 0; b0 hw of partition 0 → 1; p0 send of record 12 ok at t/0 offset 3"
    )
    assert describe(impl_step(ev.Crash("b0", lose_unflushed=False))).endswith(
        "its disk keeping everything"
    )
    assert describe(impl_step(ev.Crash("zk"))) == "coordination service zk crashes"


GROUP_CONFIG = replace(CONFIG, bugs=frozenset(), groups=1)
GROUP_ACTIONS: tuple[Any, ...] = (
    grp.JoinGroup("g0", "c0"),
    grp.JoinGroup("g0", "c1"),
    grp.CompleteRebalance("g0", "c0"),
    grp.SyncAssignment("g0", "c0", 1, ((0, "c0"), (1, "c1"))),
    grp.CommitOffset("g0", "c0", 1, 0, 1),
    grp.CoordinatorFailover("g0"),
    grp.ExpireMember("g0", "c1"),
    grp.LeaveGroup("g0", "c0"),
    grp.DeleteGroup("g0"),
)


def all_action_steps() -> list[tuple[Step, State]]:
    """A run that performs every model action type once or more, as (step, state before)."""
    actions = (
        *ACTIONS[:10],
        act.ShrinkIsr(0, 0, frozenset({0})),
        act.ExpandIsr(0, 0, frozenset({0, 1})),
        act.RetentionDelete(0, 0, 1),
        act.ControllerFailover(1),
        act.ElectLeader(0, 1, frozenset({1}), 2),
        act.Crash(0),
        act.Restart(0),
        act.BecomeFollower(0, 0, 1, 1),
        # Before its leader takes up epoch 1: what b0 was told is not in the state, so the
        # model takes this truncation as named.
        act.Truncate(0, 0, 1, complete=False),
        act.BecomeLeader(0, 1, 1, frozenset({1})),
        act.ResetLog(0, 0, 3),
        *GROUP_ACTIONS,
    )
    state = initial_state(GROUP_CONFIG)
    steps = []
    for index, action in enumerate(actions, start=1):
        before = state
        try:
            state = step(state, action, GROUP_CONFIG)
        except Exception as error:  # pragma: no cover - a broken fixture must say which step
            raise AssertionError(f"fixture step {index} {action!r}: {error}") from None
        steps.append((Step(index, action, (action,), (), None, 0, state, 0), before))
    return steps


def test_every_action_type_is_described_in_words() -> None:
    steps = all_action_steps()
    described = {type(s.event) for s, _ in steps}
    assert described >= set(act.ACTION_TYPES) | set(grp.GROUP_ACTION_TYPES)
    for s, before in steps:
        text = describe(s, before)
        assert text and "(" not in text.split(" ")[0], text
        assert not text.startswith(type(s.event).__name__), text


def test_action_descriptions_read_as_sentences() -> None:
    texts = [describe(s, before) for s, before in all_action_steps()]
    assert "leader b0 shrinks the ISR of partition 0 to {b0}" in texts
    assert "retention on b0 deletes partition 0 below offset 1" in texts
    assert "b1 takes the controller lease (controller epoch 2)" in texts
    assert (
        "b0 truncates partition 0 to offset 1, removing 1 record, then asks the leader again"
        in texts
    )
    assert "broker b0 crashes, losing nothing" in texts
    assert "b0 drops its log of partition 0 and restarts it at offset 3" in texts
    assert "leader c0's assignment for generation 1 of g0 takes effect: p0→c0, p1→c1" in texts
    assert "consumer c0 (generation 1) commits offset 1 for partition 0 of g0" in texts


def test_a_model_crash_counts_the_unflushed_records_it_loses() -> None:
    actions = (act.LeaderWrite(0, 0, 1, -1), act.LeaderWrite(0, 0, 2, -1), act.Crash(0))
    outcome, _ = model_outcome(actions, replace(CONFIG, bugs=frozenset()))
    last = outcome.steps[-1]
    assert (
        describe(last, outcome.steps[-2].state) == "broker b0 crashes, losing 2 unflushed records"
    )


def test_group_state_appears_in_the_state_listing() -> None:
    state = initial_state(GROUP_CONFIG)
    for action in GROUP_ACTIONS[:5]:
        state = step(state, action, GROUP_CONFIG)
    lines = [text for _, text in state_listing(state)]
    assert "group g0: Stable, generation 1, members {c0, c1}, leader c0" in lines
    assert "  assignment p0→c0, p1→c1" in lines
    assert "  committed p0:1" in lines
    assert "  c0 believes: generation 1, owns p0" in lines


# -- report.html -------------------------------------------------------------------------


class TagBalance(HTMLParser):
    """Checks that every non-void element that opens also closes, in order."""

    VOID = frozenset({"meta", "br", "hr", "img", "input", "link", "path", "line", "circle"})

    def __init__(self) -> None:
        super().__init__()
        self.stack: list[str] = []
        self.problems: list[str] = []
        self.tags: set[str] = set()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)
        if tag not in self.VOID:
            self.stack.append(tag)

    def handle_startendtag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        self.tags.add(tag)

    def handle_endtag(self, tag: str) -> None:
        if tag in self.VOID:
            return
        if not self.stack or self.stack[-1] != tag:
            self.problems.append(f"</{tag}> closes {self.stack[-1:] or 'nothing'}")
            return
        self.stack.pop()


def test_html_is_self_contained_and_well_formed(tmp_path: Path) -> None:
    text = (write(tmp_path, "r") / "report.html").read_text(encoding="utf-8")
    assert "<script" not in text.lower()
    assert "http:" not in text and "https:" not in text and "//" not in text.replace("<!--", "")
    assert "<link" not in text and "@import" not in text and "url(http" not in text
    parser = TagBalance()
    parser.feed(text)
    parser.close()
    assert parser.problems == []
    assert parser.stack == []
    assert {"svg", "ol", "table", "pre", "style"} <= parser.tags


def test_html_escapes_every_text(tmp_path: Path) -> None:
    evil = "<script>alert('x')</script> & <b>bold</b>"
    text = (write(tmp_path, "r", message=evil) / "report.html").read_text(encoding="utf-8")
    assert "<script>" not in text and "<b>bold" not in text
    assert "&lt;script&gt;alert(&#x27;x&#x27;)&lt;/script&gt; &amp; &lt;b&gt;bold&lt;/b&gt;" in text


def test_svg_timeline_has_lanes_arrows_marks_and_the_violating_step(tmp_path: Path) -> None:
    outcome, trace = model_outcome()
    content = build_content(outcome, trace, "r")
    svg = timeline_svg(content)
    assert svg.startswith("<svg") and svg.endswith("</svg>")
    for lane in ("b0", "b1", "ctl"):
        assert f">{lane}</text>" in svg
    assert svg.count('marker-end="url(#head-message)"') == 3  # two fetches and one election
    assert svg.count('stroke="#cf222e" stroke-width="3"') == 2  # two crashes
    assert svg.count('fill="white" stroke="#1a7f37"') == 1  # one restart
    assert f"violating step 16: {PROPERTY}" in svg
    assert 'stroke-dasharray="4 4"' in svg  # a lane drawn dashed while its broker is down


def test_svg_timeline_draws_impl_faults() -> None:
    steps = (
        impl_step(ev.Partition((("b0",), ("b1", "zk"))), index=1),
        impl_step(ev.Drop(7), index=2, delivered=MESSAGE),
        impl_step(ev.Duplicate(7), index=3, delivered=MESSAGE),
        impl_step(ev.Heal(), index=4),
        impl_step(ev.Produce("p0"), index=5, ops=(SEND,)),
    )
    outcome = Outcome("impl", CONFIG, initial_state(CONFIG), steps, None)
    trace = Trace(SCHEMA_VERSION, "model", CONFIG, tuple(s.event for s in steps), None, {})
    content = build_content(outcome, trace, "r")
    assert content.participants == ("b0", "b1", "zk", "p0")
    svg = timeline_svg(content)
    assert ">split</text>" in svg and ">heal</text>" in svg
    assert 'marker-end="url(#head-duplicate)"' in svg
    assert "5. producer p0 sends record 12 to t/0" in svg
    diagram = mermaid(content)
    assert "    b1-xb0: 2. dropped Fetch (partition 0, offset 3, epoch 1)" in diagram
    assert "    b1-->>b0: 3. Fetch (partition 0, offset 3, epoch 1)" in diagram


# -- where reports go --------------------------------------------------------------------


def test_report_directory_is_named_after_utc_time_and_property(tmp_path: Path) -> None:
    local = datetime(2026, 3, 1, 9, 30, 5, tzinfo=timezone(timedelta(hours=2)))
    first = report_directory(tmp_path, "log-agreement", local)
    assert first == tmp_path / "20260301T073005Z-log-agreement"
    first.mkdir()
    assert report_directory(tmp_path, "log-agreement", local).name.endswith("-log-agreement-2")
    odd = report_directory(tmp_path, "../x y", datetime(2026, 3, 1, tzinfo=UTC))
    assert odd.parent == tmp_path and odd.name == "20260301T000000Z-x-y"


def test_impl_reports_carry_the_client_history(tmp_path: Path) -> None:
    from kafka_verify.impl.config import ClusterConfig

    config = ClusterConfig(brokers=2, replication=2, min_insync=1)
    steps = (
        impl_step(ev.Produce("p0", "t", 0), index=1, ops=(SEND,)),
        impl_step(ev.Deliver(7), index=2, delivered=MESSAGE, ops=(ACKED, POLLED)),
    )
    outcome = Outcome("impl", config, initial_state(CONFIG), steps, None)
    trace = Trace(SCHEMA_VERSION, "impl", config, tuple(s.event for s in steps), None, {})
    write_report(outcome, trace, tmp_path)
    lines = (tmp_path / "history.jsonl").read_text(encoding="utf-8").splitlines()
    assert lines == [
        '{"index": 0, "time_ms": 10, "process": "p0", "type": "invoke", "f": "send", '
        '"value": ["t", 0, null, 12]}',
        '{"index": 1, "time_ms": 20, "process": "p0", "type": "ok", "f": "send", '
        '"value": ["t", 0, 3, 12]}',
        '{"index": 2, "time_ms": 30, "process": "c0", "type": "ok", "f": "poll", '
        '"value": {"t/0": [[0, 1], [1, 2]]}}',
    ]
    assert load_trace(tmp_path / "trace.json") == trace


def test_real_broker_messages_are_summarised_without_noise() -> None:
    from kafka_verify.impl import messages
    from kafka_verify.impl.log import StoredRecord

    fetch = messages.Fetch(41, 0, 3, 1, 1, 16)
    answer = messages.FetchResponse(
        41, 0, "NONE", 3, (StoredRecord(12, 1, 0, 0, 5), StoredRecord(13, 1, 0, 1, 6)), 3, 0, 5
    )
    fenced = messages.ProduceResponse(9, 0, "NOT_LEADER_OR_FOLLOWER", None)
    cases = [
        (fetch, "b1", "b0", "Fetch b1 → b0 (partition 0, offset 3, epoch 1)"),
        (
            answer,
            "b0",
            "b1",
            "FetchResponse b0 → b1 (partition 0, offset 3, records [12@1 13@1], hw 3, "
            "log start 0, leo 5)",
        ),
        (fenced, "b0", "p0", "ProduceResponse b0 → p0 (partition 0, error NOT_LEADER_OR_FOLLOWER)"),
    ]
    for message, src, dst, words in cases:
        envelope = Envelope(1, src, dst, message, type(message).__name__)
        assert describe(impl_step(ev.Deliver(1), delivered=envelope)) == f"network delivers {words}"


def test_long_runs_list_head_and_tail_and_draw_the_last_columns(tmp_path: Path) -> None:
    actions = tuple(
        a
        for i in range(100)
        for a in (act.LeaderWrite(0, 0, i, 1), act.FollowerReplicate(0, 1, Record(i, 0)))
    )
    outcome, trace = model_outcome(actions, replace(CONFIG, bugs=frozenset()))
    write_report(outcome, trace, tmp_path)
    text = (tmp_path / "report.md").read_text(encoding="utf-8")
    numbered = [line for line in text.splitlines() if line[:1].isdigit() and ". " in line]
    assert len(numbered) == report_content.LISTED_HEAD + report_content.LISTED_TAIL
    assert numbered[report_content.LISTED_HEAD - 1].startswith("20. ")
    assert numbered[report_content.LISTED_HEAD].startswith("101. ")
    assert "… 80 more steps, not listed here; trace.json holds every event" in text
    svg = timeline_svg(build_content(outcome, trace, "r"))
    assert "steps 1 to 140 are not drawn" in svg
    assert ">141</text>" in svg and ">140</text>" not in svg and ">200</text>" in svg
    assert len(load_trace(tmp_path / "trace.json").items) == 200


def test_what_brokers_do_on_a_timer_is_marked_on_their_lanes() -> None:
    shrink = act.ShrinkIsr(0, 0, frozenset({0}))
    failover = act.ControllerFailover(1)
    after = replace(initial_state(CONFIG), controller=1)
    tick = impl_step(ev.Tick(500), actions=(shrink, failover), state=after, time_ms=500)
    outcome = Outcome("impl", CONFIG, initial_state(CONFIG), (tick,), None)
    trace = Trace(SCHEMA_VERSION, "model", CONFIG, (ev.Tick(500),), None, {})
    marks = build_content(outcome, trace, "r").marks
    assert [(m.kind, m.nodes, m.tag) for m in marks] == [
        ("tick", (), ""),
        ("note", ("b0",), "isr 0"),
        ("note", ("b1",), "lease"),
    ]
    assert marks[1].label == "ISR of partition 0 → {b0}"
    assert describe(tick) == (
        "clock advances 500 ms (to 500 ms) — ISR of partition 0 → {b0}; b1 becomes controller"
    )


# -- the package's own layering ------------------------------------------------------------

# Each module of the package and the modules of the package it may import; the
# package's __init__ only re-exports, and no module imports it back.
REPORT_LAYERS = {
    "wording": set(),
    "state_listing": {"wording"},
    "content": {"wording", "state_listing"},
    "markdown": {"content"},
    "html_page": {"content", "markdown"},
    "writer": {"content", "markdown", "html_page"},
}


def test_report_modules_import_only_the_modules_below_them() -> None:
    import ast

    import kafka_verify.harness.report as package

    folder = Path(package.__file__).parent
    assert {p.stem for p in folder.glob("*.py")} == {*REPORT_LAYERS, "__init__"}
    prefix = "kafka_verify.harness.report"
    for name, allowed in REPORT_LAYERS.items():
        tree = ast.parse((folder / f"{name}.py").read_text(encoding="utf-8"))
        imported = {
            node.module
            for node in ast.walk(tree)
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith(prefix)
        } | {
            alias.name
            for node in ast.walk(tree)
            if isinstance(node, ast.Import)
            for alias in node.names
            if alias.name.startswith(prefix)
        }
        assert prefix not in imported, f"{name} imports the package's __init__"
        assert {m.removeprefix(prefix + ".") for m in imported} <= allowed, name
