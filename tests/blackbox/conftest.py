"""The black-box tests use the wire tests' `serve` fixture: a real cluster of real processes."""

from __future__ import annotations

import sys
from pathlib import Path

# served.py lives beside the wire tests; it is a plain module, not a package.
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "wire"))
