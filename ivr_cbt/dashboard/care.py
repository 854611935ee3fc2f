"""What a therapist changes on a patient's page: goals, schedule and settings, status.

Each change is the service's (ivr_cbt/feedback/review.py ``set_goals``, ivr_cbt/scheduling/
lifecycle.py, ivr_cbt/patients.py ``change_settings``), validated and audited there, for the
therapist's own patients only (404 otherwise). A refused change changes nothing: the page comes
back with status 400, the reason beside the form and what was typed still in it.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from datetime import datetime
from functools import cache

from flask import Blueprint, abort, current_app, flash, redirect, request, url_for
from flask_login import current_user, login_required
from markupsafe import Markup, escape
from sqlalchemy import orm

from ivr_cbt import audit, db
from ivr_cbt.dashboard import goals, messages
from ivr_cbt.dashboard.forms import ButtonForm
from ivr_cbt.dashboard.views import render_patient, therapist_only
from ivr_cbt.dashboard.web import now, patient_or_404
from ivr_cbt.feedback import review
from ivr_cbt.models import Cadence, FeedbackMode, Patient, PatientStatus
from ivr_cbt.patients import InvalidPatient, change_settings, is_time_zone, program_week, time_zones
from ivr_cbt.scheduling import attempts, lifecycle
from ivr_cbt.scheduling import slots as slot_rules

bp = Blueprint("care", __name__, url_prefix="/patients")
OPT_OUT_WORDING = "dashboard"  # an opt-out the patient gave their therapist, not the call's offer


@dataclass(frozen=True)
class Problem:
    """Why a change was refused, which form it came from, and what was typed (to show it again)."""

    form: str
    text: str
    submitted: dict = field(default_factory=dict)


def _voice():
    return current_app.extensions["voice_settings"]


def _refuse(patient: Patient, section: str, form: str, text: str):
    db.session().rollback()
    problem = Problem(form, text, request.form.to_dict())
    return render_patient(patient, problems={section: problem}, status=400)


def _done(patient: Patient, section: str, text: str):
    db.session().commit()
    flash(text, "info")
    return redirect(url_for("dashboard.patient", patient_id=patient.id, _anchor=section)), 303


def _own_patient(patient_id: int) -> Patient:
    therapist_only()
    patient = patient_or_404(patient_id)
    if not ButtonForm().validate_on_submit():
        abort(400)
    return patient


# --- sections ---------------------------------------------------------------------------------------


def feedback_section(session: orm.Session, patient: Patient, now: datetime, record):
    voice = current_app.extensions["voice_settings"]
    return messages.patient_messages(session, patient, voice.renderer.catalogue, voice.program)


def goals_section(session: orm.Session, patient: Patient, now: datetime, record):
    return goals.load(session, patient, now, current_app.extensions["voice_settings"].program, record.log)


@dataclass(frozen=True)
class SettingsSection:
    next_call: str
    days: tuple[str, ...]
    cadences: list[str]
    languages: list[str]
    modes: list[str]
    statuses: list[str]
    zones: Markup  # the time-zone field's suggestions


def settings_section(session: orm.Session, patient: Patient, now: datetime, record) -> SettingsSection:
    catalogue = current_app.extensions["voice_settings"].renderer.catalogue
    return SettingsSection(
        next_call=attempts.next_planned(session.connection(), patient.id),
        days=slot_rules.DAYS,
        cadences=[c.value for c in Cadence],
        languages=sorted(catalogue.languages),
        modes=[m.value for m in FeedbackMode],
        statuses=[s.value for s in PatientStatus],
        zones=_zone_options(),
    )


@cache
def _zone_options() -> Markup:
    """<option>s of every IANA zone, made once (518 of them, on every patient page)."""
    return Markup("".join(f'<option value="{escape(zone)}">' for zone in time_zones()))


# --- goals ------------------------------------------------------------------------------------------


@bp.post("/<int:patient_id>/goals")
@login_required
def set_goals(patient_id: int):
    """Set (or clear) the patient's goals for this module week or the next."""
    patient = _own_patient(patient_id)
    current = program_week(patient.program_start, patient.timezone, now())
    week = request.form.get("week", "")
    if week not in (str(current), str(current + 1)):
        return _refuse(patient, "goals", "goals", f"goals can be set for this week ({current}) or the next")
    clear = request.form.get("clear") == "1"
    try:
        steps = None if clear else goals.parse_goal(request.form.get("steps"), "step", 0, 99999)
        practice = None if clear else goals.parse_goal(request.form.get("practice_days"), "practice", 0, 7)
        review.set_goals(
            db.session().connection(),
            _voice().program,
            patient.id,
            int(week),
            steps=steps,
            practice_days=practice,
            actor=current_user.actor,
            now=now(),
        )
    except (goals.GoalInputError, review.ReviewError) as exc:
        return _refuse(patient, "goals", "goals", str(exc))
    if steps is None and practice is None:
        return _done(patient, "goals", f"Week {week}: the program's goals apply.")
    return _done(patient, "goals", f"Week {week}: your goals are saved.")


