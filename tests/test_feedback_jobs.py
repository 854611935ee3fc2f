"""Weekly generation: when a week closes in the patient's zone, by arm, idempotent, regenerated on late answers;
the therapist's review services; previews and exports."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import pytest
import sqlalchemy as sa
from freezegun import freeze_time

from ivr_cbt import checkins as checkin_service
from ivr_cbt import db
from ivr_cbt.callflow import spec
from ivr_cbt.feedback import generate, jobs, review
from ivr_cbt.models import (
    Answer,
    AuditEvent,
    CheckIn,
    FeedbackMessage,
    FeedbackMode,
    FeedbackRecording,
    FeedbackStatus,
    GoalOverride,
)

from .conftest import START, T0
from .helpers import audit_actions, rows, wav

WEEK = timedelta(days=7)
COMPLETE = "1234,6,5,4200#,3,2"


def messages(app, patient_id=None) -> list[FeedbackMessage]:
    where = [FeedbackMessage.patient_id == patient_id] if patient_id is not None else []
    return rows(app, FeedbackMessage, *where)


def overrides(app) -> list[GoalOverride]:
    with app.app_context():
        return list(db.session().scalars(sa.select(GoalOverride)))


def program(app):
    return app.extensions["voice_settings"].program


@pytest.fixture
def baseline(add_patient, call):
    """A patient (automated arm) who completed the week-0 check-in; week 0 has closed at T0."""

    def make(**options):
        patient = add_patient(**options)
        call(patient, COMPLETE, now=T0 - WEEK)
        return patient

    return make


def test_the_message_is_made_once_the_week_has_closed_in_the_patients_own_zone(make_app, add_patient, call):
    app = make_app(CLOCK=None)  # the system clock, which freezegun moves
    new_york = add_patient()
    sydney = add_patient(timezone="Australia/Sydney", start=date(2026, 2, 23))
    call(new_york, COMPLETE, now=T0 - WEEK)
    call(sydney, COMPLETE, now=datetime(2026, 2, 23, 0, 0, tzinfo=UTC))  # 11:00 on Feb 23 in Sydney
    runner = app.test_cli_runner()
    # Week 0 ends at local midnight starting March 2: 13:00 UTC on March 1 in Sydney (UTC+11),
    # 05:00 UTC on March 2 in New York (UTC-5).
    with freeze_time("2026-03-01T12:59:00Z"):
        assert "generated 0" in runner.invoke(args=["feedback", "generate"]).output
    with freeze_time("2026-03-01T13:00:00Z"):
        assert "generated 1" in runner.invoke(args=["feedback", "generate"]).output
    assert [m.patient_id for m in messages(app)] == [sydney]
    with freeze_time("2026-03-02T04:59:59Z"):
        assert "generated 0" in runner.invoke(args=["feedback", "generate"]).output
    with freeze_time("2026-03-02T05:00:00Z"):
        assert "generated 1" in runner.invoke(args=["feedback", "generate"]).output
    assert sorted(m.patient_id for m in messages(app)) == sorted([new_york, sydney])
    assert {m.week for m in messages(app)} == {0}


def test_generation_is_idempotent_per_patient_and_week(app, baseline):
    patient = baseline()
    first = generate(app, T0)
    again = generate(app, T0 + timedelta(hours=1))
    assert (first.generated, again.generated) == (1, 0)
    (message,) = messages(app, patient)
    assert (message.week, message.version, message.language) == (0, 1, "en")
    assert audit_actions(app).count("feedback_generated") == 1


@pytest.mark.parametrize(
    ("mode", "status"),
    [(FeedbackMode.AUTOMATED, FeedbackStatus.READY), (FeedbackMode.GUIDED, FeedbackStatus.PENDING_REVIEW)],
)
def test_an_automated_message_is_ready_and_a_guided_one_waits_for_review(app, baseline, mode, status):
    patient = baseline(feedback_mode=mode)
    generate(app, T0)
    (message,) = messages(app, patient)
    assert (message.mode, message.status) == (mode, status)


def test_the_monitoring_arm_and_paused_patients_get_no_message(app, baseline, runner):
    monitored = baseline(feedback_mode=FeedbackMode.MONITORING)
    paused = baseline()
    assert runner.invoke(args=["patients", "pause", str(paused)]).exit_code == 0
    assert generate(app, T0).generated == 0
    assert messages(app, monitored) == messages(app, paused) == []


def test_a_week_without_a_check_in_still_gets_a_message(app, add_patient):
    patient = add_patient()
    generate(app, T0)
    (message,) = messages(app, patient)
    assert message.summary["reported"] is False and "missed_this_week" in message.summary["flags"]
    assert {"prompt": "fb_missed_week"} in message.segments


def test_only_the_latest_closed_week_is_made_and_weeks_after_the_program_get_none(app, add_patient, call):
    patient = add_patient(start=START - 3 * WEEK)
    for week in range(4):
        call(patient, COMPLETE, now=T0 - (3 - week) * WEEK - WEEK + timedelta(days=1))
    generate(app, T0)
    assert [m.week for m in messages(app, patient)] == [3]
    late = add_patient(start=START - 20 * WEEK)
    generate(app, T0)
    assert [m.week for m in messages(app, late)] == [10]  # the last program week
    generate(app, T0 + WEEK)
    assert [m.week for m in messages(app, patient)] == [3, 4]
    assert [m.week for m in messages(app, late)] == [10]  # once: follow-up weeks get none


def test_the_message_reflects_the_weeks_answers(app, baseline):
    patient = baseline()
    generate(app, T0)
    (message,) = messages(app, patient)
    assert message.summary["pain"] == 6 and message.summary["steps"] == 4200
    assert message.segments[:3] == [{"prompt": "fb_welcome"}, {"prompt": "fb_pain_was_first"}, {"number": 6}]
    assert message.generated_segments == message.segments


def late_answer(app, patient_id: int, week: int, item: str, value: int, now: datetime) -> None:
    """An answer to an earlier week's check-in arriving now (a call that ran past the week's end)."""
    with app.app_context():
        conn = db.connection()
        checkin_id = conn.execute(
            sa.select(CheckIn.id).where(CheckIn.patient_id == patient_id, CheckIn.week == week)
        ).scalar_one()
        flow = app.extensions["voice_settings"].flows["weekly_checkin"]
        # The call re-asked a skipped item: here, replace the stored answer.
        conn.execute(sa.delete(Answer).where(Answer.checkin_id == checkin_id, Answer.item_key == item))
        checkin_service.record_answer(
            conn, checkin_id, flow.items[item], spec.RecordAnswer(item, value, str(value), "dtmf"), "CA" + "9" * 32, now
        )
        checkin_service.update_progress(conn, checkin_id, flow.item_keys(), flow.item_keys(), now)
        conn.execute(sa.update(CheckIn).where(CheckIn.id == checkin_id).values(updated_at=now))
        conn.commit()


def test_late_answers_regenerate_a_message_not_yet_delivered(app, baseline):
    patient = baseline()
    generate(app, T0)
    late_answer(app, patient, 0, "pain_avg", 8, T0 + timedelta(hours=1))
    report = generate(app, T0 + timedelta(hours=2))
    assert (report.generated, report.regenerated) == (0, 1)
    (message,) = messages(app, patient)
    assert message.version == 2 and message.summary["pain"] == 8
    assert {"number": 8} in message.segments and message.status == FeedbackStatus.READY


def test_an_approved_guided_message_goes_back_to_review_when_its_numbers_change(app, baseline):
    patient = baseline(feedback_mode=FeedbackMode.GUIDED)
    generate(app, T0)
    (message,) = messages(app, patient)
    with app.app_context():
        review.approve(db.connection(), message.id, actor="user:1", now=T0)
        db.connection().commit()
    late_answer(app, patient, 0, "pain_avg", 9, T0 + timedelta(hours=1))
    generate(app, T0 + timedelta(hours=2))
    (message,) = messages(app, patient)
    assert (message.status, message.reviewed_at, message.version) == (FeedbackStatus.PENDING_REVIEW, None, 2)


def test_a_therapists_edit_is_never_overwritten_by_late_answers_only_flagged(app, baseline):
    patient = baseline(feedback_mode=FeedbackMode.GUIDED)
    generate(app, T0)
    (message,) = messages(app, patient)
    with app.app_context():
        review.write_text(db.connection(), message.id, "Well done this week.", actor="user:1", now=T0)
        db.connection().commit()
    late_answer(app, patient, 0, "pain_avg", 9, T0 + timedelta(hours=1))
    assert generate(app, T0 + timedelta(hours=2)).flagged == 1
    (message,) = messages(app, patient)
    assert message.segments == [{"text": "Well done this week."}] and message.source_changed
    assert message.status == FeedbackStatus.READY


def test_unchanged_answers_do_not_bump_the_version(app, baseline):
    patient = baseline()
    generate(app, T0)
    late_answer(app, patient, 0, "pain_avg", 6, T0 + timedelta(hours=1))  # the same value again
    report = generate(app, T0 + timedelta(hours=2))
    assert (report.regenerated, report.unchanged) == (0, 1)
    assert messages(app, patient)[0].version == 1


# --- review ---------------------------------------------------------------------------------------------


@pytest.fixture
def pending(app, baseline):
    patient = baseline(feedback_mode=FeedbackMode.GUIDED)
    generate(app, T0)
    (message,) = messages(app, patient)
    return message


def act(app, function, *args, **kwargs):
    with app.app_context():
        conn = db.connection()
        result = function(conn, *args, **kwargs)
        conn.commit()
        return result


def test_approving_makes_a_guided_message_ready_and_is_audited(app, pending):
    act(app, review.approve, pending.id, actor="user:7", now=T0)
    (message,) = messages(app)
    assert (message.status, message.reviewed_by, message.reviewed_at) == (FeedbackStatus.READY, "user:7", T0)
    assert "feedback_approved" in audit_actions(app, pending.patient_id)


def test_an_edited_segment_list_is_checked_before_it_is_saved(app, pending):
    known = app.extensions["voice_settings"].renderer.catalogue.ids("en")
    with pytest.raises(review.ReviewError, match="unknown prompt"):
        act(app, review.edit, pending.id, [{"prompt": "no_such_prompt"}], known_prompts=known, actor="u", now=T0)
    with pytest.raises(review.ReviewError, match="segment 2"):
        act(
            app,
            review.edit,
            pending.id,
            [{"prompt": "fb_closing"}, {"colour": 1}],
            known_prompts=known,
            actor="u",
            now=T0,
        )
    segments = [{"prompt": "fb_pain_was"}, {"number": 3}, {"prompt": "fb_closing"}]
    act(app, review.edit, pending.id, segments, known_prompts=known, actor="user:7", now=T0)
    (message,) = messages(app)
    assert message.segments == segments and message.edited and message.version == 2
    assert message.generated_segments != segments and message.status == FeedbackStatus.READY
    act(app, review.revert, pending.id, actor="user:7", now=T0)
    (message,) = messages(app)
    assert message.segments == message.generated_segments and message.status == FeedbackStatus.PENDING_REVIEW


def test_a_recording_replaces_the_message_and_is_served_by_an_opaque_url(app, pending):
    with pytest.raises(review.ReviewError, match="WAV or MP3"):
        act(app, review.record, pending.id, b"hello", "text/plain", actor="u", now=T0)
    with pytest.raises(review.ReviewError, match="not a WAV"):
        act(app, review.record, pending.id, b"RIFF....nonsense", "audio/wav", actor="u", now=T0)
    token = act(app, review.record, pending.id, wav(2.5), "audio/wav", actor="user:7", now=T0)
    (message,) = messages(app)
    assert message.segments == [{"recording": token}] and message.status == FeedbackStatus.READY
    (recording,) = rows(app, FeedbackRecording)
    assert recording.seconds == 2.5 and len(token) >= 32  # random: it names no patient
    served = app.test_client().get(f"/recordings/{token}.wav")
    assert served.status_code == 200 and served.data == wav(2.5) and served.mimetype == "audio/wav"
    assert app.test_client().get("/recordings/" + "x" * 32 + ".wav").status_code == 404
    assert app.test_client().get("/recordings/short.wav").status_code == 404


def test_a_delivered_message_can_no_longer_change(app, pending):
    with app.app_context():
        db.connection().execute(
            sa.update(FeedbackMessage).values(status=FeedbackStatus.DELIVERED.value, delivered_at=T0)
        )
        db.connection().commit()
    with pytest.raises(review.ReviewError, match="delivered"):
        act(app, review.approve, pending.id, actor="u", now=T0)
    with pytest.raises(LookupError):
        act(app, review.approve, 999_999, actor="u", now=T0)


def test_a_therapists_goal_rebuilds_the_undelivered_message_that_announces_it(app, baseline):
    patient = baseline()
    generate(app, T0)
    assert messages(app, patient)[0].summary["next_goals"] == {"steps": None, "practice_days": 7}
    act(app, review.set_goals, program(app), patient, 1, steps=None, practice_days=3, actor="user:7", now=T0)
    (message,) = messages(app, patient)
    assert message.summary["next_goals"] == {"steps": None, "practice_days": 3} and message.version == 2
    assert {"number": 3} in message.segments
    (override,) = overrides(app)
    assert (override.week, override.practice_days_goal, override.set_by) == (1, 3, "user:7")
    with pytest.raises(review.ReviewError, match="between 0 and 7"):
        act(app, review.set_goals, program(app), patient, 1, steps=None, practice_days=9, actor="u", now=T0)
    act(app, review.set_goals, program(app), patient, 1, steps=None, practice_days=None, actor="user:7", now=T0)
    assert overrides(app) == [] and messages(app, patient)[0].summary["next_goals"]["practice_days"] == 7


# --- previews and exports ----------------------------------------------------------------------------------


def test_a_preview_shows_what_generation_would_make_and_stores_nothing(app, baseline):
    patient = baseline()
    with app.app_context():
        shown = jobs.preview(db.connection(), program(app), patient, None, T0)
    assert messages(app) == [] and shown.week == 0
    generate(app, T0)
    assert messages(app, patient)[0].segments == shown.segments


def test_feedback_preview_prints_the_script_and_the_segments_and_is_audited(app, baseline, runner):
    patient = baseline()
    result = runner.invoke(args=["feedback", "preview", "--patient", str(patient), "--now", T0.isoformat()])
    assert result.exit_code == 0, result.output
    assert "In your first check-in, you rated your average pain 6 out of 10." in result.output
    assert '{"prompt": "fb_welcome"}' in result.output and "program week 0" in result.output
    assert "feedback_previewed" in audit_actions(app, patient)
    missing = runner.invoke(args=["feedback", "preview", "--patient", "999999"])
    assert missing.exit_code != 0 and "no patient 999999" in missing.output


def test_export_feedback_lists_messages_with_their_fields_and_is_audited(app, baseline, runner):
    patient = baseline(feedback_mode=FeedbackMode.GUIDED)
    generate(app, T0)
    result = runner.invoke(args=["export", "feedback", "--format", "json"])
    assert result.exit_code == 0, result.output
    (row,) = json.loads(result.output)
    assert {k: row[k] for k in ("patient_id", "week", "mode", "status", "delivered_at")} == {
        "patient_id": patient,
        "week": 0,
        "mode": "guided",
        "status": "pending-review",
        "delivered_at": None,
    }
    assert row["segments"][0] == {"prompt": "fb_welcome"}
    events = rows(app, AuditEvent, AuditEvent.action == "export_feedback")
    assert len(events) == 1 and events[0].detail["rows"] == 1
