"""The weekly log: one row per program week, week 0 (baseline) to the current one, for many patients at once."""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.models import Answer, CheckIn, CheckinStatus, Patient
from ivr_cbt.patients import program_week

DUE = "due"  # the current week, no check-in yet
MISSED = CheckinStatus.MISSED.value  # a past week without a check-in


@dataclass(frozen=True)
class Week:
    week: int
    status: str  # a check-in status, or "due" / "missed" when there is no check-in
    answers: dict[str, int | None] = field(default_factory=dict)  # item -> value; None when skipped
    updated_at: datetime | None = None
    completed_at: datetime | None = None

    def value(self, item: str) -> int | None:
        return self.answers.get(item)


@dataclass(frozen=True)
class PatientWeeks:
    """A patient's program so far: ``weeks[i].week == i`` for every week up to ``current``."""

    patient: Patient
    current: int
    weeks: list[Week]

    def starts(self, week: int) -> date:
        return self.patient.program_start + timedelta(days=7 * week)


def checkin_weeks(rows: Iterable[sa.Row]) -> dict[int, dict[int, Week]]:
    """Fold (patient_id, week, status, updated_at, completed_at, item_key, value) rows into weeks."""
    found: dict[int, dict[int, Week]] = defaultdict(dict)
    for row in rows:
        week = found[row.patient_id].get(row.week)
        if week is None:
            status = CheckinStatus(row.status).value
            week = found[row.patient_id][row.week] = Week(row.week, status, {}, row.updated_at, row.completed_at)
        if row.item_key is not None:
            week.answers[row.item_key] = row.value
    return found


def checkin_rows(patient_ids) -> sa.Select:
    """Check-ins with their answers for ``patient_ids`` (a list or a subquery), answer by answer."""
    return (
        sa.select(
            CheckIn.patient_id,
            CheckIn.week,
            CheckIn.status,
            CheckIn.updated_at,
            CheckIn.completed_at,
            Answer.item_key,
            Answer.value,
        )
        .outerjoin(Answer, Answer.checkin_id == CheckIn.id)
        .where(CheckIn.patient_id.in_(patient_ids))
    )


def load(session: orm.Session, patients: Sequence[Patient], now: datetime) -> list[PatientWeeks]:
    """Every week of every patient's program up to ``now``, in two queries whatever their number."""
    found = checkin_weeks(session.execute(checkin_rows([p.id for p in patients])))
    logs = []
    for patient in patients:
        current = program_week(patient.program_start, patient.timezone, now)
        weeks = found.get(patient.id, {})
        filled = [weeks.get(w) or Week(w, DUE if w == current else MISSED) for w in range(current + 1)]
        # A check-in recorded for a later week (a clock moved back) is still shown.
        filled += [weeks[w] for w in sorted(weeks) if w > current]
        logs.append(PatientWeeks(patient, current, filled))
    return logs


# --- exports ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_rows(logs: Sequence[PatientWeeks], items: Sequence[str]) -> list[dict]:
    """Rows for CSV and JSON: patient id, week, its local start date, status and every item's value."""
    return [
        {
            "patient_id": log.patient.id,
            "week": week.week,
            "week_start": log.starts(week.week).isoformat(),
            "status": week.status,
            "answers": {item: week.value(item) for item in items},
            "completed_at": _iso(week.completed_at),
        }
        for log in logs
        for week in log.weeks
    ]


def to_csv(rows: Sequence[dict], items: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["patient_id", "week", "week_start", "status", *items, "completed_at"])
    for row in rows:
        values = ("" if row["answers"][item] is None else row["answers"][item] for item in items)
        writer.writerow(
            [row["patient_id"], row["week"], row["week_start"], row["status"], *values, row["completed_at"] or ""]
        )
    return buffer.getvalue()
