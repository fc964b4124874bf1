"""Reports of a checked client history: `report.md`, a self-contained `report.html`, `offsets.svg`.

Like Jepsen's condensed errors, a report gives each anomaly type's count and
its first few cases, worst first, each with the ops that show it; allowed
anomalies are listed with their reason. The SVG plots, per partition, the
highest offset known to exist over time, with each case marked where it was
seen, and the nemesis's faults as shaded spans across every row (as Jepsen's
plots shade them); the reports list the faults with their times, and each
case names the last fault before it. Everything here is derived from a
`CheckResult`; nothing is recomputed.

A fault runs from its completion to the next completion that heals (a heal,
resume or start, or a Jepsen `stop-*`), which ends every fault open before it,
as the workload's nemesis heals everything at once. A completion whose value
carries an "error" is a fault that was not injected: it is listed, not shaded.
"""

from __future__ import annotations

import html
import json
from collections.abc import Iterable
from pathlib import Path

from kafka_verify.properties.history import CheckResult, Judged
from kafka_verify.properties.history.ops import Op

CASES_SHOWN = 8  # cases per anomaly type in a report
OPS_SHOWN = 6  # ops per case
_WIDTH, _ROW, _PAD = 760, 120, 40
_COLOURS = ("#0969da", "#1a7f37", "#8250df", "#bf8700", "#57606a", "#d1242f")
FAULTS_SHOWN = 200  # rows of the fault table
# Nemesis operations that end faults rather than start them (ours, and Jepsen's).
HEALS = frozenset({"heal", "resume", "start", "recover"})


def fault_label(op: Op) -> str:
    """What a nemesis completion did, in a few words: "kill b1", "heal", "start-partition ..."."""
    value = op.value
    if isinstance(value, dict) and isinstance(value.get("fault"), str):
        target = value.get("node") or value.get("nodes") or value.get("links") or ""
        if isinstance(target, list):
            target = ", ".join(map(str, target))
        return f"{value['fault']} {target}".strip()
    if value is None or value == "":
        return op.f
    return f"{op.f} {json.dumps(value, default=str)}"[:120]


def _heals(op: Op) -> bool:
    value = op.value
    kind = value.get("fault") if isinstance(value, dict) else None
    return kind in HEALS or op.f in HEALS or op.f.startswith("stop")


def _failed(op: Op) -> bool:
    return isinstance(op.value, dict) and "error" in op.value


def fault_spans(result: CheckResult, end_ms: int) -> list[tuple[int, int, str]]:
    """(start, end, label) of each injected fault; one still open at the end lasts to `end_ms`."""
    spans: list[tuple[int, int, str]] = []
    open_faults: list[tuple[int, str]] = []
    for op in result.nemesis:
        if _failed(op):
            continue
        if _heals(op):
            spans += [(start, op.time_ms, label) for start, label in open_faults]
            open_faults = []
        else:
            open_faults.append((op.time_ms, fault_label(op)))
    spans += [(start, max(start, end_ms), label) for start, label in open_faults]
    return sorted(spans)


def _last_fault_before(result: CheckResult, time_ms: int) -> Op | None:
    before = [op for op in result.nemesis if op.time_ms <= time_ms and not _failed(op)]
    return before[-1] if before else None


def _start_ms(result: CheckResult) -> int:
    times = [t for points in result.timeline.values() for t, _ in points]
    times += [op.time_ms for op in result.nemesis]
    return min(times) if times else 0


def _seconds(time_ms: int, start_ms: int) -> str:
    return f"{(time_ms - start_ms) / 1000:.1f} s"


def _fault_context(result: CheckResult, judged: Judged) -> str | None:
    """ "after kill b1 at 12.3 s (1.2 s before it)" for the case's last op, or None."""
    if not judged.case.ops or not result.nemesis:
        return None
    seen = judged.case.ops[-1].time_ms
    last = _last_fault_before(result, seen)
    if last is None:
        return "no fault before it"
    start = _start_ms(result)
    return (
        f"after {fault_label(last)} at {_seconds(last.time_ms, start)} "
        f"({(seen - last.time_ms) / 1000:.1f} s before it)"
    )


def _fault_rows(result: CheckResult) -> list[tuple[str, str, str]]:
    """(time, what, outcome) of each nemesis completion, in order."""
    start = _start_ms(result)
    return [
        (
            _seconds(op.time_ms, start),
            fault_label(op),
            f"failed: {op.value['error']}" if _failed(op) else op.type,  # type: ignore[index]
        )
        for op in result.nemesis[:FAULTS_SHOWN]
    ]


def _groups(result: CheckResult, allowed: bool) -> dict[str, list[Judged]]:
    groups: dict[str, list[Judged]] = {}
    for judged in result.judged:
        if (judged.allowed is not None) == allowed:
            groups.setdefault(judged.case.anomaly, []).append(judged)
    return groups


