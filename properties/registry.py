"""The whole property catalogue: every module that states properties, imported by name.

Rules of this module:
- It is the top of `properties/`: no module of the room imports it.
- The imports are plain and static, so the import graph shows every arrow
  (tests/unit/test_layering.py reads it); adding a module of properties means
  adding it here, and the catalogue test fails until the list is complete.
- Whoever lists, looks up or reports on properties reads `PROPERTIES` from here.
"""

from __future__ import annotations

from kafka_verify.properties import coverage, groups, history, invariants
from kafka_verify.properties.catalogue import PROPERTIES, Kind, PropertyInfo

# The modules whose properties the catalogue lists, in the order they are listed.
PROPERTY_MODULES = (invariants, history, coverage, groups)

__all__ = ["PROPERTIES", "PROPERTY_MODULES", "Kind", "PropertyInfo"]
