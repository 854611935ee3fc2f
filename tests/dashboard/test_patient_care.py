"""The patient page's feedback, module-and-goals and schedule-and-settings sections: what they show, what a
therapist changes there (validated, audited, own patients only), and that a refused change changes nothing."""

from __future__ import annotations

import re
from datetime import time, timedelta
from html import unescape

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.feedback import generate
from ivr_cbt.models import (
    AuditEvent,
    CallAttempt,
    FeedbackMessage,
    FeedbackMode,
    FeedbackStatus,
    GoalOverride,
    Patient,
    PatientStatus,
)

from ..conftest import T0
from ..helpers import rows
from .conftest import post_form

WEEK = timedelta(days=7)
SCHEDULE = {
    "timezone": "America/New_York",
    "call_day": "mon",
    "call_time": "10:00",
    "window_start": "09:00",
    "window_end": "20:00",
    "cadence": "weekly",
    "language": "en",
    "feedback_mode": "guided",
}


def text(response) -> str:
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", response.get_data(as_text=True))))


def section(response, section_id: str) -> str:
    page = response.get_data(as_text=True)
    start = page.index(f'<section id="{section_id}"')
    html = page[start : page.index("</section>", start)]
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


def patient_row(app, patient_id: int) -> Patient:
    (patient,) = rows(app, Patient, Patient.id == patient_id)
    return patient


def overrides(app) -> list[GoalOverride]:
    with app.app_context():
        return list(db.session().scalars(sa.select(GoalOverride)))


def planned(app, patient_id: int) -> list[CallAttempt]:
    return rows(app, CallAttempt, CallAttempt.patient_id == patient_id, CallAttempt.state == "pending")


@pytest.fixture
def guided(add_patient, assign, therapist, call, app, clock):
    """A guided patient of ``therapist`` in week 2 (Tuesday): weeks 0 and 1 answered; week 0's message was heard
    on the week-1 call, week 1's waits for review."""
    patient = add_patient(name="Gil Guided", feedback_mode=FeedbackMode.GUIDED)
    assign(patient, therapist)
    call(patient, "1234,5,6,4000#,0,2", now=T0 - WEEK)
    generate(app, T0 - WEEK + timedelta(days=6, hours=20))  # Monday 05:00 EST has passed: week 0 closed
    with app.app_context():
        db.session().execute(sa.update(FeedbackMessage).values(status=FeedbackStatus.READY.value))
        db.session().commit()
    call(patient, "1234,4,7,4500#,5,2,silence", now=T0)  # hears week 0's message
    generate(app, T0 + WEEK)
    clock.set(T0 + WEEK + timedelta(days=1))
    return patient


def test_the_feedback_section_lists_the_patients_messages_by_week(app, sign_in, therapist, guided):
    page = sign_in(therapist).get(f"/patients/{guided}")
    shown = section(page, "feedback")
    by_week = {m.week: m for m in rows(app, FeedbackMessage)}
    assert by_week[0].status == FeedbackStatus.DELIVERED and by_week[1].status == FeedbackStatus.PENDING_REVIEW
    assert shown.index(" 1 pending-review") < shown.index(" 0 delivered")  # the latest week first
    assert "Mon 02 Mar 10:0" in shown and "review" in shown  # heard on the week-1 call; a link to the queue
    catalogue = app.extensions["voice_settings"].renderer.catalogue
    assert catalogue.text("fb_welcome", "en") in shown  # week 0's script


def test_the_goals_section_shows_this_and_next_weeks_module_and_goals(app, sign_in, therapist, guided):
    page = sign_in(therapist).get(f"/patients/{guided}")
    shown = section(page, "goals")
    program = app.extensions["voice_settings"].program
    assert f"This week's module {program.module(2).title}" in shown
    assert "2 (this week)" in shown and "3 (next week)" in shown
    # Week 3 (walking) brings the first step goal: week 2's average is not in yet, so week 1's 4,500 + 10%,
    # rounded up to the next 100.
    assert "5,000 steps a day; 7 practice days" in shown
    assert "week 1's average 4,500 + 10%, rounded up" in shown
    assert "week 1 message, pending-review" in shown  # what announces week 2's goals


