"""The feedback queue: a therapist reads their guided patients' weekly messages beside the week's numbers,
then approves, edits, rewrites, records or reverts them; each goes through the review services, for their
own patients only."""

from __future__ import annotations

import io
import re
from datetime import timedelta
from html import unescape

import pytest
import sqlalchemy as sa
from werkzeug.datastructures import FileStorage
from werkzeug.test import encode_multipart

from ivr_cbt import db
from ivr_cbt.dashboard import MAX_REQUEST_BYTES
from ivr_cbt.feedback import generate
from ivr_cbt.models import Answer, AuditEvent, CheckIn, FeedbackMessage, FeedbackMode, FeedbackStatus

from ..conftest import T0
from ..helpers import audit_actions, rows, wav
from .conftest import csrf_token, post_form

WEEK = timedelta(days=7)
ACTIONS = ["approve", "edit", "text", "record", "revert"]


def message_of(app, patient_id: int) -> FeedbackMessage:
    (message,) = rows(app, FeedbackMessage, FeedbackMessage.patient_id == patient_id)
    return message


def card(page: str, message_id: int) -> str:
    """The text of one message's card on the queue page, tags removed."""
    start = page.index(f'id="message-{message_id}"')
    html = page[start : page.index("</article>", start)]
    return html_text(html)


def html_text(html: str) -> str:
    """Text without tags, entities decoded, white space collapsed."""
    return re.sub(r"\s+", " ", unescape(re.sub(r"<[^>]+>", " ", html)))


@pytest.fixture
def rising(add_patient, assign, therapist, call, app, clock):
    """A guided patient of ``therapist``: pain 4, 6, 7 in weeks 0-2; week 2's message waits for review."""
    patient = add_patient(name="Rita Rising", feedback_mode=FeedbackMode.GUIDED)
    assign(patient, therapist)
    for week, pain, practice in ((0, 4, 0), (1, 6, 3), (2, 7, 0)):
        call(patient, f"1234,{pain},6,{3000 + 200 * week}#,{practice},2", now=T0 + (week - 1) * WEEK)
    generate(app, T0 + 2 * WEEK)
    clock.set(T0 + 2 * WEEK)  # Monday of week 3
    return patient


def act(client, message: FeedbackMessage, action: str, data: dict | None = None, **kwargs):
    token = csrf_token(client.get("/feedback"))
    form = {"csrf_token": token, "version": str(message.version), **(data or {})}
    return client.post(f"/feedback/{message.id}/{action}", data=form, **kwargs)


def test_a_waiting_message_is_shown_with_the_weeks_summary_its_script_and_its_segments(app, sign_in, therapist, rising):
    message = message_of(app, rising)
    assert message.status == FeedbackStatus.PENDING_REVIEW
    page = sign_in(therapist).get("/feedback").get_data(as_text=True)
    text = card(page, message.id)
    assert "Rita Rising" in text and "Week 2 message" in text and "pending-review" in text
    assert "Average pain (0-10) 7 (+1 vs last week (6); +3 vs baseline (4))" in text
    assert "Steps a day 3,400" in text
    assert "pain 7 this week and 6 last week, baseline 4: up 2 or more two weeks running" in text
    assert "no practice days of" in text
    catalogue = app.extensions["voice_settings"].renderer.catalogue
    assert catalogue.text("fb_pain_was", "en") in text  # the script, in the patient's language
    assert '{"prompt": "fb_pain_was"}' in text and '{"number": 7}' in text  # the segment list
    assert "1 waiting" in page
    reference = html_text(page[page.index('id="prompts-en"') :])  # the editor's list of prompts, with their words
    assert f'{{"prompt": "fb_closing"}} {catalogue.text("fb_closing", "en")}' in reference


def test_the_queue_lists_waiting_messages_oldest_first(app, sign_in, therapist, add_patient, assign, clock):
    from datetime import date

    later = add_patient(name="Lou Later", feedback_mode=FeedbackMode.GUIDED, start=date(2026, 2, 23))
    sooner = add_patient(name="Sue Sooner", feedback_mode=FeedbackMode.GUIDED, start=date(2026, 2, 19))
    for patient in (later, sooner):
        assign(patient, therapist)
    generate(app, T0 - 4 * timedelta(days=1))  # Thursday 26 Feb: Sue's week 0 has closed
    generate(app, T0)  # Monday 2 Mar: Lou's week 0 has closed (Sue's week 1 closes on Thursday)
    clock.set(T0)
    page = sign_in(therapist).get("/feedback").get_data(as_text=True)
    shown = [int(i) for i in re.findall(r'<article class="message-card[^"]*" id="message-(\d+)"', page)]
    assert shown == [message_of(app, sooner).id, message_of(app, later).id]
    assert page.index("Sue Sooner") < page.index("Lou Later")