def _op_line(op: dict[str, object]) -> str:
    return (
        f"{op['index']} {op['process']} {op['type']} {op['f']} "
        f"{json.dumps(op['value'], default=str)}"
    )


def _case_ops(judged: Judged) -> list[str]:
    ops = judged.case.as_dict()["ops"]
    assert isinstance(ops, list)
    return [_op_line(op) for op in ops[:OPS_SHOWN]]


def markdown(result: CheckResult, history: Path | None = None) -> str:
    """The Markdown report."""
    lines = ["# History check", ""]
    if history is not None:
        lines += [f"History: `{history}`", ""]
    lines += [
        f"- valid: **{json.dumps(result.valid)}**",
        f"- operations: {result.ops}",
        f"- anomalies: {', '.join(result.anomaly_types) or 'none'}",
        f"- allowed: {', '.join(result.allowed_types) or 'none'}",
        "",
        "![offsets over time](offsets.svg)",
        "",
    ]
    for title, allowed in (("Anomalies", False), ("Allowed anomalies", True)):
        groups = _groups(result, allowed)
        if not groups:
            continue
        lines += [f"## {title}", ""]
        for name, cases in groups.items():
            lines += [f"### {name} ({len(cases)})", ""]
            if allowed:
                lines += [f"Allowed: {cases[0].allowed}", ""]
            for judged in cases[:CASES_SHOWN]:
                lines += [f"- {judged.case.message}", ""]
                context = _fault_context(result, judged)
                if context is not None:
                    lines += [f"  ({context})", ""]
                lines += ["  ```"]
                lines += [f"  {line}" for line in _case_ops(judged)]
                lines += ["  ```", ""]
            if len(cases) > CASES_SHOWN:
                lines += [f"... and {len(cases) - CASES_SHOWN} more (see the JSON).", ""]
    if result.nemesis:
        lines += ["## Faults", "", "| time | nemesis | outcome |", "|---|---|---|"]
        lines += [f"| {t} | {what} | {outcome} |" for t, what, outcome in _fault_rows(result)]
        if len(result.nemesis) > FAULTS_SHOWN:
            lines += ["", f"... and {len(result.nemesis) - FAULTS_SHOWN} more (see the history)."]
        lines += [""]
    lines += ["## Stats", "", "```json", json.dumps(result.stats, indent=2, default=str)[:4000]]
    lines += ["```", ""]
    return "\n".join(lines)


def _marks(result: CheckResult) -> dict[str, list[tuple[int, int, str]]]:
    """Per partition, (time, offset, anomaly) of each counted case that names an offset."""
    marks: dict[str, list[tuple[int, int, str]]] = {}
    for judged in result.judged:
        case = judged.case
        if judged.allowed is not None or case.key is None or not case.ops:
            continue
        offset = case.fact("offset")
        offsets = case.fact("offsets")
        if not isinstance(offset, int) and isinstance(offsets, tuple) and offsets:
            offset = offsets[-1]
        if isinstance(offset, int):
            marks.setdefault(case.key, []).append((case.ops[-1].time_ms, offset, case.anomaly))
    return marks


def svg(result: CheckResult) -> str:
    """Offsets over time per partition, one row each, anomalies marked in red."""
    timeline = result.timeline
    marks = _marks(result)
    keys = sorted(set(timeline) | set(marks))
    height = max(1, len(keys)) * _ROW + _PAD
    times = [t for k in keys for t, _ in timeline.get(k, [])] + [
        t for k in keys for t, _, _ in marks.get(k, [])
    ]
    times += [op.time_ms for op in result.nemesis]
    t0, t1 = (min(times), max(times)) if times else (0, 1)
    span = max(1, t1 - t0)
    spans = fault_spans(result, t1)
    out = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{_WIDTH}" height="{height}" '
        f'viewBox="0 0 {_WIDTH} {height}" font-family="monospace" font-size="11">',
        f"<title>highest known offset over time ({t0}..{t1} ms)</title>",
    ]
    for start, end, label in spans:
        x0 = _PAD + (start - t0) / span * (_WIDTH - 2 * _PAD)
        x1 = _PAD + (end - t0) / span * (_WIDTH - 2 * _PAD)
        out.append(
            f'<rect class="fault" x="{x0:.1f}" y="0" width="{max(1.0, x1 - x0):.1f}" '
            f'height="{height}" fill="#d1242f" fill-opacity="0.08">'
            f"<title>{html.escape(label)}, {start}..{end} ms</title></rect>"
        )
    if not keys:
        out.append('<text x="10" y="20">no offsets were seen</text>')
    for row, key in enumerate(keys):
        top = row * _ROW + 10
        points = timeline.get(key, [])
        key_marks = marks.get(key, [])
        top_offset = max([o for _, o in points] + [o for _, o, _ in key_marks] + [1])

        def xy(t: int, o: int, top: int = top, top_offset: int = top_offset) -> tuple[float, float]:
            x = _PAD + (t - t0) / span * (_WIDTH - 2 * _PAD)
            y = top + (_ROW - 30) * (1 - o / top_offset)
            return x, y

        colour = _COLOURS[row % len(_COLOURS)]
        out.append(
            f'<text x="4" y="{top + 10}">{html.escape(key)} (0..{top_offset})</text>'
            f'<line x1="{_PAD}" y1="{top + _ROW - 30}" x2="{_WIDTH - _PAD}" '
            f'y2="{top + _ROW - 30}" stroke="#d0d7de"/>'
        )
        if points:
            path = " ".join(f"{x:.1f},{y:.1f}" for x, y in (xy(t, o) for t, o in points))
            out.append(f'<polyline fill="none" stroke="{colour}" points="{path}"/>')
        for t, o, anomaly in key_marks:
            x, y = xy(t, o)
            out.append(
                f'<circle cx="{x:.1f}" cy="{y:.1f}" r="4" fill="#d1242f">'
                f"<title>{html.escape(anomaly)} at offset {o}, {t} ms</title></circle>"
            )
    out.append("</svg>")
    return "\n".join(out)


