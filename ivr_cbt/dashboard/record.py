"""A patient's record for their therapist: the weekly log, triage flags, charts, calls and alerts."""

from __future__ import annotations

from collections import defaultdict
from dataclasses import dataclass
from datetime import datetime

import sqlalchemy as sa
from markupsafe import Markup
from sqlalchemy import orm

from ivr_cbt.dashboard import charts, triage
from ivr_cbt.dashboard.caseload import open_alert_counts
from ivr_cbt.dashboard.weekly import PatientWeeks, load
from ivr_cbt.models import Alert, Answer, Call, CheckIn, Patient, PatientStatus

STEPS, SLEEP = "steps_avg", "sleep_quality"
MACHINE_PREFIXES = ("machine", "fax")


@dataclass(frozen=True)
class CallEntry:
    call: Call
    week: int | None
    answers: list[Answer]
    outcome: str


@dataclass(frozen=True)
class PatientRecord:
    log: PatientWeeks
    flags: list[triage.Flag]
    charts: list[Markup]
    calls: list[CallEntry]
    alerts: list[Alert]


def call_outcome(call: Call, answers: int) -> str:
    """A call's outcome in a few words, from its status, who answered and what it recorded."""
    if call.answered_by and call.answered_by.startswith(MACHINE_PREFIXES):
        return "answering machine: voicemail-safe message left"
    if call.status != "completed":
        return call.status.replace("-", " ")
    if call.checkin_id is None:
        return "ended before the PIN was confirmed"
    if answers:
        return f"{answers} answer{'s' if answers != 1 else ''} recorded"
    return "no new answers"


def patient_record(session: orm.Session, patient: Patient, now: datetime) -> PatientRecord:
    """Everything the patient page shows, in a handful of queries however long the program."""
    (log,) = load(session, [patient], now)
    ids = sa.select(sa.literal(patient.id))
    found = triage.flags(
        log.weeks,
        log.current,
        open_alerts=open_alert_counts(session, ids).get(patient.id, {}),
        active=patient.status == PatientStatus.ACTIVE,
    )
    return PatientRecord(log, found, draw_charts(log), _calls(session, patient.id), _alerts(session, patient.id))


def draw_charts(log: PatientWeeks) -> list[Markup]:
    """Pain (with baseline and the +2 line), sleep, steps and practice days over the program."""
    weeks = max(len(log.weeks), 2)

    def points(item: str) -> list[charts.Point]:
        return [(w.week, w.value(item)) for w in log.weeks]

    baseline = log.weeks[0].value(triage.PAIN) if log.weeks else None
    references = []
    if baseline is not None:
        references = [
            charts.Reference(f"baseline {baseline}", baseline),
            charts.Reference(f"baseline + {triage.PAIN_RISE}", min(baseline + triage.PAIN_RISE, 10)),
        ]
    steps = points(STEPS)
    return [
        charts.line_chart(
            "chart-pain",
            "Average pain (0 = none, 10 = worst imaginable)",
            points(triage.PAIN),
            weeks=weeks,
            y_max=10,
            y_ticks=(0, 5, 10),
            references=references,
            unit="Pain",
        ),
        charts.line_chart(
            "chart-sleep",
            "Sleep quality (0 = worst, 10 = best)",
            points(SLEEP),
            weeks=weeks,
            y_max=10,
            y_ticks=(0, 5, 10),
            unit="Sleep quality",
        ),
        charts.line_chart(
            "chart-steps", "Average daily steps", steps, weeks=weeks, y_max=charts.nice_max([v for _, v in steps], 1000)
        ),
        charts.bar_chart("chart-practice", "Practice days (of 7)", points(triage.PRACTICE), weeks=weeks, y_max=7),
    ]


def _calls(session: orm.Session, patient_id: int) -> list[CallEntry]:
    calls = session.execute(
        sa.select(Call, CheckIn.week)
        .outerjoin(CheckIn, CheckIn.id == Call.checkin_id)
        .where(Call.patient_id == patient_id)
        .order_by(Call.created_at.desc(), Call.id.desc())
    ).all()
    by_call: dict[str, list[Answer]] = defaultdict(list)
    answers = session.scalars(
        sa.select(Answer)
        .join(CheckIn, CheckIn.id == Answer.checkin_id)
        .where(CheckIn.patient_id == patient_id)
        .order_by(Answer.id)
    )
    for answer in answers:
        by_call[answer.call_sid].append(answer)
    return [
        CallEntry(call, week, by_call.get(call.call_sid, []), call_outcome(call, len(by_call.get(call.call_sid, []))))
        for call, week in calls
    ]


def _alerts(session: orm.Session, patient_id: int) -> list[Alert]:
    query = sa.select(Alert).where(Alert.patient_id == patient_id).order_by(Alert.created_at.desc(), Alert.id.desc())
    return list(session.scalars(query))
