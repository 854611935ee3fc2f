"""The caseload: a therapist's patients with this week's status, open alerts and triage flags.

Four queries whatever the number of patients: the patients, their recent weekly check-ins (week 0
and the three latest, ranked in SQL) with the answers triage reads, open alerts by kind, and
each patient's latest weekly message (its status: e.g. waiting for the therapist's review).
"""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.dashboard import triage
from ivr_cbt.dashboard.messages import LatestMessage, latest_messages
from ivr_cbt.dashboard.weekly import DUE, Week
from ivr_cbt.models import Alert, Answer, CheckIn, CheckinKind, CheckinStatus, Patient, PatientStatus
from ivr_cbt.patients import program_week

RECENT = 3  # latest check-ins triage needs besides week 0
TRIAGE_ITEMS = (triage.PAIN, triage.PRACTICE, triage.SAFETY)


# What the caseload shows of a patient: columns, not ORM objects (a caseload is hundreds of rows).
PATIENT_COLUMNS = (
    Patient.id,
    Patient.name,
    Patient.timezone,
    Patient.program_start,
    Patient.status,
    Patient.feedback_mode,
)


@dataclass(frozen=True)
class CaseloadRow:
    patient: sa.Row  # PATIENT_COLUMNS
    week: int
    this_week: str  # the current week's check-in status, "due", or the patient's status if not active
    last_checkin: Week | None
    open_alerts: int
    flags: list[triage.Flag]
    urgency: int
    feedback: LatestMessage | None = None  # the latest week's message


def _recent_checkins(patient_ids: sa.Select) -> sa.Select:
    ranked = (
        sa.select(
            CheckIn.id,
            CheckIn.patient_id,
            CheckIn.week,
            CheckIn.status,
            CheckIn.updated_at,
            CheckIn.completed_at,
            sa.func.row_number().over(partition_by=CheckIn.patient_id, order_by=CheckIn.week.desc()).label("rank"),
        )
        .where(
            CheckIn.patient_id.in_(patient_ids),
            CheckIn.kind == CheckinKind.WEEKLY,  # daily check-ins are not the weeks triage reads
            CheckIn.status != CheckinStatus.MISSED,
        )
        .subquery()
    )
    # One row per check-in, the answers triage reads as columns (a skipped answer and one not given are
    # both NULL: triage reads neither).
    columns = [
        ranked.c.id,
        ranked.c.patient_id,
        ranked.c.week,
        ranked.c.status,
        ranked.c.updated_at,
        ranked.c.completed_at,
    ]
    return (
        sa.select(
            *columns[1:],
            *(sa.func.max(sa.case((Answer.item_key == item, Answer.value))).label(item) for item in TRIAGE_ITEMS),
        )
        .outerjoin(Answer, sa.and_(Answer.checkin_id == ranked.c.id, Answer.item_key.in_(TRIAGE_ITEMS)))
        .where(sa.or_(ranked.c.rank <= RECENT, ranked.c.week == 0))
        .group_by(*columns)
    )


def _weeks(rows) -> dict[int, dict[int, Week]]:
    found: dict[int, dict[int, Week]] = defaultdict(dict)
    for patient_id, week, status, updated_at, completed_at, *values in rows:
        answers = {item: value for item, value in zip(TRIAGE_ITEMS, values, strict=True) if value is not None}
        found[patient_id][week] = Week(week, str(status), answers, updated_at, completed_at)
    return found


def open_alert_counts(session: orm.Session, patient_ids: sa.Select) -> dict[int, dict[str, int]]:
    counts: dict[int, dict[str, int]] = defaultdict(dict)
    query = (
        sa.select(Alert.patient_id, Alert.kind, sa.func.count())
        .where(Alert.patient_id.in_(patient_ids), Alert.acknowledged_at.is_(None))
        .group_by(Alert.patient_id, Alert.kind)
    )
    for patient_id, kind, count in session.execute(query):
        counts[patient_id][kind] = count
    return counts


def caseload(session: orm.Session, patient_ids: sa.Select, now: datetime) -> list[CaseloadRow]:
    """The patients among ``patient_ids``, the most urgent first."""
    patients = session.execute(sa.select(*PATIENT_COLUMNS).where(Patient.id.in_(patient_ids))).all()
    weeks = _weeks(session.execute(_recent_checkins(patient_ids)))
    alerts = open_alert_counts(session, patient_ids)
    latest = latest_messages(session, patient_ids)
    rows = []
    for patient in patients:
        current = program_week(patient.program_start, patient.timezone, now)
        recent = [weeks[patient.id][w] for w in sorted(weeks.get(patient.id, {}))]
        active = patient.status == PatientStatus.ACTIVE
        found = triage.flags(recent, current, open_alerts=alerts.get(patient.id, {}), active=active)
        this_week = next((w.status for w in recent if w.week == current), DUE)
        rows.append(
            CaseloadRow(
                patient=patient,
                week=current,
                this_week=this_week if active else patient.status.value,
                last_checkin=recent[-1] if recent else None,
                open_alerts=sum(alerts.get(patient.id, {}).values()),
                flags=found,
                urgency=triage.urgency(found),
                feedback=latest.get(patient.id),
            )
        )
    # Most urgent first; then whoever has gone longest without a check-in.
    rows.sort(key=lambda r: (-r.urgency, r.last_checkin.updated_at.timestamp() if r.last_checkin else 0, r.patient.id))
    return rows
