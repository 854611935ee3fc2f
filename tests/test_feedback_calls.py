"""The weekly message in a call: after the safety question, delivered only once heard to its end,
again on request, never lost, guided ones only after approval; recordings and number clips."""

from __future__ import annotations

import shutil
import wave
from datetime import timedelta
from pathlib import Path

import pytest
import sqlalchemy as sa

from ivr_cbt import db
from ivr_cbt.feedback import generate, review
from ivr_cbt.models import AuditEvent, FeedbackMessage, FeedbackMode, FeedbackStatus
from ivr_cbt.patients import NewPatient, enrol
from ivr_cbt.simulator import ScriptedCaller
from ivr_cbt.simulator.runner import run_call

from .conftest import PUBLIC_BASE_URL, START, T0
from .helpers import answer_params, audit_actions, gather_action, rows, sid, signed_post, twiml

WEEK = timedelta(days=7)
ROOT = Path(__file__).resolve().parent.parent
PHONE = "+12025550177"
CHECKIN = "1234,5,6,4800#,5,2"  # week 1: pain, sleep, steps, practice, safety


def messages(app, patient_id):
    return rows(app, FeedbackMessage, FeedbackMessage.patient_id == patient_id)


@pytest.fixture
def waiting(add_patient, call, app, clock):
    """A patient whose week-0 message is ready at T0 (automated arm, or as asked); the clock at T0."""

    def make(mode=FeedbackMode.AUTOMATED, **options):
        patient = add_patient(feedback_mode=mode, **options)
        call(patient, "1234,6,5,4200#,3,2", now=T0 - WEEK)
        generate(app, T0)
        clock.set(T0)
        return patient

    return make


def test_the_message_plays_after_the_safety_question_and_is_delivered_once_heard(app, call, waiting):
    patient = waiting()
    result = call(patient, CHECKIN + ",silence", now=T0)
    said = result.said()
    safety = said.index("better off dead")
    message = said.index("Here is this week's message from your care team.")
    assert safety < message < said.index("To hear this message again, press 1.")
    assert "In your first check-in, you rated your average pain 6 out of 10." in said[message:]
    (row,) = messages(app, patient)
    assert (row.status, row.plays, row.delivered_call_sid) == (FeedbackStatus.DELIVERED, 1, result.call_sid)
    assert row.delivered_at is not None
    assert "feedback_heard" in audit_actions(app, patient)


def test_pressing_1_plays_it_again_and_it_counts_two_plays_one_delivery(app, call, waiting):
    patient = waiting()
    result = call(patient, CHECKIN + ",1,silence", now=T0)
    assert result.said().count("In your first check-in, you rated your average pain 6") == 2
    (row,) = messages(app, patient)
    assert (row.plays, row.status) == (2, FeedbackStatus.DELIVERED)
    heard = rows(app, AuditEvent, AuditEvent.action == "feedback_heard")
    assert [event.detail["first_delivery"] for event in heard] == [True, False]


def test_a_delivered_message_does_not_play_again_on_the_next_call(app, call, waiting):
    patient = waiting()
    call(patient, CHECKIN + ",silence", now=T0)
    later = call(patient, "1234", now=T0 + timedelta(hours=3))  # the week is complete: nothing is asked
    assert "message from your care team" not in later.said()


def test_a_guided_message_plays_only_after_the_therapist_approves_it(app, call, waiting):
    patient = waiting(FeedbackMode.GUIDED)
    before = call(patient, CHECKIN, now=T0)
    assert "message from your care team" not in before.said()
    (row,) = messages(app, patient)
    with app.app_context():
        review.approve(db.connection(), row.id, actor="user:1", now=T0)
        db.connection().commit()
    after = call(patient, "1234,silence", now=T0 + timedelta(hours=2))
    assert "In your first check-in, you rated your average pain 6" in after.said()
    assert messages(app, patient)[0].status == FeedbackStatus.DELIVERED


