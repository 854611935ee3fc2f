"""The dispatcher: due attempts become calls at the patient's local time; outcomes retry, move on, or stop."""

from __future__ import annotations

from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo

import pytest
import sqlalchemy as sa

from ivr_cbt import db, exports
from ivr_cbt.models import Alert, AuditEvent, Call, CallAttempt, CheckIn, Patient, PatientStatus
from ivr_cbt.scheduling import process
from ivr_cbt.simulator.callees import CalleeBook, Pickup, attempt_of
from ivr_cbt.telephony import TelephonyError

from .conftest import T0
from .helpers import checkins, rows, signed_post

NEW_YORK = ZoneInfo("America/New_York")
COMPLETE = "1234,5,7,4200#,3,2"


def local(when: datetime) -> datetime:
    return when.astimezone(NEW_YORK).replace(tzinfo=None)


@pytest.fixture
def app(make_app):
    return make_app(DISPATCH_CPS=0)


@pytest.fixture
def book(app, telephony):
    """Who answers: an empty callee book (every number rings out unanswered until told otherwise)."""
    callees = CalleeBook(app, {})
    telephony.answer = callees
    return callees


def attempts(app, patient_id=None) -> list[dict]:
    with app.app_context():
        return exports.attempts(db.session(), patient_id)


def tick(app, when: datetime):
    """A dispatch tick at ``when``, with the app's clock (which the webhooks read) moved there too."""
    app.extensions["clock"].set(when)
    return process.tick(app, when)


def finish(app, telephony, status: str, answered_by: str | None = None, index: int = -1):
    """Send the status callback Twilio would send for a recorded placed call."""
    request, placed = telephony.placed_calls[index]
    params = {"CallSid": placed.sid, "CallStatus": status, "Direction": "outbound-api", "CallDuration": "0"}
    if answered_by:
        params["AnsweredBy"] = answered_by
    response = signed_post(
        app.test_client(), request.status_callback_url.removeprefix("https://ivr.example.org"), params
    )
    assert response.status_code == 204


def test_enrolment_plans_the_first_call_at_the_patients_local_time(app, add_patient):
    patient = add_patient(call_day=2, call_time=time(18, 45))  # Wednesdays 18:45 New York
    (first,) = attempts(app, patient)
    assert (first["attempt"], first["state"], first["week"]) == (0, "pending", 1)
    assert first["slot_local"] == "2026-03-04T18:45:00-05:00"
    assert first["due_at"] == "2026-03-04T23:45:00+00:00"


def test_a_patient_enrolled_after_this_weeks_call_time_is_called_when_the_window_allows(app, add_patient, clock):
    clock.set(datetime(2026, 3, 2, 20, 30, tzinfo=UTC))  # Monday 15:30 in New York, the call was at 10:00
    patient = add_patient(start=date(2026, 3, 2), call_day=0, call_time=time(10, 0))
    (first,) = attempts(app, patient)
    assert (first["week"], first["due_at"]) == (0, "2026-03-02T20:30:00+00:00")


def test_nothing_is_placed_before_its_time_and_everything_due_is_placed_once(app, add_patient, telephony):
    patient = add_patient()  # Mondays 10:00 New York = T0
    assert tick(app, T0 - timedelta(seconds=1)).placed == 0
    report = tick(app, T0)
    assert (report.claimed, report.placed) == (1, 1)
    assert tick(app, T0 + timedelta(minutes=1)).placed == 0
    (request, placed) = telephony.placed_calls[0]
    (attempt,) = attempts(app, patient)
    assert attempt_of(request.answer_url) == attempt_of(request.status_callback_url) is not None
    assert (attempt["state"], attempt["call_sid"]) == ("placed", placed.sid)
    (call,) = rows(app, Call)
    assert (call.call_sid, call.patient_id, call.direction) == (placed.sid, patient, "outbound-api")
    assert call.attempt_id == attempt_of(request.answer_url)
    assert "+1202" not in request.answer_url and "+1202" not in request.status_callback_url


