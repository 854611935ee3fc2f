"""Check-in services: verify the caller, open the week's check-in, record answers, close it.

Each function adds to the caller's session; the webhook commits once per request, so every
answer is durable as soon as the request that delivered it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.callflow import spec
from ivr_cbt.db import insert_ignoring_conflicts
from ivr_cbt.models import Alert, Answer, AuditEvent, CheckIn, CheckinStatus, Patient
from ivr_cbt.patients import program_week
from ivr_cbt.security import verify_pin

# After this many calls that failed identification within the window, a patient's PIN is
# refused on every call until the window has passed (or a clinician resets it).
LOCKOUT_FAILED_CALLS = 5
LOCKOUT_WINDOW = timedelta(hours=24)


def verify_caller(
    session: orm.Session, *, patient_id: int | None, code: str | None, pin: str, pepper: str, now: datetime
) -> Patient | None:
    """Return the patient these credentials prove, or None.

    ``patient_id`` is the patient the call pre-selected (outbound call, or a known caller id);
    ``code`` is the patient code an unknown caller typed.
    """
    if code is not None:
        patient = session.scalar(sa.select(Patient).where(Patient.code == code))
    elif patient_id is not None:
        patient = session.get(Patient, patient_id)
    else:
        patient = None
    if patient is None:
        return None
    if is_locked_out(session, patient.id, now):
        audit.record(session, now, "system", "identity_locked_out", patient_id=patient.id)
        return None
    return patient if verify_pin(pin, patient.pin_hash, pepper) else None


def is_locked_out(session: orm.Session, patient_id: int, now: datetime) -> bool:
    failures = session.scalar(
        sa.select(sa.func.count())
        .select_from(AuditEvent)
        .where(
            AuditEvent.patient_id == patient_id,
            AuditEvent.action == "identity_failed",
            AuditEvent.at > now - LOCKOUT_WINDOW,
        )
    )
    return failures >= LOCKOUT_FAILED_CALLS


def open_checkin(session: orm.Session, patient: Patient, now: datetime, first_item: str | None) -> tuple[CheckIn, set[str]]:
    """Get or create the patient's check-in for the current program week; return it and the items it holds."""
    week = program_week(patient.program_start, patient.timezone, now)
    insert_ignoring_conflicts(
        session,
        CheckIn.__table__,
        {
            "patient_id": patient.id,
            "week": week,
            "status": CheckinStatus.IN_PROGRESS.value,
            "next_item": first_item,
            "started_at": now,
            "updated_at": now,
        },
    )
    checkin = session.scalar(sa.select(CheckIn).where(CheckIn.patient_id == patient.id, CheckIn.week == week))
    if checkin.status in (CheckinStatus.PARTIAL, CheckinStatus.MISSED):
        checkin.status = CheckinStatus.IN_PROGRESS
        checkin.updated_at = now
    answered = set(session.scalars(sa.select(Answer.item_key).where(Answer.checkin_id == checkin.id)))
    return checkin, answered


def record_answer(
    session: orm.Session, checkin_id: int, item: spec.Item, answer: spec.RecordAnswer, call_sid: str, now: datetime
) -> bool:
    """Store one answer with its scale; an item already answered keeps its first answer."""
    return insert_ignoring_conflicts(
        session,
        Answer.__table__,
        {
            "checkin_id": checkin_id,
            "item_key": answer.item,
            "value": answer.value,
            "skipped": answer.skipped,
            "raw_input": answer.raw[:200] if answer.raw else None,
            "input_mode": answer.mode,
            "confidence": answer.confidence,
            "scale_min": item.min,
            "scale_max": item.max,
            "scale_anchors": item.anchors,
            "scale_direction": item.direction,
            "call_sid": call_sid,
            "answered_at": now,
        },
    )


def update_progress(session: orm.Session, checkin_id: int, answered: Sequence[str], items: Sequence[str], now: datetime) -> None:
    """Point the check-in at its first unanswered item; mark it complete when none is left."""
    remaining = [key for key in items if key not in set(answered)]
    values: dict = {"next_item": remaining[0] if remaining else None, "updated_at": now}
    if not remaining:
        values.update(status=CheckinStatus.COMPLETE, completed_at=now)
    session.execute(
        sa.update(CheckIn)
        .where(CheckIn.id == checkin_id, CheckIn.status != CheckinStatus.COMPLETE)
        .values(**values)
    )


def close_after_call(session: orm.Session, checkin_id: int, now: datetime) -> None:
    """A call ended: a check-in it left unfinished becomes partial (its answers stay)."""
    session.execute(
        sa.update(CheckIn)
        .where(CheckIn.id == checkin_id, CheckIn.status == CheckinStatus.IN_PROGRESS)
        .values(status=CheckinStatus.PARTIAL, updated_at=now)
    )


def open_alert(
    session: orm.Session, *, patient_id: int, kind: str, checkin_id: int | None, call_sid: str | None, now: datetime
) -> Alert:
    alert = Alert(patient_id=patient_id, kind=kind, checkin_id=checkin_id, call_sid=call_sid, created_at=now)
    session.add(alert)
    session.flush()
    audit.record(session, now, "system", "alert_opened", patient_id=patient_id, call_sid=call_sid, alert_id=alert.id, kind=kind)
    return alert
