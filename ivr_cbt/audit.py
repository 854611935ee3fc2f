"""The audit trail: who did what, when. Ids and counts only, never names, numbers or answers."""

from __future__ import annotations

from datetime import datetime

import sqlalchemy as sa
from sqlalchemy import orm

from ivr_cbt.db import Prepared, connection_of
from ivr_cbt.models import AuditEvent

_INSERT = sa.insert(AuditEvent.__table__)
_RECORD = Prepared(_INSERT)


def record(
    target: sa.Connection | orm.Session,
    now: datetime,
    actor: str,
    action: str,
    *,
    patient_id: int | None = None,
    call_sid: str | None = None,
    **detail,
) -> None:
    """Write an audit row in the caller's transaction (committed with the work it describes; on
    PostgreSQL it goes to the server with the transaction's next statement or its commit)."""
    _RECORD.send(
        connection_of(target),
        {"at": now, "actor": actor, "action": action, "patient_id": patient_id, "call_sid": call_sid, "detail": detail},
    )


def record_many(target: sa.Connection | orm.Session, now: datetime, actor: str, action: str, rows: list[dict]) -> None:
    """Write one audit row per mapping in ``rows`` (each may name ``patient_id``, ``call_sid`` and
    details) with a single executemany, in the caller's transaction."""
    if not rows:
        return
    params = []
    for row in rows:
        detail = dict(row)
        patient_id, call_sid = detail.pop("patient_id", None), detail.pop("call_sid", None)
        params.append(
            {
                "at": now,
                "actor": actor,
                "action": action,
                "patient_id": patient_id,
                "call_sid": call_sid,
                "detail": detail,
            }
        )
    connection_of(target).execute(_INSERT, params)


def cli_actor() -> str:
    """Name the operator behind a command-line action."""
    import getpass

    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli:unknown"
