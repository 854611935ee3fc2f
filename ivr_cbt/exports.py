"""Exports of patient data. Each one is audited by the caller that runs it."""

from __future__ import annotations

import csv
import io
import json
from collections.abc import Sequence

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.models import Alert, CallAttempt, CheckIn, CheckinKind, FeedbackMessage


def _iso(value) -> str | None:
    return value.isoformat() if value is not None else None


def checkins(session: orm.Session, item_keys: Sequence[str], patient_id: int | None = None) -> list[dict]:
    """One row per check-in; ``answers`` maps every item key to its value (None if skipped or not reached)."""
    query = (
        sa.select(CheckIn)
        .where(CheckIn.kind == CheckinKind.WEEKLY)
        .options(orm.selectinload(CheckIn.answers))
        .order_by(CheckIn.patient_id, CheckIn.week)
    )
    if patient_id is not None:
        query = query.where(CheckIn.patient_id == patient_id)
    rows = []
    for checkin in session.scalars(query):
        values = {answer.item_key: answer.value for answer in checkin.answers}
        rows.append(
            {
                "patient_id": checkin.patient_id,
                "week": checkin.week,
                "status": checkin.status.value,
                "next_item": checkin.next_item,
                "started_at": _iso(checkin.started_at),
                "completed_at": _iso(checkin.completed_at),
                "answers": {key: values.get(key) for key in item_keys},
            }
        )
    return rows


def alerts(session: orm.Session) -> list[dict]:
    query = sa.select(Alert).order_by(Alert.created_at, Alert.id)
    return [
        {
            "id": alert.id,
            "patient_id": alert.patient_id,
            "kind": alert.kind,
            "created_at": _iso(alert.created_at),
            "notified_at": _iso(alert.notified_at),
            "acknowledged_at": _iso(alert.acknowledged_at),
            "acknowledged_by": alert.acknowledged_by,
        }
        for alert in session.scalars(query)
    ]


def attempts(session: orm.Session, patient_id: int | None = None) -> list[dict]:
    """Every scheduled call attempt: when its slot was (local, with the offset it had) and what happened."""
    query = sa.select(CallAttempt).order_by(CallAttempt.due_at, CallAttempt.id)
    if patient_id is not None:
        query = query.where(CallAttempt.patient_id == patient_id)
    return [
        {
            "patient_id": attempt.patient_id,
            "slot_local": attempt.slot_local,
            "due_at": _iso(attempt.due_at),
            "attempt": attempt.attempt,
            "state": attempt.state.value,
            "call_sid": attempt.call_sid,
            "outcome": attempt.outcome,
            "week": attempt.week,
            "flow_id": attempt.flow_id,
        }
        for attempt in session.scalars(query)
    ]


def feedback(session: orm.Session, patient_id: int | None = None) -> list[dict]:
    """Every weekly feedback message: what it says (segments), its mode and status, when it was heard."""
    query = sa.select(FeedbackMessage).order_by(FeedbackMessage.patient_id, FeedbackMessage.week)
    if patient_id is not None:
        query = query.where(FeedbackMessage.patient_id == patient_id)
    return [
        {
            "patient_id": message.patient_id,
            "week": message.week,
            "mode": message.mode.value,
            "status": message.status.value,
            "language": message.language,
            "version": message.version,
            "edited": message.edited,
            "segments": message.segments,
            "generated_at": _iso(message.generated_at),
            "reviewed_at": _iso(message.reviewed_at),
            "delivered_at": _iso(message.delivered_at),
            "plays": message.plays,
        }
        for message in session.scalars(query)
    ]


def to_json(rows: list[dict]) -> str:
    return json.dumps(rows, indent=2, ensure_ascii=False) + "\n"


def checkins_to_csv(rows: list[dict], item_keys: Sequence[str]) -> str:
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(["patient_id", "week", "status", *item_keys, "started_at", "completed_at"])
    for row in rows:
        answers = row["answers"]
        writer.writerow(
            [
                row["patient_id"],
                row["week"],
                row["status"],
                *("" if answers[k] is None else answers[k] for k in item_keys),
                row["started_at"],
                row["completed_at"] or "",
            ]
        )
    return buffer.getvalue()
