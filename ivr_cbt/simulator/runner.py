"""Run whole calls against an app in this process, as if at a chosen time."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime

import sqlalchemy as sa
from flask import Flask

from ivr_cbt import db
from ivr_cbt.calls import place_checkin_call
from ivr_cbt.clock import SimulatedClock
from ivr_cbt.models import Patient
from ivr_cbt.simulator.callers import Caller
from ivr_cbt.simulator.phone import CallResult, OfflinePhone
from ivr_cbt.simulator.transport import FlaskTransport, WsgiTransport
from ivr_cbt.telephony.mock import MockTelephony

_patients = Patient.__table__
_PATIENT = db.Prepared(
    sa.select(_patients.c.id, _patients.c.phone, _patients.c.language).where(_patients.c.id == sa.bindparam("b_id"))
)


def make_phone(
    app: Flask, *, clock: SimulatedClock | None = None, test_client: bool = False, **options
) -> OfflinePhone:
    """An offline phone wired to ``app`` in-process, signing with the app's auth token.

    It calls the app's WSGI entry point directly, or goes through Flask's test client if asked.
    """
    return OfflinePhone(
        FlaskTransport(app) if test_client else WsgiTransport(app),
        auth_token=app.config["TWILIO_AUTH_TOKEN"],
        account_sid=app.config["TWILIO_ACCOUNT_SID"],
        public_base_url=app.config["PUBLIC_BASE_URL"],
        clock=clock,
        **options,
    )


@contextmanager
def simulated_time(app: Flask, now: datetime) -> Iterator[SimulatedClock]:
    """Run the app on a simulated clock starting at ``now`` (in-process simulations only)."""
    previous = app.extensions["clock"]
    clock = previous if isinstance(previous, SimulatedClock) else SimulatedClock(now)
    clock.set(now)
    app.extensions["clock"] = clock
    try:
        yield clock
    finally:
        app.extensions["clock"] = previous


def place_call(
    app: Flask, patient_id: int, *, now: datetime, direction: str = "outbound", answered_by: str | None = "human"
) -> dict:
    """Set up a call for patient ``patient_id`` and return how the offline phone connects it
    (keyword arguments for ``OfflinePhone.call``).

    Outbound calls are placed through a mock adapter (never a real provider); inbound calls
    come from the patient's own number.
    """
    with app.app_context():
        conn = db.connection()
        patient = _PATIENT.first(conn, {"b_id": patient_id})
        if patient is None:
            raise LookupError(f"no patient {patient_id}")
        program_number = app.config["TWILIO_FROM_NUMBER"]
        if direction == "inbound":
            return {"from_": patient.phone, "to": program_number, "direction": "inbound"}
        settings = app.extensions["voice_settings"]
        adapter = app.extensions["telephony"]
        if not isinstance(adapter, MockTelephony) or adapter.answer is not None:
            # A simulation never rings a real phone, and here the phone below answers, not a callee book.
            adapter = MockTelephony()
        call_sid = place_checkin_call(conn, adapter, settings, patient, from_number=program_number, now=now)
        conn.commit()
        request = next(req for req, placed in reversed(adapter.placed_calls) if placed.sid == call_sid)
        return {
            "from_": program_number,
            "to": patient.phone,
            "direction": "outbound-api",
            "call_sid": call_sid,
            "answered_by": answered_by,
            "answer_url": request.answer_url,
            "status_callback": request.status_callback_url,
            "status_events": request.status_events,
        }


def run_call(
    app: Flask,
    patient_id: int,
    caller: Caller,
    *,
    now: datetime,
    direction: str = "outbound",
    answered_by: str | None = "human",
    test_client: bool = False,
    **phone_options,
) -> CallResult:
    """Play one call between the app and patient ``patient_id``, starting at ``now`` (see ``place_call``)."""
    with simulated_time(app, now) as clock:
        setup = place_call(app, patient_id, now=clock.now(), direction=direction, answered_by=answered_by)
        phone = make_phone(app, clock=clock, test_client=test_client, **phone_options)
        return phone.call(caller, **setup)
