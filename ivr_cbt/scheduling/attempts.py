"""The call-attempt queue: plan slots, conclude attempts, retry or move on. The database says what is due.

Planning is event-driven so that a dispatch tick only ever reads what is due: a patient's first
attempt is planned when they are enrolled (or resumed, or rescheduled); the next slot's attempt
when a slot is over; a retry when an attempt ends without a complete check-in. ``reconcile``
is the safety net that gives any active patient without a live attempt their next one.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.db import Prepared, insert_ignoring_conflicts, is_one_of
from ivr_cbt.models import (
    Alert,
    AttemptState,
    CallAttempt,
    CheckIn,
    CheckinKind,
    CheckinStatus,
    FeedbackMessage,
    FeedbackStatus,
    Patient,
    PatientStatus,
)
from ivr_cbt.scheduling import slots as slot_rules
from ivr_cbt.scheduling.slots import DAILY_FLOW, FEEDBACK_FLOW, RetryStep, Schedule, Slot

log = logging.getLogger(__name__)

_attempts, _patients, _checkins, _alerts = CallAttempt.__table__, Patient.__table__, CheckIn.__table__, Alert.__table__
_messages = FeedbackMessage.__table__

LIVE_STATES = (
    AttemptState.PENDING,
    AttemptState.CLAIMED,
    AttemptState.PLACING,
    AttemptState.PLACED,
    AttemptState.AMBIGUOUS,
)
# Outcomes after which the slot is tried again (if the ladder and the deadline allow).
RETRYABLE = frozenset(
    {"partial", "no-answer", "busy", "failed", "canceled", "machine", "provider-refused", "unconfirmed", "lost"}
)
MISSED_WEEKS_FOR_ALERT = 2

SCHEDULE_COLUMNS = (
    _patients.c.id,
    _patients.c.status,
    _patients.c.timezone,
    _patients.c.program_start,
    _patients.c.call_day,
    _patients.c.call_time,
    _patients.c.window_start,
    _patients.c.window_end,
    _patients.c.cadence,
    _patients.c.program_weeks,
)
_PATIENT = Prepared(sa.select(*SCHEDULE_COLUMNS).where(_patients.c.id == sa.bindparam("b_id")))
_ATTEMPT = Prepared(sa.select(_attempts).where(_attempts.c.id == sa.bindparam("b_id")))
_FINISH = Prepared(
    sa.update(_attempts)
    .where(_attempts.c.id == sa.bindparam("b_id"), is_one_of(_attempts.c.state, [s.value for s in LIVE_STATES]))
    .values(state=AttemptState.DONE.value)
)


@dataclass(frozen=True)
class SchedulingSettings:
    ladder: tuple[RetryStep, ...]
    program_weeks: int  # for patients enrolled from now on; each patient keeps their own
    follow_up_weeks: tuple[int, ...]
    cps: float
    max_concurrent: int
    batch: int
    lease: timedelta
    unconfirmed_after: timedelta
    lost_after: timedelta

    @classmethod
    def from_config(cls, config) -> SchedulingSettings:
        return cls(
            ladder=slot_rules.parse_ladder(config["RETRY_LADDER"]),
            program_weeks=int(config["PROGRAM_WEEKS"]),
            follow_up_weeks=tuple(int(w) for w in str(config["FOLLOW_UP_WEEKS"]).split(",") if w.strip()),
            cps=float(config["DISPATCH_CPS"]),
            max_concurrent=int(config["MAX_CONCURRENT_CALLS"]),
            batch=int(config["DISPATCH_BATCH"]),
            lease=timedelta(seconds=int(config["ATTEMPT_LEASE_SECONDS"])),
            unconfirmed_after=timedelta(minutes=int(config["UNCONFIRMED_AFTER_MINUTES"])),
            lost_after=timedelta(minutes=int(config["LOST_AFTER_MINUTES"])),
        )


def schedule_of(patient, settings: SchedulingSettings) -> Schedule:
    """The Schedule of a patient row (any row with the SCHEDULE_COLUMNS)."""
    return Schedule(
        timezone=patient.timezone,
        start=patient.program_start,
        call_day=patient.call_day,
        call_time=patient.call_time,
        window_start=patient.window_start,
        window_end=patient.window_end,
        cadence=str(patient.cadence),
        program_weeks=patient.program_weeks,
        follow_up_weeks=settings.follow_up_weeks,
    )


def _insert(
    conn: sa.Connection,
    patient_id: int,
    *,
    flow_id: str,
    week: int,
    slot_at: datetime,
    slot_local: str,
    deadline: datetime,
    attempt: int,
    due: datetime,
    now: datetime,
) -> bool:
    return insert_ignoring_conflicts(
        conn,
        _attempts,
        {
            "patient_id": patient_id,
            "flow_id": flow_id,
            "week": week,
            "slot_at": slot_at,
            "slot_local": slot_local,
            "slot_deadline": deadline,
            "attempt": attempt,
            "due_at": due,
            "state": AttemptState.PENDING.value,
            "created_at": now,
            "updated_at": now,
        },
    )


def _plan(
    conn: sa.Connection, patient, settings: SchedulingSettings, now: datetime, after: datetime | None
) -> Slot | None:
    """Plan the first slot (after the slot at ``after``, if given) that can still be called before its deadline.

    A slot whose call time has passed but whose week (or day) is still running is called as soon as
    the window allows: a patient enrolled at 14:00 on their call day still gets their baseline call.
    A slot that already has attempts is skipped.
    """
    if patient.status != PatientStatus.ACTIVE:
        return None
    schedule = schedule_of(patient, settings)
    for slot in slot_rules.slots(schedule):
        if (after is not None and slot.at <= after) or slot.deadline <= now:
            continue
        due = max(slot.at, slot_rules.into_window(schedule, now))
        if due >= slot.deadline:
            continue
        planned = _insert(
            conn,
            patient.id,
            flow_id=slot.flow_id,
            week=slot.week,
            slot_at=slot.at,
            slot_local=slot.local.isoformat(),
            deadline=slot.deadline,
            attempt=0,
            due=due,
            now=now,
        )
        if planned:
            return slot
    return None


def plan_first(conn: sa.Connection, patient, settings: SchedulingSettings, now: datetime) -> Slot | None:
    """Plan a new, resumed or rescheduled patient's first callable slot; None when the program is over."""
    return _plan(conn, patient, settings, now, None)