def test_a_goal_set_for_this_week_rebuilds_the_waiting_message_and_is_audited(app, sign_in, therapist, guided):
    client = sign_in(therapist)
    before = next(m for m in rows(app, FeedbackMessage) if m.week == 1)
    assert before.summary["next_goals"]["practice_days"] == 7
    response = post_form(client, f"/patients/{guided}/goals", {"week": "2", "steps": "", "practice_days": "4"})
    assert response.status_code == 303 and response.location.endswith(f"/patients/{guided}#goals")
    (override,) = overrides(app)
    assert (override.week, override.steps_goal, override.practice_days_goal) == (2, None, 4)
    assert override.set_by == f"user:{therapist.id}"
    after = next(m for m in rows(app, FeedbackMessage) if m.week == 1)
    assert after.summary["next_goals"]["practice_days"] == 4 and after.version == before.version + 1
    (event,) = rows(app, AuditEvent, AuditEvent.action == "goals_set")
    assert (event.actor, event.patient_id, event.detail["week"]) == (f"user:{therapist.id}", guided, 2)
    shown = section(client.get(f"/patients/{guided}"), "goals")
    assert "set by user:" in shown and "4 practice days" in shown
    cleared = post_form(client, f"/patients/{guided}/goals", {"week": "2", "clear": "1"})
    assert cleared.status_code == 303 and overrides(app) == []


@pytest.mark.parametrize(
    ("form", "problem"),
    [
        ({"week": "3", "steps": "lots", "practice_days": ""}, "the step goal must be a whole number"),
        ({"week": "3", "steps": "", "practice_days": "9"}, "a practice goal is between 0 and 7 days"),
        ({"week": "3", "steps": "120000", "practice_days": ""}, "a step goal is between 0 and 99,999 steps a day"),
        ({"week": "7", "steps": "5000", "practice_days": ""}, "goals can be set for this week (2) or the next"),
        ({"steps": "5000"}, "goals can be set for this week (2) or the next"),
    ],
)
def test_an_invalid_goal_is_refused_with_a_reason_and_changes_nothing(app, sign_in, therapist, guided, form, problem):
    client = sign_in(therapist)
    response = post_form(client, f"/patients/{guided}/goals", form)
    assert response.status_code == 400
    assert f"Goals not saved: {problem}" in section(response, "goals")
    assert overrides(app) == []
    assert not [e for e in rows(app, AuditEvent) if e.action == "goals_set"]
    if form.get("week") == "3":  # what was typed is still in the form
        assert f'value="{form["steps"]}"' in response.get_data(as_text=True)


def test_the_schedule_change_replans_future_calls_and_is_audited(app, sign_in, therapist, guided):
    client = sign_in(therapist)
    changed = {**SCHEDULE, "call_day": "wed", "call_time": "18:30", "timezone": "America/Chicago"}
    response = post_form(client, f"/patients/{guided}/schedule", changed)
    assert response.status_code == 303
    patient = patient_row(app, guided)
    assert (patient.call_day, patient.call_time, patient.timezone) == (2, time(18, 30), "America/Chicago")
    assert [a.slot_local[:16] for a in planned(app, guided)] == ["2026-03-11T18:30"]  # this week's Wednesday
    (event,) = rows(app, AuditEvent, AuditEvent.action == "schedule_changed")
    assert event.actor == f"user:{therapist.id}" and event.detail["fields"] == ["call_day", "call_time", "timezone"]
    assert "Next call: Wed 11 Mar 2026 18:30 CDT" in text(client.get(f"/patients/{guided}"))


def test_language_and_arm_change_through_their_service_and_are_audited(app, sign_in, therapist, guided):
    client = sign_in(therapist)
    response = post_form(
        client, f"/patients/{guided}/schedule", {**SCHEDULE, "language": "es", "feedback_mode": "automated"}
    )
    assert response.status_code == 303
    patient = patient_row(app, guided)
    assert (patient.language, patient.feedback_mode) == ("es", FeedbackMode.AUTOMATED)
    (event,) = rows(app, AuditEvent, AuditEvent.action == "settings_changed")
    assert event.detail == {
        "fields": ["feedback_mode", "language"],
        "previous": {"feedback_mode": "guided", "language": "en"},
        "new": {"feedback_mode": "automated", "language": "es"},
    }
    assert not rows(app, AuditEvent, AuditEvent.action == "schedule_changed")  # the schedule itself did not change


