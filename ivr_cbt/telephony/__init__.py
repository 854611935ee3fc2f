"""Telephony: the port (``base``), its adapters, and the one place that picks one."""

from __future__ import annotations

from flask import Flask, current_app

from ivr_cbt.telephony.base import CallRequest, PlacedCall, Telephony, TelephonyError

__all__ = ["CallRequest", "PlacedCall", "Telephony", "TelephonyError", "current", "init_app"]


def init_app(app: Flask) -> None:
    """Choose the adapter named by TELEPHONY_BACKEND, once."""
    backend = app.config["TELEPHONY_BACKEND"]
    if "TELEPHONY" in app.config:  # a test or a simulation passes its own instance
        adapter = app.config["TELEPHONY"]
    elif backend == "twilio":
        from ivr_cbt.telephony.twilio import TwilioTelephony

        adapter = TwilioTelephony(
            app.config["TWILIO_ACCOUNT_SID"],
            app.config["TWILIO_AUTH_TOKEN"],
            from_number=app.config["TWILIO_FROM_NUMBER"],
            timeout_s=app.config["TWILIO_HTTP_TIMEOUT"],
        )
    else:
        from ivr_cbt.telephony.mock import MockTelephony

        answer = _callee_book(app) if backend == "mock" else None
        adapter = MockTelephony(answer=answer, record_path=app.config["MOCK_RECORD_FILE"] or None)
    app.extensions["telephony"] = adapter


def _callee_book(app: Flask):
    """Who answers the mock adapter's calls: the demo patients, plus MOCK_CALLEES_FILE if set."""
    from ivr_cbt.demo import demo_callees
    from ivr_cbt.simulator.callees import CalleeBook

    path = app.config["MOCK_CALLEES_FILE"]
    book = CalleeBook.from_file(app, path) if path else CalleeBook(app, {})
    for number, pickups in demo_callees().items():
        book.book.setdefault(number, pickups)
    return book


def current() -> Telephony:
    return current_app.extensions["telephony"]