def plan_next(
    conn: sa.Connection, patient, settings: SchedulingSettings, after: datetime, now: datetime
) -> Slot | None:
    """Plan the slot after the one at ``after``."""
    return _plan(conn, patient, settings, now, after)


def drop_planned(conn: sa.Connection, patient_id: int) -> int:
    """Remove the patient's attempts that never reached the provider (pause, opt-out, new schedule).

    They never happened, so they leave the queue; the audit row of the change says how many.
    A dispatcher that had claimed one finds it gone and does not place it.
    """
    return conn.execute(
        sa.delete(_attempts).where(
            _attempts.c.patient_id == patient_id,
            _attempts.c.state.in_([AttemptState.PENDING.value, AttemptState.CLAIMED.value]),
        )
    ).rowcount


def reschedule(conn: sa.Connection, patient_id: int, settings: SchedulingSettings, now: datetime) -> Slot | None:
    """Replace the patient's future attempts with ones from their current schedule; past ones stay."""
    drop_planned(conn, patient_id)
    return plan_first(conn, patient_row(conn, patient_id), settings, now)


def patient_row(conn: sa.Connection, patient_id: int) -> sa.Row:
    """The patient's status and schedule columns."""
    patient = _PATIENT.first(conn, {"b_id": patient_id})
    if patient is None:
        raise sa.exc.NoResultFound(f"no patient {patient_id}")
    return patient


_WAITING_MESSAGE = Prepared(
    sa.select(_messages.c.id).where(
        _messages.c.patient_id == sa.bindparam("b_patient"),
        _messages.c.week == sa.bindparam("b_week"),
        _messages.c.status == FeedbackStatus.READY.value,
    )
)
_DAILY_STATUS = Prepared(
    sa.select(_checkins.c.status).where(
        _checkins.c.patient_id == sa.bindparam("b_patient"),
        _checkins.c.kind == CheckinKind.DAILY.value,
        _checkins.c.day == sa.bindparam("b_day"),
    )
)
_WEEKLY_STATUS = Prepared(
    sa.select(_checkins.c.status).where(
        _checkins.c.patient_id == sa.bindparam("b_patient"),
        _checkins.c.kind == CheckinKind.WEEKLY.value,
        _checkins.c.week == sa.bindparam("b_week"),
    )
)


