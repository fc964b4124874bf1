"""`kafka-verify check HISTORY`: Jepsen's Kafka checker on any client history.

Reads `history.jsonl` (DESIGN.md, "Client history") or Jepsen's `history.edn`
(plain maps or `#jepsen.history.Op{...}` records; the format is taken from the
file name unless `--format` says). Configuration flags, named as Jepsen's
kafka test names them, decide which anomalies are allowed
(`properties/history/allowed.py`):

  --sub-via assign|subscribe[,...]  how consumers took partitions; with
                                    subscribe, poll-skip and nonmonotonic-poll
                                    of subscribed consumers are allowed
  --ww-deps                         infer ww dependencies from offsets (G1c
                                    then allowed, as Jepsen does)
  --idempotent / --no-idempotent    whether producers deduplicate retries
                                    (without, duplicates are allowed)
  --acks all|1|0                    what an acknowledgement waited for (with
                                    1 or 0, a leader change may lose or
                                    replace acknowledged records: allowed)

Exit codes: 0 valid; 1 anomalies found (reports written); 2 bad input (one
sentence naming the line), or a history with no client operation, whose
validity is "unknown" (as Jepsen exits 2 for unknown): nothing was checked,
so a CI gate must not pass it. The JSON is written in every case but bad input;
reports (report.md, report.html, offsets.svg) go to `--reports DIR`, by default
`reports/check-<history name>/`, whenever the history is not valid.
"""

from __future__ import annotations

import argparse
import gc
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from kafka_verify.harness.cli_common import write_json

# The checker is imported when `check` runs, so other commands do not load it.
if TYPE_CHECKING:
    from kafka_verify.properties.history import CheckConfig, CheckResult

FORMATS = ("jsonl", "edn")
SUB_VIA = frozenset({"assign", "subscribe"})


def _sub_via(text: str) -> frozenset[str]:
    chosen = frozenset(part.strip() for part in text.split(",") if part.strip())
    if not chosen or not chosen <= SUB_VIA:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a comma-separated list of {', '.join(sorted(SUB_VIA))}"
        )
    return chosen


def add_check_parser(subparsers: Any) -> None:
    """Add the `check` command to the CLI's subparsers."""
    check = subparsers.add_parser(
        "check", help="check a client history (history.jsonl or Jepsen's history.edn)"
    )
    # Not `history`: that name is the output flag of `workload --history`.
    check.add_argument("history_file", type=Path, metavar="HISTORY")
    check.add_argument("--format", choices=FORMATS, default=None, help="default: from the name")
    check.add_argument("--json", type=Path, default=None, metavar="FILE")
    check.add_argument("--reports", type=Path, default=None, metavar="DIR")
    check.add_argument(
        "--sub-via",
        type=_sub_via,
        default=frozenset({"assign"}),
        metavar="assign|subscribe",
        help="how consumers took partitions (default assign); subscribe allows skips and "
        "re-reads of subscribed consumers across rebalances",
    )
    check.add_argument(
        "--ww-deps",
        action="store_true",
        help="infer write-write dependencies from offset order (G1c is then allowed)",
    )
    check.add_argument(
        "--idempotent",
        action=argparse.BooleanOptionalAction,
        default=True,
        help="producers deduplicate retries (default); --no-idempotent allows duplicates",
    )
    check.add_argument(
        "--acks",
        type=_acks,
        default=-1,
        metavar="all|1|0",
        help="what the producers' acknowledgements waited for (default all); with 1 or 0 a "
        "leader change may lose or replace acknowledged records, which is then allowed",
    )
    check.set_defaults(check_command=True)


# Kafka's spellings of `acks`: all and -1 are the same setting.
_ACKS = {"all": -1, "-1": -1, "1": 1, "0": 0}


def _acks(text: str) -> int:
    if text.strip().lower() not in _ACKS:
        raise argparse.ArgumentTypeError(f"acks must be all, 1 or 0, not {text!r}")
    return _ACKS[text.strip().lower()]


def _format_of(path: Path, chosen: str | None) -> str:
    if chosen is not None:
        return chosen
    return "edn" if path.suffix == ".edn" else "jsonl"


def _lines(path: Path) -> Iterator[str]:
    with path.open(encoding="utf-8") as handle:
        yield from handle


def check_file(path: Path, kind: str, config: CheckConfig) -> CheckResult:
    """Check one history file; HistoryError (naming the line) on bad input, OSError if unreadable."""
    from kafka_verify.properties.history import Analysis, HistoryError, edn_ops, jsonl_ops

    loader = edn_ops if kind == "edn" else jsonl_ops
    analysis = Analysis(config)
    number = 0
    # The checker keeps millions of small acyclic objects alive; the cyclic
    # collector would rescan them again and again as they pile up, for nothing.
    collecting = gc.isenabled()
    gc.disable()
    try:
        for number, op in loader(_lines(path)):  # noqa: B007 (named in the errors below)
            analysis.observe(op)
    except UnicodeDecodeError:
        raise HistoryError(f"line {number + 1}: not UTF-8 text") from None
    except HistoryError as error:
        if str(error).startswith("line "):
            raise
        raise HistoryError(f"line {number}: {error}") from None
    finally:
        if collecting:
            gc.enable()
    return analysis.result()


def _summary(result: CheckResult) -> str:
    if result.valid == "unknown":
        return "valid: unknown (the history holds no client operation)"
    counts: dict[str, int] = {}
    for judged in result.judged:
        if judged.allowed is None:
            counts[judged.case.anomaly] = counts.get(judged.case.anomaly, 0) + 1
    allowed = result.allowed_types
    text = f"valid: {str(result.valid).lower()} ({result.ops} operations)"
    if counts:
        text += "; anomalies: " + ", ".join(f"{k} x{n}" for k, n in sorted(counts.items()))
    if allowed:
        text += "; allowed: " + ", ".join(allowed)
    return text


def run_check(args: argparse.Namespace) -> int:
    """Run `kafka-verify check`; returns the exit code."""
    from kafka_verify.properties.history import CheckConfig, HistoryError

    path: Path = args.history_file
    config = CheckConfig(
        idempotent=args.idempotent, acks=args.acks, sub_via=args.sub_via, ww_deps=args.ww_deps
    )
    try:
        result = check_file(path, _format_of(path, args.format), config)
    except HistoryError as error:
        print(f"kafka-verify: {path}: {error}", file=sys.stderr)
        return 2
    except OSError as error:
        print(f"kafka-verify: cannot read {path}: {error.strerror}", file=sys.stderr)
        return 2
    write_json(args.json, result.as_dict())
    try:
        if result.valid is False:
            from kafka_verify.harness.history_report import write_reports

            reports = args.reports or Path("reports") / f"check-{path.stem}"
            print(f"report: {write_reports(result, reports, history=path) / 'report.md'}")
    except OSError as error:
        print(f"kafka-verify: cannot write the results: {error.strerror}", file=sys.stderr)
        return 2
    print(_summary(result))
    if result.valid == "unknown":
        return 2
    return 0 if result.valid else 1
