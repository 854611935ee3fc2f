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

        adapter = MockTelephony()
    app.extensions["telephony"] = adapter


def current() -> Telephony:
    return current_app.extensions["telephony"]
