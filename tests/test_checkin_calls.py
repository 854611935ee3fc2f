"""Whole check-in calls through the offline phone and the real webhooks, with every answer in the database."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from ivr_cbt.models import Answer, Call, CheckIn
from ivr_cbt.simulator import ScriptedCaller

from .helpers import alerts_for, audit_actions, call_row, checkins, rows

COMPLETE = "1234,5,7,4200#,3,2"
CLINICAL_WORDS = (
    "pain",
    "back pain",
    "sleep",
    "steps",
    "pedometer",
    "coping",
    "therapy",
    "hurting",
    "dead",
    "crisis",
    "question",
)


def test_a_complete_check_in_stores_every_answer_with_its_scale(app, call, patient_id):
    result = call(patient_id, COMPLETE)
    assert result.status == "completed"
    (checkin,) = checkins(app, patient_id)
    assert checkin["week"] == 1 and checkin["status"] == "complete"
    assert checkin["answers"] == {"pain_avg": 5, "sleep_quality": 7, "steps_avg": 4200, "practice_days": 3, "safety": 2}
    assert checkin["next_item"] is None and checkin["completed_at"] is not None
    answers = {a.item_key: a for a in rows(app, Answer)}
    assert (answers["pain_avg"].scale_min, answers["pain_avg"].scale_max) == (0, 10)
    assert answers["pain_avg"].scale_direction == "higher_is_worse"
    assert answers["sleep_quality"].scale_direction == "higher_is_better"
    assert answers["sleep_quality"].scale_anchors == {"0": "worst possible sleep", "10": "best possible sleep"}
    assert answers["steps_avg"].raw_input == "4200"
    assert {a.input_mode for a in answers.values()} == {"dtmf"}
    assert {a.call_sid for a in answers.values()} == {result.call_sid}
    row = call_row(app, result.call_sid)
    assert (row.direction, row.status, row.answered_by) == ("outbound-api", "completed", "human")
    assert row.duration_s == result.duration_s > 30


def test_nothing_clinical_is_said_before_the_pin(call, patient_id):
    result = call(patient_id, "hangup")
    said = result.said().lower()
    assert "pin" in said
    assert not any(word in said for word in CLINICAL_WORDS)


def test_a_dropped_call_keeps_its_answers_and_the_next_call_resumes_at_the_first_unanswered_item(
    app, call, patient_id, clock
):
    first = call(patient_id, "1234,6,hangup")
    (checkin,) = checkins(app, patient_id)
    assert checkin["status"] == "partial"
    assert checkin["answers"]["pain_avg"] == 6 and checkin["answers"]["sleep_quality"] is None
    assert checkin["next_item"] == "sleep_quality"

    second = call(patient_id, "1234,4,5200#,2,2", now=clock.now() + timedelta(hours=2))
    assert "continue your check-in where we left off" in second.said()
    assert "average pain" not in second.said()
    (checkin,) = checkins(app, patient_id)
    assert checkin["status"] == "complete"
    assert checkin["answers"] == {"pain_avg": 6, "sleep_quality": 4, "steps_avg": 5200, "practice_days": 2, "safety": 2}
    by_item = {a.item_key: a.call_sid for a in rows(app, Answer)}
    assert by_item["pain_avg"] == first.call_sid and by_item["safety"] == second.call_sid
    assert len(rows(app, Call, Call.checkin_id.is_not(None))) == 2


def test_a_call_after_the_week_is_complete_asks_nothing_again(app, call, patient_id, clock):
    call(patient_id, COMPLETE)
    again = call(patient_id, "1234", now=clock.now() + timedelta(hours=1))
    assert "already completed this week's check-in" in again.said()
    assert len(rows(app, Answer)) == 5


def test_a_new_program_week_opens_a_new_check_in(app, call, patient_id, clock):
    call(patient_id, COMPLETE)
    call(patient_id, "1234,4,6,5000#,5,2", now=clock.now() + timedelta(days=7))
    assert [(c["week"], c["status"], c["answers"]["pain_avg"]) for c in checkins(app, patient_id)] == [
        (1, "complete", 5),
        (2, "complete", 4),
    ]


def test_program_weeks_follow_the_patients_own_calendar(app, call, add_patient):
    """Week 1 begins at local midnight in Auckland, while it is still the day before in UTC."""
    patient = add_patient(timezone="Pacific/Auckland", start=date(2026, 3, 2))
    monday_local = datetime(2026, 3, 8, 12, 30, tzinfo=UTC)  # Mon 9 March 01:30 NZDT
    sunday_local = monday_local - timedelta(hours=2)  # Sun 8 March 23:30 NZDT
    call(patient, COMPLETE, now=sunday_local)
    call(patient, COMPLETE, now=monday_local)
    assert [c["week"] for c in checkins(app, patient)] == [0, 1]


def test_an_invalid_key_is_re_asked_and_the_corrected_answer_is_kept(app, call, patient_id):
    result = call(patient_id, "1234,12,4,7,4200#,3,2")
    assert "Sorry, that is not a number from 0 to 10." in result.said()
    assert result.said().count("what was your average pain") == 2
    (checkin,) = checkins(app, patient_id)
    assert checkin["answers"]["pain_avg"] == 4 and checkin["status"] == "complete"
    (pain,) = rows(app, Answer, Answer.item_key == "pain_avg")
    assert pain.raw_input == "4"


def test_three_invalid_answers_record_the_item_as_skipped(app, call, patient_id):
    call(patient_id, "1234,5,7,4200#,9,8,9,2")
    (checkin,) = checkins(app, patient_id)
    assert checkin["status"] == "complete"
    assert checkin["answers"]["practice_days"] is None
    (skipped,) = rows(app, Answer, Answer.item_key == "practice_days")
    assert skipped.skipped and skipped.value is None and skipped.raw_input == "9" and skipped.input_mode == "none"


def test_silence_is_re_prompted_differently_then_skipped(call, app, patient_id):
    result = call(patient_id, "1234,silence,silence,silence,7,4200#,3,2")
    said = result.said()
    assert "I did not hear an answer" in said and "still did not hear an answer" in said
    (checkin,) = checkins(app, patient_id)
    assert checkin["answers"]["pain_avg"] is None and checkin["answers"]["sleep_quality"] == 7


def test_ten_needs_two_digits_and_a_single_digit_is_taken_on_pound_or_timeout(app, call, patient_id):
    call(patient_id, "1234,10,5#,4200#,3,2")
    (checkin,) = checkins(app, patient_id)
    assert (checkin["answers"]["pain_avg"], checkin["answers"]["sleep_quality"]) == (10, 5)


def test_star_repeats_the_question(call, app, patient_id):
    result = call(patient_id, "1234,*,5,7,4200#,3,2")
    assert result.said().count("what was your average pain") == 2
    assert checkins(app, patient_id)[0]["answers"]["pain_avg"] == 5


def test_speech_answers_are_recorded_and_low_confidence_is_confirmed(app, call, patient_id):
    call(patient_id, "1234,speech:seven,speech:five@0.3,1,speech:four thousand two hundred,3,2")
    answers = {a.item_key: a for a in rows(app, Answer)}
    assert (answers["pain_avg"].value, answers["pain_avg"].input_mode) == (7, "speech")
    assert answers["pain_avg"].confidence == pytest.approx(0.92)
    assert (answers["sleep_quality"].value, answers["sleep_quality"].confidence) == (5, pytest.approx(0.3))
    assert answers["steps_avg"].value == 4200


def test_wrong_pins_end_the_call_politely_and_are_audited(app, call, patient_id):
    result = call(patient_id, "1111,2222,3333")
    assert "could not confirm who you are" in result.said()
    assert not any(word in result.said().lower() for word in CLINICAL_WORDS)
    assert rows(app, CheckIn) == []
    assert audit_actions(app, patient_id).count("identity_failed") == 1


def test_repeated_failed_calls_lock_the_pin_for_a_day(app, call, patient_id, clock):
    for n in range(5):
        call(patient_id, "0000,0000,0000", now=clock.now() + timedelta(minutes=10 * n))
    locked = call(patient_id, "1234,1234,1234", now=clock.now() + timedelta(hours=1))
    assert "could not confirm who you are" in locked.said()
    assert "identity_locked_out" in audit_actions(app, patient_id)
    unlocked = call(patient_id, COMPLETE, now=clock.now() + timedelta(hours=25))
    assert "goodbye" in unlocked.said().lower() and checkins(app, patient_id)[0]["status"] == "complete"


def test_an_inbound_call_from_the_patients_phone_asks_only_the_pin(app, call, patient_id):
    result = call(patient_id, COMPLETE, direction="inbound")
    assert "patient code" not in result.said()
    assert call_row(app, result.call_sid).direction == "inbound"
    assert checkins(app, patient_id)[0]["status"] == "complete"


def test_an_unknown_number_is_asked_for_a_patient_code_and_pin(app, phone, patient_id):
    with app.app_context():
        from ivr_cbt import db
        from ivr_cbt.models import Patient

        code = db.session().get(Patient, patient_id).code
    result = phone.call(ScriptedCaller.parse(f"{code},1234,5,7,4200#,3,2"), from_="+447700900123", to="+15005550006")
    assert "six-digit patient code" in result.said()
    (checkin,) = checkins(app, patient_id)
    assert checkin["status"] == "complete"
    assert call_row(app, result.call_sid).patient_id == patient_id


def test_an_unknown_number_with_a_wrong_code_learns_nothing(app, phone, patient_id):
    result = phone.call(
        ScriptedCaller.parse("999999,1234,999999,1234,999999,1234"), from_="+447700900123", to="+15005550006"
    )
    assert "could not confirm who you are" in result.said()
    assert rows(app, CheckIn) == []
    assert call_row(app, result.call_sid).patient_id is None


def test_safety_yes_gives_the_crisis_line_offers_to_connect_and_opens_an_alert(make_app, call, add_patient, telephony):
    app = make_app(ALERT_NOTIFY_NUMBER="+15005550123", CRISIS_LINE="988")
    patient = add_patient()
    from ivr_cbt.simulator.runner import run_call

    from .conftest import T0

    result = run_call(app, patient, ScriptedCaller.parse("1234,5,7,4200#,3,1,1"), now=T0)
    said = result.said()
    assert "9 8 8" in said and "not monitored around the clock" in said and "press 1" in said
    assert any(line.text == "[dials 988]" for line in result.transcript)
    (alert,) = alerts_for(app, patient)
    assert (alert.kind, alert.acknowledged_at) == ("safety", None)
    assert alert.call_sid == result.call_sid and alert.notified_at is not None
    (sms,) = telephony.sent_messages
    assert sms.to == "+15005550123" and f"#{alert.id}" in sms.body
    assert "Test Patient" not in sms.body and "+1202" not in sms.body
    assert checkins(app, patient)[0]["answers"]["safety"] == 1


def test_the_safety_alert_is_opened_in_the_request_that_carries_the_yes(app, call, patient_id):
    result = call(patient_id, "1234,5,7,4200#,3,1,hangup")
    (alert,) = alerts_for(app, patient_id)
    assert alert.kind == "safety" and alert.acknowledged_at is None
    assert "9 8 8" in result.said()


def test_an_answering_machine_gets_a_voicemail_safe_message(app, call, patient_id):
    result = call(patient_id, "", answered_by="machine_start")
    said = result.said()
    assert "call us back at 1 5 0 0 5 5 5 0 0 0 6." in said
    assert "Test Patient" not in said
    assert not any(word in said.lower() for word in CLINICAL_WORDS)
    assert call_row(app, result.call_sid).answered_by == "machine_start"
    assert rows(app, CheckIn) == []


def test_every_webhook_delivered_twice_gives_the_same_call_and_database(app, call, patient_id, add_patient, clock):
    once = call(patient_id, "1234,6,hangup")
    twin = add_patient()
    twice = call(twin, "1234,6,hangup", duplicate_requests=True)
    assert once.text() == twice.text()
    first, second = checkins(app, patient_id)[0], checkins(app, twin)[0]
    assert (first["status"], first["answers"]) == (second["status"], second["answers"])
    assert len(rows(app, Answer)) == 2
