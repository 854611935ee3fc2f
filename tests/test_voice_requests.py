"""Webhook requests one by one: signatures (403), malformed input (400), duplicates, status callbacks."""

from __future__ import annotations

import pytest

from ivr_cbt.models import Call, CheckinStatus

from .conftest import AUTH_TOKEN, PROGRAM_NUMBER, PUBLIC_BASE_URL
from .helpers import (
    answer_params,
    call_row,
    checkins,
    gather_action,
    rows,
    sid,
    signed_post,
    spoken,
    twiml,
)

PATIENT_PHONE = "+12025550199"


@pytest.fixture
def known(add_patient):
    return add_patient(phone=PATIENT_PHONE, pin="4321")


def start_call(client, n=1, **extra):
    return signed_post(client, "/voice/answer", answer_params(sid(n), from_=PATIENT_PHONE, **extra))


def post_step(client, response, params, n=1, noinput=False):
    path = gather_action(twiml(response))
    if noinput:
        path += "&e=noinput"
    return signed_post(client, path, {"CallSid": sid(n), **params})


# --- signatures --------------------------------------------------------------------------------


@pytest.mark.parametrize("path", ["/voice/answer", "/voice/step?s=1", "/voice/status", "/voice/fallback"])
def test_an_unsigned_request_is_refused_and_changes_nothing(app, client, known, path):
    response = client.post(path, data=answer_params(sid(1), from_=PATIENT_PHONE, CallStatus="completed"))
    assert response.status_code == 403
    assert rows(app, Call) == []


@pytest.mark.parametrize(
    "how",
    ["wrong token", "http instead of https", "other host", "tampered parameter", "query dropped", "garbage signature"],
)
def test_a_wrongly_signed_request_is_refused(app, client, known, how):
    params = answer_params(sid(1), from_=PATIENT_PHONE)
    path, base, token, signed_params = "/voice/answer", PUBLIC_BASE_URL, AUTH_TOKEN, dict(params)
    signature = None
    if how == "wrong token":
        token = "not-the-token"
    elif how == "http instead of https":
        base = PUBLIC_BASE_URL.replace("https://", "http://")
    elif how == "other host":
        base = "https://attacker.example"
    elif how == "tampered parameter":
        from twilio.request_validator import RequestValidator

        signature = RequestValidator(AUTH_TOKEN).compute_signature(base + path, signed_params)
        params["From"] = "+19995550100"
    elif how == "query dropped":
        from twilio.request_validator import RequestValidator

        signature = RequestValidator(AUTH_TOKEN).compute_signature(base + "/voice/answer?x=1", params)
    else:
        signature = "bm90IGEgc2lnbmF0dXJl"
    response = signed_post(client, path, params, token=token, base=base, signature=signature)
    assert response.status_code == 403
    assert rows(app, Call) == []


def test_a_signed_request_is_accepted_even_with_parameters_we_do_not_know(client, known):
    response = start_call(client, CallerCountry="US", StirVerstat="TN-Validation-Passed-A", NewThing="x")
    root = twiml(response)
    assert "four-digit PIN" in spoken(root)


def test_the_signature_is_checked_against_the_public_url_not_the_host_the_request_came_to(make_app, known):
    """Behind a TLS proxy the app sees http://internal:8000; Twilio signed https://public/..."""
    app = make_app(PUBLIC_BASE_URL="https://ivr.example.org")
    client = app.test_client()
    response = client.post(
        "/voice/answer",
        data=answer_params(sid(1), from_=PATIENT_PHONE),
        headers={"X-Twilio-Signature": "x"},
        base_url="http://internal:8000",
    )
    assert response.status_code == 403
    response = signed_post(client, "/voice/answer", answer_params(sid(2), from_=PATIENT_PHONE))
    assert response.status_code == 200


# --- malformed requests ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "params",
    [
        {},
        {"CallSid": "not-a-sid"},
        {"CallSid": "CA" + "z" * 32},
        {"CallSid": sid(1), "Direction": "sideways"},
    ],
    ids=["no CallSid", "bad CallSid", "non-hex CallSid", "bad Direction"],
)
def test_a_malformed_answer_webhook_gets_400(app, client, params):
    response = signed_post(client, "/voice/answer", params)
    assert response.status_code == 400
    assert rows(app, Call) == []


