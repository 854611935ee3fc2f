"""The offline phone and scripted callers: whole calls without a network or a Twilio account."""

from ivr_cbt.simulator.callers import HangUp, Press, ScriptedCaller, Silence, Speak
from ivr_cbt.simulator.phone import CallResult, OfflinePhone, PhoneError
from ivr_cbt.simulator.transport import FlaskTransport, HttpTransport, WsgiTransport

__all__ = [
    "CallResult",
    "FlaskTransport",
    "HangUp",
    "HttpTransport",
    "OfflinePhone",
    "PhoneError",
    "Press",
    "ScriptedCaller",
    "Silence",
    "Speak",
    "WsgiTransport",
]
