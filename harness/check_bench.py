"""How fast `kafka-verify check` judges a large history: a synthetic one, generated and timed.

`python -m kafka_verify.harness.check_bench [OPS]` writes a clean history of
OPS operations (default one million) to a temporary `history.jsonl`, checks it
the way `kafka-verify check` does (reading the file included) and prints the
seconds taken and the operations per second as JSON. The history mixes
producers, consumers that assign and poll, and gaps in the offsets (as
transaction markers leave), so every rule runs; its verdict must be valid.
"""

from __future__ import annotations

import json
import random
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path

PARTITIONS = 8
PRODUCERS = 4
CONSUMERS = 4
POLL_BATCH = 5


def synthetic_history(ops: int, seed: int = 0) -> Iterator[dict[str, object]]:
    """A clean history of about `ops` operations: sends acknowledged at increasing offsets
    (with gaps), and consumers that each read every partition in order."""
    rng = random.Random(seed)
    next_offset = [0] * PARTITIONS
    log: list[list[tuple[int, int]]] = [[] for _ in range(PARTITIONS)]
    read_upto = [[0] * PARTITIONS for _ in range(CONSUMERS)]
    index = record = 0
    for c in range(CONSUMERS):
        keys = [f"t/{p}" for p in range(PARTITIONS)]
        yield _op(index, f"c{c}", "ok", "assign", keys)
        index += 1
    while index < ops:
        p = rng.randrange(PARTITIONS)
        if rng.random() < 0.5:
            producer = f"p{rng.randrange(PRODUCERS)}"
            offset = next_offset[p]
            next_offset[p] += 2 if rng.random() < 0.05 else 1  # a marker leaves a gap
            log[p].append((offset, record))
            yield _op(index, producer, "invoke", "send", ["t", p, None, record])
            yield _op(index + 1, producer, "ok", "send", ["t", p, offset, record])
            record += 1
        else:
            c = rng.randrange(CONSUMERS)
            start = read_upto[c][p]
            batch = log[p][start : start + POLL_BATCH]
            read_upto[c][p] += len(batch)
            yield _op(index, f"c{c}", "invoke", "poll", None)
            yield _op(index + 1, f"c{c}", "ok", "poll", {f"t/{p}": [list(b) for b in batch]})
        index += 2


def _op(index: int, process: str, kind: str, f: str, value: object) -> dict[str, object]:
    return {
        "index": index,
        "time_ms": index,
        "process": process,
        "type": kind,
        "f": f,
        "value": value,
    }


def bench(ops: int = 1_000_000) -> dict[str, object]:
    """Generate, write and check a history of `ops` operations; the timings."""
    from kafka_verify.harness.check_cli import check_file
    from kafka_verify.properties.history import CheckConfig

    with tempfile.TemporaryDirectory() as directory:
        path = Path(directory) / "history.jsonl"
        with path.open("w", encoding="utf-8") as handle:
            for line in synthetic_history(ops):
                handle.write(json.dumps(line) + "\n")
        started = time.perf_counter()
        result = check_file(path, "jsonl", CheckConfig())
        seconds = time.perf_counter() - started
    return {
        "ops": ops,
        "seconds": round(seconds, 2),
        "ops_per_s": round(ops / seconds),
        "valid": result.valid,
        "anomaly_types": result.anomaly_types,
    }


if __name__ == "__main__":
    print(json.dumps(bench(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000)))
