"""The offline phone behaves like Twilio: checked against a tiny app that serves chosen TwiML."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from flask import Flask, request
from twilio.request_validator import RequestValidator

from ivr_cbt.clock import SimulatedClock
from ivr_cbt.simulator import FlaskTransport, OfflinePhone, PhoneError, Press, ScriptedCaller, Silence, Speak
from ivr_cbt.simulator.callers import HangUp, parse_action

BASE = "https://sim.example"
TOKEN = "sim-token"


class TwimlServer:
    """A Flask app answering each path with the TwiML given for it, recording every request."""

    def __init__(self, documents: dict[str, str], content_type: str = "text/xml"):
        self.documents = documents
        self.requests: list[tuple[str, dict[str, str]]] = []
        self.app = Flask(__name__)
        validator = RequestValidator(TOKEN)

        @self.app.route("/<path:path>", methods=["GET", "POST"])
        def serve(path):
            url = BASE + request.full_path.rstrip("?")
            assert validator.validate(url, request.form, request.headers["X-Twilio-Signature"]), url
            self.requests.append((request.full_path.rstrip("?"), dict(request.form)))
            body = self.documents.get("/" + path)
            if body is None:
                return "", 404
            return body, 200, {"Content-Type": content_type}

    def phone(self, **options) -> OfflinePhone:
        return OfflinePhone(
            FlaskTransport(self.app),
            auth_token=TOKEN,
            account_sid="AC" + "0" * 32,
            public_base_url=BASE,
            seed=7,
            **options,
        )

    def posted(self, path: str) -> list[dict[str, str]]:
        return [params for p, params in self.requests if p == path]


def doc(body: str) -> str:
    return f'<?xml version="1.0" encoding="UTF-8"?><Response>{body}</Response>'


def run(documents, script, **options):
    server = TwimlServer(documents)
    result = server.phone(**options).call(
        ScriptedCaller(script),
        from_="+15550000001",
        to="+15550000002",
        answer_url=BASE + "/answer",
        status_callback=BASE + "/status",
    )
    return server, result


def test_silence_falls_through_to_the_next_verb():
    server, result = run(
        {
            "/answer": doc('<Gather action="/got"><Say>Press a key.</Say></Gather><Say>Nothing pressed.</Say>'),
            "/status": "",
        },
        [Silence()],
    )
    assert [line.text for line in result.transcript if line.speaker == "APP"] == ["Press a key.", "Nothing pressed."]
    assert server.posted("/got") == []
    assert result.transcript[-1].text == "end of TwiML: call ends"


def test_silence_with_action_on_empty_result_posts_empty_digits():
    server, _ = run(
        {"/answer": doc('<Gather action="/got" actionOnEmptyResult="true"/>'), "/got": doc(""), "/status": ""},
        [Silence()],
    )
    (params,) = server.posted("/got")
    assert params["Digits"] == ""


@pytest.mark.parametrize(
    "gather, keys, sent",
    [
        ('numDigits="2"', "123", "12"),
        ('numDigits="4"', "12#", "12"),
        ("", "4200#", "4200"),
        ("", "4200", "4200"),  # no finish key: sent when the timeout expires
        ('finishOnKey=""', "12#", "12#"),
        ('numDigits="1"', "*", "*"),
    ],
)
def test_keys_are_collected_like_twilio(gather, keys, sent):
    server, _ = run(
        {"/answer": doc(f'<Gather action="/got" {gather}/>'), "/got": doc(""), "/status": ""}, [Press(keys)]
    )
    (params,) = server.posted("/got")
    assert params["Digits"] == sent


def test_the_finish_key_alone_is_ignored_and_the_gather_times_out():
    server, result = run(
        {"/answer": doc('<Gather action="/got"/><Say>Timed out.</Say>'), "/got": doc(""), "/status": ""}, [Press("#")]
    )
    assert server.posted("/got") == []
    assert "Timed out." in result.said()


def test_the_gather_action_defaults_to_the_current_document():
    server, _ = run({"/answer": doc("<Gather/>"), "/status": ""}, [Press("5")])
    assert [p for p, _ in server.requests].count("/answer") == 2
    assert server.posted("/answer")[1]["Digits"] == "5"


def test_speech_is_sent_only_when_the_gather_takes_speech():
    server, _ = run(
        {
            "/answer": doc('<Gather input="dtmf speech" action="/got" language="es-US"/>'),
            "/got": doc(""),
            "/status": "",
        },
        [Speak("siete", 0.42)],
    )
    (params,) = server.posted("/got")
    assert (params["SpeechResult"], params["Confidence"], params["Language"]) == ("siete", "0.42", "es-US")
    server, result = run({"/answer": doc('<Gather action="/got"/>'), "/got": doc(""), "/status": ""}, [Speak("siete")])
    assert server.posted("/got") == []
    assert "speak ignored" in result.text()


def test_redirects_are_followed_and_relative_urls_resolved():
    server = TwimlServer(
        {
            "/answer": doc("<Redirect>/a/next</Redirect>"),
            "/a/next": doc('<Redirect method="POST">again</Redirect>'),
            "/a/again": doc("<Say>There.</Say><Hangup/>"),
            "/status": "",
        }
    )
    result = server.phone().call(
        ScriptedCaller([]), from_="+1", to="+2", answer_url=BASE + "/answer", status_callback=BASE + "/status"
    )
    assert [p for p, _ in server.requests if p != "/status"] == ["/answer", "/a/next", "/a/again"]
    assert result.said() == "There."


def test_dial_then_the_next_verb_or_the_dial_action():
    server, result = run({"/answer": doc("<Dial>988</Dial><Say>After.</Say>"), "/status": ""}, [])
    assert "[dials 988]" in result.text() and result.said().endswith("After.")
    server, _ = run({"/answer": doc('<Dial action="/after">988</Dial>'), "/after": doc(""), "/status": ""}, [])
    assert server.posted("/after")[0]["DialCallStatus"] == "completed"


def test_a_caller_hanging_up_at_a_gather_ends_the_call_without_an_action():
    server, result = run({"/answer": doc('<Gather action="/got"/>'), "/status": ""}, [HangUp()])
    assert server.posted("/got") == []
    assert result.transcript[-1].text == "hangs up"


def test_only_the_completed_status_callback_is_sent_unless_others_are_asked_for():
    server, _ = run({"/answer": doc("<Hangup/>"), "/status": ""}, [])
    assert [params["CallStatus"] for params in server.posted("/status")] == ["completed"]


def test_status_callbacks_ringing_answered_completed_with_duration():
    clock = SimulatedClock(datetime(2026, 1, 5, 12, tzinfo=UTC))
    server = TwimlServer({"/answer": doc('<Say>one two three four five</Say><Pause length="3"/>'), "/status": ""})
    result = server.phone(clock=clock).call(
        ScriptedCaller([]),
        from_="+1",
        to="+2",
        answer_url=BASE + "/answer",
        status_callback=BASE + "/status",
        status_events=("ringing", "answered", "completed"),
    )
    statuses = [params["CallStatus"] for params in server.posted("/status")]
    assert statuses == ["ringing", "in-progress", "completed"]
    assert server.posted("/status")[-1]["CallDuration"] == "5"
    assert clock.now() == datetime(2026, 1, 5, 12, 0, 5, tzinfo=UTC)
    assert result.duration_s == 5


def test_an_unanswered_call_sends_only_status_callbacks():
    server = TwimlServer({"/status": ""})
    result = server.phone().ring_out(
        outcome="no-answer",
        from_="+1",
        to="+2",
        call_sid="CA" + "1" * 32,
        status_callback=BASE + "/status",
        status_events=("ringing", "completed"),
    )
    assert [p["CallStatus"] for p in server.posted("/status")] == ["ringing", "no-answer"]
    assert result.status == "no-answer"


def test_a_machine_is_reported_with_answered_by():
    server = TwimlServer({"/answer": doc("<Hangup/>"), "/status": ""})
    server.phone().call(
        ScriptedCaller([]),
        from_="+1",
        to="+2",
        answered_by="machine_start",
        answer_url=BASE + "/answer",
        status_callback=BASE + "/status",
    )
    assert server.posted("/answer")[0]["AnsweredBy"] == "machine_start"


def test_duplicate_delivery_sends_each_request_twice():
    server, _ = run({"/answer": doc("<Hangup/>"), "/status": ""}, [], duplicate_requests=True)
    assert [p for p, _ in server.requests].count("/answer") == 2


@pytest.mark.parametrize(
    "body, content_type, code",
    [
        (doc("<Say>hi</Say>"), "application/json", "12300"),
        ("  " + doc("<Say>hi</Say>"), "text/xml", "12100"),
        ("<Response><Say>hi</Response>", "text/xml", "12100"),
        (doc("<say>hi</say>"), "text/xml", "12200"),
        (doc("<Speak>hi</Speak>"), "text/xml", "12200"),
        (doc('<Say voyce="alice">hi</Say>'), "text/xml", "12200"),
        (doc('<Gather numDigits="two"/>'), "text/xml", "12200"),
        (doc('<Gather input="keys"/>'), "text/xml", "12200"),
        (doc('<Gather finishOnKey="x"/>'), "text/xml", "13310"),
        (doc("<Gather><Dial>1</Dial></Gather>"), "text/xml", "12200"),
        ("<Reply/>", "text/xml", "12200"),
    ],
    ids=[
        "content type",
        "leading space",
        "broken XML",
        "lowercase verb",
        "unknown verb",
        "unknown attribute",
        "bad numDigits",
        "bad input",
        "bad finishOnKey",
        "Dial inside Gather",
        "wrong root",
    ],
)
def test_twiml_twilio_would_refuse_is_refused(body, content_type, code):
    server = TwimlServer({"/answer": body, "/status": ""}, content_type=content_type)
    with pytest.raises(PhoneError, match=code):
        server.phone().call(
            ScriptedCaller([]), from_="+1", to="+2", answer_url=BASE + "/answer", status_callback=BASE + "/status"
        )


def test_an_application_error_uses_the_fallback_url_when_not_strict():
    server = TwimlServer({"/answer": "<oops", "/fallback": doc("<Say>Sorry.</Say>"), "/status": ""})
    result = server.phone(strict=False).call(
        ScriptedCaller([]),
        from_="+1",
        to="+2",
        answer_url=BASE + "/answer",
        status_callback=BASE + "/status",
        fallback_url=BASE + "/fallback",
    )
    (params,) = server.posted("/fallback")
    assert params["ErrorCode"] == "12100" and params["ErrorUrl"] == BASE + "/answer"
    assert result.said() == "Sorry."


def test_an_http_error_without_fallback_ends_the_call():
    server = TwimlServer({"/status": ""})
    result = server.phone(strict=False).call(
        ScriptedCaller([]), from_="+1", to="+2", answer_url=BASE + "/missing", status_callback=BASE + "/status"
    )
    assert "application error 11200" in result.text()


def test_a_loop_of_redirects_is_stopped():
    server = TwimlServer({"/answer": doc("<Redirect>/answer</Redirect>"), "/status": ""})
    with pytest.raises(PhoneError, match="a loop"):
        server.phone().call(
            ScriptedCaller([]), from_="+1", to="+2", answer_url=BASE + "/answer", status_callback=BASE + "/status"
        )


@pytest.mark.parametrize(
    "token, action",
    [
        ("5", Press("5")),
        ("4200#", Press("4200#")),
        ("*", Press("*")),
        ("silence", Silence()),
        ("HANGUP", HangUp()),
        ("speech:seven", Speak("seven")),
        ("speech:tres mil@0.45", Speak("tres mil", 0.45)),
    ],
)
def test_script_tokens(token, action):
    assert parse_action(token) == action


@pytest.mark.parametrize("token", ["five", "speech:", "speech:x@2", "12a"])
def test_bad_script_tokens_are_refused_with_the_token_named(token):
    with pytest.raises(ValueError, match="not a caller action"):
        parse_action(token)


def test_the_in_process_transport_encodes_a_form_body_as_urlencode_does():
    from urllib.parse import parse_qsl, urlencode

    from ivr_cbt.simulator.transport import form_body

    params = {
        "From": "+12025550143",
        "SpeechResult": "siete, año & más",
        "Digits": "",
        "Confidence": "0.91",
        "ErrorUrl": "https://ivr.example.org/voice/step?s=3&e=noinput",
    }
    for _ in range(2):  # the second time from the cache of encoded pairs
        assert form_body(params) == urlencode(params).encode()
    assert dict(parse_qsl(form_body(params).decode(), keep_blank_values=True)) == params