def test_a_completed_check_in_ends_the_slot_and_plans_next_week(app, add_patient, book):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("answer", COMPLETE))
    tick(app, T0)
    done, upcoming = attempts(app, patient)
    assert (done["state"], done["outcome"]) == ("done", "completed")
    assert (upcoming["state"], upcoming["week"], upcoming["slot_local"]) == ("pending", 2, "2026-03-09T10:00:00-04:00")
    assert checkins(app, patient)[0]["status"] == "complete"


@pytest.mark.parametrize("outcome", ["no-answer", "busy", "failed", "canceled"])
def test_an_unanswered_call_is_retried_30_minutes_later(app, add_patient, telephony, outcome):
    patient = add_patient()
    tick(app, T0)
    finish(app, telephony, outcome)
    first, retry = attempts(app, patient)
    assert first["outcome"] == outcome
    assert (retry["attempt"], retry["state"]) == (1, "pending")
    assert local(datetime.fromisoformat(retry["due_at"])) == datetime(2026, 3, 2, 10, 30)


def test_an_answering_machine_hears_a_safe_message_and_the_call_is_retried(app, add_patient, book):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("machine"), Pickup("answer", COMPLETE))
    tick(app, T0)
    ((_, _, voicemail),) = book.results
    assert "call us back" in voicemail.said() and "pain" not in voicemail.said()
    first, retry = attempts(app, patient)
    assert (first["outcome"], retry["attempt"]) == ("machine", 1)
    tick(app, datetime.fromisoformat(retry["due_at"]))
    assert [a["outcome"] for a in attempts(app, patient)][:2] == ["machine", "completed"]


def test_the_ladder_then_gives_up_marks_the_week_missed_and_moves_on(app, add_patient, book):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("no-answer"))
    due = T0
    for _ in range(4):
        tick(app, due)
        due = datetime.fromisoformat(attempts(app, patient)[-1]["due_at"])
    tried = [a for a in attempts(app, patient) if a["week"] == 1]
    assert [(a["attempt"], a["outcome"]) for a in tried] == [(n, "no-answer") for n in range(4)]
    # Each retry counts from when the unanswered call ended, after ringing for 30 s.
    assert [local(datetime.fromisoformat(a["due_at"])) for a in tried] == [
        datetime(2026, 3, 2, 10, 0),
        datetime(2026, 3, 2, 10, 30, 30),
        datetime(2026, 3, 2, 12, 31),
        datetime(2026, 3, 3, 10, 0),
    ]
    assert [c["status"] for c in checkins(app, patient)] == ["missed"]
    assert attempts(app, patient)[-1]["week"] == 2


def test_two_missed_weeks_in_a_row_alert_the_therapist_once(app, add_patient, book):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("no-answer"))
    for _ in range(12):  # three weeks of four attempts
        tick(app, datetime.fromisoformat(next(a for a in attempts(app, patient) if a["state"] == "pending")["due_at"]))
    assert [c["status"] for c in checkins(app, patient)] == ["missed", "missed", "missed"]
    (alert,) = rows(app, Alert, Alert.patient_id == patient)
    assert (alert.kind, alert.acknowledged_at) == ("missed_weeks", None)


def test_a_retry_stops_once_the_week_is_complete(app, add_patient, telephony, call):
    patient = add_patient()
    tick(app, T0)
    finish(app, telephony, "no-answer")
    call(patient, COMPLETE, direction="inbound", now=T0 + timedelta(minutes=10))  # the patient calls in meanwhile
    report = tick(app, T0 + timedelta(minutes=30))
    assert (report.placed, report.concluded) == (0, {"skipped-complete": 1})
    assert len(telephony.placed_calls) == 1
    assert [a["outcome"] for a in attempts(app, patient)] == ["no-answer", "skipped-complete", None]


