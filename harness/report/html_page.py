"""`report.html`: a report's content as one self-contained page, with an inline SVG timeline.

Rules of this module:
- The page has inline CSS, no scripts, no external references, and needs no
  network.
- Every text that comes from the content goes through `html.escape`, in
  elements and in attributes alike.
- It lays out a `Content` and decides no fact of its own; the Mermaid source
  it shows is the Markdown report's.
- Imports run downwards only: html_page -> markdown, content; never the
  writer or the package's `__init__`.
"""

from __future__ import annotations

import html
from collections.abc import Sequence

from kafka_verify.harness.report.content import (
    Content,
    Mark,
    left_out_words,
    listed_steps,
    state_legend,
)
from kafka_verify.harness.report.markdown import mermaid

MAX_TIMELINE_STEPS = 60

_CSS = """
body { font: 14px/1.45 -apple-system, "Segoe UI", Helvetica, Arial, sans-serif; margin: 2em auto;
       max-width: 1200px; color: #1f2328; padding: 0 1em; }
h1 { font-size: 1.6em; border-bottom: 1px solid #d0d7de; padding-bottom: .3em; }
h2 { font-size: 1.25em; margin-top: 1.6em; border-bottom: 1px solid #d0d7de; }
code, pre { font: 12.5px/1.4 ui-monospace, SFMono-Regular, Menlo, Consolas, monospace; }
pre { background: #f6f8fa; padding: .8em; overflow-x: auto; border-radius: 6px; }
.forbids { font-size: 1.05em; }
.message { border-left: 4px solid #cf222e; background: #fff5f5; padding: .5em 1em; }
table { border-collapse: collapse; }
td, th { border: 1px solid #d0d7de; padding: 3px 10px; text-align: left; vertical-align: top; }
ol li.gap { list-style: none; color: #57606a; font-style: italic; }
ol li.violating { background: #ffe1e1; font-weight: 600; }
.add { background: #e6ffec; display: block; }
.del { background: #ffebe9; display: block; color: #82071e; }
.same { display: block; }
.config code { margin-right: .6em; white-space: nowrap; }
.legend { color: #57606a; font-size: 12px; }
.timeline { overflow-x: auto; border: 1px solid #d0d7de; border-radius: 6px; }
"""


_LEGEND = (
    "One lane per node, one column per step. Arrows: delivered messages (dashed: a duplicate; "
    "ending in ✕: dropped). Red ✕: crash; green ○: restart; dot: a local step or client call. "
    "Dashed vertical lines: partition, heal, clock ticks. A lane is pale and dashed while its "
    "node is down. The red column is the violating step; hover a mark for its sentence."
)


def render_html(content: Content) -> str:
    e = html.escape
    parts = [
        "<!DOCTYPE html>",
        '<html lang="en">',
        "<head>",
        '<meta charset="utf-8">',
        f"<title>Violation: {e(content.property)}</title>",
        f"<style>{_CSS}</style>",
        "</head>",
        "<body>",
        f"<h1>Violation: <code>{e(content.property)}</code></h1>",
        f'<p class="forbids"><strong>{e(content.kind or "Property")}</strong> — forbids: '
        f"{e(content.forbids)}</p>",
        f'<p class="message">{e(content.message)}</p>',
        *_html_config(content),
        "<h2>Timeline</h2>",
        f'<div class="timeline">{timeline_svg(content)}</div>',
        f'<p class="legend">{_LEGEND}</p>',
        "<h2>Events (shrunk)</h2>",
        *_html_steps(content),
        *_html_state(content),
        *_html_details(content),
        "<h2>Sequence diagram (Mermaid source)</h2>",
        f"<pre>{e(mermaid(content))}</pre>",
        "<h2>Replay</h2>",
        *_html_replay(content),
        "</body>",
        "</html>",
        "",
    ]
    return "\n".join(parts)


def _html_replay(content: Content) -> list[str]:
    e = html.escape
    return [
        line
        for replay in content.replay
        for line in (f"<p>{e(replay.where)}</p>", f"<pre>{e(replay.command)}</pre>")
    ]


def _html_config(content: Content) -> list[str]:
    e = html.escape
    settings = " ".join(f"<code>{e(k)}={e(v)}</code>" for k, v in content.config)
    bugs = [
        f"<li><code>{e(name)}</code>{' — ' + e(text) if text else ''}</li>"
        for name, text in content.bugs
    ]
    return [
        "<h2>Configuration</h2>",
        f'<p class="config">engine <code>{e(content.engine)}</code> · {settings}</p>',
        f"<p>Seeded bugs: {'none' if not bugs else ''}</p>",
        *(["<ul>", *bugs, "</ul>"] if bugs else []),
    ]


def _html_steps(content: Content) -> list[str]:
    if not content.steps:
        return ["<p>(no events: the initial state already violates the property)</p>"]
    items = []
    for entry in listed_steps(content.steps):
        if isinstance(entry, int):
            items.append(f'<li class="gap">{html.escape(left_out_words(entry))}</li>')
            continue
        index, text = entry
        css = ' class="violating"' if index == content.violating_step else ""
        flag = " ← violation" if index == content.violating_step else ""
        items.append(f'<li value="{index}"{css}>{html.escape(text + flag)}</li>')
    return ["<ol>", *items, "</ol>"]


