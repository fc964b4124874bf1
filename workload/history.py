"""The history recorder: every invoke and completion of every process, with wall-clock time.

Rules of this module:
- One `Recorder` per workload, shared by every thread. `record` takes a lock,
  so indexes are unique and increasing and lines are kept in index order: the
  order in which the operations really happened, as the checker requires.
- A line has the fields of DESIGN.md's `history.jsonl` (index, time_ms,
  process, type, f, value) plus, on an assign that seeks, Jepsen's
  `seek-to-beginning?`. Values are plain JSON data, never objects of a client.
- Time is the wall clock in milliseconds (`time.time_ns`), as a history from
  any other tool records it; the checker reads it only for lag, never for order.
"""

from __future__ import annotations

import json
import threading
import time
from collections import Counter
from pathlib import Path

Line = dict[str, object]


class Recorder:
    """A thread-safe, append-only client history."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._lines: list[Line] = []

    def record(self, process: str, kind: str, f: str, value: object, *, seek: bool = False) -> Line:
        """Append one operation (kind: invoke, ok, fail or info) and return its line."""
        with self._lock:
            line: Line = {
                "index": len(self._lines),
                "time_ms": time.time_ns() // 1_000_000,
                "process": process,
                "type": kind,
                "f": f,
                "value": value,
            }
            if seek:
                line["seek-to-beginning?"] = True
            self._lines.append(line)
            return line

    def lines(self) -> list[Line]:
        """A copy of every line so far, in index order."""
        with self._lock:
            return list(self._lines)

    def counts(self) -> dict[str, dict[str, int]]:
        """Operations by f, then by type: {"send": {"invoke": n, "ok": n, ...}, ...}."""
        by: Counter[tuple[str, str]] = Counter()
        for line in self.lines():
            by[(str(line["f"]), str(line["type"]))] += 1
        out: dict[str, dict[str, int]] = {}
        for (f, kind), n in sorted(by.items()):
            out.setdefault(f, {})[kind] = n
        return out

    def write(self, path: Path) -> None:
        """Write the history as `history.jsonl`, one operation per line."""
        with path.open("w", encoding="utf-8") as handle:
            for line in self.lines():
                handle.write(json.dumps(line, separators=(",", ":")) + "\n")
