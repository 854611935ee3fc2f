"""The scheduling commands in the forms other tools rely on: schedules set and refused, pause/resume, reconcile."""

from __future__ import annotations

import json
from datetime import time

import pytest

from ivr_cbt import db
from ivr_cbt.models import AuditEvent, CallAttempt, Patient, PatientStatus

from .helpers import rows

ADD = ["patients", "add", "--name", "Sam Schedule", "--phone", "+12025550150", "--pin", "1357"]
ADD += ["--timezone", "America/Chicago", "--start", "2026-03-02"]


def attempts(app) -> list[CallAttempt]:
    return rows(app, CallAttempt)


def test_patients_add_takes_the_call_day_time_window_and_cadence(app, runner):
    result = runner.invoke(
        args=[*ADD, "--call-day", "thu", "--call-time", "18:15", "--window", "08:30-19:00", "--cadence", "daily"]
    )
    assert result.exit_code == 0, result.output
    (patient,) = rows(app, Patient)
    assert (patient.call_day, patient.call_time, patient.window_start, patient.window_end, patient.cadence) == (
        3,
        time(18, 15),
        time(8, 30),
        time(19, 0),
        "daily",
    )
    # Daily cadence: the first call is on the start date itself, at the patient's time.
    assert "First call: Mon 02 Mar 2026 18:15 CST (program week 0)" in result.output
    assert [a.slot_local for a in attempts(app)] == ["2026-03-02T18:15:00-06:00"]


def test_the_defaults_are_the_start_dates_weekday_at_10_inside_09_to_20_weekly(app, runner):
    assert runner.invoke(args=ADD).exit_code == 0
    (patient,) = rows(app, Patient)
    assert (patient.call_day, patient.call_time, patient.window_start, patient.window_end, patient.cadence) == (
        0,
        time(10, 0),
        time(9, 0),
        time(20, 0),
        "weekly",
    )
    assert patient.program_weeks == 11


def test_program_weeks_come_from_the_configuration_for_new_patients(make_app):
    app = make_app(PROGRAM_WEEKS=3, FOLLOW_UP_WEEKS="")
    assert app.test_cli_runner().invoke(args=ADD).exit_code == 0
    (patient,) = rows(app, Patient)
    assert patient.program_weeks == 3


SCHEDULE_REFUSALS = [
    (["--call-time", "08:30"], "the call time 08:30 is outside the call window 09:00-20:00"),
    (["--call-time", "21:30", "--window", "09:00-21:00"], "the call time 21:30 is outside"),
    (["--window", "07:00-20:00"], "the call window 07:00-20:00 must stay within 08:00-21:00"),
    (["--window", "09:00-22:00"], "must stay within 08:00-21:00"),
    (["--window", "12:00-11:00", "--call-time", "11:30"], "must start before it ends"),
    (["--call-day", "someday"], "call day must be one of mon, tue, wed, thu, fri, sat, sun"),
    (["--call-time", "25:00"], "'25:00' is not a time of day such as 10:30"),
    (["--window", "9:00"], "'9:00' is not a window such as 09:00-20:00"),
    (["--cadence", "hourly"], "Invalid value for '--cadence'"),
]


@pytest.mark.parametrize("options, message", SCHEDULE_REFUSALS)
def test_patients_add_refuses_an_unusable_schedule_and_adds_no_one(app, runner, options, message):
    result = runner.invoke(args=[*ADD, *options])
    assert result.exit_code != 0
    assert message in result.output
    assert rows(app, Patient) == [] and attempts(app) == []


@pytest.mark.parametrize("options, message", SCHEDULE_REFUSALS)
def test_patients_update_refuses_an_unusable_schedule_and_changes_nothing(app, runner, options, message):
    patient_id = int(runner.invoke(args=ADD).output.split()[-1])
    before = [(a.id, a.due_at, a.state) for a in attempts(app)]
    result = runner.invoke(args=["patients", "update", str(patient_id), *options])
    assert result.exit_code != 0
    assert message in result.output
    (patient,) = rows(app, Patient)
    assert (patient.call_time, patient.window_start, patient.window_end) == (time(10), time(9), time(20))
    assert [(a.id, a.due_at, a.state) for a in attempts(app)] == before