def test_only_the_latest_message_plays_and_an_older_undelivered_one_is_superseded(app, add_patient, call):
    patient = add_patient()
    call(patient, "1234,6,5,4200#,3,2", now=T0 - WEEK)
    generate(app, T0)  # week 0's message: never heard (no call in week 1)
    generate(app, T0 + WEEK)  # week 1 closed with no check-in: its message is the latest
    result = call(patient, "1234,5,5,5000#,4,2,silence", now=T0 + WEEK + timedelta(hours=1))
    assert "We missed your check-in last week" in result.said()
    assert "In your first check-in" not in result.said()
    week0, week1 = messages(app, patient)
    assert (week0.status, week1.status) == (FeedbackStatus.SUPERSEDED, FeedbackStatus.DELIVERED)
    assert week0.delivered_at is None


def test_opting_out_at_the_message_menu_records_the_words_of_that_menu(app, call, waiting):
    patient = waiting()
    call(patient, CHECKIN + ",8", now=T0)
    (event,) = rows(app, AuditEvent, AuditEvent.action == "opted_out")
    catalogue = app.extensions["voice_settings"].renderer.catalogue
    assert event.detail["wording_version"] == catalogue.wording_version("en", ("feedback_menu", "opted_out"))


# --- request by request: what "heard to its end" means --------------------------------------------------


def walk_to_the_message(client, n=1):
    """Answer a call and go through the check-in; return the response that plays the message."""
    response = signed_post(client, "/voice/answer", answer_params(sid(n), from_=PHONE))
    for digits in ("1234", "5", "6", "4800", "5", "2"):
        response = signed_post(client, gather_action(twiml(response)), {"CallSid": sid(n), "Digits": digits})
    return response


def played_path(response) -> str:
    root = twiml(response)
    assert root.find("Gather") is None  # nothing interrupts the message
    (redirect,) = root.findall("Redirect")
    return redirect.text.removeprefix(PUBLIC_BASE_URL)


def test_the_message_is_followed_by_a_redirect_that_twilio_requests_only_once_it_has_played(app, client, waiting):
    patient = waiting(phone=PHONE)
    response = walk_to_the_message(client)
    path = played_path(response)
    assert path.endswith("&e=played") and "In your first check-in" in response.get_data(as_text=True)
    assert messages(app, patient)[0].status == FeedbackStatus.READY  # not yet heard
    menu = signed_post(client, path, {"CallSid": sid(1)})
    assert "To hear this message again" in menu.get_data(as_text=True)
    assert messages(app, patient)[0].status == FeedbackStatus.DELIVERED
    again = signed_post(client, path, {"CallSid": sid(1)})  # Twilio retried the request
    assert again.get_data() == menu.get_data()
    assert messages(app, patient)[0].plays == 1


def test_hanging_up_during_the_message_leaves_it_waiting_for_the_next_call(app, client, call, waiting):
    patient = waiting(phone=PHONE)
    walk_to_the_message(client)
    hangup = {"CallSid": sid(1), "CallStatus": "completed", "Direction": "inbound", "CallDuration": "70"}
    assert signed_post(client, "/voice/status", hangup).status_code == 204
    (row,) = messages(app, patient)
    assert (row.status, row.plays, row.delivered_at) == (FeedbackStatus.READY, 0, None)
    result = call(patient, "1234,silence", now=T0 + timedelta(hours=2))
    assert "In your first check-in" in result.said()
    assert messages(app, patient)[0].status == FeedbackStatus.DELIVERED


@pytest.mark.parametrize("event", ["played2", "PLAYED", ""])
def test_a_step_with_an_unknown_event_is_malformed_and_changes_nothing(app, client, waiting, event):
    patient = waiting(phone=PHONE)
    response = walk_to_the_message(client)
    path = played_path(response).replace("e=played", f"e={event}")
    assert signed_post(client, path, {"CallSid": sid(1)}).status_code == 400
    assert messages(app, patient)[0].status == FeedbackStatus.READY


def test_an_end_of_playback_where_the_call_waits_for_keys_and_keys_where_it_waits_for_playback_are_400(
    app, client, waiting
):
    patient = waiting(phone=PHONE)
    response = signed_post(client, "/voice/answer", answer_params(sid(1), from_=PHONE))
    at_pin = gather_action(twiml(response))
    assert signed_post(client, at_pin + "&e=played", {"CallSid": sid(1)}).status_code == 400
    path = played_path(walk_to_the_message(client, n=2))
    assert signed_post(client, path.replace("&e=played", ""), {"CallSid": sid(2), "Digits": "1"}).status_code == 400
    assert messages(app, patient)[0].status == FeedbackStatus.READY
    assert signed_post(client, path, {"CallSid": sid(2)}).status_code == 200  # the real one still works


