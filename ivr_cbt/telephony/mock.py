"""The mock adapter: places nothing, records everything, for tests, the demo and simulations."""

from __future__ import annotations

import random
import threading
from dataclasses import dataclass

from ivr_cbt.telephony.base import CallRequest, PlacedCall


@dataclass(frozen=True)
class SentMessage:
    sid: str
    to: str
    body: str


class MockTelephony:
    """Record what the app asked for in ``placed_calls`` and ``sent_messages``.

    Sids are random (seeded, if ``seed`` is given, so simulations repeat exactly).
    """

    def __init__(self, *, seed: int | None = None):
        self.placed_calls: list[tuple[CallRequest, PlacedCall]] = []
        self.sent_messages: list[SentMessage] = []
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def _sid(self, kind: str) -> str:
        with self._lock:
            return f"{kind}{self._random.getrandbits(128):032x}"

    def place_call(self, request: CallRequest) -> PlacedCall:
        placed = PlacedCall(sid=self._sid("CA"))
        with self._lock:
            self.placed_calls.append((request, placed))
        return placed

    def send_sms(self, to: str, body: str) -> str:
        message = SentMessage(sid=self._sid("SM"), to=to, body=body)
        with self._lock:
            self.sent_messages.append(message)
        return message.sid