@pytest.mark.parametrize(
    "path, params",
    [
        ("/voice/step?s=1", {"CallSid": sid(9), "Digits": "1234"}),
        ("/voice/step?s=abc", {"CallSid": sid(1), "Digits": "1234"}),
        ("/voice/step", {"CallSid": sid(1), "Digits": "1234"}),
        ("/voice/step?s=1&e=other", {"CallSid": sid(1), "Digits": "1234"}),
        ("/voice/step?s=1", {"CallSid": sid(1), "Digits": "12a4"}),
        ("/voice/step?s=1", {"CallSid": sid(1), "SpeechResult": "five", "Confidence": "high"}),
        ("/voice/step?s=1", {"CallSid": sid(1), "SpeechResult": "five", "Confidence": "1.5"}),
        ("/voice/step?s=1", {"Digits": "1234"}),
    ],
    ids=[
        "unknown call",
        "step not a number",
        "no step",
        "unknown event",
        "letters in Digits",
        "Confidence not a number",
        "Confidence above 1",
        "no CallSid",
    ],
)
def test_a_malformed_step_gets_400_and_changes_nothing(app, client, known, path, params):
    start_call(client)
    before = call_row(app, sid(1))
    response = signed_post(client, path, params)
    assert response.status_code == 400
    after = call_row(app, sid(1))
    assert (after.step, after.flow_state) == (before.step, before.flow_state)


@pytest.mark.parametrize(
    "params",
    [
        {"CallSid": sid(1)},
        {"CallSid": sid(1), "CallStatus": "exploded"},
        {"CallSid": sid(1), "CallStatus": "completed", "CallDuration": "-3"},
    ],
    ids=["no CallStatus", "unknown CallStatus", "bad CallDuration"],
)
def test_a_malformed_status_callback_gets_400(app, client, known, params):
    start_call(client)
    response = signed_post(client, "/voice/status", params)
    assert response.status_code == 400
    assert call_row(app, sid(1)).status == "in-progress"


def test_a_non_form_body_is_refused_not_crashed(client, known):
    response = client.post(
        "/voice/answer", data=b"\x00\xff{not json", content_type="application/json", headers={"X-Twilio-Signature": "x"}
    )
    assert response.status_code == 403


def test_an_oversized_request_is_refused(client, known):
    response = signed_post(client, "/voice/answer", answer_params(sid(1), from_=PATIENT_PHONE, Padding="x" * 70_000))
    assert response.status_code == 413


# --- idempotency ---------------------------------------------------------------------------------------


def test_a_duplicate_answer_webhook_gets_the_same_twiml_and_creates_one_call(app, client, known):
    first = start_call(client)
    second = start_call(client)
    assert first.get_data() == second.get_data()
    assert len(rows(app, Call)) == 1
    assert call_row(app, sid(1)).step == 1


def test_a_duplicate_step_changes_nothing_and_replays_the_answer(app, client, known):
    answered = start_call(client)
    after_pin = post_step(client, answered, {"Digits": "4321"})
    after_pain = post_step(client, after_pin, {"Digits": "6"})
    state = call_row(app, sid(1))
    replay = post_step(client, after_pin, {"Digits": "9"})  # Twilio retrying step 2, even with other digits
    assert replay.get_data() == after_pain.get_data()
    again = call_row(app, sid(1))
    assert (again.step, again.flow_state) == (state.step, state.flow_state)
    (checkin,) = checkins(app, known)
    assert checkin["answers"]["pain_avg"] == 6


def test_a_stale_step_replays_the_current_twiml(app, client, known):
    answered = start_call(client)
    after_pin = post_step(client, answered, {"Digits": "4321"})
    stale = signed_post(client, "/voice/step?s=0", {"CallSid": sid(1), "Digits": "4321"})
    assert stale.get_data() == after_pin.get_data()


