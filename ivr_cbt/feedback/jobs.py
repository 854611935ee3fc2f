"""Weekly generation: once a patient's program week has closed in their own time zone, build its message.

The scheduler runs :func:`generate_due` every few minutes; it is idempotent per (patient,
week) and set-based: a fixed number of queries per batch of patients, whatever their number.

* Who: active patients in the ``automated`` and ``guided`` arms (``monitoring`` gets none).
* Which week: the latest program week that has closed (local midnight at its end), within
  the program's modules. A week closed long ago without a message (the scheduler was down)
  is not caught up: only the latest message ever plays.
* Mode: ``automated`` messages are ready to play at once; ``guided`` ones wait for a
  therapist (``pending-review``).
* Late answers: a message not yet delivered is regenerated when its week's check-ins change
  after it was built (version + 1; a guided one goes back to review). A message a therapist
  edited is never overwritten: it is flagged ``source_changed`` instead (its summary and its
  assembled segments, what a revert restores, follow the new numbers).
"""

from __future__ import annotations

import logging
from collections import defaultdict
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from sqlalchemy.dialects import postgresql, sqlite

from ivr_cbt import audit
from ivr_cbt.db import is_sqlite
from ivr_cbt.feedback import rules
from ivr_cbt.feedback.program import Program
from ivr_cbt.feedback.summary import Goals, History, Summary, WeekData, goals_from_json, summarize
from ivr_cbt.models import (
    Answer,
    CheckIn,
    CheckinKind,
    CheckinStatus,
    FeedbackMessage,
    FeedbackMode,
    FeedbackStatus,
    GoalOverride,
    Patient,
    PatientStatus,
)

log = logging.getLogger(__name__)
BATCH = 5000
EPOCH = datetime(1970, 1, 1, tzinfo=UTC)

_patients, _checkins, _answers = Patient.__table__, CheckIn.__table__, Answer.__table__
_messages, _overrides = FeedbackMessage.__table__, GoalOverride.__table__
# The batch being built, as a temporary table the queries join on (exact, and dialect-neutral).
_due = sa.Table(
    "feedback_due",
    sa.MetaData(),
    sa.Column("patient_id", sa.Integer, primary_key=True),
    sa.Column("week", sa.Integer, nullable=False),
)
_CREATE_DUE = (
    "CREATE TEMPORARY TABLE IF NOT EXISTS feedback_due (patient_id INTEGER PRIMARY KEY, week INTEGER NOT NULL)"
)
_PATIENT_COLUMNS = (
    _patients.c.id,
    _patients.c.timezone,
    _patients.c.program_start,
    _patients.c.language,
    _patients.c.feedback_mode,
    _patients.c.program_weeks,
    _patients.c.cadence,
)


@dataclass
class GenerationReport:
    generated: int = 0
    regenerated: int = 0
    flagged: int = 0  # edited by a therapist, then new answers arrived
    unchanged: int = 0  # re-examined after a check-in changed, same message
    calls_planned: int | None = None  # feedback calls planned (FEEDBACK_DELIVERY=call only)

    def __str__(self) -> str:
        text = (
            f"generated {self.generated}, regenerated {self.regenerated}, "
            f"flagged {self.flagged}, unchanged {self.unchanged}"
        )
        return text if self.calls_planned is None else f"{text}; feedback calls planned {self.calls_planned}"


@dataclass(frozen=True)
class Built:
    """A message as the rules make it, with what it was made from."""

    patient: sa.Row
    summary: Summary
    segments: list[dict]
    source_stamp: datetime | None


# --- which weeks are due ---------------------------------------------------------------------------


