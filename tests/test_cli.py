"""The command line, in the exact forms other tools rely on."""

from __future__ import annotations

import csv
import io
import json

import pytest
from freezegun import freeze_time

from ivr_cbt.models import AuditEvent, Patient

from .helpers import audit_actions, rows

ADD = [
    "patients",
    "add",
    "--name",
    "Dana Example",
    "--phone",
    "+12025550142",
    "--pin",
    "2580",
    "--timezone",
    "America/Denver",
]


def test_init_db_creates_and_then_leaves_the_schema_alone(runner):
    for _ in range(2):
        result = runner.invoke(args=["init-db"])
        assert result.exit_code == 0, result.output
        assert "Database schema is up to date" in result.output


def test_patients_add_prints_the_new_id_as_the_last_line(app, runner):
    result = runner.invoke(args=[*ADD, "--language", "es", "--start", "2026-02-02", "--mode", "guided"])
    assert result.exit_code == 0, result.output
    patient_id = int(result.output.strip().splitlines()[-1])
    (patient,) = rows(app, Patient, Patient.id == patient_id)
    assert (patient.name, patient.phone, patient.timezone, patient.language) == (
        "Dana Example",
        "+12025550142",
        "America/Denver",
        "es",
    )
    assert str(patient.program_start) == "2026-02-02"
    assert patient.feedback_mode == "guided"
    assert patient.pin_hash.startswith("hmac-sha256$") and "2580" not in patient.pin_hash
    assert patient.code in result.output and len(patient.code) == 6
    assert audit_actions(app, patient_id) == ["patient_enrolled"]


def test_the_default_start_is_today_in_the_patients_own_zone(make_app):
    app = make_app(CLOCK=None)  # the system clock, frozen at the edge
    with freeze_time("2026-03-02 03:00:00"):  # still 1 March in Denver
        result = app.test_cli_runner().invoke(args=ADD)
    assert result.exit_code == 0, result.output
    (patient,) = rows(app, Patient)
    assert str(patient.program_start) == "2026-03-01"


@pytest.mark.parametrize(
    "change, message",
    [
        (("--phone", "2025550142"), "phone must be in E.164 form"),
        (("--phone", "+1 202 555 0142"), "phone must be in E.164 form"),
        (("--pin", "12345"), "PIN must be exactly 4 digits"),
        (("--pin", "12a4"), "PIN must be exactly 4 digits"),
        (("--timezone", "Mars/Olympus"), "is not an IANA time zone"),
        (("--timezone", "EST5EDT "), "is not an IANA time zone"),
        (("--language", "fr"), "language must be one of en, es"),
        (("--name", " "), "name must be 1 to 200 characters"),
        (("--start", "02/03/2026"), "Invalid value for '--start'"),
        (("--mode", "weekly"), "Invalid value for '--mode'"),
    ],
)
def test_patients_add_refuses_invalid_values_with_a_clear_message(app, runner, change, message):
    args = list(ADD)
    if change[0] in args:
        args[args.index(change[0]) + 1] = change[1]
    else:
        args += list(change)
    result = runner.invoke(args=args)
    assert result.exit_code != 0
    assert message in result.output
    assert rows(app, Patient) == []


def test_patients_add_refuses_a_phone_already_enrolled(app, runner):
    assert runner.invoke(args=ADD).exit_code == 0
    result = runner.invoke(args=ADD)
    assert result.exit_code == 1
    assert "already enrolled" in result.output
    assert len(rows(app, Patient)) == 1


def test_simulate_call_prints_the_transcript_and_stores_the_answers(app, runner, patient_id):
    result = runner.invoke(
        args=[
            "simulate",
            "call",
            "--patient",
            str(patient_id),
            "--keys",
            "1234,5,7,4200,3,2",
            "--now",
            "2026-03-04T10:00:00-05:00",
        ]
    )
    assert result.exit_code == 0, result.output
    assert "CALLER  presses 1234" in result.output and "Otherwise, goodbye." in result.output
    export = json.loads(runner.invoke(args=["export", "checkins", "--format", "json"]).output)
    assert export == [
        {
            "patient_id": patient_id,
            "week": 1,
            "status": "complete",
            "next_item": None,
            "started_at": export[0]["started_at"],
            "completed_at": export[0]["completed_at"],
            "answers": {"pain_avg": 5, "sleep_quality": 7, "steps_avg": 4200, "practice_days": 3, "safety": 2},
        }
    ]
    # The check-in opens when the PIN is accepted, a few simulated seconds into the call.
    assert "2026-03-04T15:00:00+00:00" < export[0]["started_at"] < export[0]["completed_at"] < "2026-03-04T15:05"
    assert "transcript_viewed" in audit_actions(app, patient_id)


@pytest.mark.parametrize("keys", ["silence", "hangup", "speech:seven"])
def test_simulate_call_accepts_the_special_keys(runner, patient_id, keys):
    result = runner.invoke(args=["simulate", "call", "--patient", str(patient_id), "--keys", f"1234,{keys}"])
    assert result.exit_code == 0, result.output


def test_simulate_call_refuses_a_bad_script_or_patient(runner, patient_id):
    result = runner.invoke(args=["simulate", "call", "--patient", str(patient_id), "--keys", "1234,five"])
    assert result.exit_code == 2 and "not a caller action: 'five'" in result.output
    result = runner.invoke(args=["simulate", "call", "--patient", "999", "--keys", "1234"])
    assert result.exit_code == 1 and "no patient 999" in result.output
    result = runner.invoke(
        args=["simulate", "call", "--patient", str(patient_id), "--keys", "1234", "--now", "tomorrow"]
    )
    assert result.exit_code == 2 and "not an ISO 8601 time" in result.output


def test_export_checkins_csv_and_patient_filter(app, runner, add_patient, call):
    first, second = add_patient(), add_patient()
    call(first, "1234,5,7,4200#,3,2")
    call(second, "1234,6,hangup")
    result = runner.invoke(args=["export", "checkins", "--format", "csv"])
    table = list(csv.DictReader(io.StringIO(result.output)))
    assert [(r["patient_id"], r["status"], r["pain_avg"], r["sleep_quality"]) for r in table] == [
        (str(first), "complete", "5", "7"),
        (str(second), "partial", "6", ""),
    ]
    only = json.loads(runner.invoke(args=["export", "checkins", "--patient", str(second)]).output)
    assert [row["patient_id"] for row in only] == [second]
    exports = [e for e in rows(app, AuditEvent) if e.action == "export_checkins"]
    assert [(e.patient_id, e.detail["format"], e.detail["rows"]) for e in exports] == [
        (None, "csv", 2),
        (second, "json", 1),
    ]


def test_export_alerts_lists_open_and_acknowledged_alerts(app, runner, patient_id, call):
    call(patient_id, "1234,5,7,4200#,3,1,2")
    (alert,) = json.loads(runner.invoke(args=["export", "alerts", "--format", "json"]).output)
    assert alert["patient_id"] == patient_id and alert["kind"] == "safety"
    assert alert["created_at"].startswith("2026-03-02T15:0") and alert["acknowledged_at"] is None
    assert "export_alerts" in audit_actions(app)


def test_export_to_a_file(runner, tmp_path, patient_id, call):
    call(patient_id, "1234,5,7,4200#,3,2")
    out = tmp_path / "log.json"
    result = runner.invoke(args=["export", "checkins", "--out", str(out)])
    assert result.exit_code == 0
    assert json.loads(out.read_text())[0]["answers"]["pain_avg"] == 5
