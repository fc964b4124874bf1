"""The consumer-group part of `kafka-verify prove`: group properties, group variants, their traces.

`harness.prove_cli` runs the replication properties and hands the group ones
here. A group counterexample is replayed on the model once more and confirmed
by its Python predicate before its trace is written, exactly like a
replication one.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

from kafka_verify.harness.proof_trace import write_proof_trace
from kafka_verify.model.state import Config, initial_state
from kafka_verify.model.step import step
from kafka_verify.model.symbolic_groups import ENCODED_GROUP_VARIANTS
from kafka_verify.properties.prove import VIOLATED, ProofResult
from kafka_verify.properties.prove_groups import group_config, prove_group, python_violations
from kafka_verify.properties.symbolic_groups import PROPERTY_NAMES

GROUP_PROPERTIES: tuple[str, ...] = PROPERTY_NAMES
GROUP_VARIANTS: frozenset[str] = ENCODED_GROUP_VARIANTS


def only_group_variants(bugs: frozenset[str]) -> bool:
    """Whether every requested bug is a group variant (they leave the replication model alone)."""
    return bool(bugs) and bugs <= GROUP_VARIANTS


def bounds(config: Config) -> str:
    """The group bounds in words, for the result table."""
    return (
        f"groups: {config.groups}, consumers: {config.members}, partitions: "
        f"{config.group_partitions}, generations <= {config.group_generations}, "
        f"offsets <= {config.group_max_offset}"
    )


def prove_group_property(
    name: str, bugs: frozenset[str], depth: int, timeout_s: float, reports: Path
) -> tuple[ProofResult, Path | None]:
    """Prove one group property at the default group bounds; write a trace if it is violated."""
    config = group_config(bugs & GROUP_VARIANTS)
    result = prove_group(name, config, depth=depth, timeout_s=timeout_s)
    result = replace(result, notes=(*result.notes, bounds(config)))
    if result.status != VIOLATED:
        return result, None
    return result, write_group_counterexample(result, config, reports)


def write_group_counterexample(result: ProofResult, config: Config, root: Path) -> Path:
    """Replay the counterexample on the model and write it as a model-engine trace."""
    before = after = initial_state(config)
    for action in result.actions:
        before, after = after, step(after, action, config)
    last = result.actions[-1] if result.actions else None
    violations = python_violations(result.property, before, last, after, config)
    if not violations:
        raise RuntimeError(f"the counterexample for {result.property} does not replay")
    return write_proof_trace(result, config, violations[0], root)