@pytest.mark.parametrize(
    ("change", "problem"),
    [
        ({"timezone": "Mars/Olympus_Mons"}, "time zone 'Mars/Olympus_Mons' is not an IANA time zone"),
        ({"call_time": "25:00"}, "'25:00' is not a time of day such as 10:30"),
        ({"call_day": "someday"}, "call day must be one of mon, tue, wed, thu, fri, sat, sun"),
        ({"window_start": "06:00"}, "the call window 06:00-20:00 must stay within 08:00-21:00"),
        ({"call_time": "20:30"}, "the call time 20:30 is outside the call window 09:00-20:00"),
        ({"cadence": "hourly"}, "cadence must be weekly or daily, not 'hourly'"),
        ({"language": "tlh"}, "language must be one of en, es"),
        ({"feedback_mode": "psychic"}, "feedback mode must be one of monitoring, automated, guided"),
        ({"language": "es", "call_time": "20:30"}, "the call time 20:30 is outside the call window"),
    ],
)
def test_invalid_schedule_or_settings_are_refused_with_a_reason_and_change_nothing(
    app, sign_in, therapist, guided, change, problem
):
    client = sign_in(therapist)
    before = patient_row(app, guided)
    attempts = [(a.id, a.due_at) for a in planned(app, guided)]
    events = len(rows(app, AuditEvent))
    response = post_form(client, f"/patients/{guided}/schedule", {**SCHEDULE, **change})
    assert response.status_code == 400
    shown = section(response, "settings")
    assert "Schedule and settings not saved: " in shown and problem in shown
    after = patient_row(app, guided)
    fields = ("timezone", "call_day", "call_time", "window_start", "window_end", "cadence", "language", "feedback_mode")
    assert [getattr(after, f) for f in fields] == [getattr(before, f) for f in fields]
    assert [(a.id, a.due_at) for a in planned(app, guided)] == attempts
    new_events = [e.action for e in rows(app, AuditEvent)[events:]]
    assert new_events[-1] == "patient_viewed"  # the page shown again; nothing changed
    assert set(new_events) <= {"caseload_viewed", "patient_viewed"}  # (the caseload gave the form's token)
    for name, typed in change.items():
        if name in ("timezone", "call_time", "window_start", "window_end"):  # typed, not chosen: kept in the form
            assert f'value="{typed}"' in response.get_data(as_text=True)


def test_pause_resume_and_a_recorded_opt_out(app, sign_in, therapist, guided):
    client = sign_in(therapist)
    assert post_form(client, f"/patients/{guided}/status", {"status": "paused"}).status_code == 303
    assert patient_row(app, guided).status == PatientStatus.PAUSED and planned(app, guided) == []
    refused = post_form(client, f"/patients/{guided}/status", {"status": "opted-out"})
    assert refused.status_code == 400
    assert "tick the box to confirm that the patient asked to stop the calls" in section(refused, "settings")
    assert patient_row(app, guided).status == PatientStatus.PAUSED
    done = post_form(client, f"/patients/{guided}/status", {"status": "opted-out", "confirm": "1"})
    assert done.status_code == 303
    patient = patient_row(app, guided)
    assert patient.status == PatientStatus.OPTED_OUT and patient.opted_out_at is not None
    assert post_form(client, f"/patients/{guided}/status", {"status": "paused"}).status_code == 400
    assert post_form(client, f"/patients/{guided}/status", {"status": "active"}).status_code == 303
    assert patient_row(app, guided).status == PatientStatus.ACTIVE and len(planned(app, guided)) == 1
    actions = [e.action for e in rows(app, AuditEvent) if e.patient_id == guided and e.action != "patient_viewed"]
    assert actions[-4:] == ["patient_paused", "opted_out", "opt_out_recorded", "patient_resumed"]
    recorded = next(e for e in rows(app, AuditEvent) if e.action == "opt_out_recorded")
    assert recorded.actor == f"user:{therapist.id}"


def test_an_unknown_status_is_refused(app, sign_in, therapist, guided):
    response = post_form(sign_in(therapist), f"/patients/{guided}/status", {"status": "asleep"})
    assert response.status_code == 400 and "status must be active, paused or opted-out" in section(response, "settings")
    assert patient_row(app, guided).status == PatientStatus.ACTIVE


@pytest.mark.parametrize(
    ("path", "form"),
    [
        ("goals", {"week": "2", "practice_days": "3"}),
        ("schedule", {**SCHEDULE, "call_time": "18:00"}),
        ("status", {"status": "paused"}),
    ],
)
def test_another_therapists_patient_cannot_be_changed(app, sign_in, other_therapist, guided, path, form):
    before = patient_row(app, guided)
    response = post_form(sign_in(other_therapist), f"/patients/{guided}/{path}", form)
    assert response.status_code == 404
    after = patient_row(app, guided)
    assert (after.status, after.call_time) == (before.status, before.call_time) and overrides(app) == []


def test_a_change_without_its_csrf_token_is_refused(app, sign_in, therapist, guided):
    response = sign_in(therapist).post(f"/patients/{guided}/status", data={"status": "paused"})
    assert response.status_code == 400 and patient_row(app, guided).status == PatientStatus.ACTIVE


