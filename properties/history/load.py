"""Reading history text: `history.jsonl` lines and Jepsen's `history.edn`.

Rules of this module:
- Text in, `(line number, Op)` out; nothing here opens files, so the loaders
  work on any iterable of lines. Blank lines are skipped.
- JSONL is parsed with `json`; EDN with `edn_format`, as plain maps or as
  `#jepsen.history.Op{...}` tagged records. Neither is ever evaluated.
- Jepsen's fields are mapped onto ours: keywords become strings, `:time`
  (nanoseconds) becomes `time_ms`, `:seek-to-beginning?` and `:rebalance-log`
  are kept. An op whose `:time` is missing gets its index as its time.
- Any malformed line raises `HistoryError` naming the line.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator, Mapping, Sequence, Set
from typing import Any

import edn_format  # type: ignore[import-untyped]
from kafka_verify.properties.history.ops import HistoryError, Op

JEPSEN_OP_TAG = "jepsen.history.Op"
# EDN lines parsed per call: edn_format's parser has a large fixed cost per call.
_EDN_CHUNK_LINES = 500


def jsonl_ops(lines: Iterable[str]) -> Iterator[tuple[int, Op]]:
    """The ops of `history.jsonl`, each with its line number."""
    for number, text in enumerate(lines, start=1):
        if not text.strip():
            continue
        try:
            line = json.loads(text)
        except json.JSONDecodeError as error:
            raise HistoryError(f"line {number}: not JSON ({error.msg})") from None
        if not isinstance(line, dict):
            raise HistoryError(f"line {number}: an operation is a JSON object")
        try:
            yield number, Op.from_json(line)
        except HistoryError as error:
            raise HistoryError(f"line {number}: {error}") from None


def _plain(value: Any) -> Any:
    """An EDN value as plain Python: keywords and symbols as strings, maps as dicts."""
    if isinstance(value, edn_format.Keyword | edn_format.Symbol):
        return value.name
    if isinstance(value, Mapping):
        return {_key(k): _plain(v) for k, v in value.items()}
    if isinstance(value, str | bytes):
        return value
    if isinstance(value, Sequence | Set):
        return [_plain(v) for v in value]
    return value


def _key(value: Any) -> Any:
    plain = _plain(value)
    return tuple(plain) if isinstance(plain, list) else plain


def _jepsen_line(op: Mapping[str, Any]) -> dict[str, object]:
    """A Jepsen op (keywords already strings) in the field names of `history.jsonl`."""
    line: dict[str, object] = dict(op)
    if "time" in op:
        nanos = op["time"]
        if isinstance(nanos, bool) or not isinstance(nanos, int):
            raise HistoryError("an operation's :time is an integer (nanoseconds)")
        line["time_ms"] = nanos // 1_000_000
    elif "index" in op:
        line["time_ms"] = op["index"]
    return line


def _edn_values(chunk: list[tuple[int, str]]) -> list[tuple[int, object]]:
    """Each line of a chunk parsed; one call for the chunk, line by line only to find an error."""
    try:
        values = edn_format.loads_all("\n".join(text for _, text in chunk))
        if len(values) == len(chunk):
            return list(zip((n for n, _ in chunk), values))
    except Exception:  # edn_format raises several types; find the line below
        pass
    out: list[tuple[int, object]] = []
    for number, text in chunk:
        try:
            parsed = edn_format.loads_all(text)
        except Exception as error:
            reason = str(error).splitlines()[0] if str(error) else type(error).__name__
            raise HistoryError(f"line {number}: not EDN ({reason})") from None
        if len(parsed) != 1:
            raise HistoryError(f"line {number}: one operation per line, found {len(parsed)}")
        out.append((number, parsed[0]))
    return out


def _tagged_op(element: object) -> object:
    return element


def edn_ops(lines: Iterable[str]) -> Iterator[tuple[int, Op]]:
    """The ops of a Jepsen `history.edn`, each with its line number."""
    edn_format.add_tag(JEPSEN_OP_TAG, _tagged_op)
    chunk: list[tuple[int, str]] = []

    def flush() -> Iterator[tuple[int, Op]]:
        for number, value in _edn_values(chunk):
            plain = _plain(value)
            if not isinstance(plain, dict):
                raise HistoryError(f"line {number}: an operation is an EDN map")
            try:
                yield number, Op.from_json(_jepsen_line(plain))
            except HistoryError as error:
                raise HistoryError(f"line {number}: {error}") from None
        chunk.clear()

    for number, text in enumerate(lines, start=1):
        if text.strip():
            chunk.append((number, text))
        if len(chunk) >= _EDN_CHUNK_LINES:
            yield from flush()
    yield from flush()
