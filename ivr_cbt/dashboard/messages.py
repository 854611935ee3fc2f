"""Weekly feedback messages as a therapist reads them: the review queue, a patient's messages, and the
caseload's one-line status. Queries and presentation only; every change goes through
ivr_cbt/feedback/review.py.

A message is shown with its summary (the week's numbers, goals and flags, with the reason for
each flag), its script (the words it says, in the patient's language) and its segment list.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.clinical import PAIN_RISE
from ivr_cbt.feedback import summary as rules
from ivr_cbt.feedback.program import Program
from ivr_cbt.feedback.segments import estimated_seconds, script
from ivr_cbt.models import AuditEvent, FeedbackMessage, FeedbackRecording, FeedbackStatus, Patient, User
from ivr_cbt.prompts import PromptError

WAITING_SHOWN = 20  # messages waiting for review on one page, oldest first (the count says how many more)
READY_SHOWN = 100
DELIVERED_SHOWN = 50
DELIVERED_DAYS = 14  # "recently delivered"
OPEN = (FeedbackStatus.PENDING_REVIEW, FeedbackStatus.READY)
TextOf = Callable[[str], str]


# --- the summary, in words -------------------------------------------------------------------------


@dataclass(frozen=True)
class Fact:
    label: str
    value: str
    note: str = ""
    warn: bool = False


@dataclass(frozen=True)
class SummaryView:
    week: int
    practised: str  # the module title
    facts: list[Fact]
    flags: list[tuple[str, str]]  # (code, reason)
    next_module: str | None
    next_goals: str


def _n(value) -> str:
    """A number as a therapist reads it: 4.5, 6, 4,200."""
    if value is None:
        return "-"
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return f"{value:,}" if isinstance(value, int) else f"{value:,.1f}"


def _change(change, reference, label: str) -> str:
    if change is None:
        return ""
    if change == 0:
        return f"same as {label} ({_n(reference)})"
    return f"{'+' if change > 0 else '-'}{_n(abs(change))} vs {label} ({_n(reference)})"


def _against(value, goal, met, unit: str) -> tuple[str, bool]:
    if goal is None:
        return "no goal this week", False
    if value is None:
        return f"goal {_n(goal)} {unit}", False
    return (f"goal {_n(goal)} {unit}: " + ("reached" if met else "not reached")), not met


def _goals_text(goals: Mapping | None) -> str:
    goals = goals or {}
    parts = []
    if goals.get("steps") is not None:
        parts.append(f"{_n(goals['steps'])} steps a day")
    if goals.get("practice_days"):
        parts.append(f"practise on {goals['practice_days']} days")
    return ", ".join(parts) or "no goals"


def flag_reasons(summary: Mapping, practised: str) -> list[tuple[str, str]]:
    """The summary's flags, each with the reason in words (the rules of ivr_cbt/feedback/summary.py)."""
    reasons = []
    for flag in summary.get("flags") or ():
        if flag == rules.PAIN_UP:
            reason = (
                f"pain {_n(summary.get('pain'))} this week and {_n(summary.get('pain_last_week'))} last week, "
                f"baseline {_n(summary.get('pain_baseline'))}: up {PAIN_RISE} or more two weeks running"
            )
        elif flag == rules.NO_PRACTICE:
            reason = f"no practice days of {practised}"
        elif flag == rules.MISSED_THIS_WEEK:
            reason = "no answers this week"
        elif flag == rules.MISSED_WEEKS:
            before = summary.get("missed_before") or 0
            if summary.get("reported"):
                reason = f"back after {before} missed weeks"
            else:
                reason = f"{before + 1} weeks missed running"
        else:
            reason = flag.replace("_", " ")
        reasons.append((flag, reason))
    return reasons


