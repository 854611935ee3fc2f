"""Check-in services: verify the caller, open the week's check-in, record answers, close it.

They run on the webhook hot path, so they use prebuilt Core statements on the request's
connection; the webhook commits once per request, so every answer is durable as soon as the
request that delivered it returns.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import date, datetime, timedelta

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.callflow import spec
from ivr_cbt.db import Prepared, insert_returning_key, send_insert_ignoring_conflicts
from ivr_cbt.models import Alert, Answer, AuditEvent, CheckIn, CheckinKind, CheckinStatus, Patient
from ivr_cbt.patients import local_date, program_week
from ivr_cbt.security import verify_pin

# After this many calls that failed identification within the window, a patient's PIN is
# refused on every call until the window has passed.
LOCKOUT_FAILED_CALLS = 5
LOCKOUT_WINDOW = timedelta(hours=24)

_patients, _checkins, _answers, _alerts, _audit = (
    Patient.__table__,
    CheckIn.__table__,
    Answer.__table__,
    Alert.__table__,
    AuditEvent.__table__,
)
_PATIENT_COLUMNS = (
    _patients.c.id,
    _patients.c.pin_hash,
    _patients.c.language,
    _patients.c.timezone,
    _patients.c.program_start,
    _patients.c.call_day,
)
_FAILURES = (
    sa.select(sa.func.count())
    .select_from(_audit)
    .where(
        _audit.c.patient_id == sa.bindparam("b_id"),
        _audit.c.action == "identity_failed",
        _audit.c.at > sa.bindparam("b_since"),
    )
)
# The patient and their recent failed identifications in one round trip (see is_locked_out).
_RECENT_FAILURES = (
    sa.select(sa.func.count())
    .select_from(_audit)
    .where(
        _audit.c.patient_id == _patients.c.id,
        _audit.c.action == "identity_failed",
        _audit.c.at > sa.bindparam("b_since"),
    )
    .correlate(_patients)
    .scalar_subquery()
    .label("recent_failures")
)
_PATIENT_BY_ID = Prepared(sa.select(*_PATIENT_COLUMNS, _RECENT_FAILURES).where(_patients.c.id == sa.bindparam("b_id")))
_PATIENT_BY_CODE = Prepared(
    sa.select(*_PATIENT_COLUMNS, _RECENT_FAILURES).where(_patients.c.code == sa.bindparam("b_code"))
)
_REOPEN = Prepared(sa.update(_checkins).where(_checkins.c.id == sa.bindparam("b_id")))
_ANSWERED = Prepared(sa.select(_answers.c.item_key).where(_answers.c.checkin_id == sa.bindparam("b_id")))
_UNLESS_COMPLETE = Prepared(
    sa.update(_checkins).where(
        _checkins.c.id == sa.bindparam("b_id"), _checkins.c.status != CheckinStatus.COMPLETE.value
    )
)
_IF_IN_PROGRESS = Prepared(
    sa.update(_checkins).where(
        _checkins.c.id == sa.bindparam("b_id"), _checkins.c.status == CheckinStatus.IN_PROGRESS.value
    )
)
_NEW_ALERT = sa.insert(_alerts).returning(_alerts.c.id)


def verify_caller(
    conn: sa.Connection, *, patient_id: int | None, code: str | None, pin: str, pepper: str, now: datetime
) -> sa.Row | None:
    """Return the patient (id, pin_hash, language, timezone, program_start, call_day) these credentials prove.

    None if they prove nobody.

    ``patient_id`` is the patient the call pre-selected (outbound call, or a known caller id);
    ``code`` is the patient code an unknown caller typed.
    """
    since = now - LOCKOUT_WINDOW
    if code is not None:
        patient = _PATIENT_BY_CODE.first(conn, {"b_code": code, "b_since": since})
    elif patient_id is not None:
        patient = _PATIENT_BY_ID.first(conn, {"b_id": patient_id, "b_since": since})
    else:
        patient = None
    if patient is None:
        return None
    if patient.recent_failures >= LOCKOUT_FAILED_CALLS:  # is_locked_out, read with the patient
        audit.record(conn, now, "system", "identity_locked_out", patient_id=patient.id)
        return None
    return patient if verify_pin(pin, patient.pin_hash, pepper) else None


def is_locked_out(conn: sa.Connection, patient_id: int, now: datetime) -> bool:
    failures = conn.execute(_FAILURES, {"b_id": patient_id, "b_since": now - LOCKOUT_WINDOW}).scalar()
    return failures >= LOCKOUT_FAILED_CALLS


def open_checkin(
    conn: sa.Connection,
    patient: sa.Row,
    now: datetime,
    first_item: str | None,
    *,
    kind: CheckinKind = CheckinKind.WEEKLY,
    week: int | None = None,
    day: date | None = None,
) -> tuple[int, set[str]]:
    """Get or create the patient's check-in; return its id and the items it holds.

    A weekly check-in belongs to a program week, a daily one to a local day: the given ones
    (a scheduled call's slot) or, by default, the patient's current ones.
    """
    if week is None:
        week = program_week(patient.program_start, patient.timezone, now)
    if kind == CheckinKind.DAILY and day is None:
        day = local_date(patient.timezone, now)
    created = insert_returning_key(
        conn,
        _checkins,
        {
            "patient_id": patient.id,
            "kind": kind.value,
            "week": week,
            "day": day if kind == CheckinKind.DAILY else None,
            "status": CheckinStatus.IN_PROGRESS.value,
            "next_item": first_item,
            "started_at": now,
            "updated_at": now,
        },
    )
    if created is not None:
        return created, set()  # a new check-in: in progress, nothing answered yet
    where = _checkins.c.day == day if kind == CheckinKind.DAILY else _checkins.c.week == week
    checkin = conn.execute(
        sa.select(_checkins.c.id, _checkins.c.status).where(
            _checkins.c.patient_id == patient.id, _checkins.c.kind == kind.value, where
        )
    ).one()
    if checkin.status in (CheckinStatus.PARTIAL, CheckinStatus.MISSED):
        _REOPEN.rowcount(conn, {"b_id": checkin.id, "status": CheckinStatus.IN_PROGRESS.value, "updated_at": now})
    return checkin.id, {row.item_key for row in _ANSWERED.rows(conn, {"b_id": checkin.id})}


def record_answer(
    conn: sa.Connection, checkin_id: int, item: spec.Item, answer: spec.RecordAnswer, call_sid: str, now: datetime
) -> None:
    """Store one answer with its scale; an item already answered keeps its first answer.

    On PostgreSQL the row goes to the server with the turn's next statement or its commit."""
    send_insert_ignoring_conflicts(
        conn,
        _answers,
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


def update_progress(
    conn: sa.Connection, checkin_id: int, answered: Sequence[str], items: Sequence[str], now: datetime
) -> None:
    """Point the check-in at its first unanswered item; mark it complete when none is left."""
    done = set(answered)
    remaining = [key for key in items if key not in done]
    values: dict = {"b_id": checkin_id, "next_item": remaining[0] if remaining else None, "updated_at": now}
    if not remaining:
        values.update(status=CheckinStatus.COMPLETE.value, completed_at=now)
    _UNLESS_COMPLETE.send(conn, values)


def close_after_call(conn: sa.Connection, checkin_id: int, now: datetime) -> None:
    """A call ended: a check-in it left unfinished becomes partial (its answers stay)."""
    _IF_IN_PROGRESS.send(conn, {"b_id": checkin_id, "status": CheckinStatus.PARTIAL.value, "updated_at": now})


def open_alert(
    conn: sa.Connection, *, patient_id: int, kind: str, checkin_id: int | None, call_sid: str | None, now: datetime
) -> int:
    """Open an alert; return its id."""
    alert_id = conn.execute(
        _NEW_ALERT,
        {"patient_id": patient_id, "kind": kind, "checkin_id": checkin_id, "call_sid": call_sid, "created_at": now},
    ).scalar_one()
    audit.record(
        conn, now, "system", "alert_opened", patient_id=patient_id, call_sid=call_sid, alert_id=alert_id, kind=kind
    )
    return alert_id