def test_a_partial_check_in_is_retried_and_resumes_where_it_stopped(app, add_patient, book):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("answer", "1234,6,hangup"), Pickup("answer", "1234,4,5200#,2,2"))
    tick(app, T0)
    first, retry = attempts(app, patient)
    assert (first["outcome"], retry["attempt"]) == ("partial", 1)
    tick(app, datetime.fromisoformat(retry["due_at"]))
    resumed = book.results[-1][2]
    assert "continue your check-in where we left off" in resumed.said() and "average pain" not in resumed.said()
    assert checkins(app, patient)[0]["answers"] == {
        "pain_avg": 6,
        "sleep_quality": 4,
        "steps_avg": 5200,
        "practice_days": 2,
        "safety": 2,
    }


def test_a_retry_after_midnight_fills_its_own_weeks_check_in(app, add_patient, book):
    """Sunday 19:45's no-answer is retried... not: the week ends at midnight, so the slot is missed."""
    patient = add_patient(call_day=6, call_time=time(19, 45))  # Sundays, the last day of the program week
    book.add(rows(app, Patient)[0].phone, Pickup("no-answer"), Pickup("answer", COMPLETE))
    first = attempts(app, patient)[0]
    tick(app, datetime.fromisoformat(first["due_at"]))
    week_one = [a for a in attempts(app, patient) if a["week"] == 1]
    assert [a["outcome"] for a in week_one] == ["no-answer"]  # +30 min is 20:15, outside the window; Monday is week 2
    assert [c["status"] for c in checkins(app, patient)] == ["missed"]


def test_a_retry_the_next_morning_stays_in_the_window_and_in_the_slots_week(app, add_patient, book, clock):
    patient = add_patient(call_day=1, call_time=time(19, 45))  # Tuesdays 19:45
    book.add(rows(app, Patient)[0].phone, Pickup("no-answer"), Pickup("answer", COMPLETE))
    tick(app, datetime.fromisoformat(attempts(app, patient)[0]["due_at"]))
    retry = attempts(app, patient)[1]
    assert local(datetime.fromisoformat(retry["due_at"])) == datetime(
        2026, 3, 4, 9, 0
    )  # Wednesday when the window opens
    tick(app, datetime.fromisoformat(retry["due_at"]))
    assert [(c["week"], c["status"]) for c in checkins(app, patient)] == [(1, "complete")]


def test_pressing_8_opts_out_at_once_and_resume_undoes_it(app, add_patient, book, runner):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("answer", "1234,5,7,4200#,3,2,8"))
    tick(app, T0)
    said = book.results[-1][2].said()
    assert "press 8 now" in said and "You will not receive any more calls from us" in said
    (row,) = rows(app, Patient)
    assert row.status == PatientStatus.OPTED_OUT and T0 < row.opted_out_at < T0 + timedelta(minutes=5)
    assert [a["state"] for a in attempts(app, patient)] == ["done"]  # next week's call was never planned
    (event,) = [e for e in rows(app, AuditEvent) if e.action == "opted_out"]
    assert event.call_sid == book.results[-1][2].call_sid and event.detail["wording_version"].startswith("en:")
    assert tick(app, T0 + timedelta(days=7)).claimed == 0
    result = runner.invoke(args=["patients", "resume", str(patient)])
    assert result.exit_code == 0 and "Next call: Mon 09 Mar 2026 10:00 EDT (program week 2)" in result.output
    assert rows(app, Patient)[0].status == PatientStatus.ACTIVE


def test_a_paused_patient_gets_no_calls_and_resumes_from_the_next_slot(app, add_patient, runner, telephony):
    patient = add_patient()
    assert runner.invoke(args=["patients", "pause", str(patient)]).exit_code == 0
    assert attempts(app, patient) == []
    assert tick(app, T0 + timedelta(hours=1)).placed == 0
    assert runner.invoke(args=["patients", "resume", str(patient)]).exit_code == 0
    (planned,) = attempts(app, patient)
    # This week's 10:00 slot has passed but its week has not: the patient is called now, inside the window.
    assert planned["week"] == 1 and planned["due_at"] == "2026-03-02T16:00:00+00:00"
    assert telephony.placed_calls == []


