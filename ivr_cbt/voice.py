"""The Twilio webhooks. Every request must be signed; each view parses, calls one service, answers."""

from __future__ import annotations

import re

from flask import Blueprint, Flask, abort, current_app, request, send_file
from twilio.request_validator import RequestValidator, compare

from ivr_cbt import alerts, db, telephony
from ivr_cbt.callflow import spec
from ivr_cbt.calls import CALL_STATUSES, Answered, CallService, MismatchedEvent, StatusReport, UnknownCall

bp = Blueprint("voice", __name__, url_prefix="/voice")
media_bp = Blueprint("media", __name__)

CALL_SID = re.compile(r"^CA[0-9a-fA-F]{32}$")
DIGITS = re.compile(r"^[0-9*#]{0,32}$")
DIRECTIONS = frozenset({"inbound", "outbound-api", "outbound-dial"})
TWIML = "text/xml"
STEP_EVENTS = frozenset({"noinput", "played"})


class FormValidator(RequestValidator):
    """twilio-python's validator, reading the form as the Werkzeug MultiDict it is.

    Its own ``get_values`` tries ``getall`` (another library's MultiDict) first and catches the
    AttributeError, so every form parameter of every webhook paid for an exception.
    """

    def get_values(self, param_dict, param_name):
        return param_dict.getlist(param_name)


def init_app(app: Flask) -> None:
    app.extensions["twilio_validator"] = FormValidator(app.config["TWILIO_AUTH_TOKEN"])
    app.register_blueprint(bp)
    app.register_blueprint(media_bp)


@bp.before_request
def require_twilio_signature():
    """Refuse (403) any request not signed for PUBLIC_BASE_URL + path + query."""
    app, req = current_app._get_current_object(), request._get_current_object()  # one context lookup each
    url = app.config["PUBLIC_BASE_URL"] + req.path
    if req.query_string:
        url += "?" + req.query_string.decode("latin-1")
    signature = req.headers.get("X-Twilio-Signature", "")
    if not signature or not _signed(app.extensions["twilio_validator"], url, req.form, signature):
        app.logger.warning("voice: refused a request with a missing or wrong signature")
        abort(403)


def _signed(validator: RequestValidator, url: str, form, signature: str) -> bool:
    """Check the signature for the exact URL first (one HMAC, the usual case); otherwise let
    twilio-python's full check try its port variants."""
    return compare(validator.compute_signature(url, form), signature) or validator.validate(url, form, signature)


def _service() -> CallService:
    extensions = current_app.extensions
    return CallService(db.connection(), extensions["voice_settings"], extensions["clock"].now())


def _field(name: str, pattern: re.Pattern | None = None, *, required: bool = True, max_length: int = 64) -> str:
    value = request.form.get(name, "")
    if not value and not required:
        return ""
    if not value or len(value) > max_length or (pattern and not pattern.match(value)):
        abort(400, description=f"missing or malformed {name}")
    return value


def _twiml(body: str, alert_ids: list[int]):
    if alert_ids:
        app = current_app
        alerts.notify(
            db.connection(),
            telephony.current(),
            alert_ids,
            number=app.config["ALERT_NOTIFY_NUMBER"],
            now=app.extensions["clock"].now(),
        )
    return body, 200, {"Content-Type": TWIML}


@bp.post("/answer")
def answer():
    """Answer a call, inbound or outbound: greet, and ask who is calling."""
    direction = _field("Direction", required=False) or "inbound"
    if direction not in DIRECTIONS:
        abort(400, description="malformed Direction")
    answered = Answered(
        call_sid=_field("CallSid", CALL_SID),
        direction=direction,
        from_=_field("From", required=False),
        to=_field("To", required=False),
        answered_by=_field("AnsweredBy", required=False),
        attempt_id=_attempt_id(),
    )
    return _twiml(*_service().answer(answered))


@bp.post("/step")
def step():
    """Take the caller's answer to step ``s`` (or their silence, ``e=noinput``, or the end of a
    message's playback, ``e=played``)."""
    seq = request.args.get("s", "")
    if not seq.isdigit() or len(seq) > 6 or request.args.get("e", "noinput") not in STEP_EVENTS:
        abort(400, description="malformed step")
    try:
        return _twiml(*_service().step(_field("CallSid", CALL_SID), int(seq), _event()))
    except UnknownCall:
        abort(400, description="unknown call")
    except MismatchedEvent:
        abort(400, description="this step does not wait for that")


def _attempt_id() -> int | None:
    """The scheduled attempt a call belongs to, from ``?a=`` on the URLs the dispatcher gave the provider."""
    value = request.args.get("a")
    if value is None:
        return None
    if not value.isdigit() or len(value) > 12:
        abort(400, description="malformed attempt id")
    return int(value)


def _event() -> spec.Event:
    if request.args.get("e") == "noinput":
        return spec.NoInput()
    if request.args.get("e") == "played":
        return spec.Played()
    speech = request.form.get("SpeechResult")
    if speech is not None:
        if len(speech) > 500:
            abort(400, description="malformed SpeechResult")
        try:
            confidence = float(request.form.get("Confidence", "0"))
        except ValueError:
            abort(400, description="malformed Confidence")
        if not 0.0 <= confidence <= 1.0:
            abort(400, description="malformed Confidence")
        return spec.SpeechInput(speech, confidence) if speech.strip() else spec.NoInput()
    digits = request.form.get("Digits", "")
    if not DIGITS.match(digits):
        abort(400, description="malformed Digits")
    return spec.Digits(digits) if digits else spec.NoInput()


@bp.post("/status")
def status():
    """Record a status callback."""
    call_status = _field("CallStatus")
    if call_status not in CALL_STATUSES:
        abort(400, description="malformed CallStatus")
    duration = _field("CallDuration", required=False, max_length=7)
    if duration and not duration.isdigit():
        abort(400, description="malformed CallDuration")
    direction = _field("Direction", required=False) or "inbound"
    report = StatusReport(
        call_sid=_field("CallSid", CALL_SID),
        status=call_status,
        direction=direction if direction in DIRECTIONS else "inbound",
        duration_s=int(duration) if duration else None,
        answered_by=_field("AnsweredBy", required=False),
        attempt_id=_attempt_id(),
    )
    _service().status(report)
    return "", 204


@bp.post("/fallback")
def fallback():
    """Twilio's Fallback URL: apologise and end the call; the answers already given are kept."""
    current_app.logger.error(
        "voice: fallback for call %s (error %s)",
        request.form.get("CallSid", "?")[:34],
        request.form.get("ErrorCode", "?")[:8],
    )
    settings = current_app.extensions["voice_settings"]
    return (
        settings.renderer.render([spec.Prompt("sorry_error"), spec.Hangup()], settings.default_language),
        200,
        {"Content-Type": TWIML},
    )


@media_bp.get("/media/<language>/<prompt_id>.wav")
def media(language: str, prompt_id: str):
    """Serve a recorded prompt clip; the URL names only the prompt, never the patient."""
    catalogue = current_app.extensions["voice_settings"].renderer.catalogue
    path = catalogue.clip_path(prompt_id, language)
    if path is None:
        abort(404)
    return send_file(path, mimetype="audio/wav", max_age=3600)
