"""What a therapist does with a weekly message before it plays: approve it, edit it, record their own,
and set a patient's goals. Each change is audited; only a message not yet delivered can change.

Callers check that the therapist may act for the patient (the dashboard does, per request).
"""

from __future__ import annotations

import io
import secrets
import wave
from datetime import datetime

import sqlalchemy as sa

from ivr_cbt import audit
from ivr_cbt.db import insert_ignoring_conflicts
from ivr_cbt.feedback import jobs
from ivr_cbt.feedback.program import Program
from ivr_cbt.feedback.segments import SegmentError, validate
from ivr_cbt.models import FeedbackMessage, FeedbackRecording, FeedbackStatus, GoalOverride

_messages, _recordings, _overrides = FeedbackMessage.__table__, FeedbackRecording.__table__, GoalOverride.__table__
OPEN = (FeedbackStatus.PENDING_REVIEW.value, FeedbackStatus.READY.value)
MAX_RECORDING_BYTES = 8 * 1024 * 1024  # a few minutes of telephone-quality audio
# What Twilio's <Play> takes (and what we accept): WAV and MP3.
RECORDING_TYPES = {"audio/wav": "wav", "audio/x-wav": "wav", "audio/wave": "wav", "audio/mpeg": "mp3"}


class ReviewError(ValueError):
    """A change that cannot be made; the message says why in plain words."""


def _open_message(conn: sa.Connection, message_id: int) -> sa.Row:
    message = conn.execute(sa.select(_messages).where(_messages.c.id == message_id)).one_or_none()
    if message is None:
        raise LookupError(f"no feedback message {message_id}")
    if message.status not in OPEN:
        raise ReviewError(f"the message for week {message.week} is {message.status} and can no longer change")
    return message


def _reviewed(conn: sa.Connection, message: sa.Row, actor: str, now: datetime, **changes) -> None:
    conn.execute(
        sa.update(_messages)
        .where(_messages.c.id == message.id)
        .values(
            status=FeedbackStatus.READY.value,
            reviewed_at=now,
            reviewed_by=actor,
            updated_at=now,
            **changes,
        )
    )


def approve(conn: sa.Connection, message_id: int, *, actor: str, now: datetime) -> None:
    """Approve a message as assembled (or as last edited): it plays on the patient's next call."""
    message = _open_message(conn, message_id)
    _reviewed(conn, message, actor, now, source_changed=False)
    audit.record(conn, now, actor, "feedback_approved", patient_id=message.patient_id, message_id=message.id)


def edit(
    conn: sa.Connection, message_id: int, segments: list[dict], *, known_prompts, actor: str, now: datetime
) -> None:
    """Replace the message's segments (prompts, numbers, free text) and approve it."""
    message = _open_message(conn, message_id)
    try:
        validate(segments, known_prompts)
    except SegmentError as exc:
        raise ReviewError(str(exc)) from None
    if not segments:
        raise ReviewError("a message needs at least one segment")
    _reviewed(
        conn,
        message,
        actor,
        now,
        segments=segments,
        edited=True,
        source_changed=False,
        version=_messages.c.version + 1,
    )
    audit.record(conn, now, actor, "feedback_edited", patient_id=message.patient_id, message_id=message.id)


def write_text(conn: sa.Connection, message_id: int, text: str, *, actor: str, now: datetime) -> None:
    """Replace the message with the therapist's own words, spoken by TTS in the patient's language."""
    text = text.strip()
    if not text:
        raise ReviewError("write the message, or approve the assembled one")
    if len(text) > 2000:
        raise ReviewError("a message of more than 2,000 characters is too long for a phone call")
    edit(conn, message_id, [{"text": text}], known_prompts=(), actor=actor, now=now)


