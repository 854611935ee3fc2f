"""Playing the weekly message in a call: find the waiting one, turn it into speech, mark it heard.

A message is *waiting* when it is ready and not yet delivered; the latest such one plays. It
is delivered only when it has played to its end on a call (the flow's feedback node waits
for the playback before going on: Twilio requests the next URL only then), so a caller who
hangs up during it hears it again on the next call. When a message is delivered, any older
undelivered one is superseded: it stays in the record but will not play.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import sqlalchemy as sa

from ivr_cbt.callflow import spec
from ivr_cbt.db import Prepared, is_one_of
from ivr_cbt.feedback.segments import spoken_number
from ivr_cbt.models import FeedbackMessage, FeedbackRecording, FeedbackStatus
from ivr_cbt.twiml import Clip, Text

_messages, _recordings = FeedbackMessage.__table__, FeedbackRecording.__table__
_WAITING = Prepared(
    sa.select(_messages.c.id, _messages.c.version, _messages.c.week)
    .where(
        _messages.c.patient_id == sa.bindparam("b_patient"),
        _messages.c.status == FeedbackStatus.READY.value,
    )
    .order_by(_messages.c.week.desc())
    .limit(1)
)
_SEGMENTS = Prepared(sa.select(_messages.c.segments, _messages.c.version).where(_messages.c.id == sa.bindparam("b_id")))
_HEARD = Prepared(
    sa.update(_messages)
    .where(_messages.c.id == sa.bindparam("b_id"), _messages.c.version == sa.bindparam("b_version"))
    .values(plays=_messages.c.plays + 1)
)
_DELIVER = Prepared(
    sa.update(_messages)
    .where(
        _messages.c.id == sa.bindparam("b_id"),
        _messages.c.version == sa.bindparam("b_version"),
        _messages.c.status == FeedbackStatus.READY.value,
    )
    .values(status=FeedbackStatus.DELIVERED.value)
    .returning(_messages.c.patient_id, _messages.c.week)
)
_SUPERSEDE = Prepared(
    sa.update(_messages)
    .where(
        _messages.c.patient_id == sa.bindparam("b_patient"),
        _messages.c.week < sa.bindparam("b_week"),
        is_one_of(_messages.c.status, [FeedbackStatus.READY.value, FeedbackStatus.PENDING_REVIEW.value]),
    )
    .values(status=FeedbackStatus.SUPERSEDED.value)
)


def waiting(conn: sa.Connection, patient_id: int) -> sa.Row | None:
    """The message the patient's next call plays (id, version, week), or None."""
    return _WAITING.first(conn, {"b_patient": patient_id})


def outputs(conn: sa.Connection, message_id: int, catalogue, language: str, media_base: str) -> list:
    """What the message says, as renderer outputs (prompts, numbers, free text, recordings)."""
    row = _SEGMENTS.first(conn, {"b_id": message_id})
    return segment_outputs(row.segments if row else [], media_base)


def segment_outputs(segments: Sequence[dict], media_base: str) -> list:
    out: list = []
    for segment in segments:
        if "prompt" in segment:
            out.append(spec.Prompt(segment["prompt"], segment.get("end")))
        elif "number" in segment:
            out.append(spec.SayValue(spoken_number(segment["number"]), "number", end_sentence=bool(segment.get("end"))))
        elif "text" in segment:
            out.append(Text(segment["text"]))
        elif "recording" in segment:
            out.append(Clip(f"{media_base}/recordings/{segment['recording']}.wav"))
    return out


def heard(conn: sa.Connection, message_id: int, version: int, *, call_sid: str, now: datetime) -> bool:
    """The message played to its end on ``call_sid``: count the play; deliver it if it is the version played.

    Returns True if this play delivered it (the first time it was heard in full).
    """
    _HEARD.rowcount(conn, {"b_id": message_id, "b_version": version})
    delivered = _DELIVER.first(
        conn, {"b_id": message_id, "b_version": version, "delivered_at": now, "delivered_call_sid": call_sid}
    )
    if delivered is None:
        return False
    _SUPERSEDE.rowcount(conn, {"b_patient": delivered.patient_id, "b_week": delivered.week, "updated_at": now})
    return True


def recording(conn: sa.Connection, token: str) -> sa.Row | None:
    """A therapist's recording by its token (audio, content type)."""
    return conn.execute(
        sa.select(_recordings.c.audio, _recordings.c.content_type).where(_recordings.c.token == token)
    ).first()