def test_a_step_after_the_flow_has_ended_replays_and_does_not_take_the_step(app, client, known):
    """The turn claims its step before it knows the flow has ended; then it gives the step back."""
    import sqlalchemy as sa

    from ivr_cbt import db

    answered = start_call(client)
    with app.app_context():  # the flow ended at step 1 (as after a goodbye)
        conn = db.connection()
        conn.execute(sa.update(Call).values(flow_state={"node": None}, last_twiml="<Response><Hangup/></Response>"))
        conn.commit()
    replay = post_step(client, answered, {"Digits": "4321"})
    assert replay.status_code == 200 and replay.get_data(as_text=True) == "<Response><Hangup/></Response>"
    assert call_row(app, sid(1)).step == 1


# --- status callbacks ------------------------------------------------------------------------------------


def status(client, call_status, n=1, **extra):
    return signed_post(
        client, "/voice/status", {"CallSid": sid(n), "CallStatus": call_status, "Direction": "inbound", **extra}
    )


def test_status_updates_apply_monotonically(app, client, known):
    start_call(client)
    assert status(client, "completed", CallDuration="42").status_code == 204
    assert status(client, "ringing").status_code == 204  # late and out of order
    row = call_row(app, sid(1))
    assert (row.status, row.duration_s) == ("completed", 42)
    assert row.ended_at is not None


def test_a_status_callback_for_an_unknown_call_is_recorded(app, client):
    assert status(client, "no-answer", n=7).status_code == 204
    assert call_row(app, sid(7)).status == "no-answer"


def test_a_call_that_drops_leaves_its_check_in_partial_with_its_answers(app, client, known):
    answered = start_call(client)
    after_pin = post_step(client, answered, {"Digits": "4321"})
    post_step(client, after_pin, {"Digits": "3"})
    status(client, "completed", CallDuration="30")
    (checkin,) = checkins(app, known)
    assert checkin["status"] == CheckinStatus.PARTIAL.value
    assert checkin["answers"]["pain_avg"] == 3
    assert checkin["next_item"] == "sleep_quality"


def test_silence_falls_through_to_a_redirect_that_reports_no_input(app, client, known):
    answered = start_call(client)
    root = twiml(answered)
    redirect = root.find("Redirect")
    assert redirect is not None and redirect.text.endswith("&e=noinput")
    reprompt = post_step(client, answered, {}, noinput=True)
    assert "I did not hear any keys" in spoken(twiml(reprompt))


def test_an_empty_digits_submission_counts_as_no_input(client, known):
    answered = start_call(client)
    reprompt = post_step(client, answered, {"Digits": ""})
    assert "I did not hear any keys" in spoken(twiml(reprompt))


# --- fallback and media ------------------------------------------------------------------------------


def test_the_fallback_url_apologises_and_hangs_up(client):
    response = signed_post(client, "/voice/fallback", {"CallSid": sid(1), "ErrorCode": "11200"})
    root = twiml(response)
    assert "answers so far are saved" in spoken(root)
    assert root[-1].tag == "Hangup"


def test_media_for_a_prompt_without_a_clip_is_404(client):
    assert client.get("/media/en/greeting.wav").status_code == 404
    assert client.get("/media/xx/../../etc/passwd.wav").status_code == 404


def test_twiml_urls_carry_only_opaque_ids(app, client, known):
    answered = start_call(client)
    after_pin = post_step(client, answered, {"Digits": "4321"})
    for response in (answered, after_pin):
        body = response.get_data(as_text=True)
        assert PATIENT_PHONE not in body and PATIENT_PHONE.lstrip("+") not in body
        assert "4321" not in body
        for element in twiml(response).iter():
            for url in (element.get("action"), element.text if element.tag == "Redirect" else None):
                if url:
                    assert url.startswith(PUBLIC_BASE_URL + "/voice/step?s=")
    assert PROGRAM_NUMBER  # the program's own number may appear, the patient's never


def test_webhook_responses_set_no_cookies(client, known):
    response = start_call(client)
    assert "Set-Cookie" not in response.headers