def _html_list(items: Iterable[str]) -> str:
    return "".join(f"<li>{item}</li>" for item in items)


def html_report(result: CheckResult, history: Path | None = None) -> str:
    """The self-contained HTML report (the SVG inline, no external assets)."""
    parts = [
        "<!doctype html><html><head><meta charset='utf-8'><title>History check</title>",
        "<style>body{font-family:sans-serif;max-width:60em;margin:auto}"
        "pre{background:#f6f8fa;padding:.5em;overflow:auto}.bad{color:#d1242f}</style>",
        "</head><body><h1>History check</h1>",
    ]
    if history is not None:
        parts.append(f"<p>History: <code>{html.escape(str(history))}</code></p>")
    parts.append(
        "<ul>"
        + _html_list(
            [
                f"valid: <b class='bad'>{html.escape(json.dumps(result.valid))}</b>"
                if result.valid is not True
                else "valid: <b>true</b>",
                f"operations: {result.ops}",
                f"anomalies: {html.escape(', '.join(result.anomaly_types) or 'none')}",
                f"allowed: {html.escape(', '.join(result.allowed_types) or 'none')}",
            ]
        )
        + "</ul>"
    )
    parts.append(svg(result))
    for title, allowed in (("Anomalies", False), ("Allowed anomalies", True)):
        groups = _groups(result, allowed)
        if not groups:
            continue
        parts.append(f"<h2>{title}</h2>")
        for name, cases in groups.items():
            parts.append(f"<h3 id='{html.escape(name)}'>{html.escape(name)} ({len(cases)})</h3>")
            if allowed:
                parts.append(f"<p>Allowed: {html.escape(str(cases[0].allowed))}</p>")
            for judged in cases[:CASES_SHOWN]:
                parts.append(f"<p>{html.escape(judged.case.message)}</p>")
                context = _fault_context(result, judged)
                if context is not None:
                    parts.append(f"<p><i>{html.escape(context)}</i></p>")
                parts.append("<pre>" + html.escape("\n".join(_case_ops(judged))) + "</pre>")
            if len(cases) > CASES_SHOWN:
                parts.append(f"<p>... and {len(cases) - CASES_SHOWN} more (see the JSON).</p>")
    if result.nemesis:
        parts.append("<h2>Faults</h2><table><tr><th>time</th><th>nemesis</th><th>outcome</th></tr>")
        parts += [
            f"<tr><td>{html.escape(t)}</td><td>{html.escape(what)}</td>"
            f"<td>{html.escape(outcome)}</td></tr>"
            for t, what, outcome in _fault_rows(result)
        ]
        parts.append("</table>")
    parts.append("<h2>Stats</h2><pre>")
    parts.append(html.escape(json.dumps(result.stats, indent=2, default=str)[:4000]))
    parts.append("</pre></body></html>")
    return "\n".join(parts)


def write_reports(result: CheckResult, directory: Path, history: Path | None = None) -> Path:
    """Write report.md, report.html, offsets.svg and result.json into `directory`; returns it."""
    directory.mkdir(parents=True, exist_ok=True)
    (directory / "report.md").write_text(markdown(result, history), encoding="utf-8")
    (directory / "report.html").write_text(html_report(result, history), encoding="utf-8")
    (directory / "offsets.svg").write_text(svg(result), encoding="utf-8")
    (directory / "result.json").write_text(
        json.dumps(result.as_dict(), indent=2, default=str) + "\n", encoding="utf-8"
    )
    return directory