def summary_view(summary: Mapping, program: Program) -> SummaryView:
    """The stored summary of a message (``Summary.to_json()``) as labelled facts."""
    titles = {m.id: m.title for m in (*program.modules, program.after_program)}
    week = summary.get("week", 0)
    practised = titles.get(summary.get("practised"), summary.get("practised") or "-")
    goals = summary.get("goals") or {}
    pain_notes = [
        _change(summary.get("pain_change_last_week"), summary.get("pain_last_week"), "last week"),
        _change(summary.get("pain_change_baseline"), summary.get("pain_baseline"), "baseline"),
    ]
    steps_note, steps_short = _against(summary.get("steps"), goals.get("steps"), summary.get("steps_goal_met"), "steps")
    practice_goal = goals.get("practice_days") or None
    practice_note, practice_short = _against(
        summary.get("practice_days"), practice_goal, summary.get("practice_goal_met"), "days"
    )
    pain_up = rules.PAIN_UP in (summary.get("flags") or ())
    facts = [
        Fact("Average pain (0-10)", _n(summary.get("pain")), "; ".join(n for n in pain_notes if n), pain_up),
        Fact(
            "Sleep quality (0-10)",
            _n(summary.get("sleep")),
            f"last week {_n(summary.get('sleep_last_week'))}" if summary.get("sleep_last_week") is not None else "",
        ),
        Fact("Steps a day", _n(summary.get("steps")), steps_note, steps_short),
        Fact(
            "Practice days (of 7)",
            _n(summary.get("practice_days")),
            practice_note,
            practice_short or rules.NO_PRACTICE in (summary.get("flags") or ()),
        ),
        Fact("Check-ins completed", _n(summary.get("checkins_completed")), "weeks 0 to this one"),
    ]
    if summary.get("daily_completed") is not None:
        facts.append(Fact("Daily calls completed", _n(summary["daily_completed"]), "this week"))
    next_module = summary.get("next_module")
    return SummaryView(
        week=week,
        practised=practised,
        facts=facts,
        flags=flag_reasons(summary, practised),
        next_module=titles.get(next_module, next_module) if next_module else None,
        next_goals=_goals_text(summary.get("next_goals")),
    )


# --- a message --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class SegmentRow:
    number: int
    json: str
    says: str


@dataclass(frozen=True)
class MessageView:
    message: FeedbackMessage
    patient: Patient
    summary: SummaryView
    script: str
    segments: list[SegmentRow]
    segments_json: str  # the editor's text: one segment a line
    seconds: float
    recordings: list[FeedbackRecording]  # the recordings the message plays
    reviewer: str | None  # email of whoever approved, edited or recorded it
    open_alerts: Mapping[str, int]  # the patient's open alerts by kind (a safety answer is not in the summary)

    @property
    def is_open(self) -> bool:
        return self.message.status in OPEN


def text_of(catalogue, language: str) -> TextOf:
    """A prompt's words in ``language``; a prompt that no longer exists is named, not fatal."""

    def words(prompt_id: str) -> str:
        try:
            return catalogue.text(prompt_id, language)
        except PromptError:
            return f"[no prompt {prompt_id}]"

    return words


def prompt_reference(catalogue, program: Program, languages: Iterable[str]) -> dict[str, list[tuple[str, str]]]:
    """The prompts a message is made of (the rules' and the modules'), with their words, per language:
    the reference beside the segment editor."""
    from ivr_cbt.feedback.rules import prompt_ids

    ids = sorted(prompt_ids() | program.prompt_ids())
    words = {language: text_of(catalogue, language) for language in sorted(set(languages))}
    return {language: [(pid, text(pid)) for pid in ids] for language, text in words.items()}


def segments_json(segments: Sequence[dict]) -> str:
    """A segment list as JSON with one segment a line, for the editor."""
    if not segments:
        return "[]"
    return "[\n" + ",\n".join("  " + json.dumps(s, ensure_ascii=False) for s in segments) + "\n]"


def _reviewers(session: orm.Session, actors: Iterable[str | None]) -> dict[str, str]:
    ids = {int(a.split(":", 1)[1]) for a in actors if a and a.startswith("user:") and a[5:].isdigit()}
    if not ids:
        return {}
    return {f"user:{i}": email for i, email in session.execute(sa.select(User.id, User.email).where(User.id.in_(ids)))}


def _recordings(session: orm.Session, messages: Sequence[FeedbackMessage]) -> dict[str, FeedbackRecording]:
    tokens = {s["recording"] for m in messages for s in m.segments if "recording" in s}
    if not tokens:
        return {}
    query = sa.select(FeedbackRecording).where(FeedbackRecording.token.in_(tokens))
    return {r.token: r for r in session.scalars(query)}