def record(conn: sa.Connection, message_id: int, audio: bytes, content_type: str, *, actor: str, now: datetime) -> str:
    """Replace the message with the therapist's own recording; return the recording's token."""
    message = _open_message(conn, message_id)
    kind = RECORDING_TYPES.get(content_type.split(";")[0].strip().lower())
    if kind is None:
        raise ReviewError("upload a WAV or MP3 file")
    if not audio or len(audio) > MAX_RECORDING_BYTES:
        raise ReviewError(f"a recording must be between 1 byte and {MAX_RECORDING_BYTES // (1024 * 1024)} MB")
    seconds = _wav_seconds(audio) if kind == "wav" else _mp3_check(audio)
    token = secrets.token_urlsafe(24)
    conn.execute(
        sa.insert(_recordings),
        {
            "message_id": message.id,
            "token": token,
            "content_type": "audio/wav" if kind == "wav" else "audio/mpeg",
            "audio": audio,
            "seconds": seconds,
            "uploaded_by": actor,
            "uploaded_at": now,
        },
    )
    _reviewed(
        conn,
        message,
        actor,
        now,
        segments=[{"recording": token}],
        edited=True,
        source_changed=False,
        version=_messages.c.version + 1,
    )
    audit.record(conn, now, actor, "feedback_recorded", patient_id=message.patient_id, message_id=message.id)
    return token


def _wav_seconds(audio: bytes) -> float:
    try:
        with wave.open(io.BytesIO(audio)) as clip:
            frames, rate = clip.getnframes(), clip.getframerate()
    except (wave.Error, EOFError) as exc:
        raise ReviewError(f"that is not a WAV file Twilio can play ({exc})") from None
    if rate <= 0 or frames <= 0:
        raise ReviewError("the recording is empty")
    return round(frames / rate, 2)


def _mp3_check(audio: bytes) -> None:
    # An ID3 tag, or an MPEG audio frame sync (11 set bits).
    if not (audio[:3] == b"ID3" or (len(audio) > 1 and audio[0] == 0xFF and audio[1] & 0xE0 == 0xE0)):
        raise ReviewError("that is not an MP3 file")
    return None


def revert(conn: sa.Connection, message_id: int, *, actor: str, now: datetime) -> None:
    """Drop the therapist's changes: back to the assembled message, waiting for review again if guided."""
    message = _open_message(conn, message_id)
    conn.execute(
        sa.update(_messages)
        .where(_messages.c.id == message.id)
        .values(
            segments=message.generated_segments,
            edited=False,
            source_changed=False,
            version=_messages.c.version + 1,
            updated_at=now,
            status=FeedbackStatus.PENDING_REVIEW.value if message.mode == "guided" else FeedbackStatus.READY.value,
            reviewed_at=None,
            reviewed_by=None,
        )
    )
    audit.record(conn, now, actor, "feedback_reverted", patient_id=message.patient_id, message_id=message.id)


def set_goals(
    conn: sa.Connection,
    program: Program,
    patient_id: int,
    week: int,
    *,
    steps: int | None,
    practice_days: int | None,
    actor: str,
    now: datetime,
) -> None:
    """Set (or, with both None, clear) the patient's goals for ``week``; the message that announces
    them, if not yet delivered nor edited, is rebuilt so that it says the new goals."""
    if steps is not None and not 0 <= steps <= 99999:
        raise ReviewError("a step goal is between 0 and 99,999 steps a day")
    if practice_days is not None and not 0 <= practice_days <= 7:
        raise ReviewError("a practice goal is between 0 and 7 days")
    if not 0 <= week < program.weeks + 40:
        raise ReviewError(f"week {week} is not a program week")
    key = {"patient_id": patient_id, "week": week}
    conn.execute(sa.delete(_overrides).filter_by(**key))
    if steps is not None or practice_days is not None:
        insert_ignoring_conflicts(
            conn,
            _overrides,
            {**key, "steps_goal": steps, "practice_days_goal": practice_days, "set_by": actor, "set_at": now},
        )
    audit.record(
        conn, now, actor, "goals_set", patient_id=patient_id, week=week, steps=steps, practice_days=practice_days
    )
    jobs.rebuild(conn, program, patient_id, week - 1, now)