def checkin_status(
    conn: sa.Connection, patient_id: int, flow_id: str, week: int, slot_local: str
) -> CheckinStatus | None:
    """How far the slot's check-in got; for a feedback call, COMPLETE once its message is no longer waiting."""
    if flow_id == FEEDBACK_FLOW:
        waiting = _WAITING_MESSAGE.first(conn, {"b_patient": patient_id, "b_week": week})
        return None if waiting is not None else CheckinStatus.COMPLETE
    if flow_id == DAILY_FLOW:
        day = datetime.fromisoformat(slot_local).date()
        status = _DAILY_STATUS.scalar(conn, {"b_patient": patient_id, "b_day": day})
    else:
        status = _WEEKLY_STATUS.scalar(conn, {"b_patient": patient_id, "b_week": week})
    return CheckinStatus(status) if status is not None else None


def conclude(
    conn: sa.Connection, attempt_id: int, outcome: str, settings: SchedulingSettings, now: datetime
) -> str | None:
    """Finish an attempt and decide what comes next: a retry, the next slot, or nothing.

    ``outcome`` is what happened to the call; for an answered call pass "answered" and the
    check-in decides between "completed" and "partial". Returns the outcome recorded, or None
    if the attempt was already finished (a duplicate status callback changes nothing).
    """
    attempt = _ATTEMPT.first(conn, {"b_id": attempt_id})
    if attempt is None or attempt.state not in LIVE_STATES:
        return None
    status = checkin_status(conn, attempt.patient_id, attempt.flow_id, attempt.week, attempt.slot_local)
    if outcome == "answered":
        outcome = "completed" if status == CheckinStatus.COMPLETE else "partial"
    if not _FINISH.rowcount(conn, {"b_id": attempt_id, "outcome": outcome, "updated_at": now}):
        return None
    patient = patient_row(conn, attempt.patient_id)
    if patient.status != PatientStatus.ACTIVE:
        return outcome
    if status != CheckinStatus.COMPLETE and outcome in RETRYABLE:
        schedule = schedule_of(patient, settings)
        due = slot_rules.retry_due(schedule, attempt.slot_deadline, attempt.attempt, now, settings.ladder)
        if due is not None:
            _insert(
                conn,
                patient.id,
                flow_id=attempt.flow_id,
                week=attempt.week,
                slot_at=attempt.slot_at,
                slot_local=attempt.slot_local,
                deadline=attempt.slot_deadline,
                attempt=attempt.attempt + 1,
                due=due,
                now=now,
            )
            return outcome
    if attempt.flow_id == FEEDBACK_FLOW:
        return outcome  # not a slot of the weekly chain: the message waits for the next check-in call
    if status != CheckinStatus.COMPLETE and attempt.flow_id != DAILY_FLOW:
        _week_missed(conn, patient.id, attempt.week, now)
    plan_next(conn, patient, settings, attempt.slot_at, now)
    return outcome


def _week_missed(conn: sa.Connection, patient_id: int, week: int, now: datetime) -> None:
    """A weekly slot is over without a complete check-in: record a miss; two in a row alert the therapist."""
    inserted = insert_ignoring_conflicts(
        conn,
        _checkins,
        {
            "patient_id": patient_id,
            "kind": CheckinKind.WEEKLY.value,
            "week": week,
            "status": CheckinStatus.MISSED.value,
            "started_at": now,
            "updated_at": now,
        },
    )
    if not inserted:
        return  # the patient answered something that week: partial, not missed
    recent = conn.execute(
        sa.select(_checkins.c.week, _checkins.c.status).where(
            _checkins.c.patient_id == patient_id,
            _checkins.c.kind == CheckinKind.WEEKLY.value,
            _checkins.c.week.between(week - MISSED_WEEKS_FOR_ALERT + 1, week),
        )
    ).all()
    if sum(1 for row in recent if row.status == CheckinStatus.MISSED) < MISSED_WEEKS_FOR_ALERT:
        return
    already_open = conn.execute(
        sa.select(_alerts.c.id).where(
            _alerts.c.patient_id == patient_id, _alerts.c.kind == "missed_weeks", _alerts.c.acknowledged_at.is_(None)
        )
    ).first()
    if already_open is None:
        alert_id = conn.execute(
            sa.insert(_alerts).returning(_alerts.c.id),
            {"patient_id": patient_id, "kind": "missed_weeks", "created_at": now},
        ).scalar_one()
        audit.record(conn, now, "system", "alert_opened", patient_id=patient_id, alert_id=alert_id, kind="missed_weeks")
        log.warning("patient %s: missed_weeks alert %s opened", patient_id, alert_id)