def test_a_message_regenerated_while_it_plays_is_not_marked_delivered(app, client, waiting):
    patient = waiting(phone=PHONE)
    path = played_path(walk_to_the_message(client))
    with app.app_context():
        db.connection().execute(sa.update(FeedbackMessage).values(version=FeedbackMessage.version + 1))
        db.connection().commit()
    signed_post(client, path, {"CallSid": sid(1)})
    (row,) = messages(app, patient)
    assert (row.status, row.plays) == (FeedbackStatus.READY, 0)  # the new version still waits


# --- what it sounds like: recordings, free text, number clips ------------------------------------------


def test_a_therapists_recording_is_played_from_an_opaque_url(app, client, waiting):
    patient = waiting(FeedbackMode.GUIDED, phone=PHONE)
    (row,) = messages(app, patient)
    clip = (ROOT / "tests" / "data" / "one_second.wav").read_bytes()
    with app.app_context():
        token = review.record(db.connection(), row.id, clip, "audio/wav", actor="user:1", now=T0)
        db.connection().commit()
    root = twiml(walk_to_the_message(client))
    plays = [play.text for play in root.iter("Play")]
    assert plays == [f"{PUBLIC_BASE_URL}/recordings/{token}.wav"]
    assert client.get(f"/recordings/{token}.wav").data == clip


def test_free_text_is_spoken_in_the_patients_voice_settings(app, client, waiting):
    patient = waiting(FeedbackMode.GUIDED, phone=PHONE, language="es", pin="1234")
    (row,) = messages(app, patient)
    with app.app_context():
        review.write_text(db.connection(), row.id, "Muy bien hecho.", actor="user:1", now=T0)
        db.connection().commit()
    root = twiml(walk_to_the_message(client))
    says = [(say.text, say.get("language")) for say in root.iter("Say")]
    assert ("Este es el mensaje de esta semana de su equipo de atención. Muy bien hecho.", "es-US") in says


@pytest.fixture
def clips(tmp_path):
    """A copy of the prompts with recorded clips for some prompts and every English number word."""
    prompts = tmp_path / "prompts"
    shutil.copytree(ROOT / "prompts", prompts)
    audio = prompts / "en" / "audio"
    audio.mkdir()
    from ivr_cbt.audio import number_vocabulary

    for clip_id in ["fb_pain_was_first", *(f"number_{word}" for word in number_vocabulary("en"))]:
        shutil.copy(ROOT / "tests" / "data" / "one_second.wav", audio / f"{clip_id}.wav")
    return prompts


def test_recorded_prompts_and_number_clips_are_played_instead_of_spoken(make_app, clips, clock):
    app = make_app(PROMPTS_DIR=str(clips))
    with db.session_scope(app) as session:
        patient = enrol(
            session,
            NewPatient("Clip Patient", PHONE, "1234", "America/New_York", "en", START),
            pepper=app.config["PIN_PEPPER"],
            languages={"en", "es"},
            now=T0,
            actor="test",
        ).id
    run_call(app, patient, ScriptedCaller.parse("1234,6,5,4200#,3,2"), now=T0 - WEEK)
    generate(app, T0)
    clock.set(T0)
    root = twiml(walk_to_the_message(app.test_client()))
    plays = [play.text.removeprefix(PUBLIC_BASE_URL) for play in root.iter("Play")]
    assert plays[:2] == ["/media/en/fb_pain_was_first.wav", "/media/en/number_six.wav"]
    assert "/media/en/number_thousand.wav" in plays and "/media/en/number_two.wav" in plays
    served = app.test_client().get("/media/en/number_six.wav")
    assert served.status_code == 200 and served.mimetype == "audio/wav"
    served.close()
    with wave.open(str(clips / "en" / "audio" / "number_six.wav")) as clip:
        assert clip.getnframes() > 0