# --- schedule and settings ---------------------------------------------------------------------------


def _schedule_changes(patient: Patient, form) -> tuple[dict, list[str]]:
    """The schedule fields the form changes, parsed; and every problem with what was typed."""
    problems, parsed = [], {}
    timezone = form.get("timezone", "").strip()
    if not is_time_zone(timezone):
        problems.append(f"time zone {timezone!r} is not an IANA time zone such as America/New_York")
    else:
        parsed["timezone"] = timezone
    for name, parse in (
        ("call_day", slot_rules.parse_day),
        ("call_time", slot_rules.parse_time),
        ("window_start", slot_rules.parse_time),
        ("window_end", slot_rules.parse_time),
    ):
        try:
            parsed[name] = parse(form.get(name, ""))
        except slot_rules.ScheduleError as exc:
            problems.append(str(exc))
    cadence = form.get("cadence", "")
    if cadence not in {c.value for c in Cadence}:
        problems.append(f"cadence must be weekly or daily, not {cadence!r}")
    else:
        parsed["cadence"] = Cadence(cadence)
    changes = {k: v for k, v in parsed.items() if v != getattr(patient, k)}
    return changes, problems


@bp.post("/<int:patient_id>/schedule")
@login_required
def set_schedule(patient_id: int):
    """Change when the patient is called, their language and their program arm."""
    patient = _own_patient(patient_id)
    changes, problems = _schedule_changes(patient, request.form)
    if problems:
        return _refuse(patient, "settings", "schedule", "; ".join(problems))
    conn, when, actor = db.session().connection(), now(), current_user.actor
    languages = set(_voice().renderer.catalogue.languages)
    try:
        changed = change_settings(
            conn,
            patient.id,
            languages=languages,
            now=when,
            actor=actor,
            language=request.form.get("language", ""),
            feedback_mode=request.form.get("feedback_mode", ""),
        )
        if changes:
            lifecycle.change_schedule(conn, patient.id, _voice().scheduling, when, actor, **changes)
    except (InvalidPatient, lifecycle.LifecycleError) as exc:
        return _refuse(patient, "settings", "schedule", str(exc))
    changed += sorted(changes)
    if not changed:
        return _done(patient, "settings", "Nothing changed.")
    next_call = attempts.next_planned(conn, patient.id)
    names = ", ".join(name.replace("_", " ") for name in changed)
    return _done(patient, "settings", f"Saved ({names}). Next call: {next_call}.")


@bp.post("/<int:patient_id>/status")
@login_required
def set_status(patient_id: int):
    """Pause or resume the patient's calls, or record that they asked to stop them (opt-out)."""
    patient = _own_patient(patient_id)
    wanted, current = request.form.get("status", ""), patient.status.value
    conn, when, actor = db.session().connection(), now(), current_user.actor
    if wanted not in {s.value for s in PatientStatus}:
        return _refuse(patient, "settings", "status", f"status must be active, paused or opted-out, not {wanted!r}")
    if wanted == current:
        return _done(patient, "settings", f"The patient is already {current}.")
    try:
        if wanted == PatientStatus.ACTIVE:
            slot = lifecycle.resume(conn, patient.id, _voice().scheduling, when, actor)
            text = "Calls resumed. Next call: " + (
                f"{slot.local:%a %d %b %Y %H:%M %Z} (program week {slot.week})" if slot else "none: the program is over"
            )
        elif wanted == PatientStatus.PAUSED:
            if current != PatientStatus.ACTIVE:
                raise lifecycle.LifecycleError(f"only an active patient can be paused (this one is {current})")
            canceled = lifecycle.pause(conn, patient.id, when, actor)
            text = f"Calls paused; {canceled} planned call(s) canceled."
        else:
            if request.form.get("confirm") != "1":
                raise lifecycle.LifecycleError("tick the box to confirm that the patient asked to stop the calls")
            lifecycle.opt_out(conn, patient.id, when, call_sid=None, wording_version=OPT_OUT_WORDING)
            audit.record(conn, when, actor, "opt_out_recorded", patient_id=patient.id)
            text = "Opt-out recorded: no more calls. Resume them here if the patient asks."
    except lifecycle.LifecycleError as exc:
        return _refuse(patient, "settings", "status", str(exc))
    return _done(patient, "settings", text)
