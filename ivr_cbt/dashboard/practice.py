"""The practice phone (development and demo only): take a check-in call in the browser.

The server plays the call with the same offline phone and flows as the tests
(``ivr_cbt.simulator``), one turn per key press. Between turns the call's state travels to the
browser and back, signed with the app's secret and valid for an hour, so nothing is held on the
server and any worker can take the next turn.
"""

from __future__ import annotations

import re

import sqlalchemy as sa
from flask import Blueprint, abort, current_app, jsonify, render_template, request
from flask_login import login_required
from itsdangerous import BadSignature, URLSafeTimedSerializer

from ivr_cbt import db
from ivr_cbt.dashboard.views import audited, therapist_only
from ivr_cbt.dashboard.web import now, own_patient_ids, patient_or_404
from ivr_cbt.models import Patient
from ivr_cbt.simulator import interactive
from ivr_cbt.simulator.callers import parse_action
from ivr_cbt.simulator.runner import make_phone, place_call

bp = Blueprint("practice", __name__, url_prefix="/practice")
STATE_MAX_AGE_S = 3600
ACTION = re.compile(r"^(?:[0-9*#]{1,32}|silence|hangup|speech:[^,@]{1,100})$")


@bp.before_request
def development_only():
    if current_app.config["APP_ENV"] != "development":
        abort(404)


def _signer() -> URLSafeTimedSerializer:
    return URLSafeTimedSerializer(current_app.secret_key, salt="ivr-cbt/practice-phone")


def _reply(turn: interactive.Turn, patient_id: int):
    state = _signer().dumps({"patient_id": patient_id, **turn.state}) if turn.state is not None else None
    if turn.state is None:
        audited("practice_call_ended", patient_id=patient_id, call_sid=turn.call_sid, status=turn.status)
    return jsonify(
        call_sid=turn.call_sid,
        lines=[{"speaker": line.speaker, "text": line.text} for line in turn.lines],
        listening=interactive.as_dict(turn)["listening"],
        state=state,
        status=turn.status,
        duration_s=turn.duration_s,
    )


def _phone():
    return make_phone(current_app._get_current_object())


@bp.get("/")
@login_required
def page():
    """Pick one of your patients and take their check-in call."""
    therapist_only()
    patients = db.session().scalars(sa.select(Patient).where(Patient.id.in_(own_patient_ids())).order_by(Patient.id))
    return render_template("dashboard/practice.html", patients=list(patients))


@bp.post("/calls")
@login_required
def start_call():
    """Place a practice call to a patient and play it until it first listens."""
    therapist_only()
    patient_id = (request.get_json(silent=True) or {}).get("patient_id")
    if not isinstance(patient_id, int):
        abort(400)
    patient_or_404(patient_id)
    db.session().commit()  # end this request's transaction: the call's webhooks write in their own
    setup = place_call(current_app._get_current_object(), patient_id, now=now())
    turn = interactive.start(_phone(), **setup)
    audited("practice_call_started", patient_id=patient_id, call_sid=turn.call_sid)
    return _reply(turn, patient_id)


@bp.post("/calls/step")
@login_required
def step():
    """Do what the person chose (keys, silence, speech, hang up) and play on."""
    therapist_only()
    data = request.get_json(silent=True) or {}
    action = data.get("action")
    if not isinstance(action, str) or not ACTION.match(action):
        abort(400)
    try:
        state = _signer().loads(str(data.get("state", "")), max_age=STATE_MAX_AGE_S)
    except BadSignature:
        abort(400)
    patient_id = state.pop("patient_id")
    patient_or_404(patient_id)
    db.session().commit()
    turn = interactive.resume(_phone(), state, parse_action(action))
    return _reply(turn, patient_id)
