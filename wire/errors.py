"""The one exception a peer's malformed Kafka bytes raise.

Rules of this module:
- `FrameError` means the peer sent bytes that are not a Kafka request (or
  response) this host accepts. The connection cannot go on after it: the
  stream may be out of step, so the host logs the reason and closes it.
- Its message is one sentence naming what was wrong, fit for a log line.
"""

from __future__ import annotations


class FrameError(Exception):
    """The peer sent a frame that cannot be read: its reason is one sentence."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason
