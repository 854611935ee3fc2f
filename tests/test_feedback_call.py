"""FEEDBACK_DELIVERY=call: a ready message gets its own short outbound call, inside the window, retried
until the next weekly call; the weekly schedule goes on as before."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from ivr_cbt import create_app, db, exports
from ivr_cbt.callflow import load_flow, resume, spec, start
from ivr_cbt.feedback import generate, review
from ivr_cbt.models import CallAttempt, FeedbackMessage, FeedbackMode, FeedbackStatus
from ivr_cbt.scheduling import process
from ivr_cbt.scheduling.attempts import reconcile
from ivr_cbt.simulator.callees import CalleeBook, Pickup

from .conftest import T0
from .helpers import rows

WEEK = timedelta(days=7)
FLOW = load_flow(Path(__file__).resolve().parent.parent / "flows" / "feedback_call.yaml")


@pytest.fixture
def app(make_app):
    return make_app(DISPATCH_CPS=0, FEEDBACK_DELIVERY="call")


@pytest.fixture
def book(app, telephony):
    callees = CalleeBook(app, {})
    telephony.answer = callees
    return callees


def feedback_attempts(app, patient_id):
    with app.app_context():
        return [a for a in exports.attempts(db.session(), patient_id) if a["flow_id"] == "feedback_call"]


def tick(app, when):
    app.extensions["clock"].set(when)
    return process.tick(app, when)


@pytest.fixture
def ready(app, add_patient, call, book):
    """A patient (New York) who did week 0's check-in; `make(mode)` returns (patient id, phone)."""

    def make(mode=FeedbackMode.AUTOMATED):
        phone = "+12025550188"
        patient = add_patient(phone=phone, feedback_mode=mode, call_day=2)  # weekly calls on Wednesdays
        call(patient, "1234,6,5,4200#,3,2", now=T0 - WEEK)
        return patient, phone

    return make


def test_a_ready_message_gets_a_short_call_inside_the_window_and_is_delivered(app, ready, book):
    patient, phone = ready()
    night = datetime(2026, 3, 2, 6, 0, tzinfo=UTC)  # 01:00 in New York: week 0 has closed
    report = generate(app, night)
    assert (report.generated, report.calls_planned) == (1, 1)
    (attempt,) = feedback_attempts(app, patient)
    assert attempt["slot_local"].startswith("2026-03-02T09:00:00-05:00")  # the window opens at 09:00
    book.add(phone, Pickup("answer", "1234,silence"))
    tick(app, datetime(2026, 3, 2, 14, 0, tzinfo=UTC))
    (_, _, result), *_ = book.results
    said = result.said()
    assert "Here is this week's message from your care team." in said
    assert "In your first check-in, you rated your average pain 6 out of 10." in said
    assert "Over the past week" not in said  # no check-in questions on a feedback call
    (message,) = rows(app, FeedbackMessage)
    assert message.status == FeedbackStatus.DELIVERED and message.delivered_call_sid == result.call_sid
    (attempt,) = feedback_attempts(app, patient)
    assert (attempt["state"], attempt["outcome"]) == ("done", "completed")
    weekly = [a for a in rows(app, CallAttempt, CallAttempt.patient_id == patient) if a.flow_id == "weekly_checkin"]
    assert weekly and weekly[-1].state == "pending"  # the weekly chain is untouched
    assert generate(app, night + timedelta(hours=1)).calls_planned == 0  # one series per message


def test_an_unanswered_feedback_call_is_retried_and_stops_once_the_message_was_heard_elsewhere(app, ready, book, call):
    patient, phone = ready()
    generate(app, T0)  # 10:00 in New York: due at once
    book.add(phone, Pickup("no-answer"))
    tick(app, T0)
    first, retry = feedback_attempts(app, patient)
    assert first["outcome"] == "no-answer" and retry["attempt"] == 1 and retry["state"] == "pending"
    due = datetime.fromisoformat(retry["due_at"])
    assert T0 + timedelta(minutes=30) <= due <= T0 + timedelta(minutes=31)  # 30 minutes after it rang out
    call(patient, "1234,5,6,4800#,5,2,silence", now=T0 + timedelta(minutes=10), direction="inbound")  # called in
    assert rows(app, FeedbackMessage)[0].status == FeedbackStatus.DELIVERED
    report = tick(app, due)
    assert report.concluded == {"skipped-complete": 1} and report.placed == 0
    assert feedback_attempts(app, patient)[-1]["outcome"] == "skipped-complete"


def test_a_guided_message_is_called_in_only_after_the_therapist_approves_it(app, ready):
    patient, _ = ready(FeedbackMode.GUIDED)
    assert generate(app, T0).calls_planned == 0
    (message,) = rows(app, FeedbackMessage)
    with app.app_context():
        review.approve(db.connection(), message.id, actor="user:1", now=T0)
        db.connection().commit()
    assert generate(app, T0 + timedelta(minutes=15)).calls_planned == 1
    assert len(feedback_attempts(app, patient)) == 1


def test_a_feedback_call_is_not_the_patients_next_check_in_for_reconcile(app, ready):
    patient, _ = ready()
    generate(app, T0)
    with app.app_context():
        conn = db.connection()
        conn.execute(
            CallAttempt.__table__.delete().where(
                CallAttempt.patient_id == patient, CallAttempt.flow_id == "weekly_checkin"
            )
        )
        assert reconcile(conn, app.extensions["voice_settings"].scheduling, T0) == 1
        conn.commit()


def test_pausing_a_patient_drops_a_planned_feedback_call(app, ready, runner):
    patient, _ = ready()
    generate(app, T0 + timedelta(hours=12))  # 22:00: due tomorrow morning
    assert feedback_attempts(app, patient)[0]["state"] == "pending"
    assert runner.invoke(args=["patients", "pause", str(patient)]).exit_code == 0
    assert feedback_attempts(app, patient) == []


def test_with_the_default_delivery_no_feedback_call_is_planned(make_app, add_patient, call):
    app = make_app(DISPATCH_CPS=0)
    patient = add_patient()
    call(patient, "1234,6,5,4200#,3,2", now=T0 - WEEK)
    report = generate(app, T0)
    assert report.generated == 1 and report.calls_planned is None
    assert feedback_attempts(app, patient) == []


def test_an_unknown_delivery_setting_is_refused(database_url):
    with pytest.raises(ValueError, match="FEEDBACK_DELIVERY must be checkin or call"):
        create_app({"DATABASE_URL": database_url, "FEEDBACK_DELIVERY": "email"})


def test_the_feedback_flow_says_so_when_nothing_is_waiting_and_records_nothing():
    first = start(FLOW, caller_known=True, language="en", settings={})
    step = resume(FLOW, first.state, spec.Digits("1234"), settings={})
    step = resume(FLOW, step.state, spec.Identified(slots={"skill": "skill_baseline"}), settings={})
    assert [o.id for o in step.outputs if isinstance(o, spec.Prompt)] == ["feedback_call_nothing"]
    assert step.ended and not [e for e in step.effects if isinstance(e, spec.RecordAnswer)]
    assert FLOW.checkin == "none" and FLOW.items == {}
