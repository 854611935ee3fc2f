"""Read what the outcome report needs from the database, as counts.

Every query is set-based (a fixed number of statements, whatever the number of patients) and
returns grouped counts, never a row per answer: pain is on a 0-10 scale, so "how many patients
of this arm went from baseline b to follow-up f" is a table of at most 121 cells per arm, from
which the statistics expand exact arrays. Portable SQL (window functions, CASE, COALESCE) that
SQLite and PostgreSQL both run.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date, datetime

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.models import Answer, AuditEvent, Call, CheckIn, CheckinKind, CheckinStatus, Patient

PAIN_ITEM = "pain_avg"
BASELINE_WEEK = 0
# Written by whatever fills a database with virtual patients (the cohort simulator): the report
# of such a database is labelled synthetic.
SYNTHETIC_ACTION = "synthetic_cohort"

_patients, _checkins, _answers, _calls, _audit = (
    Patient.__table__,
    CheckIn.__table__,
    Answer.__table__,
    Call.__table__,
    AuditEvent.__table__,
)
_arm = _patients.c.feedback_mode


@dataclass(frozen=True)
class Timepoint:
    """Baseline and follow-up pain at one timepoint: (arm, baseline, followup, followup_week) -> patients.

    ``baseline``, ``followup`` and ``followup_week`` are None where the patient has no such value,
    so the counts add up to every enrolled patient.
    """

    months: int
    week: int
    window: int
    counts: list[tuple[str, int | None, int | None, int | None, int]]


@dataclass
class Extract:
    enrolled: dict[str, int]
    timepoints: dict[int, Timepoint]
    pain_by_week: list[tuple[str, int, int, int]]  # arm, week, value, patients
    checkins: list[tuple[str, int, str, int]]  # arm, week, status, check-ins
    progress: list[tuple[str, date, int, int | None, int]]  # arm, start, weeks completed, last week, patients
    calls: list[tuple[str, str, bool, str | None, int]]  # arm, direction, answered, answered_by, calls
    stopped_at: list[tuple[str, str | None, int]]  # arm, next item of a partial check-in, check-ins
    items: list[tuple[str, str, bool, int]]  # arm, item, skipped, answers
    synthetic: list[dict] = field(default_factory=list)  # details of every synthetic-cohort mark


def target_week(months: int) -> int:
    """The program week that stands for ``months`` after week 0: round(months * 52 / 12) (3 -> 13)."""
    return round(months * 52 / 12)


def _value(arm) -> str:
    return getattr(arm, "value", arm)


def _rows(conn: sa.Connection, query) -> list[tuple]:
    return [(_value(row[0]), *row[1:]) for row in conn.execute(query)]


# Outcomes and adherence are weekly; daily monitoring check-ins (daily cadence) are not counted.
_WEEKLY = _checkins.c.kind == CheckinKind.WEEKLY.value


def _pain(item: str):
    return (
        sa.select(_checkins.c.patient_id, _checkins.c.week, _answers.c.value)
        .join_from(_checkins, _answers, _answers.c.checkin_id == _checkins.c.id)
        .where(_WEEKLY, _answers.c.item_key == item, _answers.c.value.is_not(None))
        .cte("pain")
    )


def timepoint(conn: sa.Connection, months: int, *, window: int, item: str = PAIN_ITEM) -> Timepoint:
    """Pair each patient's baseline (week 0) with their value nearest ``target_week(months)``.

    The follow-up value is the answered ``item`` in the week closest to the target within
    +-``window`` weeks; at equal distance the earlier week wins.
    """
    week = target_week(months)
    pain = _pain(item)
    base = sa.select(pain.c.patient_id, pain.c.value).where(pain.c.week == BASELINE_WEEK).subquery("base")
    ranked = (
        sa.select(
            pain.c.patient_id,
            pain.c.value,
            pain.c.week,
            sa.func.row_number()
            .over(partition_by=pain.c.patient_id, order_by=(sa.func.abs(pain.c.week - week), pain.c.week))
            .label("nearest"),
        )
        .where(pain.c.week.between(week - window, week + window))
        .subquery("ranked")
    )
    query = (
        sa.select(_arm, base.c.value, ranked.c.value, ranked.c.week, sa.func.count())
        .select_from(
            _patients.outerjoin(base, base.c.patient_id == _patients.c.id).outerjoin(
                ranked, sa.and_(ranked.c.patient_id == _patients.c.id, ranked.c.nearest == 1)
            )
        )
        .group_by(_arm, base.c.value, ranked.c.value, ranked.c.week)
    )
    return Timepoint(months, week, window, _rows(conn, query))


def extract(conn: sa.Connection, months: Iterable[int], *, window: int, item: str = PAIN_ITEM) -> Extract:
    """Run the report's queries on one connection (the caller holds the transaction)."""
    enrolled = dict(_rows(conn, sa.select(_arm, sa.func.count()).group_by(_arm)))
    by_checkin = (
        sa.select(_arm).join_from(_checkins, _patients, _patients.c.id == _checkins.c.patient_id).where(_WEEKLY)
    )
    with_answers = by_checkin.join(_answers, _answers.c.checkin_id == _checkins.c.id)
    count = sa.func.count()

    completed = sa.func.sum(sa.case((_checkins.c.status == CheckinStatus.COMPLETE, 1), else_=0))
    per_patient = (
        sa.select(_checkins.c.patient_id, completed.label("completed"), sa.func.max(_checkins.c.week).label("last"))
        .where(_WEEKLY)
        .group_by(_checkins.c.patient_id)
        .subquery("per_patient")
    )
    weeks_completed = sa.func.coalesce(per_patient.c.completed, 0)
    progress = (
        sa.select(_arm, _patients.c.program_start, weeks_completed, per_patient.c.last, count)
        .select_from(_patients.outerjoin(per_patient, per_patient.c.patient_id == _patients.c.id))
        .group_by(_arm, _patients.c.program_start, weeks_completed, per_patient.c.last)
    )

    answered = sa.case((_calls.c.answered_at.is_not(None), 1), else_=0)
    calls = (
        sa.select(_arm, _calls.c.direction, answered, _calls.c.answered_by, count)
        .join_from(_calls, _patients, _patients.c.id == _calls.c.patient_id)
        .group_by(_arm, _calls.c.direction, answered, _calls.c.answered_by)
    )
    synthetic = conn.execute(
        sa.select(_audit.c.detail).where(_audit.c.action == SYNTHETIC_ACTION).order_by(_audit.c.id)
    ).scalars()
    return Extract(
        enrolled=enrolled,
        timepoints={m: timepoint(conn, m, window=window, item=item) for m in sorted(set(months))},
        pain_by_week=_rows(
            conn,
            with_answers.add_columns(_checkins.c.week, _answers.c.value, count)
            .where(_answers.c.item_key == item, _answers.c.value.is_not(None))
            .group_by(_arm, _checkins.c.week, _answers.c.value),
        ),
        checkins=[
            (arm, week, _value(status), n)
            for arm, week, status, n in _rows(
                conn,
                by_checkin.add_columns(_checkins.c.week, _checkins.c.status, count).group_by(
                    _arm, _checkins.c.week, _checkins.c.status
                ),
            )
        ],
        progress=_rows(conn, progress),
        calls=[(arm, direction, bool(ans), by, n) for arm, direction, ans, by, n in _rows(conn, calls)],
        stopped_at=_rows(
            conn,
            by_checkin.add_columns(_checkins.c.next_item, count)
            .where(_checkins.c.status == CheckinStatus.PARTIAL)
            .group_by(_arm, _checkins.c.next_item),
        ),
        items=_rows(
            conn,
            with_answers.add_columns(_answers.c.item_key, _answers.c.skipped, count).group_by(
                _arm, _answers.c.item_key, _answers.c.skipped
            ),
        ),
        synthetic=[dict(detail or {}) for detail in synthetic],
    )


def mark_synthetic(conn: sa.Connection, now: datetime, actor: str, **detail) -> None:
    """Record that this database holds a synthetic cohort (e.g. preset, seed, patients).

    The cohort simulator calls this once per run; every outcome report of the database is then
    labelled synthetic, with these details.
    """
    audit.record(conn, now, actor, SYNTHETIC_ACTION, **detail)
