"""The feedback queue: a therapist reviews their own patients' weekly messages before they play.

Guided messages wait here for approval; the therapist approves one as assembled, edits its
segment list, replaces it with their own words or their own recording, or reverts to the
assembled message. Each action is ivr_cbt/feedback/review.py's (which audits it); this module
checks that the message is the therapist's own patient's (404 otherwise) and that it is the
version they read (409 otherwise: new answers may have changed it).
"""

from __future__ import annotations

from dataclasses import dataclass

from flask import Blueprint, abort, current_app, flash, redirect, render_template, request, url_for
from flask_login import current_user, login_required

from ivr_cbt import db
from ivr_cbt.dashboard import messages
from ivr_cbt.dashboard.forms import ButtonForm, RecordingForm, SegmentsForm, TextForm
from ivr_cbt.dashboard.views import audited, therapist_only
from ivr_cbt.dashboard.web import now, own_patient_ids
from ivr_cbt.feedback import review
from ivr_cbt.feedback.segments import SegmentError, parse
from ivr_cbt.models import FeedbackMessage

bp = Blueprint("feedback", __name__, url_prefix="/feedback")
ACTIONS = ("approve", "edit", "text", "record", "revert")
# What a browser may call a WAV or MP3 file; review.record checks the bytes themselves.
EXTENSIONS = {".wav": "audio/wav", ".mp3": "audio/mpeg"}


@dataclass(frozen=True)
class Problem:
    """Why an action on a message was refused, with what the therapist typed (kept for another try)."""

    action: str
    text: str
    submitted: str | None = None


def _settings():
    return current_app.extensions["voice_settings"]


def _prompts(languages) -> dict[str, list[tuple[str, str]]]:
    settings = _settings()
    return messages.prompt_reference(settings.renderer.catalogue, settings.program, languages)


def render_queue(problems: dict[int, Problem] | None = None, status: int = 200):
    """The queue page (audited); ``problems`` maps a message id to why an action on it was refused."""
    settings = _settings()
    shown = messages.queue(db.session(), own_patient_ids(), now(), settings.renderer.catalogue, settings.program)
    audited("feedback_queue_viewed", patient_ids=shown.patient_ids, messages=[v.message.id for v in shown.shown])
    problems = problems or {}
    cards = [*shown.waiting, *shown.changed]
    carded = {v.message.id for v in cards}
    page = render_template(
        "dashboard/feedback_queue.html",
        queue=shown,
        problems=problems,
        elsewhere=[(i, p) for i, p in problems.items() if i not in carded],  # e.g. a message delivered meanwhile
        prompts=_prompts(v.message.language for v in cards),
        max_mb=review.MAX_RECORDING_BYTES // (1024 * 1024),
    )
    return page, status


def render_message(message_id: int, problem: Problem | None = None, status: int = 200):
    """One message's page (audited), whatever its status; 404 unless it is the therapist's own patient's."""
    settings = _settings()
    view = messages.one_message(
        db.session(), own_patient_ids(), message_id, settings.renderer.catalogue, settings.program
    )
    if view is None:
        abort(404)
    audited("feedback_message_viewed", patient_id=view.patient.id, message_id=message_id)
    page = render_template(
        "dashboard/feedback_message.html",
        view=view,
        history=messages.history(db.session(), view.message),
        problem=problem,
        prompts=_prompts([view.message.language] if view.is_open else []),
        max_mb=review.MAX_RECORDING_BYTES // (1024 * 1024),
    )
    return page, status


@bp.get("")
@login_required
def queue():
    """Messages waiting for review (oldest first), ready ones not yet heard, and recently delivered ones."""
    therapist_only()
    return render_queue()


@bp.get("/<int:message_id>")
@login_required
def message(message_id: int):
    """One message with its summary, script and segments, and (while it can change) the actions."""
    therapist_only()
    return render_message(message_id)


def _message_or_404(message_id: int) -> FeedbackMessage:
    message = messages.own_message(db.session(), own_patient_ids(), message_id)
    if message is None:
        abort(404)
    return message


def _content_type(upload) -> str:
    """The upload's type as sent, or from its name when the browser sent a generic one."""
    given = (upload.mimetype or "").lower()
    if given in review.RECORDING_TYPES:
        return given
    name = (upload.filename or "").lower()
    return next((kind for ext, kind in EXTENSIONS.items() if name.endswith(ext)), given)


@bp.post("/<int:message_id>/<action>")
@login_required
def act(message_id: int, action: str):
    """Approve, edit, write, record or revert one message of one's own patient."""
    therapist_only()
    if action not in ACTIONS:
        abort(404)
    message = _message_or_404(message_id)
    form = {"edit": SegmentsForm, "text": TextForm, "record": RecordingForm}.get(action, ButtonForm)()
    if not form.validate_on_submit():
        abort(400)  # the CSRF token was checked before; a form without its fields is malformed
    submitted = {"edit": request.form.get("segments"), "text": request.form.get("text")}.get(action)
    on_page = request.form.get("back") == "message"  # sent from the message's own page, not the queue

    def refuse(problem: Problem, status: int):
        db.session().rollback()
        return render_message(message_id, problem, status) if on_page else render_queue({message_id: problem}, status)

    if request.form.get("version") != str(message.version):
        problem = Problem(
            action,
            f"This message changed while you were reading it (it is now version {message.version}: "
            "new answers arrived or someone else reviewed it). Read it again, then try again.",
            submitted,
        )
        return refuse(problem, 409)
    conn, actor, when = db.session().connection(), current_user.actor, now()
    try:
        done = _apply(conn, message, action, form, actor=actor, when=when)
    except (review.ReviewError, SegmentError) as exc:
        return refuse(Problem(action, str(exc), submitted), 400)
    db.session().commit()
    flash(f"Message #{message_id} (patient #{message.patient_id}, week {message.week}) {done}.", "info")
    if on_page:
        return redirect(url_for("feedback.message", message_id=message_id)), 303
    return redirect(url_for("feedback.queue", _anchor=f"message-{message_id}")), 303


def _apply(conn, message: FeedbackMessage, action: str, form, *, actor: str, when) -> str:
    """Do ``action`` through the review services; return what happened, in words."""
    if action == "approve":
        review.approve(conn, message.id, actor=actor, now=when)
        return "approved: it plays on the patient's next call"
    if action == "revert":
        review.revert(conn, message.id, actor=actor, now=when)
        waits = message.mode == "guided"
        return "reverted to the assembled message" + (", which waits for your review" if waits else "")
    if action == "edit":
        known = _settings().renderer.catalogue.ids(message.language)
        segments = parse(form.segments.data or "", known)
        review.edit(conn, message.id, segments, known_prompts=known, actor=actor, now=when)
        return "edited and approved: it plays on the patient's next call"
    if action == "text":
        review.write_text(conn, message.id, form.text.data or "", actor=actor, now=when)
        return "replaced with your words and approved: it plays on the patient's next call"
    upload = form.audio.data
    if upload is None or not upload.filename:
        raise review.ReviewError("choose a WAV or MP3 file to upload")
    audio = upload.stream.read(review.MAX_RECORDING_BYTES + 1)
    review.record(conn, message.id, audio, _content_type(upload), actor=actor, now=when)
    return "replaced with your recording and approved: it plays on the patient's next call"
