"""An exception inside the broker is a finding: reported as internal-error and shrunk."""

from __future__ import annotations

import pytest
from kafka_verify.harness.campaign import run_campaign
from kafka_verify.harness.profiles import PROFILES
from kafka_verify.impl.broker import Broker
from kafka_verify.impl.config import ClusterConfig


def test_an_exception_in_the_broker_is_reported_as_internal_error(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    original = Broker.handle

    def crashing_handle(self: Broker, src: str, message: object, now_ms: int) -> object:
        if type(message).__name__ == "Produce":
            raise RuntimeError("planted failure while handling Produce")
        return original(self, src, message, now_ms)

    monkeypatch.setattr(Broker, "handle", crashing_handle)
    result = run_campaign(ClusterConfig(), PROFILES["ci"], seed=1, examples=50)
    assert result.violation is not None
    assert result.violation.property == "internal-error"
    assert "planted failure" in result.violation.message
    # Shrunk to the essentials: a send, and the delivery that trips the broker.
    assert len(result.events) <= 4