def test_moving_time_zone_recomputes_future_slots_and_leaves_past_ones(app, add_patient, telephony, runner):
    patient = add_patient()
    tick(app, T0)
    finish(app, telephony, "completed", answered_by="human")  # answered but nothing recorded: partial
    result = runner.invoke(
        args=["patients", "update", str(patient), "--timezone", "Europe/Lisbon", "--call-time", "11:00"]
    )
    assert result.exit_code == 0, result.output
    past, *future = attempts(app, patient)
    assert (past["slot_local"], past["outcome"]) == ("2026-03-02T10:00:00-05:00", "partial")
    assert [(a["week"], a["slot_local"]) for a in future] == [(1, "2026-03-02T11:00:00+00:00")]


def test_a_dispatcher_that_dies_after_claiming_has_its_attempts_reclaimed_not_duplicated(app, add_patient, telephony):
    for _ in range(3):
        add_patient()
    crashed = process.dispatcher(app)
    with app.extensions["db_engine"].connect() as conn:
        claimed = crashed._claim(conn, T0, 10)  # claims, then the process dies before placing
    assert len(claimed) == 3 and telephony.placed_calls == []
    assert tick(app, T0 + timedelta(seconds=30)).placed == 0  # the lease still holds
    report = tick(app, T0 + timedelta(minutes=3))  # the lease (120 s) has expired
    assert (report.reclaimed, report.placed) == (3, 3)
    assert len({attempt_of(r.answer_url) for r, _ in telephony.placed_calls}) == 3


def test_an_attempt_that_may_have_reached_the_provider_is_never_blindly_redialled(app, add_patient, telephony):
    patient = add_patient()
    crashed = process.dispatcher(app)
    with app.extensions["db_engine"].connect() as conn:
        (attempt,) = crashed._claim(conn, T0, 10)
        conn.execute(sa.update(CallAttempt).where(CallAttempt.id == attempt.id).values(state="placing"))
        conn.commit()  # marked "placing", then the process dies: did the provider get the request?
    report = tick(app, T0 + timedelta(minutes=3))
    assert (report.ambiguous, report.placed) == (1, 0)
    assert tick(app, T0 + timedelta(minutes=10)).placed == 0
    report = tick(app, T0 + timedelta(minutes=20))  # no webhook ever came: it was not placed
    assert report.unconfirmed == 1
    assert [(a["attempt"], a["outcome"]) for a in attempts(app, patient)][:2] == [(0, "unconfirmed"), (1, None)]
    assert telephony.placed_calls == []


class ProcessDied(BaseException):
    """Stands for the dispatcher process dying (SIGKILL, power loss) at that point."""


def test_a_dispatcher_that_dies_while_the_provider_is_asked_leaves_the_attempt_ambiguous(app, add_patient, telephony):
    patient = add_patient()
    asked = []

    def die_while_asked(request):
        asked.append(request)
        raise ProcessDied  # the request may or may not have reached the provider

    telephony.place_call = die_while_asked
    with pytest.raises(ProcessDied):
        tick(app, T0)
    assert [a["state"] for a in attempts(app, patient)] == ["placing"]  # recorded before the provider was asked
    del telephony.place_call  # a new process, a working provider
    assert tick(app, T0 + timedelta(seconds=30)).placed == 0  # the dead process's lease still holds
    report = tick(app, T0 + timedelta(minutes=3))
    assert (report.ambiguous, report.placed) == (1, 0)
    assert tick(app, T0 + timedelta(minutes=10)).placed == 0
    assert len(asked) == 1 and telephony.placed_calls == []  # never dialled again


def test_a_placed_call_that_never_reports_is_concluded_lost_and_retried(app, add_patient, telephony):
    patient = add_patient()
    assert tick(app, T0).placed == 1
    assert tick(app, T0 + timedelta(minutes=119)).lost == 0  # LOST_AFTER_MINUTES is 120
    report = tick(app, T0 + timedelta(minutes=121))
    assert report.lost == 1
    lost, retry = attempts(app, patient)
    assert (lost["state"], lost["outcome"], retry["attempt"], retry["state"]) == ("done", "lost", 1, "pending")
    # The retry counts from when the call was found lost, inside the window.
    assert local(datetime.fromisoformat(retry["due_at"])) == datetime(2026, 3, 2, 12, 31)


