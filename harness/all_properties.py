"""Import every module that registers properties, so the catalogue is complete.

Properties live in several modules of `properties/` (replication invariants,
client histories, coverage, consumer groups); each registers its entries when
imported. Anything that lists or reports on the whole catalogue imports this
first.
"""

from __future__ import annotations

import importlib

_MODULES = (
    "kafka_verify.properties.invariants",
    "kafka_verify.properties.history",
    "kafka_verify.properties.coverage",
    "kafka_verify.properties.groups",
)

for _name in _MODULES:
    try:
        importlib.import_module(_name)
    except ModuleNotFoundError as missing:
        if missing.name != _name:
            raise
