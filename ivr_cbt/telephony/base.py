"""The telephony port, in our words. Adapters: ``mock`` (records) and ``twilio`` (real)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True)
class CallRequest:
    """Ask the provider to ring ``to`` and fetch ``answer_url`` when it connects."""

    to: str
    from_: str
    answer_url: str
    status_callback_url: str
    machine_detection: bool = True
    ring_timeout_s: int = 30
    time_limit_s: int = 900
    # Only "completed": it also carries busy, no-answer, failed and canceled, and the answer
    # webhook already says when a call connects. Every extra event is one more webhook per call.
    status_events: tuple[str, ...] = ("completed",)


@dataclass(frozen=True)
class PlacedCall:
    sid: str


class TelephonyError(RuntimeError):
    """The provider refused or failed.

    ``ambiguous`` is True when the call may have been placed anyway (a timeout, a dropped
    connection): the caller must not blindly dial again.
    """

    def __init__(self, message: str, *, ambiguous: bool):
        super().__init__(message)
        self.ambiguous = ambiguous


class Telephony(Protocol):
    def place_call(self, request: CallRequest) -> PlacedCall:
        """Place an outbound call."""

    def send_sms(self, to: str, body: str) -> str:
        """Send a short text message; return its provider id. Never put PHI in ``body``."""
