"""Who picks up when the mock adapter rings a number: scripted callees played by the offline phone.

With ``TELEPHONY_BACKEND=mock`` every placed call is answered (or not) here, at once, through the
app's real webhooks. A callee book maps phone numbers to what happens on successive calls:

    "+12025550101":            # a list: one entry per call, the last one repeats
      - no-answer
      - answer: "1234,5,7,4200#,3,2"
    "+12025550103":
      - machine
    default: no-answer          # everyone else

Entries: ``answer: SCRIPT`` (see ivr_cbt/simulator/callers.py), ``no-answer``, ``busy``,
``failed``, ``machine`` (an answering machine picks up).
"""

from __future__ import annotations

import threading
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

from flask import Flask

from ivr_cbt.callflow.yamlio import load
from ivr_cbt.clock import SimulatedClock
from ivr_cbt.simulator.callers import ScriptedCaller
from ivr_cbt.simulator.phone import CallResult, OfflinePhone
from ivr_cbt.simulator.transport import WsgiTransport
from ivr_cbt.telephony.base import CallRequest, PlacedCall

KINDS = ("answer", "no-answer", "busy", "failed", "machine")


@dataclass(frozen=True)
class Pickup:
    kind: str
    script: str = ""

    @classmethod
    def parse(cls, raw) -> Pickup:
        if isinstance(raw, dict) and set(raw) == {"answer"}:
            return cls("answer", str(raw["answer"]))
        if isinstance(raw, str) and raw in KINDS and raw != "answer":
            return cls(raw)
        raise ValueError(f"not a callee entry: {raw!r} (use answer: SCRIPT, no-answer, busy, failed or machine)")


class CalleeBook:
    """Answers the mock adapter's calls with the offline phone, driving ``app`` in-process."""

    def __init__(self, app: Flask, book: dict[str, list[Pickup]], default: Pickup = Pickup("no-answer")):
        self.app = app
        self.book = book
        self.default = default
        self._calls_made: dict[str, int] = defaultdict(int)
        self._lock = threading.Lock()
        self.results: list[tuple[str, Pickup, CallResult]] = []  # (number, what happened, the call)

    @classmethod
    def from_file(cls, app: Flask, path: Path) -> CalleeBook:
        raw, _ = load(Path(path))
        raw = dict(raw or {})
        default = Pickup.parse(raw.pop("default", "no-answer"))
        return cls(app, {str(number): [Pickup.parse(e) for e in entries] for number, entries in raw.items()}, default)

    def add(self, number: str, *pickups: Pickup) -> None:
        self.book[number] = list(pickups)

    def pickup_for(self, number: str) -> Pickup:
        with self._lock:
            index = self._calls_made[number]
            self._calls_made[number] += 1
        entries = self.book.get(number)
        if not entries:
            return self.default
        return entries[min(index, len(entries) - 1)]

    def __call__(self, request: CallRequest, placed: PlacedCall) -> None:
        pickup = self.pickup_for(request.to)
        clock = self.app.extensions["clock"]
        phone = OfflinePhone(
            WsgiTransport(self.app),
            auth_token=self.app.config["TWILIO_AUTH_TOKEN"],
            account_sid=self.app.config["TWILIO_ACCOUNT_SID"],
            public_base_url=self.app.config["PUBLIC_BASE_URL"],
            clock=clock if isinstance(clock, SimulatedClock) else None,
        )
        common = {"from_": request.from_, "to": request.to, "call_sid": placed.sid}
        if pickup.kind in ("no-answer", "busy", "failed"):
            result = phone.ring_out(outcome=pickup.kind, status_callback=request.status_callback_url, **common)
        else:
            result = self._answer(phone, pickup, request, common)
        with self._lock:
            self.results.append((request.to, pickup, result))

    @staticmethod
    def _answer(phone: OfflinePhone, pickup: Pickup, request: CallRequest, common: dict) -> CallResult:
        return phone.call(
            ScriptedCaller.parse(pickup.script),
            direction="outbound-api",
            answered_by="machine_start" if pickup.kind == "machine" else "human",
            answer_url=request.answer_url,
            status_callback=request.status_callback_url,
            status_events=request.status_events,
            **common,
        )


def attempt_of(url: str) -> int | None:
    """The attempt id in a scheduled call's webhook URL, if any."""
    values = parse_qs(urlsplit(url).query).get("a")
    return int(values[0]) if values else None