def test_patients_update_moves_the_planned_call_and_audits_the_change(app, runner):
    patient_id = int(runner.invoke(args=ADD).output.split()[-1])
    result = runner.invoke(args=["patients", "update", str(patient_id), "--call-day", "wed", "--call-time", "17:45"])
    assert result.exit_code == 0, result.output
    assert "Next call: Wed 04 Mar 2026 17:45 CST (program week 0)" in result.output
    assert [a.slot_local for a in attempts(app)] == ["2026-03-04T17:45:00-06:00"]
    (event,) = [e for e in rows(app, AuditEvent) if e.action == "schedule_changed"]
    assert event.detail["fields"] == ["call_day", "call_time"]


@pytest.mark.parametrize(
    "args, code, message",
    [
        (["patients", "update", "{id}"], 2, "nothing to change"),
        (["patients", "update", "999", "--call-time", "11:00"], 1, "no patient 999"),
        (["patients", "update", "{id}", "--timezone", "Moon/Base"], 1, "is not an IANA time zone"),
        (["patients", "pause", "999"], 1, "no patient 999"),
        (["patients", "resume", "{id}"], 1, "is active, not paused or opted out"),
        (["scheduler", "run-once", "--now", "tomorrow"], 2, "is not an ISO 8601 time"),
        (["scheduler", "reconcile", "--now", "13/03/2026"], 2, "is not an ISO 8601 time"),
    ],
)
def test_bad_scheduling_commands_get_a_clear_message_and_a_non_zero_exit(app, runner, args, code, message):
    patient_id = runner.invoke(args=ADD).output.split()[-1]
    result = runner.invoke(args=[a.format(id=patient_id) for a in args])
    assert result.exit_code == code
    assert message in result.output


def test_pausing_twice_is_refused_and_resume_plans_the_next_call(app, runner):
    patient_id = runner.invoke(args=ADD).output.split()[-1]
    result = runner.invoke(args=["patients", "pause", patient_id])
    assert result.exit_code == 0 and "1 planned call(s) canceled" in result.output
    again = runner.invoke(args=["patients", "pause", patient_id])
    assert again.exit_code == 1 and "is not active" in again.output
    assert rows(app, Patient)[0].status == PatientStatus.PAUSED and attempts(app) == []
    resumed = runner.invoke(args=["patients", "resume", patient_id])
    assert resumed.exit_code == 0 and "Next call: Mon 02 Mar 2026 10:00 CST (program week 0)" in resumed.output
    assert [a.state for a in attempts(app)] == ["pending"]


def test_scheduler_reconcile_plans_a_patient_left_without_a_call(app, runner):
    patient_id = runner.invoke(args=ADD).output.split()[-1]
    with app.app_context():
        db.session().query(CallAttempt).delete()
        db.session().commit()
    result = runner.invoke(args=["scheduler", "reconcile", "--now", "2026-03-01T12:00:00Z"])
    assert result.exit_code == 0 and "Planned the next call of 1 patient(s)." in result.output
    exported = runner.invoke(args=["export", "attempts", "--format", "json", "--patient", patient_id]).output
    exported = json.loads(exported)
    assert [(a["slot_local"], a["state"]) for a in exported] == [("2026-03-02T10:00:00-06:00", "pending")]
    again = runner.invoke(args=["scheduler", "reconcile", "--now", "2026-03-01T12:00:00Z"])
    assert "Planned the next call of 0 patient(s)." in again.output


def test_export_attempts_is_audited(app, runner):
    runner.invoke(args=ADD)
    assert runner.invoke(args=["export", "attempts", "--format", "json"]).exit_code == 0
    (event,) = [e for e in rows(app, AuditEvent) if e.action == "export_attempts"]
    assert event.detail["rows"] == 1
