"""Typed models. Times are UTC; everything local is computed from ``Patient.timezone``."""

from __future__ import annotations

import enum
from datetime import date, datetime, time
from typing import Any

import sqlalchemy as sa
import sqlalchemy.orm as so

from ivr_cbt.db import UTCDateTime

NAMING_CONVENTION = {
    "ix": "ix_%(column_0_label)s",
    "uq": "uq_%(table_name)s_%(column_0_N_name)s",
    "ck": "ck_%(table_name)s_%(constraint_name)s",
    "fk": "fk_%(table_name)s_%(column_0_name)s_%(referred_table_name)s",
    "pk": "pk_%(table_name)s",
}


class Base(so.DeclarativeBase):
    metadata = sa.MetaData(naming_convention=NAMING_CONVENTION)
    type_annotation_map = {datetime: UTCDateTime(), dict[str, Any]: sa.JSON()}


def _enum(cls: type[enum.Enum], name: str) -> sa.Enum:
    return sa.Enum(
        cls,
        name=name,
        native_enum=False,
        create_constraint=True,
        length=16,
        values_callable=lambda members: [m.value for m in members],
    )


class PatientStatus(enum.StrEnum):
    ACTIVE = "active"
    PAUSED = "paused"
    OPTED_OUT = "opted-out"


class FeedbackMode(enum.StrEnum):
    """The program arm: how weekly feedback reaches the patient (docs/clinical.md)."""

    MONITORING = "monitoring"  # check-ins only, no feedback
    AUTOMATED = "automated"  # the assembled message plays without review
    GUIDED = "guided"  # a therapist approves, edits or records it first (COPES)


class Cadence(enum.StrEnum):
    WEEKLY = "weekly"  # one check-in call a week
    DAILY = "daily"  # a short call every day; the weekly call on the patient's call day


class CheckinKind(enum.StrEnum):
    WEEKLY = "weekly"
    DAILY = "daily"


class AttemptState(enum.StrEnum):
    PENDING = "pending"  # waiting for its due time
    CLAIMED = "claimed"  # a dispatcher holds it (until lease_until)
    PLACING = "placing"  # recorded before the provider is asked
    PLACED = "placed"  # the provider accepted it; waiting for the call's outcome
    AMBIGUOUS = "ambiguous"  # the provider may or may not have placed it: never blindly re-dialled
    DONE = "done"  # finished; see outcome


class CheckinStatus(enum.StrEnum):
    IN_PROGRESS = "in-progress"
    PARTIAL = "partial"
    COMPLETE = "complete"
    MISSED = "missed"


class Patient(Base):
    __tablename__ = "patients"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    code: so.Mapped[str] = so.mapped_column(sa.String(8), unique=True)
    name: so.Mapped[str] = so.mapped_column(sa.String(200))
    phone: so.Mapped[str] = so.mapped_column(sa.String(16), unique=True)
    pin_hash: so.Mapped[str] = so.mapped_column(sa.String(200))
    timezone: so.Mapped[str] = so.mapped_column(sa.String(64))
    language: so.Mapped[str] = so.mapped_column(sa.String(8))
    program_start: so.Mapped[date]
    status: so.Mapped[PatientStatus] = so.mapped_column(
        _enum(PatientStatus, "patient_status"), default=PatientStatus.ACTIVE
    )
    feedback_mode: so.Mapped[FeedbackMode] = so.mapped_column(
        _enum(FeedbackMode, "feedback_mode"),
        default=FeedbackMode.AUTOMATED,
        server_default=FeedbackMode.AUTOMATED.value,
    )
    # When the program calls: local wall times in ``timezone`` (see ivr_cbt/scheduling/slots.py).
    call_day: so.Mapped[int] = so.mapped_column(default=0, server_default="0")  # 0 = Monday
    call_time: so.Mapped[time] = so.mapped_column(default=time(10, 0), server_default="10:00:00")
    window_start: so.Mapped[time] = so.mapped_column(default=time(9, 0), server_default="09:00:00")
    window_end: so.Mapped[time] = so.mapped_column(default=time(20, 0), server_default="20:00:00")
    cadence: so.Mapped[Cadence] = so.mapped_column(
        _enum(Cadence, "cadence"), default=Cadence.WEEKLY, server_default=Cadence.WEEKLY.value
    )
    program_weeks: so.Mapped[int] = so.mapped_column(default=11, server_default="11")
    opted_out_at: so.Mapped[datetime | None]
    created_at: so.Mapped[datetime]

    checkins: so.Mapped[list[CheckIn]] = so.relationship(
        back_populates="patient", cascade="all, delete-orphan", passive_deletes=True
    )