def test_a_status_callback_after_the_call_was_given_up_as_lost_changes_nothing(app, add_patient, telephony):
    patient = add_patient()
    tick(app, T0)
    tick(app, T0 + timedelta(minutes=121))
    finish(app, telephony, "no-answer", index=0)  # very late
    assert [(a["attempt"], a["outcome"]) for a in attempts(app, patient)] == [(0, "lost"), (1, None)]


def test_an_ambiguous_attempt_that_rings_after_all_is_linked_by_its_webhooks(app, add_patient, telephony):
    patient = add_patient()

    def timeout_after_placing(request):
        telephony.placed_calls.append((request, None))
        raise TelephonyError("read timeout", ambiguous=True)

    telephony.place_call = timeout_after_placing
    report = tick(app, T0)
    assert report.ambiguous == 1
    request, _ = telephony.placed_calls[0]
    params = {"CallSid": "CA" + "e" * 32, "CallStatus": "no-answer", "Direction": "outbound-api"}
    assert (
        signed_post(
            app.test_client(), request.status_callback_url.removeprefix("https://ivr.example.org"), params
        ).status_code
        == 204
    )
    first, retry = attempts(app, patient)
    assert (first["state"], first["outcome"], first["call_sid"]) == ("done", "no-answer", "CA" + "e" * 32)
    assert retry["attempt"] == 1


def test_a_refused_call_goes_down_the_ladder(app, add_patient, telephony):
    patient = add_patient()

    def refuse(request):
        raise TelephonyError("21211 invalid number", ambiguous=False)

    telephony.place_call = refuse
    report = tick(app, T0)
    assert (report.refused, report.placed) == (1, 0)
    assert [(a["attempt"], a["outcome"]) for a in attempts(app, patient)] == [(0, "provider-refused"), (1, None)]


def test_a_duplicate_status_callback_changes_nothing(app, add_patient, telephony):
    patient = add_patient()
    tick(app, T0)
    finish(app, telephony, "no-answer")
    finish(app, telephony, "no-answer")
    assert [a["attempt"] for a in attempts(app, patient)] == [0, 1]


def test_a_late_dispatcher_waits_for_the_window_or_lets_the_slot_go(app, add_patient, telephony):
    patient = add_patient(call_time=time(19, 50))
    late = datetime(2026, 3, 3, 1, 30, tzinfo=UTC)  # Monday 20:30 New York: after the window closed
    report = tick(app, late)
    assert (report.placed, report.deferred) == (0, 1)
    (attempt,) = attempts(app, patient)
    assert local(datetime.fromisoformat(attempt["due_at"])) == datetime(2026, 3, 3, 9, 0)
    sunday_night = datetime(2026, 3, 9, 3, 30, tzinfo=UTC)  # past the program week's end: the slot is over
    report = tick(app, sunday_night)
    assert report.concluded == {"expired": 1}
    assert attempts(app, patient)[0]["outcome"] == "expired"


def test_pacing_spaces_calls_at_the_configured_rate(make_app, add_patient, telephony, clock):
    app = make_app(DISPATCH_CPS=2)
    for _ in range(5):
        add_patient()
    waits = []
    dispatcher = process.dispatcher(app)
    dispatcher.sleep = waits.append
    report = dispatcher.tick(T0)
    assert report.placed == 5
    assert waits == pytest.approx([0.5] * 4)
    again = []
    dispatcher.sleep = again.append
    add_patient()
    dispatcher.tick(T0)  # the shared pacing row remembers the last reservation
    assert again == pytest.approx([2.5])


def test_with_pacing_each_call_is_written_down_before_the_dispatcher_waits(make_app, add_patient, telephony):
    app = make_app(DISPATCH_CPS=2)
    patients = [add_patient() for _ in range(3)]
    dispatcher = process.dispatcher(app)
    seen = []

    def wait(seconds):
        # Another connection sees every call placed so far as placed: nothing is held while waiting
        # (on SQLite an open transaction would also hold the write lock the webhooks need).
        seen.append([a["state"] for p in patients for a in attempts(app, p)])

    dispatcher.sleep = wait
    assert dispatcher.tick(T0).placed == 3
    assert seen == [["placed", "placing", "placing"], ["placed", "placed", "placing"]]


