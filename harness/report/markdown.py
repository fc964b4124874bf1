"""`report.md`: a report's content as GitHub-flavoured Markdown, with a Mermaid sequence diagram.

Rules of this module:
- It lays out a `Content` and decides no fact of its own: what to say comes
  from the content module, how to say a step from the wording module.
- Free text (the violation message, step lines, bug descriptions, details)
  goes through `_md_inline` or `_md_code`, so a `|` or a backquote cannot
  break a table or a code span.
- Imports run downwards only: markdown -> content; never html_page, the
  writer or the package's `__init__`.
"""

from __future__ import annotations

from kafka_verify.harness.report.content import (
    Content,
    Mark,
    left_out_words,
    listed_steps,
    state_legend,
)

MAX_DIAGRAM_STEPS = 40

# The settings that shape a counterexample get a table row each; timers and
# limits follow on one line so the table stays short.
_MAIN_SETTINGS = frozenset(
    {
        "brokers",
        "partitions",
        "replication",
        "min_insync",
        "acks",
        "idempotent",
        "producers",
        "consumers",
        "retention_ms",
        "retention_records",
        "groups",
        "members",
        "durable",
    }
)


def render_markdown(content: Content) -> str:
    parts = [
        f"# Violation: `{content.property}`",
        "",
        f"**{content.kind or 'Property'}** — forbids: {content.forbids}",
        "",
        f"> {_md_inline(content.message)}",
        "",
        *_md_config(content),
        "## Events (shrunk)",
        "",
        *_md_steps(content),
        "",
        *_md_state(content),
        *_md_details(content),
        "## Sequence diagram",
        "",
        "```mermaid",
        mermaid(content),
        "```",
        "",
        "## Replay",
        "",
        *_md_replay(content),
    ]
    return "\n".join(parts)


def _md_replay(content: Content) -> list[str]:
    lines = []
    for replay in content.replay:
        lines += [replay.where, "", "```sh", replay.command, "```", ""]
    return lines


def _md_inline(text: str) -> str:
    return text.replace("\n", " ").replace("|", "\\|")


def _md_code(text: str) -> str:
    # A backquote would end the code span early.
    return _md_inline(text).replace("`", "'")


def _md_config(content: Content) -> list[str]:
    rows = [
        "## Configuration",
        "",
        f"Engine: `{content.engine}`",
        "",
        "| setting | value |",
        "|---|---|",
    ]
    rows += [f"| {key} | `{value}` |" for key, value in content.config if key in _MAIN_SETTINGS]
    others = [f"`{key}={value}`" for key, value in content.config if key not in _MAIN_SETTINGS]
    if others:
        rows += ["", "Other settings: " + " ".join(others)]
    rows += ["", "Seeded bugs:" if content.bugs else "Seeded bugs: none", ""]
    rows += [
        f"- `{name}` — {_md_inline(text)}" if text else f"- `{name}`" for name, text in content.bugs
    ]
    if content.bugs:
        rows.append("")
    return rows


def _md_steps(content: Content) -> list[str]:
    lines = []
    for entry in listed_steps(content.steps):
        if isinstance(entry, int):
            lines.append(f"\n{left_out_words(entry)}\n")
            continue
        index, text = entry
        flag = " **← violation**" if index == content.violating_step else ""
        lines.append(f"{index}. {_md_inline(text)}{flag}")
    return lines or ["(no events: the initial state already violates the property)"]


def _md_state(content: Content) -> list[str]:
    step = content.violating_step
    title = f"## State after step {step}" if step else "## State"
    legend = state_legend(content, "Lines marked `+`", "`-`")
    body = [f"{line.marker} {line.text}" for line in content.state]
    return [title, "", legend, "", "```diff", *body, "```", ""]


def _md_details(content: Content) -> list[str]:
    if not content.details:
        return []
    rows = ["## Offending records and offsets", "", "| detail | value |", "|---|---|"]
    rows += [f"| {key} | `{_md_code(value)}` |" for key, value in content.details]
    return [*rows, ""]


def mermaid(content: Content) -> str:
    """A Mermaid sequenceDiagram of the schedule (the last MAX_DIAGRAM_STEPS steps)."""
    lines = ["sequenceDiagram"]
    lines += [f"    participant {name}" for name in content.participants]
    first, last = content.participants[0], content.participants[-1]
    steps = sorted({m.step for m in content.marks})
    shown = steps[-MAX_DIAGRAM_STEPS:]
    if len(steps) > len(shown):
        lines.append(
            f"    Note over {first},{last}: {len(steps) - len(shown)} earlier steps not drawn"
        )
    for index in shown:
        drawn = [
            text
            for mark in content.marks
            if mark.step == index
            for text in _mermaid_mark(mark, first, last)
        ]
        if index == content.violating_step:
            note = _mermaid_text(f"violation of {content.property}")
            drawn = [*drawn, f"Note over {first},{last}: {note}"]
            lines.append("    rect rgb(255, 225, 225)")
            lines += [f"        {text}" for text in drawn]
            lines.append("    end")
        else:
            lines += [f"    {text}" for text in drawn]
    return "\n".join(lines)


def _mermaid_mark(mark: Mark, first: str, last: str) -> list[str]:
    label = _mermaid_text(f"{mark.step}. {mark.label}")
    if mark.kind in ("message", "duplicate"):
        src, dst = mark.nodes
        arrow = "->>" if mark.kind == "message" else "-->>"
        return [f"{src}{arrow}{dst}: {label}"]
    if mark.kind == "drop":
        src, dst = mark.nodes
        return [f"{src}-x{dst}: {_mermaid_text(f'{mark.step}. dropped {mark.label}')}"]
    if mark.kind in ("split", "heal", "tick") or not mark.nodes:
        return [f"Note over {first},{last}: {label}"]
    if len(mark.nodes) == 1:
        return [f"Note over {mark.nodes[0]}: {label}"]
    return [f"Note over {first},{last}: {label}"]


def _mermaid_text(text: str) -> str:
    # Mermaid reads ';' as a statement end and '#' as an entity escape.
    cleaned = text.replace(";", ",").replace("#", "no. ").replace("\n", " ")
    return cleaned if len(cleaned) <= 90 else cleaned[:89] + "…"