class Call(Base):
    """One phone call, inbound or outbound, and the flow state between its webhooks."""

    __tablename__ = "calls"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    call_sid: so.Mapped[str] = so.mapped_column(sa.String(34), unique=True)
    patient_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    checkin_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("checkins.id", ondelete="SET NULL"), index=True)
    attempt_id: so.Mapped[int | None] = so.mapped_column(
        sa.ForeignKey("call_attempts.id", ondelete="SET NULL"), index=True
    )
    direction: so.Mapped[str] = so.mapped_column(sa.String(16))
    status: so.Mapped[str] = so.mapped_column(sa.String(16))
    answered_by: so.Mapped[str | None] = so.mapped_column(sa.String(24))
    language: so.Mapped[str] = so.mapped_column(sa.String(8))
    flow_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    # The engine's state between webhooks, the sequence number of the step the caller is
    # on, and the TwiML we answered it with (replayed verbatim to a duplicate delivery).
    flow_state: so.Mapped[dict[str, Any] | None]
    step: so.Mapped[int] = so.mapped_column(default=0)
    last_twiml: so.Mapped[str | None] = so.mapped_column(sa.Text)
    # The feedback message this call plays (chosen when the caller is identified), and its version.
    feedback_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("feedback_messages.id", ondelete="SET NULL"))
    feedback_version: so.Mapped[int | None]
    created_at: so.Mapped[datetime]
    answered_at: so.Mapped[datetime | None]
    ended_at: so.Mapped[datetime | None]
    duration_s: so.Mapped[int | None]


