"""The weekly log: one row per program week, week 0 (baseline) to the current one, for many patients at once.

Only WEEKLY check-ins are the log's outcomes. A patient on the daily cadence also has short
daily check-ins, which carry the week they fall in: they are counted per week beside it
(``daily_completed`` of ``daily_checkins``), never folded into the weekly answers.
"""

from __future__ import annotations

import csv
import io
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.models import Answer, CheckIn, CheckinKind, CheckinStatus, Patient
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
    daily_checkins: int = 0  # daily check-ins that week (daily cadence), started or complete
    daily_completed: int = 0

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

    @property
    def has_daily(self) -> bool:
        """Does the log have daily check-ins to show (the daily cadence, now or earlier)?"""
        return any(w.daily_checkins for w in self.weeks)


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
    """Weekly check-ins with their answers for ``patient_ids`` (a list or a subquery), answer by answer."""
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
        .where(CheckIn.patient_id.in_(patient_ids), CheckIn.kind == CheckinKind.WEEKLY)
    )


def daily_counts(patient_ids) -> sa.Select:
    """(patient_id, week, check-ins, completed) of the daily check-ins of ``patient_ids``, per week."""
    return (
        sa.select(
            CheckIn.patient_id,
            CheckIn.week,
            sa.func.count().label("checkins"),
            sa.func.sum(sa.case((CheckIn.status == CheckinStatus.COMPLETE, 1), else_=0)).label("completed"),
        )
        .where(CheckIn.patient_id.in_(patient_ids), CheckIn.kind == CheckinKind.DAILY)
        .group_by(CheckIn.patient_id, CheckIn.week)
    )


def load(session: orm.Session, patients: Sequence[Patient], now: datetime) -> list[PatientWeeks]:
    """Every week of every patient's program up to ``now``, in three queries whatever their number."""
    ids = [p.id for p in patients]
    found = checkin_weeks(session.execute(checkin_rows(ids)))
    daily: dict[int, dict[int, tuple[int, int]]] = defaultdict(dict)
    for row in session.execute(daily_counts(ids)):
        daily[row.patient_id][row.week] = (row.checkins, int(row.completed))
    logs = []
    for patient in patients:
        current = program_week(patient.program_start, patient.timezone, now)
        weeks, days = found.get(patient.id, {}), daily.get(patient.id, {})
        # A check-in recorded for a later week (a clock moved back) is still shown.
        later = sorted(w for w in {*weeks, *days} if w > current)
        filled = []
        for w in [*range(current + 1), *later]:
            week = weeks.get(w) or Week(w, DUE if w == current else MISSED)
            if w in days:
                week = replace(week, daily_checkins=days[w][0], daily_completed=days[w][1])
            filled.append(week)
        logs.append(PatientWeeks(patient, current, filled))
    return logs


# --- exports ---------------------------------------------------------------------------------


def _iso(value: datetime | None) -> str | None:
    return value.isoformat() if value is not None else None


def export_rows(logs: Sequence[PatientWeeks], items: Sequence[str]) -> list[dict]:
    """Rows for CSV and JSON: patient id, week, its local start date, the weekly check-in's status and every
    item's value, and the week's daily check-ins (started, completed; 0 on the weekly cadence)."""
    return [
        {
            "patient_id": log.patient.id,
            "week": week.week,
            "week_start": log.starts(week.week).isoformat(),
            "status": week.status,
            "answers": {item: week.value(item) for item in items},
            "completed_at": _iso(week.completed_at),
            "daily_checkins": week.daily_checkins,
            "daily_completed": week.daily_completed,
        }
        for log in logs
        for week in log.weeks
    ]


def to_csv(rows: Sequence[dict], items: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(
        ["patient_id", "week", "week_start", "status", *items, "completed_at", "daily_checkins", "daily_completed"]
    )
    for row in rows:
        values = ("" if row["answers"][item] is None else row["answers"][item] for item in items)
        writer.writerow(
            [
                row["patient_id"],
                row["week"],
                row["week_start"],
                row["status"],
                *values,
                row["completed_at"] or "",
                row["daily_checkins"],
                row["daily_completed"],
            ]
        )
    return buffer.getvalue()