def views(
    session: orm.Session,
    rows: Sequence[tuple[FeedbackMessage, Patient]],
    catalogue,
    program: Program,
    *,
    detailed: int | None = None,
) -> list[MessageView]:
    """Present messages (with their patients) for reading: three more queries whatever their number.

    The segment list (a table and the editor's text) is worked out for the first ``detailed`` rows
    only (default: all): the others are shown as a line with their script.
    """
    from ivr_cbt.dashboard.caseload import open_alert_counts  # (the caseload shows the latest message)

    messages = [m for m, _ in rows]
    reviewers = _reviewers(session, (m.reviewed_by for m in messages))
    recordings = _recordings(session, messages)
    alerts = open_alert_counts(session, sorted({p.id for _, p in rows})) if rows else {}
    shown = []
    for n, (message, patient) in enumerate(rows):
        words = text_of(catalogue, message.language)
        detail = detailed is None or n < detailed
        played = [recordings[s["recording"]] for s in message.segments if s.get("recording") in recordings]
        shown.append(
            MessageView(
                message=message,
                patient=patient,
                summary=summary_view(message.summary or {}, program),
                script=script(message.segments, words),
                segments=[
                    SegmentRow(i, json.dumps(s, ensure_ascii=False), script([s], words))
                    for i, s in enumerate(message.segments, 1)
                ]
                if detail
                else [],
                segments_json=segments_json(message.segments) if detail else "",
                seconds=estimated_seconds(
                    message.segments, words, message.language, sum(r.seconds or 0 for r in played)
                ),
                recordings=played,
                reviewer=reviewers.get(message.reviewed_by or "", message.reviewed_by),
                open_alerts=alerts.get(patient.id, {}),
            )
        )
    return shown


# --- the queue ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Queue:
    waiting: list[MessageView]  # guided messages waiting for review, oldest first
    waiting_total: int
    changed: list[MessageView]  # ready to play, but edited and then the answers changed
    ready: list[MessageView]  # ready to play, not yet delivered (any arm)
    delivered: list[MessageView]  # delivered in the last DELIVERED_DAYS days, newest first

    @property
    def shown(self) -> list[MessageView]:
        return [*self.waiting, *self.changed, *self.ready, *self.delivered]

    @property
    def patient_ids(self) -> list[int]:
        return sorted({v.patient.id for v in self.shown})


def queue(session: orm.Session, patient_ids: sa.Select, now: datetime, catalogue, program: Program) -> Queue:
    """The review queue of the patients among ``patient_ids``: a handful of queries whatever their number."""
    base = (
        sa.select(FeedbackMessage, Patient)
        .join(Patient, Patient.id == FeedbackMessage.patient_id)
        .where(FeedbackMessage.patient_id.in_(patient_ids))
        .options(orm.defer(FeedbackMessage.generated_segments))  # what a revert restores: not shown
    )
    pending = FeedbackMessage.status == FeedbackStatus.PENDING_REVIEW
    ready = FeedbackMessage.status == FeedbackStatus.READY
    waiting = session.execute(
        base.where(pending).order_by(FeedbackMessage.generated_at, FeedbackMessage.id).limit(WAITING_SHOWN)
    ).all()
    total = session.scalar(sa.select(sa.func.count()).where(FeedbackMessage.patient_id.in_(patient_ids), pending))
    changed = session.execute(
        base.where(ready, FeedbackMessage.source_changed.is_(True)).order_by(FeedbackMessage.generated_at)
    ).all()
    ready_rows = session.execute(
        base.where(ready, FeedbackMessage.source_changed.is_(False))
        .order_by(FeedbackMessage.generated_at, FeedbackMessage.id)
        .limit(READY_SHOWN)
    ).all()
    delivered = session.execute(
        base.where(
            FeedbackMessage.status == FeedbackStatus.DELIVERED,
            FeedbackMessage.delivered_at >= now - timedelta(days=DELIVERED_DAYS),
        )
        .order_by(FeedbackMessage.delivered_at.desc(), FeedbackMessage.id.desc())
        .limit(DELIVERED_SHOWN)
    ).all()
    cards = len(waiting) + len(changed)  # shown in full, with their actions; the others a line each
    listed = [*waiting, *changed, *ready_rows, *delivered]
    shown = iter(views(session, listed, catalogue, program, detailed=cards))
    return Queue(
        waiting=[next(shown) for _ in waiting],
        waiting_total=total or 0,
        changed=[next(shown) for _ in changed],
        ready=[next(shown) for _ in ready_rows],
        delivered=[next(shown) for _ in delivered],
    )


def one_message(session: orm.Session, patient_ids: sa.Select, message_id: int, catalogue, program: Program):
    """One message of the patients among ``patient_ids``, for reading; None if there is no such message to see."""
    row = session.execute(
        sa.select(FeedbackMessage, Patient)
        .join(Patient, Patient.id == FeedbackMessage.patient_id)
        .where(FeedbackMessage.id == message_id, FeedbackMessage.patient_id.in_(patient_ids))
    ).first()
    return views(session, [row], catalogue, program)[0] if row is not None else None