def test_approving_queues_the_message_for_delivery_and_is_audited(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    response = act(client, message, "approve")
    assert response.status_code == 303 and response.location.endswith(f"/feedback#message-{message.id}")
    approved = message_of(app, rising)
    assert (approved.status, approved.reviewed_by) == (FeedbackStatus.READY, f"user:{therapist.id}")
    assert approved.segments == message.segments
    (event,) = rows(app, AuditEvent, AuditEvent.action == "feedback_approved")
    assert (event.actor, event.patient_id) == (f"user:{therapist.id}", rising)
    page = client.get("/feedback").get_data(as_text=True)
    assert "Nothing is waiting for your review." in page
    assert "approved: it plays on the patient's next call" in html_text(page)  # the flash, with ids only
    assert f'data-message-id="{message.id}" data-status="ready"' in page


def test_an_approved_message_plays_on_the_next_call_and_is_then_listed_as_heard(
    app, sign_in, therapist, rising, call, clock
):
    act(sign_in(therapist), message_of(app, rising), "approve")
    call(rising, "1234,6,6,3600#,4,2,silence", now=T0 + 2 * WEEK + timedelta(hours=1))
    clock.set(T0 + 2 * WEEK + timedelta(hours=2))
    delivered = message_of(app, rising)
    assert delivered.status == FeedbackStatus.DELIVERED
    page = sign_in(therapist).get("/feedback").get_data(as_text=True)
    heard = page[page.index('id="delivered"') :]
    assert f'data-message-id="{delivered.id}"' in heard and "Rita Rising" in heard
    history = html_text(sign_in(therapist).get(f"/feedback/{delivered.id}").get_data(as_text=True))
    history = history[history.index("History") :]
    made, approved, played = (history.index(s) for s in ("made from", "approved by", "heard on a call (delivered)"))
    assert made < approved < played  # the message's audit trail, oldest first
    assert f"approved by {therapist.email}" in history and "heard on a call (delivered) by the patient" in history


@pytest.mark.parametrize(
    ("typed", "problem"),
    [
        ('[{"prompt": "fb_closing"', "not JSON"),
        ('[{"prompt": "fb_closing"}, {"colour": 1}]', "segment 2: not a prompt, number, text or recording segment"),
        ('[{"prompt": "no_such_prompt"}]', "unknown prompt(s): no_such_prompt"),
        ("[]", "a message needs at least one segment"),
    ],
)
def test_an_invalid_segment_list_is_refused_with_a_clear_reason_and_the_text_kept(
    app, sign_in, therapist, rising, typed, problem
):
    client = sign_in(therapist)
    before = message_of(app, rising)
    response = act(client, before, "edit", {"segments": typed})
    assert response.status_code == 400
    page = response.get_data(as_text=True)
    assert f"Not saved: {problem}" in html_text(page)
    textarea = re.search(rf'<textarea id="segments-{before.id}"[^>]*>(.*?)</textarea>', page, flags=re.S).group(1)
    assert unescape(textarea) == typed  # nothing the therapist typed is lost
    after = message_of(app, rising)
    assert (after.segments, after.status, after.version, after.edited) == (
        before.segments,
        FeedbackStatus.PENDING_REVIEW,
        before.version,
        False,
    )


def test_an_edited_segment_list_replaces_the_message_and_approves_it(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    typed = '[\n  {"prompt": "fb_pain_was"},\n  {"number": 7, "end": "."},\n  {"text": "I will call you this week."}\n]'
    assert act(client, message, "edit", {"segments": typed}).status_code == 303
    edited = message_of(app, rising)
    assert edited.segments == [
        {"prompt": "fb_pain_was"},
        {"number": 7, "end": "."},
        {"text": "I will call you this week."},
    ]
    assert (edited.status, edited.edited, edited.version) == (FeedbackStatus.READY, True, message.version + 1)
    assert edited.generated_segments == message.generated_segments
    assert "feedback_edited" in audit_actions(app, rising)


def test_free_text_replaces_the_message_and_an_empty_one_is_refused(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    refused = act(client, message, "text", {"text": "   "})
    assert refused.status_code == 400 and "write the message, or approve the assembled one" in refused.get_data(
        as_text=True
    )
    assert message_of(app, rising).status == FeedbackStatus.PENDING_REVIEW
    assert act(client, message, "text", {"text": "Rita, your pain is up: I will call you."}).status_code == 303
    written = message_of(app, rising)
    assert written.segments == [{"text": "Rita, your pain is up: I will call you."}]
    assert written.status == FeedbackStatus.READY


@pytest.mark.parametrize(
    ("filename", "mimetype"),
    [("message.wav", "audio/wav"), ("message.wav", "application/octet-stream")],  # some browsers send the latter
)
def test_an_uploaded_recording_replaces_the_message(app, sign_in, therapist, rising, filename, mimetype):
    client = sign_in(therapist)
    message = message_of(app, rising)
    response = act(
        client,
        message,
        "record",
        {"audio": (io.BytesIO(wav(2.0)), filename, mimetype)},
        content_type="multipart/form-data",
    )
    assert response.status_code == 303
    recorded = message_of(app, rising)
    (segment,) = recorded.segments
    assert recorded.status == FeedbackStatus.READY and set(segment) == {"recording"}
    page = client.get(f"/feedback/{message.id}").get_data(as_text=True)  # its own page plays it back
    assert f'<audio controls preload="none" src="/recordings/{segment["recording"]}.wav">' in page
    assert client.get(f"/recordings/{segment['recording']}.wav").data == wav(2.0)


@pytest.mark.parametrize(
    ("upload", "problem"),
    [
        ((b"hello", "notes.txt", "text/plain"), "upload a WAV or MP3 file"),
        ((b"RIFF....nonsense", "message.wav", "audio/wav"), "that is not a WAV file Twilio can play"),
        ((b"", "", "application/octet-stream"), "choose a WAV or MP3 file to upload"),
    ],
)
def test_a_file_that_is_not_a_recording_is_refused(app, sign_in, therapist, rising, upload, problem):
    client = sign_in(therapist)
    message = message_of(app, rising)
    data, name, kind = upload
    response = act(
        client, message, "record", {"audio": (io.BytesIO(data), name, kind)}, content_type="multipart/form-data"
    )
    assert response.status_code == 400 and problem in response.get_data(as_text=True)
    assert message_of(app, rising).status == FeedbackStatus.PENDING_REVIEW


def test_an_upload_larger_than_the_limit_is_refused_before_it_is_read(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    fields = {"csrf_token": csrf_token(client.get("/feedback")), "version": str(message.version)}
    big = FileStorage(io.BytesIO(b"\0" * (MAX_REQUEST_BYTES + 1)), "long.wav", content_type="audio/wav")
    # Encoded in memory: the test client would spool a body this size to a temporary file it never closes.
    boundary, body = encode_multipart({**fields, "audio": big})
    response = client.post(
        f"/feedback/{message.id}/record", data=body, content_type=f"multipart/form-data; boundary={boundary}"
    )
    assert response.status_code == 413 and "a recording may be at most 8 MB" in response.get_data(as_text=True)
    assert message_of(app, rising).status == FeedbackStatus.PENDING_REVIEW


def test_reverting_goes_back_to_the_assembled_message_which_waits_for_review_again(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    act(client, message, "text", {"text": "Short and sweet."})
    response = act(client, message_of(app, rising), "revert")
    assert response.status_code == 303
    reverted = message_of(app, rising)
    assert reverted.segments == message.generated_segments and not reverted.edited
    assert reverted.status == FeedbackStatus.PENDING_REVIEW
    assert "feedback_reverted" in audit_actions(app, rising)


def test_a_message_that_changed_since_it_was_read_is_not_approved(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    stale = act(client, message, "approve", {"version": str(message.version - 1)})
    assert stale.status_code == 409 and "changed while you were reading it" in stale.get_data(as_text=True)
    assert message_of(app, rising).status == FeedbackStatus.PENDING_REVIEW


def test_a_delivered_message_can_no_longer_change(app, sign_in, therapist, rising):
    with app.app_context():
        db.session().execute(
            sa.update(FeedbackMessage).values(status=FeedbackStatus.DELIVERED.value, delivered_at=T0 + 2 * WEEK)
        )
        db.session().commit()
    client = sign_in(therapist)
    response = act(client, message_of(app, rising), "text", {"text": "Too late."})
    assert response.status_code == 400 and "is delivered and can no longer change" in response.get_data(as_text=True)
    assert message_of(app, rising).segments != [{"text": "Too late."}]


def test_new_answers_after_an_edit_are_shown_prominently_and_a_revert_uses_them(
    app, sign_in, therapist, rising, call, clock
):
    client = sign_in(therapist)
    message = message_of(app, rising)
    act(client, message, "text", {"text": "Well done."})
    # A late answer to week 2's check-in (a call that ran on after the week closed): pain 9, not 7.
    with app.app_context():
        checkin = db.session().scalar(sa.select(CheckIn).where(CheckIn.patient_id == rising, CheckIn.week == 2))
        db.session().execute(
            sa.update(Answer).where(Answer.checkin_id == checkin.id, Answer.item_key == "pain_avg").values(value=9)
        )
        checkin.updated_at = T0 + 2 * WEEK + timedelta(minutes=5)
        db.session().commit()
    assert generate(app, T0 + 2 * WEEK + timedelta(minutes=10)).flagged == 1
    clock.set(T0 + 2 * WEEK + timedelta(minutes=10))
    flagged = message_of(app, rising)
    assert flagged.source_changed and flagged.segments == [{"text": "Well done."}]
    page = client.get("/feedback").get_data(as_text=True)
    text = card(page, flagged.id)
    assert "New answers arrived after this message was edited (or its goals changed)." in text
    assert "Average pain (0-10) 9" in text  # the summary follows the new numbers
    assert "Approve again" in text
    assert act(client, flagged, "revert").status_code == 303
    reverted = message_of(app, rising)
    assert {"number": 9} in reverted.segments and not reverted.source_changed
    assert reverted.status == FeedbackStatus.PENDING_REVIEW


@pytest.mark.parametrize("action", ACTIONS)
def test_another_therapists_message_is_404_for_every_action_and_stays_as_it_was(
    app, sign_in, other_therapist, rising, action
):
    client = sign_in(other_therapist)
    message = message_of(app, rising)
    data = {"segments": "[]", "text": "hello", "audio": (io.BytesIO(wav()), "a.wav", "audio/wav")}
    response = act(client, message, action, data, content_type="multipart/form-data")
    assert response.status_code == 404
    after = message_of(app, rising)
    assert (after.status, after.segments, after.version) == (message.status, message.segments, message.version)
    assert "Rita Rising" not in client.get("/feedback").get_data(as_text=True)


def test_an_unknown_message_or_action_is_404(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    assert post_form(client, "/feedback/999999/approve", {"version": "1"}, page="/feedback").status_code == 404
    assert post_form(client, f"/feedback/{message.id}/delete", {"version": "1"}, page="/feedback").status_code == 404


def test_an_action_without_its_csrf_token_is_refused(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    response = client.post(f"/feedback/{message.id}/approve", data={"version": str(message.version)})
    assert response.status_code == 400
    assert message_of(app, rising).status == FeedbackStatus.PENDING_REVIEW


def test_admins_have_no_feedback_queue(admin_client):
    assert admin_client.get("/feedback").status_code == 403


def test_viewing_the_queue_is_audited_with_the_patients_shown(app, sign_in, therapist, rising):
    sign_in(therapist).get("/feedback")
    (event,) = rows(app, AuditEvent, AuditEvent.action == "feedback_queue_viewed")
    assert event.actor == f"user:{therapist.id}" and event.detail["patient_ids"] == [rising]
    assert event.detail["messages"] == [message_of(app, rising).id]


def test_ready_messages_of_the_automated_arm_are_listed_but_not_waiting(
    app, sign_in, therapist, add_patient, assign, call, clock
):
    patient = add_patient(name="Amy Automated")
    assign(patient, therapist)
    call(patient, "1234,5,6,4200#,3,2", now=T0 - WEEK)
    generate(app, T0)
    clock.set(T0)
    page = sign_in(therapist).get("/feedback").get_data(as_text=True)
    message = message_of(app, patient)
    assert "Nothing is waiting for your review." in page
    ready = page[page.index('id="ready"') : page.index('id="delivered"')]
    assert f'data-message-id="{message.id}" data-status="ready"' in ready and "Amy Automated" in ready


def test_a_message_has_its_own_page_for_its_patients_therapist_only(app, sign_in, therapist, other_therapist, rising):
    message = message_of(app, rising)
    page = sign_in(therapist).get(f"/feedback/{message.id}")
    assert page.status_code == 200 and "Average pain (0-10) 7" in card(page.get_data(as_text=True), message.id)
    (event,) = rows(app, AuditEvent, AuditEvent.action == "feedback_message_viewed")
    assert (event.actor, event.patient_id, event.detail) == (f"user:{therapist.id}", rising, {"message_id": message.id})
    assert sign_in(other_therapist).get(f"/feedback/{message.id}").status_code == 404
    assert sign_in(therapist).get("/feedback/999999").status_code == 404


def test_an_action_taken_on_the_messages_own_page_returns_there(app, sign_in, therapist, rising):
    client = sign_in(therapist)
    message = message_of(app, rising)
    refused = act(client, message, "edit", {"segments": "nonsense", "back": "message"})
    assert refused.status_code == 400 and "Not saved: not JSON" in html_text(refused.get_data(as_text=True))
    assert "<h1>Feedback to review" not in refused.get_data(as_text=True)  # the message's page, not the queue
    done = act(client, message, "approve", {"back": "message"})
    assert done.status_code == 303 and done.location.endswith(f"/feedback/{message.id}")
    assert message_of(app, rising).status == FeedbackStatus.READY