def closed_week(start: date, today: date, weeks: int) -> int | None:
    """The latest program week that has closed by local date ``today``; None before week 0 closes."""
    days = (today - start).days
    if days < 7:
        return None
    return min(days // 7 - 1, weeks - 1)


def _local_today(zones: dict[str, date], timezone: str, now: datetime) -> date:
    if timezone not in zones:
        zones[timezone] = now.astimezone(ZoneInfo(timezone)).date()
    return zones[timezone]


def due_weeks(patients: Iterable[sa.Row], program: Program, now: datetime) -> list[tuple[sa.Row, int]]:
    """(patient, week) for every patient whose latest closed week is in the program."""
    zones: dict[str, date] = {}
    due = []
    for patient in patients:
        week = closed_week(
            patient.program_start,
            _local_today(zones, patient.timezone, now),
            min(patient.program_weeks, program.weeks),
        )
        if week is not None:
            due.append((patient, week))
    return due


# --- the job ---------------------------------------------------------------------------------------


def generate_due(conn: sa.Connection, program: Program, now: datetime, *, batch: int = BATCH) -> GenerationReport:
    """Generate every due message and regenerate stale ones; commit in batches."""
    report = GenerationReport()
    patients = conn.execute(
        sa.select(*_PATIENT_COLUMNS).where(
            _patients.c.status == PatientStatus.ACTIVE.value,
            _patients.c.feedback_mode != FeedbackMode.MONITORING.value,
        )
    ).all()
    latest = {
        row.patient_id: row.week
        for row in conn.execute(
            sa.select(_messages.c.patient_id, sa.func.max(_messages.c.week).label("week")).group_by(
                _messages.c.patient_id
            )
        )
    }
    conn.commit()
    due = [(p, w) for p, w in due_weeks(patients, program, now) if latest.get(p.id, -1) < w]
    for start in range(0, len(due), batch):
        # One transaction per batch: on SQLite each holds the write lock, so webhooks wait briefly.
        with _due_table(conn):
            built = build(conn, program, due[start : start + batch])
            _insert(conn, built, now)
        conn.commit()
        report.generated += len(built)
    with _due_table(conn):
        _regenerate(conn, program, now, report)
    conn.commit()
    if report.generated or report.regenerated or report.flagged:
        audit.record(conn, now, "system", "feedback_generated", **report.__dict__)
        conn.commit()
        log.info("feedback: %s", report)
    return report


class _due_table:
    """The batch table, created in the caller's transaction and dropped after use.

    It neither commits nor rolls back: the caller owns the transaction. After an error it is
    left for the caller's rollback (or, if an earlier transaction created it, for the next job,
    which empties it before use).
    """

    def __init__(self, conn: sa.Connection):
        self.conn = conn

    def __enter__(self):
        self.conn.exec_driver_sql(_CREATE_DUE)
        return self

    def __exit__(self, exc_type, *exc):
        if exc_type is None:
            self.conn.exec_driver_sql("DROP TABLE IF EXISTS feedback_due")
        return False


def build(conn: sa.Connection, program: Program, due: Sequence[tuple[sa.Row, int]]) -> list[Built]:
    """Summarise and assemble the messages of ``due`` (patient, week) pairs, in four queries.

    Needs the ``feedback_due`` temporary table (see ``generate_due`` and ``preview``).
    """
    if not due:
        return []
    conn.execute(sa.delete(_due))
    conn.execute(sa.insert(_due), [{"patient_id": p.id, "week": w} for p, w in due])
    weeks, stamps = _week_data(conn)
    counts = {
        row.patient_id: row
        for row in conn.execute(
            sa.select(
                _due.c.patient_id,
                sa.func.sum(sa.case((_checkins.c.status == CheckinStatus.COMPLETE.value, 1), else_=0)).label("done"),
                sa.func.max(
                    sa.case(
                        (
                            sa.and_(_checkins.c.status != CheckinStatus.MISSED.value, _checkins.c.week < _due.c.week),
                            _checkins.c.week,
                        )
                    )
                ).label("last_answered"),
            )
            .join(
                _checkins,
                sa.and_(
                    _checkins.c.patient_id == _due.c.patient_id,
                    _checkins.c.kind == CheckinKind.WEEKLY.value,
                    _checkins.c.week <= _due.c.week,
                ),
            )
            .group_by(_due.c.patient_id)
        )
    }
    announced = {
        row.patient_id: goals_from_json((row.summary or {}).get("next_goals"))
        for row in conn.execute(
            sa.select(_messages.c.patient_id, _messages.c.summary).join(
                _due, sa.and_(_messages.c.patient_id == _due.c.patient_id, _messages.c.week == _due.c.week - 2)
            )
        )
    }
    overrides: dict[int, dict[int, Goals]] = defaultdict(dict)
    for row in conn.execute(
        sa.select(_overrides).join(
            _due,
            sa.and_(
                _overrides.c.patient_id == _due.c.patient_id,
                _overrides.c.week.in_([_due.c.week - 1, _due.c.week + 1]),
            ),
        )
    ):
        overrides[row.patient_id][row.week] = Goals(row.steps_goal, row.practice_days_goal)
    built = []
    for patient, week in due:
        count = counts.get(patient.id)
        last_answered = count.last_answered if count is not None and count.last_answered is not None else -1
        history = History(
            week=week,
            weeks=weeks.get(patient.id, {}),
            checkins_completed=int(count.done) if count is not None else 0,
            missed_before=max(0, week - 1 - last_answered) if week > 0 else 0,
            announced=announced.get(patient.id),
            overrides=overrides.get(patient.id, {}),
            daily_cadence=str(patient.cadence) == "daily",
        )
        summary = summarize(history, program)
        built.append(Built(patient, summary, rules.message(summary, program), stamps.get(patient.id)))
    return built


def _week_data(conn: sa.Connection) -> tuple[dict[int, dict[int, WeekData]], dict[int, datetime]]:
    """Weeks 0, w - 2, w - 1 and w of every patient in the batch (weekly and daily check-ins), and
    the latest change to week w's check-ins."""
    rows = conn.execute(
        sa.select(
            _checkins.c.patient_id,
            _checkins.c.id,
            _checkins.c.week,
            _checkins.c.kind,
            _checkins.c.status,
            _checkins.c.updated_at,
            _due.c.week.label("due_week"),
            _answers.c.item_key,
            _answers.c.value,
        )
        .join(
            _due,
            sa.and_(
                _checkins.c.patient_id == _due.c.patient_id,
                _checkins.c.week.in_([_due.c.week, _due.c.week - 1, _due.c.week - 2, 0]),
            ),
        )
        .outerjoin(_answers, _answers.c.checkin_id == _checkins.c.id)
    )
    weekly: dict[tuple[int, int], dict] = {}
    daily: dict[tuple[int, int], dict[int, dict]] = defaultdict(dict)
    statuses: dict[tuple[int, int], str] = {}
    daily_done: dict[tuple[int, int], set[int]] = defaultdict(set)
    stamps: dict[int, datetime] = {}
    daily_kind, complete = CheckinKind.DAILY, CheckinStatus.COMPLETE
    for patient_id, checkin_id, week, kind, status, updated_at, due_week, item_key, value in rows:
        key = (patient_id, week)
        if week == due_week and (patient_id not in stamps or updated_at > stamps[patient_id]):
            stamps[patient_id] = updated_at
        if kind == daily_kind:
            answers = daily[key].setdefault(checkin_id, {})
            if status == complete:
                daily_done[key].add(checkin_id)
        else:
            answers = weekly.get(key)
            if answers is None:
                answers = weekly[key] = {}
                statuses[key] = str(status)
        if item_key is not None:
            answers[item_key] = value
    weeks: dict[int, dict[int, WeekData]] = defaultdict(dict)
    for key in set(weekly) | set(daily):
        patient_id, week = key
        weeks[patient_id][week] = WeekData(
            week=week,
            status=statuses.get(key),
            answers=weekly.get(key, {}),
            daily=list(daily.get(key, {}).values()),
            daily_completed=len(daily_done.get(key, ())),
        )
    return weeks, stamps


def _insert(conn: sa.Connection, built: Sequence[Built], now: datetime) -> None:
    if not built:
        return
    rows = [_row(item, now) for item in built]
    dialect = sqlite if is_sqlite(conn) else postgresql
    # Another scheduler process may have made the same message a moment ago: keep theirs.
    conn.execute(dialect.insert(_messages).on_conflict_do_nothing(), rows)


def _row(item: Built, now: datetime) -> dict:
    guided = str(item.patient.feedback_mode) == FeedbackMode.GUIDED.value
    return {
        "patient_id": item.patient.id,
        "week": item.summary.week,
        "mode": str(item.patient.feedback_mode),
        "language": item.patient.language,
        "status": (FeedbackStatus.PENDING_REVIEW if guided else FeedbackStatus.READY).value,
        "segments": item.segments,
        "generated_segments": item.segments,
        "summary": item.summary.to_json(),
        "version": 1,
        "source_stamp": item.source_stamp,
        "edited": False,
        "source_changed": False,
        "generated_at": now,
        "updated_at": now,
        "plays": 0,
    }


# --- late answers ------------------------------------------------------------------------------------


def _regenerate(conn: sa.Connection, program: Program, now: datetime, report: GenerationReport) -> None:
    """Rebuild undelivered messages whose week's check-ins changed after they were built."""
    changed = sa.select(_checkins.c.id).where(
        _checkins.c.patient_id == _messages.c.patient_id,
        _checkins.c.week == _messages.c.week,
        _checkins.c.updated_at > sa.func.coalesce(_messages.c.source_stamp, EPOCH),
    )
    stale = conn.execute(_undelivered().where(changed.exists()).order_by(_messages.c.id)).all()
    for chunk in _one_per_patient(stale, BATCH):
        built = {b.patient.id: b for b in build(conn, program, [(m, m.message_week) for m in chunk])}
        for message in chunk:
            _refresh(conn, message, built[message.id], now, report)


def _undelivered() -> sa.Select:
    """Messages that can still change, with their patient's columns (what ``build`` and ``_refresh`` need)."""
    return (
        sa.select(
            _messages.c.id.label("message_id"),
            _messages.c.week.label("message_week"),
            _messages.c.edited,
            _messages.c.segments,
            *_PATIENT_COLUMNS,
        )
        .join(_patients, _patients.c.id == _messages.c.patient_id)
        .where(_messages.c.status.in_([FeedbackStatus.PENDING_REVIEW.value, FeedbackStatus.READY.value]))
    )


def _one_per_patient(rows: Sequence[sa.Row], size: int) -> Iterable[list[sa.Row]]:
    """Chunks of at most ``size`` rows with each patient (``row.id``) at most once per chunk."""
    pending = list(rows)
    while pending:
        chunk, later, seen = [], [], set()
        for row in pending:
            if row.id in seen or len(chunk) >= size:
                later.append(row)
            else:
                seen.add(row.id)
                chunk.append(row)
        yield chunk
        pending = later


def _refresh(conn: sa.Connection, message: sa.Row, item: Built, now: datetime, report: GenerationReport) -> None:
    base = sa.update(_messages).where(_messages.c.id == message.message_id)
    if message.edited:
        # The therapist's words stand; tell them the numbers behind them changed. The summary and the
        # assembled message follow the new numbers, so the review shows them and a revert plays them.
        conn.execute(
            base.values(
                source_changed=True,
                source_stamp=item.source_stamp,
                summary=item.summary.to_json(),
                generated_segments=item.segments,
                updated_at=now,
            )
        )
        report.flagged += 1
        return
    if item.segments == message.segments:
        conn.execute(base.values(source_stamp=item.source_stamp, summary=item.summary.to_json()))
        report.unchanged += 1
        return
    guided = str(item.patient.feedback_mode) == FeedbackMode.GUIDED.value
    conn.execute(
        base.values(
            segments=item.segments,
            generated_segments=item.segments,
            summary=item.summary.to_json(),
            version=_messages.c.version + 1,
            source_stamp=item.source_stamp,
            updated_at=now,
            **(
                {"status": FeedbackStatus.PENDING_REVIEW.value, "reviewed_at": None, "reviewed_by": None}
                if guided
                else {}
            ),
        )
    )
    report.regenerated += 1


# --- previews ------------------------------------------------------------------------------------------


@dataclass
class Preview:
    patient_id: int
    week: int
    language: str
    summary: Summary
    segments: list[dict] = field(default_factory=list)


def preview(conn: sa.Connection, program: Program, patient_id: int, week: int | None, now: datetime) -> Preview:
    """The message the rules would make now for ``week`` (default: the latest closed week). Stores nothing."""
    patient = conn.execute(sa.select(*_PATIENT_COLUMNS).where(_patients.c.id == patient_id)).one_or_none()
    if patient is None:
        raise LookupError(f"no patient {patient_id}")
    if week is None:
        today = now.astimezone(ZoneInfo(patient.timezone)).date()
        week = closed_week(patient.program_start, today, min(patient.program_weeks, program.weeks))
        if week is None:
            week = 0
    with _due_table(conn):
        [item] = build(conn, program, [(patient, week)])
    conn.rollback()  # a preview stores nothing
    return Preview(patient_id, week, patient.language, item.summary, item.segments)


def rebuild(conn: sa.Connection, program: Program, patient_id: int, week: int, now: datetime) -> bool:
    """Rebuild the patient's message for ``week`` if it is not delivered yet (a goal changed); in the
    caller's transaction. Returns True if there was one to look at."""
    message = conn.execute(
        _undelivered().where(_messages.c.patient_id == patient_id, _messages.c.week == week)
    ).one_or_none()
    if message is None:
        return False
    with _due_table(conn):
        [item] = build(conn, program, [(message, week)])
    _refresh(conn, message, item, now, GenerationReport())
    return True
