"""The audit trail: who did what, when. Ids and counts only, never names, numbers or answers."""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import orm

from ivr_cbt.models import AuditEvent


def record(
    session: orm.Session,
    now: datetime,
    actor: str,
    action: str,
    *,
    patient_id: int | None = None,
    call_sid: str | None = None,
    **detail,
) -> AuditEvent:
    """Add an audit row to ``session`` (committed with the work it describes)."""
    event = AuditEvent(at=now, actor=actor, action=action, patient_id=patient_id, call_sid=call_sid, detail=detail)
    session.add(event)
    return event


def cli_actor() -> str:
    """Name the operator behind a command-line action."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