def test_admins_cannot_change_a_patients_care(app, guided, admin_client):
    assert (
        post_form(admin_client, f"/patients/{guided}/status", {"status": "paused"}, page="/admin/users").status_code
        == 403
    )


# --- the weekly log counts weekly check-ins; daily ones are counted beside it -------------------------------


def add_daily(app, patient: int, days: list[tuple[int, int, str]]) -> None:
    """What the daily flow stores: a daily check-in per local day (days after START), with the week it falls in."""
    from ivr_cbt.models import Answer, CheckIn, CheckinKind, CheckinStatus

    with app.app_context():
        session = db.session()
        for day, pain, status in days:
            at = T0 - WEEK + timedelta(days=day)
            checkin = CheckIn(
                patient_id=patient,
                kind=CheckinKind.DAILY,
                week=day // 7,
                day=at.date(),
                status=CheckinStatus(status),
                started_at=at,
                updated_at=at,
                completed_at=at if status == "complete" else None,
            )
            session.add(checkin)
            session.flush()
            session.add(
                Answer(
                    checkin_id=checkin.id,
                    item_key="pain_today",
                    value=pain,
                    input_mode="dtmf",
                    scale_min=0,
                    scale_max=10,
                    scale_anchors={},
                    scale_direction="higher_is_worse",
                    call_sid="CA" + "d" * 32,
                    answered_at=at,
                )
            )
        session.commit()


def test_daily_check_ins_are_counted_per_week_and_never_mixed_into_the_weekly_log(
    app, sign_in, therapist, add_patient, assign, call, clock
):
    patient = add_patient(cadence="daily")
    assign(patient, therapist)
    call(patient, "1234,5,6,4000#,3,2", now=T0 - WEEK)  # the weekly check-in of week 0
    add_daily(app, patient, [(1, 8, "complete"), (2, 9, "partial"), (8, 2, "complete")])
    clock.set(T0 + timedelta(days=2))
    client = sign_in(therapist)
    exported = client.get(f"/patients/{patient}/export/json").get_json()
    assert [(r["week"], r["status"], r["answers"]["pain_avg"]) for r in exported] == [
        (0, "complete", 5),
        (1, "due", None),
    ]
    assert [(r["daily_checkins"], r["daily_completed"]) for r in exported] == [(2, 1), (1, 1)]
    assert "pain_today" not in str(exported)
    csv_text = client.get(f"/patients/{patient}/export/csv").get_data(as_text=True)
    assert csv_text.splitlines()[0].endswith(",completed_at,daily_checkins,daily_completed")
    shown = section(client.get(f"/patients/{patient}"), "log")
    assert "1 of 2 complete" in shown and "1 of 1 complete" in shown
    fhir = client.get(f"/patients/{patient}/export/fhir").get_json()
    pains = [
        e["resource"]["valueInteger"] for e in fhir["entry"] if e["resource"]["code"]["coding"][0]["code"] == "72514-3"
    ]
    assert pains == [5]


def test_daily_check_ins_do_not_hide_a_missed_weekly_check_in_from_triage(
    app, sign_in, therapist, add_patient, assign, call, clock
):
    patient = add_patient(cadence="daily")
    assign(patient, therapist)
    call(patient, "1234,5,6,4000#,3,2", now=T0 - WEEK)  # week 0
    add_daily(app, patient, [(8, 4, "complete"), (9, 4, "complete")])  # daily calls in week 1, no weekly one
    clock.set(T0 + WEEK + timedelta(days=1))  # Tuesday of week 2
    page = sign_in(therapist).get("/").get_data(as_text=True)
    row = page[page.index(f'data-patient-id="{patient}"') :]
    assert "missed week 1" in row[: row.index("</tr>")]


def test_the_caseload_says_which_patients_have_a_message_waiting(app, sign_in, therapist, guided, add_patient, assign):
    monitored = add_patient(name="Mo Monitored", feedback_mode=FeedbackMode.MONITORING)
    assign(monitored, therapist)
    page = sign_in(therapist).get("/").get_data(as_text=True)
    waiting = next(m for m in rows(app, FeedbackMessage) if m.week == 1)
    row = page[page.index(f'data-patient-id="{guided}"') :]
    row = row[: row.index("</tr>")]
    assert f'href="/feedback/{waiting.id}"' in row and "week 1 message waiting for review" in row
    other = page[page.index(f'data-patient-id="{monitored}"') :]
    assert "monitoring arm" in other[: other.index("</tr>")]