def own_message(session: orm.Session, patient_ids: sa.Select, message_id: int) -> FeedbackMessage | None:
    """The message if it belongs to one of ``patient_ids`` (locked for the change on PostgreSQL), else None."""
    return session.scalar(
        sa.select(FeedbackMessage)
        .where(FeedbackMessage.id == message_id, FeedbackMessage.patient_id.in_(patient_ids))
        .with_for_update()
    )


def patient_messages(session: orm.Session, patient: Patient, catalogue, program: Program) -> list[MessageView]:
    """Every message of one patient, the latest week first."""
    rows = session.execute(
        sa.select(FeedbackMessage, Patient)
        .join(Patient, Patient.id == FeedbackMessage.patient_id)
        .where(FeedbackMessage.patient_id == patient.id)
        .order_by(FeedbackMessage.week.desc())
        .options(orm.defer(FeedbackMessage.generated_segments))
    ).all()
    return views(session, rows, catalogue, program, detailed=0)


# --- the caseload's column ------------------------------------------------------------------------------


@dataclass(frozen=True)
class LatestMessage:
    id: int
    week: int
    status: str
    source_changed: bool
    delivered_at: datetime | None

    @property
    def text(self) -> str:
        if self.status == FeedbackStatus.PENDING_REVIEW:
            return f"week {self.week} message waiting for review"
        if self.status == FeedbackStatus.READY and self.source_changed:
            return f"week {self.week}: new answers after your edit"
        if self.status == FeedbackStatus.READY:
            return f"week {self.week} message ready, not yet heard"
        if self.status == FeedbackStatus.DELIVERED:
            return f"week {self.week} message heard"
        return f"week {self.week} message {self.status}"

    @property
    def needs_review(self) -> bool:
        return self.status == FeedbackStatus.PENDING_REVIEW or (
            self.status == FeedbackStatus.READY and self.source_changed
        )


def latest_messages(session: orm.Session, patient_ids: sa.Select) -> dict[int, LatestMessage]:
    """The latest week's message of each patient among ``patient_ids``, in one query.

    The latest week comes from the (patient_id, week) index alone; only those rows are then read
    (a message row is large: its segments and summary).
    """
    latest = (
        sa.select(FeedbackMessage.patient_id, sa.func.max(FeedbackMessage.week).label("week"))
        .where(FeedbackMessage.patient_id.in_(patient_ids))
        .group_by(FeedbackMessage.patient_id)
        .subquery()
    )
    query = sa.select(
        FeedbackMessage.patient_id,
        FeedbackMessage.id,
        FeedbackMessage.week,
        FeedbackMessage.status,
        FeedbackMessage.source_changed,
        FeedbackMessage.delivered_at,
    ).join(latest, sa.and_(FeedbackMessage.patient_id == latest.c.patient_id, FeedbackMessage.week == latest.c.week))
    return {
        row.patient_id: LatestMessage(
            row.id, row.week, FeedbackStatus(row.status).value, bool(row.source_changed), row.delivered_at
        )
        for row in session.execute(query)
    }


# --- a message's history -----------------------------------------------------------------------------

HISTORY_ACTIONS = {
    "feedback_approved": "approved",
    "feedback_edited": "edited (and approved)",
    "feedback_recorded": "replaced with a recording (and approved)",
    "feedback_reverted": "reverted to the assembled message",
    "feedback_heard": "heard on a call",
}


ACTORS = {"caller": "the patient", "system": "the weekly job"}  # other actors: user:<id> (their email), cli:<name>


@dataclass(frozen=True)
class HistoryEntry:
    at: datetime
    who: str
    what: str


def history(session: orm.Session, message: FeedbackMessage) -> list[HistoryEntry]:
    """What happened to a message, from the audit trail: made, reviewed, heard. Oldest first."""
    events = session.scalars(
        sa.select(AuditEvent)
        .where(AuditEvent.patient_id == message.patient_id, AuditEvent.action.in_(HISTORY_ACTIONS))
        .order_by(AuditEvent.at, AuditEvent.id)
    ).all()
    mine = [e for e in events if (e.detail or {}).get("message_id") == message.id]
    who = _reviewers(session, (e.actor for e in mine))
    entries = [HistoryEntry(message.generated_at, ACTORS["system"], "made from the week's answers")]
    for event in mine:
        what = HISTORY_ACTIONS[event.action]
        if event.action == "feedback_heard":
            what += " (delivered)" if event.detail.get("first_delivery") else " (again)"
        entries.append(HistoryEntry(event.at, who.get(event.actor) or ACTORS.get(event.actor, event.actor), what))
    return entries
