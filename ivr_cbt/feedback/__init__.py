"""Weekly feedback: the program's modules and goals, weekly summaries, the assembled message,
its generation, review and delivery.

- ``program``: the module schedule (program/modules.yaml) and the step-goal rule.
- ``summary`` and ``rules``: pure; a week's numbers in, the message's segments out.
- ``jobs``: the scheduler's generation job (set-based) and previews.
- ``delivery``: the message in a call (the webhook hot path).
- ``review``: what a therapist does with a message: approve, edit, record, set goals.
"""

from __future__ import annotations

from datetime import datetime

from flask import Blueprint, Flask, abort, current_app

from ivr_cbt import db

bp = Blueprint("feedback_media", __name__)


def init_app(app: Flask) -> None:
    app.register_blueprint(bp)


def generate(app: Flask, now: datetime):
    """Run the generation job once (the scheduler's job, and ``feedback generate``); with
    FEEDBACK_DELIVERY=call, also plan a short feedback call for every ready message that has had none."""
    from ivr_cbt.feedback.jobs import generate_due
    from ivr_cbt.scheduling.attempts import plan_feedback_calls

    settings = app.extensions["voice_settings"]
    with app.extensions["db_engine"].connect() as conn:
        report = generate_due(conn, settings.program, now)
        if app.config["FEEDBACK_DELIVERY"] == "call":
            report.calls_planned = plan_feedback_calls(conn, settings.scheduling, now)
            conn.commit()
    return report


@bp.get("/recordings/<token>.wav")
def recording(token: str):
    """A therapist's recording, fetched by Twilio; the random token names no patient."""
    from ivr_cbt.feedback.delivery import recording as find

    if not token.replace("-", "").replace("_", "").isalnum() or not 16 <= len(token) <= 64:
        abort(404)
    found = find(db.connection(), token)
    if found is None:
        abort(404)
    response = current_app.response_class(found.audio, mimetype=found.content_type)
    response.headers["Cache-Control"] = "private, max-age=300"
    return response
