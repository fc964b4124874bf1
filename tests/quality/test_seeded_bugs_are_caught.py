"""The suite's own quality bar: the CI campaign catches seeded bugs, and names the property.

Like Hypothesis's own quality tests, these assert that a planted bug is *found*.
Every catalogued bug is either here, with the properties that may catch it, or
in KNOWN_GAPS with the reason the campaign does not yet reach it within budget;
the catalogue test keeps that list honest as bugs are added.

One campaign configuration hunts every bug (the swarm and the nemeses of
harness/machine.py); nothing here is tuned per bug. Shrinking is cut short
(a few seconds), since only the verdict and the property matter here.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from kafka_verify.harness.bug_catalogue import STORIES
from kafka_verify.harness.mutants import hunt
from kafka_verify.impl.bugs import BUGS

# bug -> the properties that may catch it, as the catalogue tells it (docs/bugs.md).
# Where two are listed, the same damage is seen from two sides (shrinking may end
# on either): a record at a wrong offset is both a `duplicate` (one record, two
# offsets) and `inconsistent-offsets`.
CAUGHT: dict[str, frozenset[str]] = {story.name: story.caught_by for story in STORIES}

KNOWN_GAPS: dict[str, str] = {}

BUDGET_S = 120


def test_every_catalogued_bug_is_classified() -> None:
    assert set(CAUGHT) | set(KNOWN_GAPS) == set(BUGS)
    assert not set(CAUGHT) & set(KNOWN_GAPS)


@pytest.mark.quality
@pytest.mark.parametrize("bug", sorted(CAUGHT))
def test_ci_campaign_catches(bug: str, tmp_path: Path) -> None:
    row = hunt(bug, BUDGET_S, tmp_path, shrink_budget_s=3, event_shrink_budget_s=3)
    assert row["caught"], f"{bug} was not caught within {BUDGET_S} s"
    assert row["property"] in CAUGHT[bug]
    assert Path(row["report"]).exists()
