"""The mock adapter: places nothing real and records everything, for tests, the demo and simulations.

``TELEPHONY_BACKEND=record`` only records placed calls; their outcome is whatever status
callbacks later say, as with Twilio. ``TELEPHONY_BACKEND=mock`` also has each call answered (or
not) at once by the offline phone, through the app's webhooks (ivr_cbt/simulator/callees.py).
With ``MOCK_RECORD_FILE`` every placement is also appended to a file as a JSON line, so
several processes' placements can be counted; it holds sids and URLs, never phone numbers.
"""

from __future__ import annotations

import json
import os
import random
import threading
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from ivr_cbt.telephony.base import CallRequest, PlacedCall

Answerer = Callable[[CallRequest, PlacedCall], None]


@dataclass(frozen=True)
class SentMessage:
    sid: str
    to: str
    body: str


class MockTelephony:
    """Record what the app asked for in ``placed_calls`` and ``sent_messages``.

    Sids are random (seeded, if ``seed`` is given, so simulations repeat exactly).
    """

    def __init__(
        self, *, seed: int | None = None, answer: Answerer | None = None, record_path: str | Path | None = None
    ):
        self.placed_calls: list[tuple[CallRequest, PlacedCall]] = []
        self.sent_messages: list[SentMessage] = []
        self.answer = answer
        self.record_path = Path(record_path) if record_path else None
        self._random = random.Random(seed)
        self._lock = threading.Lock()

    def _sid(self, kind: str) -> str:
        with self._lock:
            return f"{kind}{self._random.getrandbits(128):032x}"

    def place_call(self, request: CallRequest) -> PlacedCall:
        placed = PlacedCall(sid=self._sid("CA"))
        with self._lock:
            self.placed_calls.append((request, placed))
        if self.record_path is not None:
            line = json.dumps({"sid": placed.sid, "answer_url": request.answer_url, "pid": os.getpid()}) + "\n"
            # One write of one line in append mode: lines from several processes never interleave.
            with open(self.record_path, "a", encoding="utf-8") as record:
                record.write(line)
        if self.answer is not None:
            self.answer(request, placed)
        return placed

    def send_sms(self, to: str, body: str) -> str:
        message = SentMessage(sid=self._sid("SM"), to=to, body=body)
        with self._lock:
            self.sent_messages.append(message)
        return message.sid
