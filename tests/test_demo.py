"""`make demo`: three patients called by the real scheduler at their local times, answered by the offline
phone through the real webhooks; then the week closes, the feedback job runs, and the next call plays it."""

from __future__ import annotations

from ivr_cbt.demo import DEMO_PATIENTS, run_demo
from ivr_cbt.models import CallAttempt, FeedbackMessage, FeedbackStatus

from .conftest import T0
from .helpers import checkins, rows


def test_the_demo_plays_each_story_and_the_feedback_loop(app):
    printed: list[str] = []
    ana, ben, carmen = run_demo(app, printed.append, now=T0)
    text = "\n".join(printed)
    weeks = {row["patient_id"]: row for row in checkins(app) if row["week"] == 0}
    assert weeks[ana]["answers"] == {
        "pain_avg": 5,
        "sleep_quality": 7,
        "steps_avg": 4200,
        "practice_days": 3,
        "safety": 2,
    }
    assert weeks[ben]["status"] == "complete" and weeks[ben]["answers"]["pain_avg"] == 6  # kept from the dropped call
    assert weeks[carmen]["answers"]["steps_avg"] == 3500 and weeks[carmen]["answers"]["practice_days"] is None
    outcomes = {
        patient: [a.outcome for a in rows(app, CallAttempt, CallAttempt.patient_id == patient) if a.week == 0]
        for patient in (ana, ben, carmen)
    }
    assert outcomes[ana] == ["completed"] and outcomes[carmen] == ["machine", "completed"]
    assert outcomes[ben] == ["no-answer", "partial", "completed"]
    assert "Por favor, devuélvanos la llamada" in text  # the voicemail-safe message
    assert "Escuché 3500." in text  # low-confidence speech read back
    messages = {m.patient_id: m for m in rows(app, FeedbackMessage)}
    assert messages[ana].status == FeedbackStatus.DELIVERED and messages[ana].plays == 2
    assert messages[ben].status == FeedbackStatus.READY
    assert messages[carmen].status == FeedbackStatus.PENDING_REVIEW  # the guided arm waits for the therapist
    assert "In your first check-in, you rated your average pain 5 out of 10." in text
    assert "tara@demo.invalid" in text and len(DEMO_PATIENTS) == 3
