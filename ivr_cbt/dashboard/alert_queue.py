"""Alerts for a therapist: open ones first, acknowledged ones kept as history."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt import audit
from ivr_cbt.models import Alert, CheckIn, Patient

HISTORY = 100  # acknowledged alerts shown
NOTE_MAX = 2000


@dataclass(frozen=True)
class AlertEntry:
    alert: Alert
    patient: Patient
    week: int | None


def alert_queue(session: orm.Session, patient_ids: sa.Select) -> tuple[list[AlertEntry], list[AlertEntry]]:
    """Open alerts (oldest first) and the latest acknowledged ones (newest first) among ``patient_ids``."""
    base = (
        sa.select(Alert, Patient, CheckIn.week)
        .join(Patient, Patient.id == Alert.patient_id)
        .outerjoin(CheckIn, CheckIn.id == Alert.checkin_id)
        .where(Alert.patient_id.in_(patient_ids))
    )
    open_ = session.execute(base.where(Alert.acknowledged_at.is_(None)).order_by(Alert.created_at, Alert.id))
    done = session.execute(
        base.where(Alert.acknowledged_at.is_not(None))
        .order_by(Alert.acknowledged_at.desc(), Alert.id.desc())
        .limit(HISTORY)
    )
    return [AlertEntry(*row) for row in open_], [AlertEntry(*row) for row in done]


def acknowledge(
    session: orm.Session, patient_ids: sa.Select, alert_id: int, *, note: str, by: str, actor: str, now: datetime
) -> Alert | None:
    """Acknowledge an alert among ``patient_ids`` with a note; None if there is no such alert to see.

    Acknowledging twice changes nothing: the first acknowledgement and its note stand.
    """
    alert = session.scalar(sa.select(Alert).where(Alert.id == alert_id, Alert.patient_id.in_(patient_ids)))
    if alert is None or alert.acknowledged_at is not None:
        return alert
    alert.acknowledged_at, alert.acknowledged_by, alert.note = now, by, note.strip()[:NOTE_MAX]
    audit.record(session, now, actor, "alert_acknowledged", patient_id=alert.patient_id, alert_id=alert.id)
    return alert