def test_a_status_callback_that_beats_the_dispatcher_still_leaves_a_complete_call_row(app, add_patient, book):
    patient = add_patient()
    book.add(rows(app, Patient)[0].phone, Pickup("busy"))  # answered by a busy signal before place_call returns
    tick(app, T0)
    (call,) = rows(app, Call)
    (attempt,) = [a for a in rows(app, CallAttempt) if a.outcome == "busy"]
    assert (call.patient_id, call.attempt_id, call.status) == (patient, attempt.id, "busy")
    assert attempt.call_sid == call.call_sid


def test_the_concurrency_cap_limits_calls_in_flight(make_app, add_patient, telephony):
    app = make_app(DISPATCH_CPS=0, MAX_CONCURRENT_CALLS=2)
    for _ in range(5):
        add_patient()
    assert tick(app, T0).placed == 2
    assert tick(app, T0).placed == 0  # two calls are still ringing
    finish(app, telephony, "no-answer", index=0)
    assert tick(app, T0).placed == 1


def test_daily_cadence_runs_the_short_call_on_other_days(app, add_patient, book):
    patient = add_patient(cadence="daily", call_day=2)  # weekly call on Wednesdays
    phone = rows(app, Patient)[0].phone
    book.add(phone, Pickup("answer", "1234,3,6100#,1"), Pickup("answer", "1234,4,5800#,2"), Pickup("answer", COMPLETE))
    for _ in range(3):
        tick(app, datetime.fromisoformat(next(a for a in attempts(app, patient) if a["state"] == "pending")["due_at"]))
    flows = [a["flow_id"] for a in attempts(app, patient) if a["state"] == "done"]
    assert flows == ["daily_checkin", "daily_checkin", "weekly_checkin"]
    with app.app_context():
        daily = db.session().scalars(sa.select(CheckIn).where(CheckIn.kind == "daily").order_by(CheckIn.day)).all()
        assert [(c.day, c.status.value) for c in daily] == [
            (date(2026, 3, 2), "complete"),
            (date(2026, 3, 3), "complete"),
        ]
        assert [(a.item_key, a.value) for a in daily[0].answers] == [
            ("pain_today", 3),
            ("steps_yesterday", 6100),
            ("practiced_today", 1),
        ]
    assert checkins(app, patient)[0]["status"] == "complete"  # the weekly export holds only weekly check-ins
    assert "Today's check-in has three short questions" in book.results[0][2].said()


def test_reconcile_plans_patients_without_a_planned_call_once(app, add_patient):
    patient = add_patient()
    with app.app_context():
        conn = db.connection()
        conn.execute(sa.delete(CallAttempt))
        conn.commit()
    assert process.reconcile(app, T0 - timedelta(hours=1)) == 1
    assert process.reconcile(app, T0 - timedelta(hours=1)) == 0
    assert [a["week"] for a in attempts(app, patient)] == [1]


def test_run_once_and_export_attempts_from_the_command_line(app, add_patient, runner, telephony):
    patient = add_patient()
    result = runner.invoke(args=["scheduler", "run-once", "--now", "2026-03-02T10:00:00-05:00"])
    assert result.exit_code == 0 and "placed 1" in result.output
    import json

    (attempt,) = json.loads(
        runner.invoke(args=["export", "attempts", "--format", "json", "--patient", str(patient)]).output
    )
    assert {k: attempt[k] for k in ("patient_id", "slot_local", "due_at", "attempt", "state", "outcome")} == {
        "patient_id": patient,
        "slot_local": "2026-03-02T10:00:00-05:00",
        "due_at": "2026-03-02T15:00:00+00:00",
        "attempt": 0,
        "state": "placed",
        "outcome": None,
    }
    assert attempt["call_sid"] == telephony.placed_calls[0][1].sid