class CheckIn(Base):
    """A patient's check-in: one weekly per program week, or one daily per local day; filled by one or more calls."""

    __tablename__ = "checkins"
    __table_args__ = (
        sa.Index(
            "uq_checkins_weekly",
            "patient_id",
            "week",
            unique=True,
            sqlite_where=sa.text("kind = 'weekly'"),
            postgresql_where=sa.text("kind = 'weekly'"),
        ),
        sa.Index(
            "uq_checkins_daily",
            "patient_id",
            "day",
            unique=True,
            sqlite_where=sa.text("kind = 'daily'"),
            postgresql_where=sa.text("kind = 'daily'"),
        ),
        # Every kind of a patient's week at once (the weekly summaries of ivr_cbt/feedback/).
        sa.Index("ix_checkins_patient_id_week", "patient_id", "week"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"))
    kind: so.Mapped[CheckinKind] = so.mapped_column(
        _enum(CheckinKind, "checkin_kind"), default=CheckinKind.WEEKLY, server_default=CheckinKind.WEEKLY.value
    )
    week: so.Mapped[int]
    day: so.Mapped[date | None]  # the local day of a daily check-in
    status: so.Mapped[CheckinStatus] = so.mapped_column(_enum(CheckinStatus, "checkin_status"))
    next_item: so.Mapped[str | None] = so.mapped_column(sa.String(32))
    started_at: so.Mapped[datetime]
    updated_at: so.Mapped[datetime]
    completed_at: so.Mapped[datetime | None]

    patient: so.Mapped[Patient] = so.relationship(back_populates="checkins")
    answers: so.Mapped[list[Answer]] = so.relationship(
        back_populates="checkin",
        cascade="all, delete-orphan",
        passive_deletes=True,
        order_by="Answer.id",
    )


class Answer(Base):
    """One item of a check-in, with the scale it was asked on. ``value`` is NULL if skipped."""

    __tablename__ = "answers"
    __table_args__ = (sa.UniqueConstraint("checkin_id", "item_key"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    checkin_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("checkins.id", ondelete="CASCADE"))
    item_key: so.Mapped[str] = so.mapped_column(sa.String(32))
    value: so.Mapped[int | None]
    skipped: so.Mapped[bool] = so.mapped_column(default=False)
    raw_input: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    input_mode: so.Mapped[str] = so.mapped_column(sa.String(8))
    confidence: so.Mapped[float | None]
    scale_min: so.Mapped[int]
    scale_max: so.Mapped[int]
    scale_anchors: so.Mapped[dict[str, Any]]
    scale_direction: so.Mapped[str] = so.mapped_column(sa.String(24))
    call_sid: so.Mapped[str] = so.mapped_column(sa.String(34))
    answered_at: so.Mapped[datetime]

    checkin: so.Mapped[CheckIn] = so.relationship(back_populates="answers")


class Alert(Base):
    """Something a clinician must see; open until acknowledged."""

    __tablename__ = "alerts"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"), index=True)
    kind: so.Mapped[str] = so.mapped_column(sa.String(32))
    checkin_id: so.Mapped[int | None] = so.mapped_column(sa.ForeignKey("checkins.id", ondelete="SET NULL"))
    call_sid: so.Mapped[str | None] = so.mapped_column(sa.String(34))
    created_at: so.Mapped[datetime]
    notified_at: so.Mapped[datetime | None]
    acknowledged_at: so.Mapped[datetime | None]
    acknowledged_by: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    note: so.Mapped[str | None] = so.mapped_column(sa.Text)


class AuditEvent(Base):
    """Who did what, when. Ids only: never names, numbers or answers.

    ``patient_id`` is deliberately not a foreign key: the trail outlives the rows it names.
    """

    __tablename__ = "audit_events"
    __table_args__ = (sa.Index("ix_audit_events_patient_id_at", "patient_id", "at"),)

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[datetime]
    actor: so.Mapped[str] = so.mapped_column(sa.String(200))
    action: so.Mapped[str] = so.mapped_column(sa.String(64))
    patient_id: so.Mapped[int | None]
    call_sid: so.Mapped[str | None] = so.mapped_column(sa.String(34))
    detail: so.Mapped[dict[str, Any]] = so.mapped_column(default=dict)


class CallAttempt(Base):
    """One try at a scheduled call. The table is the dispatch queue: the database, not the
    scheduler's memory, says what is due and what is done."""

    __tablename__ = "call_attempts"
    __table_args__ = (
        sa.UniqueConstraint("patient_id", "slot_at", "attempt"),
        sa.Index("ix_call_attempts_state_due_at", "state", "due_at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"))
    flow_id: so.Mapped[str] = so.mapped_column(sa.String(64))
    week: so.Mapped[int]
    slot_at: so.Mapped[datetime]  # the slot's time in UTC
    slot_local: so.Mapped[str] = so.mapped_column(sa.String(32))  # ISO 8601 with the offset it had
    slot_deadline: so.Mapped[datetime]  # retries must be due before this
    attempt: so.Mapped[int]  # 0 = the slot's first call
    due_at: so.Mapped[datetime]
    state: so.Mapped[AttemptState] = so.mapped_column(_enum(AttemptState, "attempt_state"))
    claimed_by: so.Mapped[str | None] = so.mapped_column(sa.String(64))
    lease_until: so.Mapped[datetime | None]
    call_sid: so.Mapped[str | None] = so.mapped_column(sa.String(34), index=True)
    outcome: so.Mapped[str | None] = so.mapped_column(sa.String(24))
    created_at: so.Mapped[datetime]
    updated_at: so.Mapped[datetime]


class DispatchPacing(Base):
    """One row: when the next outbound call may start, shared by every dispatcher (calls per second)."""

    __tablename__ = "dispatch_pacing"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    next_at: so.Mapped[datetime]


# --- the therapist dashboard --------------------------------------------------------------------


class UserRole(enum.StrEnum):
    THERAPIST = "therapist"  # sees and changes only the patients assigned to them
    ADMIN = "admin"  # manages accounts and assignments; sees no clinical data


class User(Base):
    """A member of the care team who signs in to the dashboard. Deactivated, never deleted."""

    __tablename__ = "users"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    email: so.Mapped[str] = so.mapped_column(sa.String(254), unique=True)  # stored lower-case
    password_hash: so.Mapped[str] = so.mapped_column(sa.String(200))
    role: so.Mapped[UserRole] = so.mapped_column(_enum(UserRole, "user_role"))
    active: so.Mapped[bool] = so.mapped_column(default=True)
    created_at: so.Mapped[datetime]
    last_login_at: so.Mapped[datetime | None]


class LoginSession(Base):
    """A signed-in browser, kept on the server so that logout and expiry end it for good.

    The browser's cookie holds a random token; only its SHA-256 is stored here.
    """

    __tablename__ = "login_sessions"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    token_hash: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id", ondelete="CASCADE"), index=True)
    created_at: so.Mapped[datetime]
    last_seen_at: so.Mapped[datetime]
    ended_at: so.Mapped[datetime | None]
    end_reason: so.Mapped[str | None] = so.mapped_column(sa.String(16))


class LoginAttempt(Base):
    """One password attempt; the login throttle counts recent failures per account and per client."""

    __tablename__ = "login_attempts"
    __table_args__ = (
        sa.Index("ix_login_attempts_account_at", "account", "at"),
        sa.Index("ix_login_attempts_client_at", "client", "at"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    at: so.Mapped[datetime]
    account: so.Mapped[str] = so.mapped_column(sa.String(254))
    client: so.Mapped[str] = so.mapped_column(sa.String(64))
    succeeded: so.Mapped[bool]


class CareAssignment(Base):
    """The therapist responsible for a patient: one per patient, who reviews their reports."""

    __tablename__ = "care_assignments"

    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    user_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("users.id"), index=True)
    assigned_at: so.Mapped[datetime]


# --- weekly feedback ------------------------------------------------------------------------------


class FeedbackStatus(enum.StrEnum):
    PENDING_REVIEW = "pending-review"  # guided: waits for a therapist to approve, edit or record it
    READY = "ready"  # plays on the patient's next call
    DELIVERED = "delivered"  # played to its end on a call (delivered_at)
    SUPERSEDED = "superseded"  # a newer message was delivered before this one was


class FeedbackMessage(Base):
    """The weekly message for one patient and program week, assembled from their log (ivr_cbt/feedback/)."""

    __tablename__ = "feedback_messages"
    __table_args__ = (
        sa.UniqueConstraint("patient_id", "week"),
        sa.Index("ix_feedback_messages_status_week", "status", "week"),
    )

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"))
    week: so.Mapped[int]
    mode: so.Mapped[FeedbackMode] = so.mapped_column(_enum(FeedbackMode, "feedback_mode"))
    language: so.Mapped[str] = so.mapped_column(sa.String(8))
    status: so.Mapped[FeedbackStatus] = so.mapped_column(_enum(FeedbackStatus, "feedback_status"))
    # What plays: segments (see ivr_cbt/feedback/segments.py); what the rules made, kept when edited.
    segments: so.Mapped[list[Any]] = so.mapped_column(sa.JSON)
    generated_segments: so.Mapped[list[Any]] = so.mapped_column(sa.JSON)
    summary: so.Mapped[dict[str, Any]]
    version: so.Mapped[int] = so.mapped_column(default=1)  # +1 on every regeneration or edit
    source_stamp: so.Mapped[datetime | None]  # the latest check-in change the message reflects
    edited: so.Mapped[bool] = so.mapped_column(default=False)  # a therapist changed the segments
    source_changed: so.Mapped[bool] = so.mapped_column(default=False)  # new answers after an edit
    generated_at: so.Mapped[datetime]
    updated_at: so.Mapped[datetime]
    reviewed_at: so.Mapped[datetime | None]
    reviewed_by: so.Mapped[str | None] = so.mapped_column(sa.String(200))
    delivered_at: so.Mapped[datetime | None]
    delivered_call_sid: so.Mapped[str | None] = so.mapped_column(sa.String(34))
    plays: so.Mapped[int] = so.mapped_column(default=0)


class FeedbackRecording(Base):
    """A therapist's own recording that replaces an assembled message.

    Twilio fetches it from ``/recordings/<token>.wav``: the token is random and names no patient.
    """

    __tablename__ = "feedback_recordings"

    id: so.Mapped[int] = so.mapped_column(primary_key=True)
    message_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("feedback_messages.id", ondelete="CASCADE"), index=True)
    token: so.Mapped[str] = so.mapped_column(sa.String(64), unique=True)
    content_type: so.Mapped[str] = so.mapped_column(sa.String(64))
    audio: so.Mapped[bytes] = so.mapped_column(sa.LargeBinary)
    seconds: so.Mapped[float | None]
    uploaded_by: so.Mapped[str] = so.mapped_column(sa.String(200))
    uploaded_at: so.Mapped[datetime]


class GoalOverride(Base):
    """A therapist's goal for one patient and program week, in place of the program's."""

    __tablename__ = "goal_overrides"

    patient_id: so.Mapped[int] = so.mapped_column(sa.ForeignKey("patients.id", ondelete="CASCADE"), primary_key=True)
    week: so.Mapped[int] = so.mapped_column(primary_key=True)
    steps_goal: so.Mapped[int | None]
    practice_days_goal: so.Mapped[int | None]
    set_by: so.Mapped[str] = so.mapped_column(sa.String(200))
    set_at: so.Mapped[datetime]
