"""The executable specification of a Kafka-style replication protocol.

`model` imports nothing from the other rooms. See `state.py` for what a cluster
is, `actions.py` for what can happen, and `step.py` for the rules.
"""

from kafka_verify.model.actions import ACTION_TYPES, Action
from kafka_verify.model.state import Config, Partition, Record, Replica, Role, State, initial_state
from kafka_verify.model.step import NotAllowed, enabled, step

__all__ = [
    "ACTION_TYPES",
    "Action",
    "Config",
    "NotAllowed",
    "Partition",
    "Record",
    "Replica",
    "Role",
    "State",
    "enabled",
    "initial_state",
    "step",
]
