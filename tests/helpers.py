"""Helpers for request-level tests: signed webhook posts and TwiML parsing."""

from __future__ import annotations

import io
import wave
import xml.etree.ElementTree as ET

import sqlalchemy as sa
from twilio.request_validator import RequestValidator

from ivr_cbt import db, exports
from ivr_cbt.models import Alert, AuditEvent, Call

from .conftest import AUTH_TOKEN, PROGRAM_NUMBER, PUBLIC_BASE_URL


def sid(n: int) -> str:
    return f"CA{n:032x}"


def signed_post(
    client,
    path: str,
    params: dict[str, str],
    *,
    token: str = AUTH_TOKEN,
    base: str = PUBLIC_BASE_URL,
    signature: str | None = None,
):
    """POST ``params`` to ``path`` signed as Twilio would sign it for ``base`` + path."""
    if signature is None:
        signature = RequestValidator(token).compute_signature(base + path, params)
    return client.post(path, data=params, headers={"X-Twilio-Signature": signature})


def answer_params(
    call_sid: str, *, from_: str, to: str = PROGRAM_NUMBER, direction: str = "inbound", **extra
) -> dict[str, str]:
    return {
        "CallSid": call_sid,
        "AccountSid": "AC" + "1" * 32,
        "From": from_,
        "To": to,
        "CallStatus": "in-progress",
        "Direction": direction,
        "ApiVersion": "2010-04-01",
        **extra,
    }


def twiml(response) -> ET.Element:
    assert response.status_code == 200, response.get_data(as_text=True)
    assert response.content_type.startswith("text/xml")
    return ET.fromstring(response.get_data(as_text=True))


def gather_action(root: ET.Element) -> str:
    """The path (and query) the Gather in ``root`` posts to, relative to the public base URL."""
    (gather,) = root.findall("Gather")
    return gather.get("action").removeprefix(PUBLIC_BASE_URL)


def spoken(root: ET.Element) -> str:
    return " ".join(element.text or "" for element in root.iter("Say"))


def checkins(app, patient_id: int | None = None) -> list[dict]:
    with app.app_context():
        items = app.extensions["voice_settings"].flows["weekly_checkin"].item_keys()
        return exports.checkins(db.session(), items, patient_id)


def rows(app, model, *where):
    with app.app_context():
        return list(db.session().scalars(sa.select(model).where(*where).order_by(model.id)))


def audit_actions(app, patient_id: int | None = None) -> list[str]:
    where = [AuditEvent.patient_id == patient_id] if patient_id is not None else []
    return [event.action for event in rows(app, AuditEvent, *where)]


def alerts_for(app, patient_id: int) -> list[Alert]:
    return rows(app, Alert, Alert.patient_id == patient_id)


def call_row(app, call_sid: str) -> Call:
    (row,) = rows(app, Call, Call.call_sid == call_sid)
    return row


def wav(seconds: float = 1.0) -> bytes:
    """A silent 8 kHz mono WAV clip (a therapist's recording, for upload tests)."""
    buffer = io.BytesIO()
    with wave.open(buffer, "wb") as clip:
        clip.setnchannels(1)
        clip.setsampwidth(2)
        clip.setframerate(8000)
        clip.writeframes(b"\0\0" * int(8000 * seconds))
    return buffer.getvalue()
