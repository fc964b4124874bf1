"""The black box: real Kafka clients drive any Kafka-protocol cluster, a nemesis breaks it.

Rules of this package:
- It knows a cluster only through the Kafka protocol, real clients
  (confluent-kafka, kafka-python) and, for a managed cluster, the process ids or
  shell commands its cluster file names. It imports `properties` and nothing
  else of the suite.
- `history` records what clients saw (DESIGN.md, "Client history"), `clients`
  wraps each client library behind one small interface, `nemesis` injects and
  heals faults, and `run` drives a whole workload and checks its history.
"""

from kafka_verify.workload.history import Recorder
from kafka_verify.workload.nemesis import ClusterFile, ClusterFileError, Nemesis
from kafka_verify.workload.run import WorkloadError, WorkloadOptions, WorkloadOutcome, run_workload

__all__ = [
    "ClusterFile",
    "ClusterFileError",
    "Nemesis",
    "Recorder",
    "WorkloadError",
    "WorkloadOptions",
    "WorkloadOutcome",
    "run_workload",
]
