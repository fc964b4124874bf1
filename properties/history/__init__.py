"""Client-history properties, in the vocabulary of Jepsen's Kafka checker: one checker, two uses.

Rules of this package:
- The black-box core reads only what clients saw (`history.jsonl`, or Jepsen's
  `history.edn`) and infers what was committed as Jepsen's version orders do:
  `ops` (operations and their values), `load` (text to ops), `memory` (what
  is remembered; version orders), `anomalies`, `cycles` and `commits` (one
  function per anomaly; `commits` judges offset commits and consumer starts), `allowed` (the allowed-anomaly table), `metrics` (unseen, lag) and
  `analysis` (the driver and the verdict).
- `simulation` runs the same core inside the simulation and adds only model
  facts: retention, the committed prefix and the final logs.
- Everything other rooms use is re-exported here.
"""

from kafka_verify.properties.history.allowed import ALLOWANCES, Allowance, allowed_because
from kafka_verify.properties.history.analysis import (
    ANOMALIES,
    Analysis,
    CheckResult,
    Judged,
    check,
)
from kafka_verify.properties.history.anomalies import (
    aborted_read,
    catalogue_name,
    duplicate,
    inconsistent_offsets,
    int_nonmonotonic_poll,
    int_nonmonotonic_send,
    int_poll_skip,
    int_send_skip,
    lost_write,
    nonmonotonic_poll,
    nonmonotonic_send,
    poll_skip,
    precommitted_read,
)
from kafka_verify.properties.history.commits import lost_commit, stale_commit
from kafka_verify.properties.history.cycles import circular_information_flow, write_cycle
from kafka_verify.properties.history.load import edn_ops, jsonl_ops
from kafka_verify.properties.history.memory import Case, CheckConfig, ModelFacts
from kafka_verify.properties.history.ops import (
    HistoryError,
    Op,
    RecordId,
    Send,
    TopicPartition,
    parse_poll,
    parse_send,
    unit_of,
)
from kafka_verify.properties.history.simulation import (
    MODEL_TOPIC,
    HistoryChecker,
    committed_read,
    converged,
)

__all__ = [
    "ALLOWANCES",
    "ANOMALIES",
    "MODEL_TOPIC",
    "Allowance",
    "Analysis",
    "Case",
    "CheckConfig",
    "CheckResult",
    "HistoryChecker",
    "HistoryError",
    "Judged",
    "ModelFacts",
    "Op",
    "RecordId",
    "Send",
    "TopicPartition",
    "aborted_read",
    "allowed_because",
    "catalogue_name",
    "check",
    "circular_information_flow",
    "committed_read",
    "converged",
    "duplicate",
    "edn_ops",
    "inconsistent_offsets",
    "int_nonmonotonic_poll",
    "int_nonmonotonic_send",
    "int_poll_skip",
    "int_send_skip",
    "jsonl_ops",
    "lost_commit",
    "lost_write",
    "nonmonotonic_poll",
    "nonmonotonic_send",
    "parse_poll",
    "parse_send",
    "poll_skip",
    "precommitted_read",
    "stale_commit",
    "unit_of",
    "write_cycle",
]