def _html_state(content: Content) -> list[str]:
    step = content.violating_step
    css = {"+": "add", "-": "del", " ": "same"}
    body = "".join(
        f'<span class="{css[line.marker]}">{html.escape(line.marker + " " + line.text)}</span>'
        for line in content.state
    )
    return [
        f"<h2>State after step {step}</h2>" if step else "<h2>State</h2>",
        f"<p>{html.escape(state_legend(content, 'Green', 'red'))}</p>",
        f"<pre>{body}</pre>",
    ]


def _html_details(content: Content) -> list[str]:
    if not content.details:
        return []
    e = html.escape
    rows = [f"<tr><th>{e(k)}</th><td><code>{e(v)}</code></td></tr>" for k, v in content.details]
    return ["<h2>Offending records and offsets</h2>", "<table>", *rows, "</table>"]


# -- the SVG timeline -------------------------------------------------------------------

_LANE_H = 42
_COL_W = 56
_LEFT = 70
_TOP = 46
_COLOURS = {
    "message": "#0969da",
    "duplicate": "#8250df",
    "drop": "#6e7781",
    "crash": "#cf222e",
    "restart": "#1a7f37",
    "split": "#bc4c00",
    "heal": "#1a7f37",
    "client": "#0969da",
    "tick": "#6e7781",
    "note": "#57606a",
}


def timeline_svg(content: Content) -> str:
    """An inline SVG: one lane per node, one column per step, the violating column highlighted.

    Only the last MAX_TIMELINE_STEPS steps are drawn, so a long run stays a picture.
    """
    lanes = {name: _TOP + (i + 0.5) * _LANE_H for i, name in enumerate(content.participants)}
    last = max([index for index, _ in content.steps] + [content.violating_step or 0, 1])
    first = max(1, last - MAX_TIMELINE_STEPS + 1)
    width = _LEFT + (last - first + 1) * _COL_W + 20
    height = _TOP + len(lanes) * _LANE_H + 32
    parts = [
        f'<svg role="img" width="{width}" height="{height}" '
        f'viewBox="0 0 {width} {height}" font-family="sans-serif" font-size="11">',
        "<defs>",
        *(
            _arrowhead(kind, colour)
            for kind, colour in _COLOURS.items()
            if kind in ("message", "duplicate", "drop")
        ),
        "</defs>",
    ]
    if first > 1:
        parts.append(
            f'<text x="8" y="12" fill="#57606a" font-size="10">steps 1 to {first - 1} '
            "are not drawn</text>"
        )
    if content.violating_step is not None:
        parts += _violating_column(content, _column_x(content.violating_step, first), height)
    parts += _column_labels(first, last)
    parts += _lane_lines(content, lanes, first, last)
    for mark in content.marks:
        if mark.step >= first:
            parts += _svg_mark(mark, _column_x(mark.step, first), lanes, height)
    parts.append("</svg>")
    return "".join(parts)


def _column_x(step: int, first: int) -> float:
    """The x of the middle of step `step`'s column when the drawing starts at step `first`."""
    return _LEFT + (step - first + 0.5) * _COL_W


def _violating_column(content: Content, x: float, height: int) -> list[str]:
    left = x - _COL_W / 2
    return [
        f'<rect x="{left:.0f}" y="4" width="{_COL_W}" height="{height - 8}" fill="#ffd7d5" '
        f'stroke="#cf222e"><title>violating step {content.violating_step}: '
        f"{html.escape(content.property)}</title></rect>",
        f'<text x="{x:.0f}" y="{height - 7}" text-anchor="middle" '
        f'fill="#cf222e" font-size="9" font-weight="bold">violation</text>',
    ]


def _arrowhead(kind: str, colour: str) -> str:
    return (
        f'<marker id="head-{kind}" viewBox="0 0 10 10" refX="9" refY="5" markerWidth="7" '
        f'markerHeight="7" orient="auto-start-reverse"><path d="M0,0 L10,5 L0,10 z" '
        f'fill="{colour}"/></marker>'
    )


def _column_labels(first: int, last: int) -> list[str]:
    return [
        f'<text x="{_column_x(i, first):.0f}" y="18" text-anchor="middle" fill="#57606a">{i}</text>'
        for i in range(first, last + 1)
    ]


def _lane_lines(content: Content, lanes: dict[str, float], first: int, last: int) -> list[str]:
    """Each lane's label and line; dashed grey while its node is crashed."""
    parts = []
    # Segment ends are in column units: u is the right edge of step u's column.
    left, right = _LEFT, _LEFT + (last - first + 1) * _COL_W
    for name, y in lanes.items():
        parts.append(
            f'<text x="8" y="{y + 4:.0f}" font-weight="bold" fill="#1f2328">{html.escape(name)}</text>'
        )
        for start, end, down in _lane_segments(content.marks, name, last):
            x1 = max(left, _LEFT + (start - first + 1) * _COL_W)
            x2 = min(right, _LEFT + (end - first + 1) * _COL_W)
            if x2 <= x1:
                continue
            style = 'stroke="#d0d7de" stroke-dasharray="4 4"' if down else 'stroke="#8c959f"'
            parts.append(f'<line x1="{x1:.0f}" y1="{y:.0f}" x2="{x2:.0f}" y2="{y:.0f}" {style}/>')
    return parts