def reconcile(conn: sa.Connection, settings: SchedulingSettings, now: datetime) -> int:
    """Give every active patient without a live attempt their next slot; return how many were planned.

    Normally planning happens as events occur; this heals what events cannot (patients enrolled
    before scheduling existed, or a database restored from backup). It reads every active
    patient, so it runs hourly, not every tick.
    """
    live = sa.select(_attempts.c.id).where(
        _attempts.c.patient_id == _patients.c.id,
        _attempts.c.state.in_([s.value for s in LIVE_STATES]),
        _attempts.c.flow_id != FEEDBACK_FLOW,  # a feedback call is not the patient's next check-in
    )
    orphans = conn.execute(
        sa.select(*SCHEDULE_COLUMNS).where(_patients.c.status == PatientStatus.ACTIVE.value, ~live.exists())
    ).all()
    return sum(plan_first(conn, patient, settings, now) is not None for patient in orphans)


def plan_feedback_calls(conn: sa.Connection, settings: SchedulingSettings, now: datetime) -> int:
    """FEEDBACK_DELIVERY=call: give every ready message that has had no feedback call its own short call.

    The call is due at the first moment inside the patient's window and may be retried (the
    ladder) until their next weekly call, which plays the message anyway if it is still waiting.
    Idempotent: a message gets one such series of attempts, keyed by its week. Returns how many.
    """
    called = sa.select(_attempts.c.id).where(
        _attempts.c.patient_id == _messages.c.patient_id,
        _attempts.c.flow_id == FEEDBACK_FLOW,
        _attempts.c.week == _messages.c.week,
    )
    rows = conn.execute(
        sa.select(_messages.c.week.label("message_week"), *SCHEDULE_COLUMNS)
        .join(_patients, _patients.c.id == _messages.c.patient_id)
        .where(
            _messages.c.status == FeedbackStatus.READY.value,
            _patients.c.status == PatientStatus.ACTIVE.value,
            ~called.exists(),
        )
    ).all()
    planned = 0
    for row in rows:
        schedule = schedule_of(row, settings)
        due = slot_rules.into_window(schedule, now)
        upcoming = slot_rules.next_slot(schedule, due)
        deadline = upcoming.at if upcoming is not None else due + timedelta(days=7)
        if due >= deadline:
            continue  # the weekly call comes first and plays it
        planned += _insert(
            conn,
            row.id,
            flow_id=FEEDBACK_FLOW,
            week=row.message_week,
            slot_at=due,
            slot_local=due.astimezone(schedule.zone).isoformat(),
            deadline=deadline,
            attempt=0,
            due=due,
            now=now,
        )
    return planned


def next_planned(conn: sa.Connection, patient_id: int) -> str:
    """The patient's next planned call, in words, for operators."""
    row = conn.execute(
        sa.select(_attempts.c.due_at, _attempts.c.slot_local, _attempts.c.week, _patients.c.timezone)
        .join(_patients, _patients.c.id == _attempts.c.patient_id)
        .where(_attempts.c.patient_id == patient_id, _attempts.c.state.in_([s.value for s in LIVE_STATES]))
        .order_by(_attempts.c.due_at)
        .limit(1)
    ).first()
    if row is None:
        return "none planned"
    due = row.due_at.astimezone(slot_rules.ZoneInfo(row.timezone))
    return f"{due:%a %d %b %Y %H:%M %Z} (program week {row.week})"