def _lane_segments(marks: Sequence[Mark], name: str, last: int) -> list[tuple[float, float, bool]]:
    segments: list[tuple[float, float, bool]] = []
    start, down = 0.0, False
    for mark in marks:
        if mark.kind in ("crash", "restart") and mark.nodes == (name,):
            boundary = mark.step - 0.5
            segments.append((start, boundary, down))
            start, down = boundary, mark.kind == "crash"
    segments.append((start, float(max(last, 1)), down))
    return segments


def _svg_mark(mark: Mark, x: float, lanes: dict[str, float], height: int) -> list[str]:
    colour = _COLOURS.get(mark.kind, "#57606a")
    tip = f"<title>{html.escape(f'{mark.step}. {mark.label}')}</title>"
    if mark.kind in ("message", "duplicate", "drop") and all(n in lanes for n in mark.nodes):
        src, dst = (lanes[n] for n in mark.nodes)
        below = max(src, dst) if src != dst else src
        return [
            _svg_arrow(mark, x, lanes, colour, tip),
            _svg_tag(mark.tag, x, below + _tag_drop(mark)),
        ]
    if mark.kind in ("split", "heal", "tick") or not mark.nodes:
        dash = {"split": "6 3", "heal": "2 3"}.get(mark.kind, "1 4")
        return [
            f'<line x1="{x:.0f}" y1="{_TOP - 4}" x2="{x:.0f}" y2="{height - 6}" stroke="{colour}" '
            f'stroke-width="2" stroke-dasharray="{dash}">{tip}</line>',
            f'<text x="{x:.0f}" y="{_TOP - 10}" text-anchor="middle" fill="{colour}" '
            f'font-size="9">{html.escape(mark.kind if mark.kind != "tick" else mark.label)}</text>',
        ]
    points = [_svg_point(mark.kind, x, lanes[n], colour, tip) for n in mark.nodes if n in lanes]
    return points + [
        _svg_tag(mark.tag, x, lanes[n] + _tag_drop(mark)) for n in mark.nodes[:1] if n in lanes
    ]


def _tag_drop(mark: Mark) -> int:
    # Neighbouring steps write their tags on alternate rows so long ones do not overlap.
    return 15 if mark.step % 2 else 25


def _svg_tag(tag: str, x: float, y: float) -> str:
    if not tag:
        return ""
    return (
        f'<text x="{x:.0f}" y="{y:.0f}" text-anchor="middle" font-size="9" '
        f'fill="#57606a">{html.escape(tag)}</text>'
    )


def _svg_arrow(mark: Mark, x: float, lanes: dict[str, float], colour: str, tip: str) -> str:
    src, dst = mark.nodes
    y1, y2 = lanes[src], lanes[dst]
    # Short vertical arrows are slanted a little so they read as travel in time.
    x1, x2 = x - 10, x + 10
    if mark.kind == "drop":
        x2, y2 = x, (y1 + y2) / 2
    dash = ' stroke-dasharray="4 2"' if mark.kind != "message" else ""
    end = f' marker-end="url(#head-{mark.kind})"' if mark.kind != "drop" else ""
    cross = (
        f'<path d="M{x2 - 4:.0f},{y2 - 4:.0f} L{x2 + 4:.0f},{y2 + 4:.0f} M{x2 - 4:.0f},{y2 + 4:.0f} '
        f'L{x2 + 4:.0f},{y2 - 4:.0f}" stroke="{colour}" stroke-width="2"/>'
        if mark.kind == "drop"
        else ""
    )
    return (
        f'<g><line x1="{x1:.0f}" y1="{y1:.0f}" x2="{x2:.0f}" y2="{y2:.0f}" stroke="{colour}" '
        f'stroke-width="1.6"{dash}{end}/>{cross}{tip}</g>'
    )


def _svg_point(kind: str, x: float, y: float, colour: str, tip: str) -> str:
    if kind == "crash":
        return (
            f'<g><path d="M{x - 7:.0f},{y - 7:.0f} L{x + 7:.0f},{y + 7:.0f} M{x - 7:.0f},{y + 7:.0f} '
            f'L{x + 7:.0f},{y - 7:.0f}" stroke="{colour}" stroke-width="3"/>{tip}</g>'
        )
    if kind == "restart":
        return (
            f'<g><circle cx="{x:.0f}" cy="{y:.0f}" r="7" fill="white" stroke="{colour}" '
            f'stroke-width="2.5"/>{tip}</g>'
        )
    size = 5 if kind == "client" else 4
    return f'<g><circle cx="{x:.0f}" cy="{y:.0f}" r="{size}" fill="{colour}"/>{tip}</g>'
